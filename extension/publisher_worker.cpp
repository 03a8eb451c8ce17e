// The "taskq publisher" background worker: publishes committed outbox rows
// to RabbitMQ with publisher confirms and runs the periodic maintenance.
//
// One pass is one transaction: claim due rows (FOR UPDATE SKIP LOCKED),
// publish them all, wait for the broker's confirms on the AMQP socket with
// WaitLatchOrSocket (so SIGTERM and latches stay responsive), then delete
// exactly the confirmed rows and push the others back with a backoff. If
// anything dies in between, the transaction aborts, the rows unlock and are
// published again: delivery is at-least-once, and duplicates are fenced by
// the attempt number in the message.
//
// Boundary rules: this file holds plain data only (no C++ object with a
// destructor lives on its stack) and reaches the C++ core only through the
// noexcept functions of core_bridge.h, so ereport() may jump freely.
#include "core_bridge.h"
#include "pg_includes.hpp"
#include "settings.hpp"
#include "shared_state.hpp"

extern "C" {
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void taskq_publisher_main(Datum arg);
}

namespace {

constexpr long kConfirmTimeoutMs = 10000;

taskq_publisher* publisher = nullptr;  // the broker connection, NULL while disconnected
unsigned connect_failures = 0;
TimestampTz next_connect_at = 0;
TimestampTz next_maintenance_at = 0;
TimestampTz next_due_at = 0;     // earliest not-yet-due outbox row, 0 if none
bool woken_during_pass = false;  // a commit's wake-up arrived while we were busy
char last_logged_error[512];
MemoryContext pass_context = nullptr;
char* serving_database = nullptr;
char* connected_url = nullptr;  // broker_url/exchange of the live connection
char* connected_exchange = nullptr;

// --- status in shared memory ------------------------------------------------

void set_state(const char* state) {
  SpinLockAcquire(&taskq_shared->mutex);
  strlcpy(taskq_shared->status.state, state, sizeof(taskq_shared->status.state));
  SpinLockRelease(&taskq_shared->mutex);
}

void record_error(const char* error) {
  SpinLockAcquire(&taskq_shared->mutex);
  strlcpy(taskq_shared->status.last_error, error, sizeof(taskq_shared->status.last_error));
  taskq_shared->status.last_error_at = GetCurrentTimestamp();
  SpinLockRelease(&taskq_shared->mutex);
}

// Logs a broker problem once per distinct message, not on every retry.
void log_once(const char* prefix, const char* error) {
  if (strcmp(error, last_logged_error) == 0) return;
  strlcpy(last_logged_error, error, sizeof(last_logged_error));
  ereport(LOG, (errmsg("taskq publisher: %s: %s", prefix, error)));
}

void redacted_broker(char* out, size_t len) {
  char err[256];
  if (!taskq_bridge_redact_url(taskq_broker_url, out, len, err, sizeof(err))) snprintf(out, len, "(invalid: %s)", err);
}

// --- connection ---------------------------------------------------------------

void disconnect(const char* why) {
  if (publisher == nullptr) return;
  taskq_pub_close(publisher);
  publisher = nullptr;
  SpinLockAcquire(&taskq_shared->mutex);
  taskq_shared->status.connected = false;
  taskq_shared->status.blocked = false;
  SpinLockRelease(&taskq_shared->mutex);
  set_state("disconnected");
  record_error(why);
  char broker[256];
  redacted_broker(broker, sizeof(broker));
  ereport(WARNING, (errmsg("taskq publisher: lost the connection to %s: %s", broker, why)));
  strlcpy(last_logged_error, why, sizeof(last_logged_error));
  // Reconnect at once the first time; back off if that fails too.
  next_connect_at = GetCurrentTimestamp();
}

void ensure_connected(void) {
  if (publisher != nullptr || GetCurrentTimestamp() < next_connect_at) return;
  set_state("connecting");
  char err[512];
  char name[NAMEDATALEN + 32];
  snprintf(name, sizeof(name), "taskq publisher (%s)", serving_database);
  char broker[256];
  redacted_broker(broker, sizeof(broker));
  SpinLockAcquire(&taskq_shared->mutex);
  strlcpy(taskq_shared->status.broker, broker, sizeof(taskq_shared->status.broker));
  SpinLockRelease(&taskq_shared->mutex);
  publisher = taskq_pub_connect(taskq_broker_url, taskq_exchange, name, err, sizeof(err));
  if (publisher == nullptr) {
    ++connect_failures;
    const long delay = taskq_bridge_backoff_ms(connect_failures);
    next_connect_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
    set_state("connecting");
    record_error(err);
    char prefix[320];
    snprintf(prefix, sizeof(prefix), "cannot connect to %s (retrying with backoff)", broker);
    log_once(prefix, err);
    return;
  }
  connect_failures = 0;
  last_logged_error[0] = '\0';
  if (connected_url != nullptr) pfree(connected_url);
  if (connected_exchange != nullptr) pfree(connected_exchange);
  connected_url = MemoryContextStrdup(TopMemoryContext, taskq_broker_url);
  connected_exchange = MemoryContextStrdup(TopMemoryContext, taskq_exchange);
  SpinLockAcquire(&taskq_shared->mutex);
  if (taskq_shared->status.connected_since != 0) taskq_shared->status.reconnects++;
  taskq_shared->status.connected = true;
  taskq_shared->status.connected_since = GetCurrentTimestamp();
  strlcpy(taskq_shared->status.broker, broker, sizeof(taskq_shared->status.broker));
  strlcpy(taskq_shared->status.state, "connected", sizeof(taskq_shared->status.state));
  SpinLockRelease(&taskq_shared->mutex);
  ereport(LOG, (errmsg("taskq publisher: connected to %s", broker)));
}

// Handles heartbeats, connection.blocked and a broker-side close while idle.
void service_connection(void) {
  if (publisher == nullptr) return;
  char err[512];
  if (taskq_pub_poll(publisher, err, sizeof(err)) != TASKQ_PUB_OK) {
    disconnect(err);
    return;
  }
  char reason[128] = "";
  const bool blocked = taskq_pub_blocked(publisher, reason, sizeof(reason));
  SpinLockAcquire(&taskq_shared->mutex);
  const bool was_blocked = taskq_shared->status.blocked;
  taskq_shared->status.blocked = blocked;
  SpinLockRelease(&taskq_shared->mutex);
  if (blocked && !was_blocked)
    ereport(WARNING, (errmsg("taskq publisher: the broker blocks publishing: %s", reason),
                      errhint("RabbitMQ raised a memory or disk alarm; jobs stay in the outbox until it clears.")));
  if (!blocked && was_blocked) ereport(LOG, (errmsg("taskq publisher: the broker accepts messages again")));
}

// --- one publishing pass -----------------------------------------------------

char* copy_value(HeapTuple tuple, TupleDesc desc, int column) {
  char* value = SPI_getvalue(tuple, desc, column);
  return value == nullptr ? nullptr : MemoryContextStrdup(pass_context, value);
}

Datum int8_array(const int64* values, int count) {
  Datum* datums = static_cast<Datum*>(palloc(sizeof(Datum) * (count > 0 ? count : 1)));
  for (int i = 0; i < count; i++) datums[i] = Int64GetDatum(values[i]);
  return PointerGetDatum(construct_array(datums, count, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
}

// Waits for the broker to confirm everything outstanding, at most
// kConfirmTimeoutMs. Returns false if the connection must be dropped
// (error text in err).
bool wait_for_confirms(char* err, size_t errlen) {
  const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kConfirmTimeoutMs);
  const int socket = taskq_pub_socket(publisher);
  while (taskq_pub_outstanding(publisher) > 0) {
    if (taskq_pub_poll(publisher, err, errlen) != TASKQ_PUB_OK) return false;
    if (taskq_pub_outstanding(publisher) == 0) break;
    const long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
    if (remaining <= 0) {
      snprintf(err, errlen, "no publisher confirm within %ld ms (broker overloaded, blocked or unreachable)",
               kConfirmTimeoutMs);
      taskq_pub_fail_outstanding(publisher, err);
      return false;
    }
    const int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                                     socket, remaining, PG_WAIT_EXTENSION);
    if (rc & WL_LATCH_SET) {
      ResetLatch(MyLatch);
      woken_during_pass = true;  // run another pass right after this one
      CHECK_FOR_INTERRUPTS();
    }
  }
  return true;
}

// Claims, publishes and records one batch. Returns the number of rows
// claimed (a full batch means: run again at once).
int publish_pass(void) {
  char err[512] = "";
  bool connection_lost = false;

  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "taskq publisher: publishing the outbox");

