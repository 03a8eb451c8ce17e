// The "taskq publisher" background worker: its registration, its entry
// point and its loop. Each round of the loop connects to the broker if
// need be, runs the flow-control step when it is asked for or due
// (flow_step.hpp), runs publishing passes while full batches come back,
// fires due schedules (schedule_firing.hpp), runs maintenance when it is
// due (with the flow step's sweep), then
// sleeps on its latch (set by committing transactions, see
// commit_wakeup.cpp) and the broker's socket.
#include "core_bridge.h"
#include "pg_includes.hpp"
#include "publisher/broker_connection.hpp"
#include "publisher/error_recovery.hpp"
#include "publisher/flow_step.hpp"
#include "publisher/maintenance.hpp"
#include "publisher/publish_pass.hpp"
#include "publisher/publisher_state.hpp"
#include "publisher/schedule_firing.hpp"
#include "publisher/status_update.hpp"
#include "settings.hpp"
#include "shared_state.hpp"

extern "C" {
#include "access/xlog.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PGDLLEXPORT void taskq_publisher_main(Datum arg);
}

namespace taskq::publisher {
namespace {

// Longest idle sleep while connected: rabbitmq-c answers heartbeats only
// when we read, and a frozen broker is noticed only when we look
// (heartbeat 10 s, see ConnectOptions).
constexpr long kServiceIntervalMs = 5000;

// The worker's one state; static so that the exit callback reaches it
// however the loop is left.
PublisherState state;

// Publishers started with the server: one per taskq.database entry then
// (set in the postmaster, inherited by the workers it forks).
int registered_publishers = 0;

bool extension_installed(void) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  const bool installed = OidIsValid(get_extension_oid("taskq", true));
  CommitTransactionCommand();
  return installed;
}

void reload_settings(PublisherState& st) {
  ConfigReloadPending = false;
  ProcessConfigFile(PGC_SIGHUP);
  // A shorter maintenance interval applies now, not after the old one ran out.
  const TimestampTz soonest =
      TimestampTzPlusMilliseconds(GetCurrentTimestamp(), static_cast<long>(taskq_maintenance_interval_s) * 1000);
  if (st.next_maintenance_at > soonest) st.next_maintenance_at = soonest;
  char wanted[NAMEDATALEN];
  if (!taskq_database_entry(my_slot, wanted, sizeof(wanted))) {
    ereport(LOG, (errmsg("taskq publisher: \"%s\" is no longer in taskq.database; stopping", st.serving_database)));
    proc_exit(0);  // not started again until the server restarts
  }
  if (strcmp(st.serving_database, wanted) != 0) {
    ereport(LOG, (errmsg("taskq publisher: taskq.database entry %d changed from \"%s\" to \"%s\"; restarting",
                         my_slot + 1, st.serving_database, wanted)));
    proc_exit(1);  // the postmaster starts us again, connected to the new database
  }
  if (my_slot == 0 && taskq_database_count() > registered_publishers)
    ereport(WARNING, (errmsg("taskq.database now lists %d databases, but %d publishers were started with the server",
                             taskq_database_count(), registered_publishers),
                      errhint("Restart PostgreSQL to start publishers for the new databases.")));
  follow_broker_settings(st);
}

// Runs at exit, also on SIGTERM and errors: no C++ stack is unwound then,
// so the broker connection is closed here. Not a disconnect: nothing is
// logged and nothing retried.
void publisher_exit(int code, Datum arg) {
  auto* st = reinterpret_cast<PublisherState*>(DatumGetPointer(arg));
  taskq_pub_close(st->publisher);
  st->publisher = nullptr;
  if (taskq_shared == nullptr) return;
  update_shared([](TaskqPublisherSlot& shared) {
    shared.latch = nullptr;
    shared.status.pid = 0;
    shared.status.connected = false;
    strlcpy(shared.status.state, "stopped", sizeof(shared.status.state));
  });
}

void announce_start(void) {
  update_shared([](TaskqPublisherSlot& shared) {
    shared.latch = MyLatch;
    shared.database = MyDatabaseId;
    memset(&shared.status, 0, sizeof(shared.status));
    shared.status.pid = MyProcPid;
    strlcpy(shared.status.state, "starting", sizeof(shared.status.state));
  });
}

long milliseconds_until(TimestampTz when) {
  if (when == 0) return LONG_MAX;
  return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), when);
}

