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
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

PGDLLEXPORT void taskq_publisher_main(Datum arg);
}

namespace {

constexpr long kConfirmTimeoutMs = 10000;
// While the broker blocks publishing (resource alarm) it is alive but does
// not read what we sent: confirms come once the alarm clears. Giving up
// earlier would publish those messages a second time then.
constexpr long kBlockedConfirmTimeoutMs = 5 * 60 * 1000;
// Longest idle sleep while connected: rabbitmq-c answers heartbeats only
// when we read, and a frozen broker is noticed only when we look
// (heartbeat 10 s, see ConnectOptions).
constexpr long kServiceIntervalMs = 5000;

taskq_publisher* publisher = nullptr;  // the broker connection, NULL while disconnected
unsigned connect_failures = 0;
TimestampTz next_connect_at = 0;
TimestampTz next_maintenance_at = 0;
TimestampTz next_due_at = 0;     // earliest not-yet-due outbox row, 0 if none
bool woken_during_pass = false;  // a commit's wake-up arrived while we were busy
bool broker_blocked = false;     // connection.blocked received and not lifted yet
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
  broker_blocked = false;
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

// Takes note of connection.blocked/unblocked (read by the last poll), in
// the status and the log, once per change.
void refresh_blocked(void) {
  char reason[128] = "";
  const bool blocked = taskq_pub_blocked(publisher, reason, sizeof(reason));
  if (blocked == broker_blocked) return;
  broker_blocked = blocked;
  SpinLockAcquire(&taskq_shared->mutex);
  taskq_shared->status.blocked = blocked;
  SpinLockRelease(&taskq_shared->mutex);
  set_state(blocked ? "blocked" : "connected");
  if (blocked)
    ereport(WARNING, (errmsg("taskq publisher: the broker blocks publishing: %s", reason),
                      errhint("RabbitMQ raised a memory or disk alarm; jobs stay in the outbox until it clears.")));
  else
    ereport(LOG, (errmsg("taskq publisher: the broker accepts messages again")));
}

// Handles heartbeats, connection.blocked and a broker-side close while idle.
void service_connection(void) {
  if (publisher == nullptr) return;
  char err[512];
  if (taskq_pub_poll(publisher, err, sizeof(err)) != TASKQ_PUB_OK) {
    disconnect(err);
    return;
  }
  refresh_blocked();
}

// --- one publishing pass -----------------------------------------------------

// Locks taskq.outbox for the rest of the transaction, so that DROP
// EXTENSION waits for the pass to end; false if the extension was dropped
// since the loop looked (a pass would otherwise die on a missing relation).
bool lock_outbox(void) {
  RangeVar* outbox = makeRangeVar(pstrdup("taskq"), pstrdup("outbox"), -1);
  return OidIsValid(RangeVarGetRelid(outbox, AccessShareLock, true));
}

// Ends a transaction begun by publish_pass or run_maintenance.
void finish_transaction(void) {
  PopActiveSnapshot();
  SPI_finish();
  CommitTransactionCommand();
  pgstat_report_stat(false);
  pgstat_report_activity(STATE_IDLE, nullptr);
}

char* copy_value(HeapTuple tuple, TupleDesc desc, int column) {
  char* value = SPI_getvalue(tuple, desc, column);
  return value == nullptr ? nullptr : MemoryContextStrdup(pass_context, value);
}

Datum int8_array(const int64* values, int count) {
  Datum* datums = static_cast<Datum*>(palloc(sizeof(Datum) * (count > 0 ? count : 1)));
  for (int i = 0; i < count; i++) datums[i] = Int64GetDatum(values[i]);
  return PointerGetDatum(construct_array(datums, count, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
}

// Outcomes of the current transaction that still have to be recorded.
struct PassState {
  int64* confirmed;  // outbox ids the broker acked
  int n_confirmed;
  int64* failed;  // outbox ids to try again later
  int n_failed;
  int capacity;
  pg_uuid_t* published_jobs;  // jobs of the confirmed rows, for record_publish_times
  int n_published_jobs;
  int published_capacity;
  long sent;      // messages handed to the broker in this transaction
  long resolved;  // outcomes received for them
  bool lost;      // the connection must be dropped
  char error[512];
  char failure_reason[512];
  long total_sent, total_confirmed, total_failed;
};

// Moves resolved outcomes from the bridge into the state (as many as fit).
void collect_outcomes(PassState* st) {
  int64 ids[64];
  bool ok[64];
  char reason[512];
  size_t got;
  while (st->n_confirmed + st->n_failed + 64 <= st->capacity &&
         (got = taskq_pub_take_resolved(publisher, ids, ok, 64, reason, sizeof(reason))) > 0) {
    for (size_t k = 0; k < got; k++) {
      if (ok[k]) {
        st->confirmed[st->n_confirmed++] = ids[k];
      } else {
        st->failed[st->n_failed++] = ids[k];
        strlcpy(st->failure_reason, reason, sizeof(st->failure_reason));
      }
    }
    st->resolved += static_cast<long>(got);
  }
}

// Waits until at least `target` of the messages sent in this transaction
// have an outcome, at most kConfirmTimeoutMs. Marks the state lost when the
// connection died or the broker stopped confirming.
void wait_for_confirms(PassState* st, long target) {
  const TimestampTz started = GetCurrentTimestamp();
  TimestampTz deadline = TimestampTzPlusMilliseconds(started, kConfirmTimeoutMs);
  const TimestampTz blocked_deadline = TimestampTzPlusMilliseconds(started, kBlockedConfirmTimeoutMs);
  const int socket = taskq_pub_socket(publisher);
  for (;;) {
    if (taskq_pub_poll(publisher, st->error, sizeof(st->error)) != TASKQ_PUB_OK) {
      st->lost = true;
      break;
    }
    collect_outcomes(st);
    refresh_blocked();
    if (st->resolved >= target || st->n_confirmed + st->n_failed + 64 > st->capacity) return;
    const TimestampTz now = GetCurrentTimestamp();
    if (broker_blocked)  // alive (heartbeats still flow) but not reading: wait for the alarm to clear
      deadline = Max(deadline, Min(TimestampTzPlusMilliseconds(now, kConfirmTimeoutMs), blocked_deadline));
    const long remaining = TimestampDifferenceMilliseconds(now, deadline);
    if (remaining <= 0) {
      snprintf(st->error, sizeof(st->error), "no publisher confirm within %ld ms (%s)",
               TimestampDifferenceMilliseconds(started, now),
               broker_blocked ? "the broker blocks publishing" : "broker overloaded, blocked or unreachable");
      st->lost = true;
      break;
    }
    const int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                                     socket, remaining, PG_WAIT_EXTENSION);
    if (rc & WL_LATCH_SET) {
      ResetLatch(MyLatch);
      woken_during_pass = true;  // run another pass right after this one
      CHECK_FOR_INTERRUPTS();
    }
  }
  // Lost: nothing outstanding will be confirmed any more.
  taskq_pub_fail_outstanding(publisher, st->error);
  collect_outcomes(st);
}

// Keeps the job ids of confirmed rows until the pass has committed.
void remember_published_jobs(PassState* st, ArrayType* jobs) {
  Datum* ids;
  int count;
  deconstruct_array(jobs, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &ids, nullptr, &count);
  if (st->n_published_jobs + count > st->published_capacity) {
    st->published_capacity = Max(2 * st->published_capacity, st->n_published_jobs + count);
    st->published_jobs = static_cast<pg_uuid_t*>(
        repalloc(st->published_jobs, sizeof(pg_uuid_t) * static_cast<Size>(st->published_capacity)));
  }
  for (int i = 0; i < count; i++) st->published_jobs[st->n_published_jobs++] = *DatumGetUUIDP(ids[i]);
}

// Records when the pass's jobs were published, in a short transaction of its
// own after the pass committed (see taskq._jobs_published). If the process
// dies before this, the reconciler counts from the job's creation instead;
// at worst a message is published once more, and start() fences that.
void record_publish_times(const PassState* st) {
  if (st->n_published_jobs == 0) return;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "taskq publisher: recording publish times");
  if (lock_outbox()) {
    Datum* datums = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<Size>(st->n_published_jobs)));
    for (int i = 0; i < st->n_published_jobs; i++) datums[i] = UUIDPGetDatum(&st->published_jobs[i]);
    Oid argtypes[1] = {UUIDARRAYOID};
    Datum args[1] = {
        PointerGetDatum(construct_array(datums, st->n_published_jobs, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR))};
    if (SPI_execute_with_args("SELECT taskq._jobs_published($1)", 1, argtypes, args, nullptr, false, 0) !=
        SPI_OK_SELECT)
      elog(ERROR, "taskq publisher: recording publish times failed");
  }
  finish_transaction();
}