  Oid argtypes[2] = {INT4OID, TEXTOID};
  Datum args[2] = {Int32GetDatum(taskq_publish_batch_size), 0};
  if (SPI_execute_with_args("SELECT outbox_id, job_id::text, queue_name, queue_type, task, priority, attempt,"
                            " headers::text, extract(epoch FROM created_at)::bigint, body"
                            " FROM taskq._outbox_claim($1)",
                            1, argtypes, args, nullptr, false, 0) != SPI_OK_SELECT)
    elog(ERROR, "taskq publisher: claiming the outbox failed");

  const int claimed = static_cast<int>(SPI_processed);
  auto* messages = static_cast<taskq_outbox_message*>(
      MemoryContextAllocZero(pass_context, sizeof(taskq_outbox_message) * (claimed > 0 ? claimed : 1)));
  auto* confirmed_ids = static_cast<int64*>(MemoryContextAlloc(pass_context, sizeof(int64) * (claimed + 1)));
  auto* failed_ids = static_cast<int64*>(MemoryContextAlloc(pass_context, sizeof(int64) * (claimed + 1)));
  int n_confirmed = 0;
  int n_failed = 0;
  int n_sent = 0;
  char failure_reason[512] = "";

  for (int i = 0; i < claimed; i++) {
    HeapTuple tuple = SPI_tuptable->vals[i];
    TupleDesc desc = SPI_tuptable->tupdesc;
    bool isnull;
    taskq_outbox_message& m = messages[i];
    m.outbox_id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
    m.job_id = copy_value(tuple, desc, 2);
    m.queue_name = copy_value(tuple, desc, 3);
    m.queue_type = copy_value(tuple, desc, 4);
    m.task = copy_value(tuple, desc, 5);
    m.priority = DatumGetInt32(SPI_getbinval(tuple, desc, 6, &isnull));
    m.attempt = DatumGetInt32(SPI_getbinval(tuple, desc, 7, &isnull));
    m.headers_json = copy_value(tuple, desc, 8);
    m.enqueued_at = DatumGetInt64(SPI_getbinval(tuple, desc, 9, &isnull));
    m.body = copy_value(tuple, desc, 10);
  }

