// Maintenance and reconcile (see maintenance.hpp), every
// taskq.maintenance_interval: one transaction, then the reconciler's talk
// with the broker outside it.
#include "publisher/maintenance.hpp"

#include "publisher/broker_connection.hpp"
#include "publisher/pass_transaction.hpp"
#include "publisher/status_update.hpp"
#include "settings.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "pgstat.h"
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
// ready message, has lost messages (purge, policy, deleted queue). It runs
// in three steps so that no transaction (with its snapshot and its lock on
// taskq.outbox) stays open while the broker takes up to its 10 s method
// timeout to answer: the queues to ask about are collected in the
// maintenance transaction, the broker is asked with no transaction open,
// and the queues it reports empty get a transaction of their own, in which
// taskq._reconcile_lost checks every job again.
struct ReconcileQueue {
  char* name;
  long ready;  // ready messages in RabbitMQ; -1: the queue does not exist
};

// Step 1, in the maintenance transaction: the queues with pending jobs
// that should have started by now.
int queues_to_reconcile(PublisherState& st, ReconcileQueue** out) {
  Oid argtypes[1] = {INT4OID};
  Datum args[1] = {Int32GetDatum(taskq_reconcile_after_s)};
  *out = nullptr;
  if (SPI_execute_with_args("SELECT DISTINCT queue_name FROM taskq.jobs"
                            " WHERE status = 'pending' AND run_at < now() - make_interval(secs => $1)",
                            1, argtypes, args, nullptr, true, 0) != SPI_OK_SELECT)
    return 0;
  const int n = static_cast<int>(SPI_processed);
  auto* queues =
      static_cast<ReconcileQueue*>(MemoryContextAllocZero(st.pass_context, sizeof(ReconcileQueue) * (n > 0 ? n : 1)));
  for (int i = 0; i < n; i++)
    queues[i].name = copy_value(st.pass_context, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
  *out = queues;
  return n;
}

// Step 2, with no transaction open. Returns false when the connection was
// lost (and dropped): then nothing is reconciled this time.
bool ask_broker(PublisherState& st, ReconcileQueue* queues, int n) {
  pgstat_report_activity(STATE_RUNNING, "taskq publisher: asking RabbitMQ for lost messages");
  for (int i = 0; i < n; i++) {
    CHECK_FOR_INTERRUPTS();
    char err[512];
    queues[i].ready = taskq_pub_ready_messages(st.publisher, queues[i].name, err, sizeof(err));
    if (queues[i].ready == -2) {
      pgstat_report_activity(STATE_IDLE, nullptr);
      disconnect(st, err);
      return false;
    }
  }
  pgstat_report_activity(STATE_IDLE, nullptr);
  return true;
}

// Step 3, in a transaction of its own. Returns how many jobs it made due
// again.
int64 reconcile_empty_queues(const ReconcileQueue* queues, int n) {
  int64 reconciled = 0;
  bool begun = false;
  for (int i = 0; i < n; i++) {
    if (queues[i].ready > 0) continue;
    if (!begun) {
      begin_transaction("taskq publisher: reconciling lost messages");
      begun = true;
      if (!lock_outbox()) break;
    }
    Oid argtypes[2] = {TEXTOID, INT4OID};
    Datum args[2] = {CStringGetTextDatum(queues[i].name), Int32GetDatum(taskq_reconcile_after_s)};
    if (SPI_execute_with_args("SELECT taskq._reconcile_lost($1, make_interval(secs => $2))", 2, argtypes, args, nullptr,
                              false, 1) == SPI_OK_SELECT &&
        SPI_processed == 1) {
      bool isnull;
      const int32 again = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
      if (again > 0) {
        reconciled += again;
        ereport(LOG, (errmsg("taskq publisher: publishing %d job(s) of queue \"%s\" again: their messages were "
                             "lost (RabbitMQ queue %s)",
                             again, queues[i].name, queues[i].ready < 0 ? "missing" : "empty")));
      }
    }
  }
  if (begun) finish_transaction();
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
  ReconcileQueue* queues = nullptr;
  const int n_queues = st.publisher != nullptr ? queues_to_reconcile(st, &queues) : 0;
  finish_transaction();
  int64 reconciled = 0;
  if (n_queues > 0 && ask_broker(st, queues, n_queues)) reconciled = reconcile_empty_queues(queues, n_queues);
  MemoryContextReset(st.pass_context);

  update_shared([&](TaskqPublisherSlot& shared) {
    shared.status.rescued += static_cast<uint64>(rescued);
    shared.status.reconciled += static_cast<uint64>(reconciled);
  });
  if (reconciled > 0 || released > 0) st.woken_during_pass = true;  // publish them now
}

}  // namespace taskq::publisher