// Records the collected outcomes in the outbox (within the transaction).
void record_outcomes(PassState* st) {
  Oid argtypes[2] = {INT8ARRAYOID, TEXTOID};
  Datum args[2];
  if (st->n_confirmed > 0) {
    args[0] = int8_array(st->confirmed, st->n_confirmed);
    if (SPI_execute_with_args("SELECT taskq._outbox_published($1)", 1, argtypes, args, nullptr, false, 0) !=
            SPI_OK_SELECT ||
        SPI_processed != 1)
      elog(ERROR, "taskq publisher: recording confirmed rows failed");
    // A library newer than the extension's SQL in this database must fail
    // cleanly here, not read another type as an array.
    if (SPI_gettypeid(SPI_tuptable->tupdesc, 1) != UUIDARRAYOID)
      ereport(ERROR, (errmsg("taskq publisher: taskq._outbox_published returns the wrong type"),
                      errhint("The taskq library and the extension's SQL differ; run ALTER EXTENSION taskq UPDATE.")));
    bool isnull;
    const Datum jobs = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (!isnull) remember_published_jobs(st, DatumGetArrayTypeP(jobs));
  }
  if (st->n_failed > 0) {
    args[0] = int8_array(st->failed, st->n_failed);
    args[1] = CStringGetTextDatum(st->failure_reason[0] ? st->failure_reason : st->error);
    if (SPI_execute_with_args("SELECT taskq._outbox_failed($1, $2)", 2, argtypes, args, nullptr, false, 0) !=
        SPI_OK_SELECT)
      elog(ERROR, "taskq publisher: recording failed rows failed");
  }
  st->total_confirmed += st->n_confirmed;
  st->total_failed += st->n_failed;
  st->n_confirmed = 0;
  st->n_failed = 0;
}