  for (int i = 0; i < claimed && !connection_lost; i++) {
    const int status = taskq_pub_publish(publisher, &messages[i], err, sizeof(err));
    if (status == TASKQ_PUB_OK) {
      n_sent++;
    } else if (status == TASKQ_PUB_MESSAGE_FAILED) {
      failed_ids[n_failed++] = messages[i].outbox_id;
      strlcpy(failure_reason, err, sizeof(failure_reason));
    } else {
      // Rows not sent yet stay untouched: they unlock at commit and go in
      // the next pass, without a publish attempt counted against them.
      connection_lost = true;
    }
  }
  if (!connection_lost && !wait_for_confirms(err, sizeof(err))) connection_lost = true;
  if (connection_lost) taskq_pub_fail_outstanding(publisher, err);

  // Everything sent is now resolved: confirmed, or failed (nack, return,
  // timeout, lost connection).
  {
    int64 ids[64];
    bool ok[64];
    char reason[512];
    size_t got;
    while ((got = taskq_pub_take_resolved(publisher, ids, ok, 64, reason, sizeof(reason))) > 0) {
      for (size_t k = 0; k < got; k++) {
        if (ok[k]) {
          confirmed_ids[n_confirmed++] = ids[k];
        } else {
          failed_ids[n_failed++] = ids[k];
          strlcpy(failure_reason, reason, sizeof(failure_reason));
        }
      }
    }
  }

  if (n_confirmed > 0) {
    args[0] = int8_array(confirmed_ids, n_confirmed);
    argtypes[0] = INT8ARRAYOID;
    if (SPI_execute_with_args("SELECT taskq._outbox_published($1)", 1, argtypes, args, nullptr, false, 0) !=
        SPI_OK_SELECT)
      elog(ERROR, "taskq publisher: recording confirmed rows failed");
  }
  if (n_failed > 0) {
    args[0] = int8_array(failed_ids, n_failed);
    argtypes[0] = INT8ARRAYOID;
    args[1] = CStringGetTextDatum(failure_reason[0] ? failure_reason : err);
    if (SPI_execute_with_args("SELECT taskq._outbox_failed($1, $2)", 2, argtypes, args, nullptr, false, 0) !=
        SPI_OK_SELECT)
      elog(ERROR, "taskq publisher: recording failed rows failed");
  }
  // When should we look again without being woken?
  if (SPI_execute("SELECT (extract(epoch FROM taskq._outbox_next_due() - now()) * 1000)::float8", true, 1) ==
          SPI_OK_SELECT &&
      SPI_processed == 1) {
    bool isnull;
    const Datum ms = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    next_due_at =
        isnull ? 0 : TimestampTzPlusMilliseconds(GetCurrentTimestamp(), static_cast<long>(DatumGetFloat8(ms)) + 1);
  }

