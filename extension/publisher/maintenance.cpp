// Maintenance and reconcile (see maintenance.hpp), every
// taskq.maintenance_interval in one transaction.
#include "publisher/maintenance.hpp"

#include "publisher/broker_connection.hpp"
#include "publisher/pass_transaction.hpp"
#include "publisher/status_update.hpp"
#include "settings.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/memutils.h"
}

namespace taskq::publisher {
namespace {

// The int4 result of a one-row maintenance function, 0 if it returned none.
int64 count_of(const char* query) {
  int64 count = 0;
  if (SPI_execute(query, false, 1) == SPI_OK_SELECT && SPI_processed == 1) {
    bool isnull;
    count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  }
  return count;
}

// Reconcile: PostgreSQL is the truth. A queue with jobs that were
// published long ago and never started, while its RabbitMQ queue holds no
// ready message, has lost messages (purge, policy, deleted queue). Returns
// how many jobs it made due again.
int64 reconcile_lost_messages(PublisherState& st) {
  int64 reconciled = 0;
  Oid argtypes[2] = {INT4OID, TEXTOID};
  Datum args[2] = {Int32GetDatum(taskq_reconcile_after_s), 0};
  if (SPI_execute_with_args("SELECT DISTINCT queue_name FROM taskq.jobs"
                            " WHERE status = 'pending' AND run_at < now() - make_interval(secs => $1)",
                            1, argtypes, args, nullptr, true, 0) != SPI_OK_SELECT)
    return 0;
  const int n = static_cast<int>(SPI_processed);
  char** queues = static_cast<char**>(MemoryContextAlloc(st.pass_context, sizeof(char*) * (n > 0 ? n : 1)));
  for (int i = 0; i < n; i++) queues[i] = copy_value(st.pass_context, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
  for (int i = 0; i < n && st.publisher != nullptr; i++) {
    char err[512];
    const long ready = taskq_pub_ready_messages(st.publisher, queues[i], err, sizeof(err));
    if (ready == -2) {
      disconnect(st, err);
      break;
    }
    if (ready > 0) continue;
    argtypes[0] = TEXTOID;
    argtypes[1] = INT4OID;
    args[0] = CStringGetTextDatum(queues[i]);
    args[1] = Int32GetDatum(taskq_reconcile_after_s);
    if (SPI_execute_with_args("SELECT taskq._reconcile_lost($1, make_interval(secs => $2))", 2, argtypes, args, nullptr,
                              false, 1) == SPI_OK_SELECT &&
        SPI_processed == 1) {
      bool isnull;
      const int32 again = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
      if (again > 0) {
        reconciled += again;
        ereport(LOG, (errmsg("taskq publisher: publishing %d job(s) of queue \"%s\" again: their messages were "
                             "lost (RabbitMQ queue %s)",
                             again, queues[i], ready < 0 ? "missing" : "empty")));
      }
    }
  }
  return reconciled;
}

}  // namespace

void run_maintenance(PublisherState& st) {
  begin_transaction("taskq publisher: maintenance");
  if (!lock_outbox()) {
    finish_transaction();
    return;
  }
  const int64 rescued = count_of("SELECT taskq.rescue_expired()");
  SPI_execute("SELECT taskq.purge_finished()", false, 1);
  const int64 released = count_of("SELECT taskq._release_held()");
  const int64 reconciled = st.publisher != nullptr ? reconcile_lost_messages(st) : 0;
  finish_transaction();
  MemoryContextReset(st.pass_context);

  update_shared([&](TaskqSharedState& shared) {
    shared.status.rescued += static_cast<uint64>(rescued);
    shared.status.reconciled += static_cast<uint64>(reconciled);
  });
  if (reconciled > 0 || released > 0) st.woken_during_pass = true;  // publish them now
}

}  // namespace taskq::publisher