// Keyset cursor of the rows claimed so far in this transaction.
struct ClaimCursor {
  bool set;
  Datum due_at;  // timestamptz (pass-by-value)
  int64 id;
};

// Claims up to a batch of due rows after the cursor, and advances it; the
// messages' strings live in pass_context.
int claim_batch(taskq_outbox_message** out, ClaimCursor* cursor) {
  Oid argtypes[3] = {INT4OID, TIMESTAMPTZOID, INT8OID};
  Datum args[3] = {Int32GetDatum(taskq_publish_batch_size), cursor->due_at, Int64GetDatum(cursor->id)};
  const char nulls[3] = {' ', cursor->set ? ' ' : 'n', cursor->set ? ' ' : 'n'};
  if (SPI_execute_with_args("SELECT outbox_id, job_id::text, queue_name, queue_type, task, priority, attempt,"
                            " headers::text, extract(epoch FROM created_at)::bigint, body, due_at"
                            " FROM taskq._outbox_claim($1, $2, $3)",
                            3, argtypes, args, nulls, false, 0) != SPI_OK_SELECT)
    elog(ERROR, "taskq publisher: claiming the outbox failed");
  const int claimed = static_cast<int>(SPI_processed);
  auto* messages = static_cast<taskq_outbox_message*>(
      MemoryContextAllocZero(pass_context, sizeof(taskq_outbox_message) * (claimed > 0 ? claimed : 1)));
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
  if (claimed > 0) {
    bool isnull;
    cursor->set = true;
    cursor->id = messages[claimed - 1].outbox_id;
    cursor->due_at = SPI_getbinval(SPI_tuptable->vals[claimed - 1], SPI_tuptable->tupdesc, 11, &isnull);
  }
  *out = messages;
  return claimed;
}

// Hands a batch to the broker. Rows not sent because the connection died
// stay untouched: they unlock at commit and go in a later pass, with no
// publish attempt counted against them.
void send_batch(PassState* st, const taskq_outbox_message* messages, int count) {
  for (int i = 0; i < count && !st->lost; i++) {
    const int status = taskq_pub_publish(publisher, &messages[i], st->error, sizeof(st->error));
    if (status == TASKQ_PUB_OK) {
      st->sent++;
      st->total_sent++;
    } else if (status == TASKQ_PUB_MESSAGE_FAILED) {
      st->failed[st->n_failed++] = messages[i].outbox_id;
      strlcpy(st->failure_reason, st->error, sizeof(st->failure_reason));
    } else {
      st->lost = true;
    }
  }
}

// One transaction of publishing. Batches are pipelined: while the broker
// confirms batch N, batch N+1 is claimed and sent, so the database work and
// the broker's confirm latency overlap. A transaction handles a bounded
// number of batches so that row locks are not held for long. Returns the
// number of rows claimed in its last batch (a full batch: go again).
constexpr int kBatchesPerTransaction = 8;