  PopActiveSnapshot();
  SPI_finish();
  CommitTransactionCommand();
  pgstat_report_stat(false);
  pgstat_report_activity(STATE_IDLE, nullptr);

  SpinLockAcquire(&taskq_shared->mutex);
  taskq_shared->status.published += static_cast<uint64>(n_sent);
  taskq_shared->status.confirmed += static_cast<uint64>(n_confirmed);
  taskq_shared->status.failed += static_cast<uint64>(n_failed);
  if (n_confirmed > 0) taskq_shared->status.last_publish_at = GetCurrentTimestamp();
  SpinLockRelease(&taskq_shared->mutex);
  if (n_failed > 0) record_error(failure_reason[0] ? failure_reason : err);

  MemoryContextReset(pass_context);
  if (connection_lost) {
    disconnect(err);
    return 0;
  }
  return claimed;
}

// --- maintenance ---------------------------------------------------------------

void run_maintenance(void) {
  int64 rescued = 0;
  int64 reconciled = 0;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "taskq publisher: maintenance");

  if (SPI_execute("SELECT taskq.rescue_expired()", false, 1) == SPI_OK_SELECT && SPI_processed == 1) {
    bool isnull;
    rescued = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  }
  SPI_execute("SELECT taskq.purge_finished()", false, 1);

  // Reconcile: PostgreSQL is the truth. A queue with jobs that were
  // published long ago and never started, while its RabbitMQ queue holds no
  // ready message, has lost messages (purge, policy, deleted queue).
  if (publisher != nullptr) {
    Oid argtypes[2] = {INT4OID, TEXTOID};
    Datum args[2] = {Int32GetDatum(taskq_reconcile_after_s), 0};
    if (SPI_execute_with_args("SELECT DISTINCT queue_name FROM taskq.jobs"
                              " WHERE status = 'pending' AND run_at < now() - make_interval(secs => $1)",
                              1, argtypes, args, nullptr, true, 0) == SPI_OK_SELECT) {
      const int n = static_cast<int>(SPI_processed);
      char** queues = static_cast<char**>(MemoryContextAlloc(pass_context, sizeof(char*) * (n > 0 ? n : 1)));
      for (int i = 0; i < n; i++) queues[i] = copy_value(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
      for (int i = 0; i < n && publisher != nullptr; i++) {
        char err[512];
        const long ready = taskq_pub_ready_messages(publisher, queues[i], err, sizeof(err));
        if (ready == -2) {
          disconnect(err);
          break;
        }
        if (ready > 0) continue;
        argtypes[0] = TEXTOID;
        argtypes[1] = INT4OID;
        args[0] = CStringGetTextDatum(queues[i]);
        args[1] = Int32GetDatum(taskq_reconcile_after_s);
        if (SPI_execute_with_args("SELECT taskq._reconcile_lost($1, make_interval(secs => $2))", 2, argtypes, args,
                                  nullptr, false, 1) == SPI_OK_SELECT &&
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
    }
  }

  PopActiveSnapshot();
  SPI_finish();
  CommitTransactionCommand();
  pgstat_report_stat(false);
  pgstat_report_activity(STATE_IDLE, nullptr);
  MemoryContextReset(pass_context);

  SpinLockAcquire(&taskq_shared->mutex);
  taskq_shared->status.rescued += static_cast<uint64>(rescued);
  taskq_shared->status.reconciled += static_cast<uint64>(reconciled);
  SpinLockRelease(&taskq_shared->mutex);
  if (reconciled > 0) woken_during_pass = true;  // publish them now
}

// --- the loop --------------------------------------------------------------------

bool extension_installed(void) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  const bool installed = OidIsValid(get_extension_oid("taskq", true));
  CommitTransactionCommand();
  return installed;
}

void reload_settings(void) {
  ConfigReloadPending = false;
  ProcessConfigFile(PGC_SIGHUP);
  // A shorter maintenance interval applies now, not after the old one ran out.
  const TimestampTz soonest =
      TimestampTzPlusMilliseconds(GetCurrentTimestamp(), static_cast<long>(taskq_maintenance_interval_s) * 1000);
  if (next_maintenance_at > soonest) next_maintenance_at = soonest;
  if (strcmp(serving_database, taskq_database) != 0) {
    ereport(LOG, (errmsg("taskq publisher: taskq.database changed from \"%s\" to \"%s\"; restarting", serving_database,
                         taskq_database)));
    proc_exit(1);  // the postmaster starts us again, connected to the new database
  }
  if (publisher != nullptr && connected_url != nullptr &&
      (strcmp(connected_url, taskq_broker_url) != 0 || strcmp(connected_exchange, taskq_exchange) != 0)) {
    ereport(LOG, (errmsg("taskq publisher: broker settings changed; reconnecting")));
    taskq_pub_close(publisher);
    publisher = nullptr;
    next_connect_at = 0;
    SpinLockAcquire(&taskq_shared->mutex);
    taskq_shared->status.connected = false;
    SpinLockRelease(&taskq_shared->mutex);
  }
}

// Runs at exit, also on SIGTERM and errors: no C++ stack is unwound then,
// so the broker connection is closed here.
void publisher_exit(int code, Datum arg) {
  taskq_pub_close(publisher);
  publisher = nullptr;
  if (taskq_shared == nullptr) return;
  SpinLockAcquire(&taskq_shared->mutex);
  taskq_shared->publisher_latch = nullptr;
  taskq_shared->status.pid = 0;
  taskq_shared->status.connected = false;
  strlcpy(taskq_shared->status.state, "stopped", sizeof(taskq_shared->status.state));
  SpinLockRelease(&taskq_shared->mutex);
}

long milliseconds_until(TimestampTz when) {
  if (when == 0) return LONG_MAX;
  return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), when);
}

}  // namespace