// One round of work; returns how long to sleep afterwards. Schedules fire
// after the publishing passes: their jobs wake the publisher at commit, and
// the next round publishes them.
long run_round(PublisherState& st) {
  long sleep_ms = taskq_poll_interval_ms;
  if (RecoveryInProgress()) {
    set_state("in recovery");  // a standby publishes nothing; promotion starts the work
  } else if (!extension_installed()) {
    set_state("extension not installed");
    disconnect(st, "extension not installed");
  } else {
    ensure_connected(st);
    service_connection(st);
    // Before the passes: what it admits is published by them.
    run_flow_step(st, false);
    // A full batch means more is waiting: go again without sleeping. While
    // the broker blocks publishing, rows wait in the outbox.
    while (st.publisher != nullptr && !st.broker_blocked && publish_pass(st) >= taskq_publish_batch_size)
      CHECK_FOR_INTERRUPTS();
    fire_due_schedules(st);
    if (GetCurrentTimestamp() >= st.next_maintenance_at) {
      run_maintenance(st);
      run_flow_step(st, true);
      st.next_maintenance_at =
          TimestampTzPlusMilliseconds(GetCurrentTimestamp(), static_cast<long>(taskq_maintenance_interval_s) * 1000);
    }
    sleep_ms = Min(sleep_ms, milliseconds_until(st.next_maintenance_at));
    sleep_ms = Min(sleep_ms, milliseconds_until_next_tick(st));
    sleep_ms = Min(sleep_ms, milliseconds_until_flow_step(st));
    if (st.publisher != nullptr) sleep_ms = Min(sleep_ms, Min(milliseconds_until(st.next_due_at), kServiceIntervalMs));
    if (st.publisher == nullptr) sleep_ms = Min(sleep_ms, milliseconds_until(st.next_connect_at));
  }
  return sleep_ms;
}

// Sleeps on the latch and, while connected, the broker's socket
// (heartbeats, broker-side closes, alarms).
void sleep_until_woken(const PublisherState& st, long sleep_ms) {
  int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
  pgsocket socket = PGINVALID_SOCKET;
  if (st.publisher != nullptr) {
    events |= WL_SOCKET_READABLE;
    socket = taskq_pub_socket(st.publisher);
  }
  (void)WaitLatchOrSocket(MyLatch, events, socket, sleep_ms, PG_WAIT_EXTENSION);
}

void register_one_publisher(int slot) {
  BackgroundWorker worker;
  memset(&worker, 0, sizeof(worker));
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_ConsistentState;  // on a standby it idles until promotion
  worker.bgw_restart_time = 2;
  strlcpy(worker.bgw_library_name, "taskq", sizeof(worker.bgw_library_name));
  strlcpy(worker.bgw_function_name, "taskq_publisher_main", sizeof(worker.bgw_function_name));
  snprintf(worker.bgw_name, sizeof(worker.bgw_name), "taskq publisher %d", slot + 1);
  strlcpy(worker.bgw_type, "taskq publisher", sizeof(worker.bgw_type));
  worker.bgw_main_arg = Int32GetDatum(slot);
  RegisterBackgroundWorker(&worker);
}

}  // namespace
}  // namespace taskq::publisher

void taskq_register_publisher(void) {
  using taskq::publisher::register_one_publisher;
  using taskq::publisher::registered_publishers;
  registered_publishers = Min(taskq_database_count(), kTaskqMaxPublishers);
  for (int i = 0; i < registered_publishers; i++) register_one_publisher(i);
}

extern "C" void taskq_publisher_main(Datum arg) {
  using namespace taskq::publisher;
  PublisherState& st = state;
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  my_slot = DatumGetInt32(arg);
  char database[NAMEDATALEN];
  if (!taskq_database_entry(my_slot, database, sizeof(database))) {
    ereport(LOG, (errmsg("taskq publisher %d: taskq.database has no entry %d any more; stopping", my_slot + 1,
                         my_slot + 1)));
    proc_exit(0);
  }
  for (int earlier = 0; earlier < my_slot; earlier++) {
    char other[NAMEDATALEN];
    if (taskq_database_entry(earlier, other, sizeof(other)) && strcmp(other, database) == 0) {
      ereport(WARNING, (errmsg("taskq.database lists \"%s\" twice; publisher %d serves it", database, earlier + 1)));
      proc_exit(0);
    }
  }
  st.serving_database = MemoryContextStrdup(TopMemoryContext, database);
  BackgroundWorkerInitializeConnection(st.serving_database, nullptr, 0);
  // Maintenance finishes jobs (a rescued last attempt), and finishing a job
  // that others depend on needs READ COMMITTED, whatever default the
  // database or role sets (docs/sql-api.md, "Dependencies and workflows").
  SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
  pgstat_report_appname("taskq publisher");
  st.pass_context = AllocSetContextCreate(TopMemoryContext, "taskq publisher pass", ALLOCSET_DEFAULT_SIZES);

  before_shmem_exit(publisher_exit, PointerGetDatum(&st));
  announce_start();
  ereport(LOG, (errmsg("taskq publisher started for database \"%s\"", st.serving_database)));

  for (;;) {
    st.woken_during_pass = false;
    long sleep_ms = run_round_recovering(st, run_round);
    if (st.woken_during_pass) sleep_ms = 0;
    if (sleep_ms > 0) sleep_until_woken(st, sleep_ms);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) reload_settings(st);
  }
}