int publish_pass(void) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "taskq publisher: publishing the outbox");
  if (!lock_outbox()) {
    finish_transaction();
    return 0;
  }

  PassState st;
  memset(&st, 0, sizeof(st));
  st.capacity = 3 * taskq_publish_batch_size + 128;
  st.confirmed = static_cast<int64*>(MemoryContextAlloc(pass_context, sizeof(int64) * st.capacity));
  st.failed = static_cast<int64*>(MemoryContextAlloc(pass_context, sizeof(int64) * st.capacity));
  st.published_capacity = st.capacity;
  st.published_jobs =
      static_cast<pg_uuid_t*>(MemoryContextAlloc(pass_context, sizeof(pg_uuid_t) * st.published_capacity));

  ClaimCursor cursor = {false, 0, 0};
  taskq_outbox_message* batch;
  int claimed = claim_batch(&batch, &cursor);
  send_batch(&st, batch, claimed);
  for (int round = 1; !st.lost; round++) {
    const long sent_before_next = st.sent;
    int next_claimed = 0;
    taskq_outbox_message* next = nullptr;
    // No new batch into a blocked connection: the broker would not read it.
    if (claimed == taskq_publish_batch_size && round < kBatchesPerTransaction && !broker_blocked) {
      next_claimed = claim_batch(&next, &cursor);
      send_batch(&st, next, next_claimed);
    }
    wait_for_confirms(&st, sent_before_next);
    record_outcomes(&st);
    if (next_claimed == 0) {
      claimed = next == nullptr ? claimed : 0;
      break;
    }
    claimed = next_claimed;
  }
  // Nothing may stay unresolved when the transaction commits.
  while (!st.lost && st.resolved < st.sent) {
    wait_for_confirms(&st, st.sent);
    record_outcomes(&st);
  }
  if (st.lost) taskq_pub_fail_outstanding(publisher, st.error);
  do {
    collect_outcomes(&st);
    record_outcomes(&st);
  } while (st.resolved < st.sent);

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
  record_publish_times(&st);

  SpinLockAcquire(&taskq_shared->mutex);
  taskq_shared->status.published += static_cast<uint64>(st.total_sent);
  taskq_shared->status.confirmed += static_cast<uint64>(st.total_confirmed);
  taskq_shared->status.failed += static_cast<uint64>(st.total_failed);
  if (st.total_confirmed > 0) taskq_shared->status.last_publish_at = GetCurrentTimestamp();
  SpinLockRelease(&taskq_shared->mutex);
  if (st.total_failed > 0) record_error(st.failure_reason[0] ? st.failure_reason : st.error);

  MemoryContextReset(pass_context);
  if (st.lost) {
    disconnect(st.error);
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
  if (!lock_outbox()) {
    finish_transaction();
    return;
  }

  if (SPI_execute("SELECT taskq.rescue_expired()", false, 1) == SPI_OK_SELECT && SPI_processed == 1) {
    bool isnull;
    rescued = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  }
  SPI_execute("SELECT taskq.purge_finished()", false, 1);
  int64 released = 0;
  if (SPI_execute("SELECT taskq._release_held()", false, 1) == SPI_OK_SELECT && SPI_processed == 1) {
    bool isnull;
    released = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  }

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
  if (reconciled > 0 || released > 0) woken_during_pass = true;  // publish them now
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
    broker_blocked = false;
    SpinLockAcquire(&taskq_shared->mutex);
    taskq_shared->status.connected = false;
    taskq_shared->status.blocked = false;
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
      // A full batch means more is waiting: go again without sleeping. While
      // the broker blocks publishing, rows wait in the outbox.
      while (publisher != nullptr && !broker_blocked && publish_pass() >= taskq_publish_batch_size)
        CHECK_FOR_INTERRUPTS();
      if (GetCurrentTimestamp() >= next_maintenance_at) {
        run_maintenance();
        next_maintenance_at =
            TimestampTzPlusMilliseconds(GetCurrentTimestamp(), static_cast<long>(taskq_maintenance_interval_s) * 1000);
      }
      sleep_ms = Min(sleep_ms, milliseconds_until(next_maintenance_at));
      if (publisher != nullptr) sleep_ms = Min(sleep_ms, Min(milliseconds_until(next_due_at), kServiceIntervalMs));
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