void taskq_register_publisher(void) {
  BackgroundWorker worker;
  memset(&worker, 0, sizeof(worker));
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_ConsistentState;  // on a standby it idles until promotion
  worker.bgw_restart_time = 2;
  strlcpy(worker.bgw_library_name, "taskq", sizeof(worker.bgw_library_name));
  strlcpy(worker.bgw_function_name, "taskq_publisher_main", sizeof(worker.bgw_function_name));
  strlcpy(worker.bgw_name, "taskq publisher", sizeof(worker.bgw_name));
  strlcpy(worker.bgw_type, "taskq publisher", sizeof(worker.bgw_type));
  RegisterBackgroundWorker(&worker);
}

extern "C" void taskq_publisher_main(Datum arg) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  serving_database = MemoryContextStrdup(TopMemoryContext, taskq_database);
  BackgroundWorkerInitializeConnection(serving_database, nullptr, 0);
  pgstat_report_appname("taskq publisher");
  pass_context = AllocSetContextCreate(TopMemoryContext, "taskq publisher pass", ALLOCSET_DEFAULT_SIZES);

  before_shmem_exit(publisher_exit, 0);
  SpinLockAcquire(&taskq_shared->mutex);
  taskq_shared->publisher_latch = MyLatch;
  memset(&taskq_shared->status, 0, sizeof(taskq_shared->status));
  taskq_shared->status.pid = MyProcPid;
  strlcpy(taskq_shared->status.state, "starting", sizeof(taskq_shared->status.state));
  SpinLockRelease(&taskq_shared->mutex);
  ereport(LOG, (errmsg("taskq publisher started for database \"%s\"", serving_database)));

  for (;;) {
    woken_during_pass = false;
    long sleep_ms = taskq_poll_interval_ms;

    if (RecoveryInProgress()) {
      set_state("in recovery");  // a standby publishes nothing; promotion starts the work
    } else if (!extension_installed()) {
      set_state("extension not installed");
      disconnect("extension not installed");
    } else {
      ensure_connected();
      service_connection();
      if (publisher != nullptr) {
        // A full batch means more is waiting: go again without sleeping.
        while (publisher != nullptr && publish_pass() >= taskq_publish_batch_size) CHECK_FOR_INTERRUPTS();
      }
      if (GetCurrentTimestamp() >= next_maintenance_at) {
        run_maintenance();
        next_maintenance_at =
            TimestampTzPlusMilliseconds(GetCurrentTimestamp(), static_cast<long>(taskq_maintenance_interval_s) * 1000);
      }
      sleep_ms = Min(sleep_ms, milliseconds_until(next_maintenance_at));
      if (publisher != nullptr) sleep_ms = Min(sleep_ms, milliseconds_until(next_due_at));
      if (publisher == nullptr) sleep_ms = Min(sleep_ms, milliseconds_until(next_connect_at));
    }
    if (woken_during_pass) sleep_ms = 0;

    if (sleep_ms > 0) {
      int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
      pgsocket socket = PGINVALID_SOCKET;
      if (publisher != nullptr) {
        events |= WL_SOCKET_READABLE;  // heartbeats, broker-side closes, alarms
        socket = taskq_pub_socket(publisher);
      }
      (void)WaitLatchOrSocket(MyLatch, events, socket, sleep_ms, PG_WAIT_EXTENSION);
    }
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) reload_settings();
  }
}
