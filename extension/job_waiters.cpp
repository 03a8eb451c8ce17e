// taskq.wait(): a backend waiting for a job to finish sleeps on a condition
// variable in shared memory; the transaction that finishes the job
// broadcasts on it after it commits. No polling: a waiter uses no CPU until
// a finish in its slot commits, its timeout passes, or it is interrupted.
//
// Finishing side: every SQL path that ends a job (completed, failed,
// cancelled, or deleted while unfinished) calls
// taskq._wake_waiters_at_commit(job_ids uuid[]), which only marks the jobs'
// slots in a backend-local bitmap. The transaction callback broadcasts on
// the marked slots at commit (after the commit is visible to new
// snapshots) and forgets them on abort, so a rolled-back finish wakes
// nobody. A mark made in a rolled-back savepoint can cause one spurious
// wake-up, which is harmless: a waiter always looks again.
//
// Waiting side (the loop is the PL/pgSQL of taskq.wait, 48_wait.sql):
//   _wait_prepare(id)   count this backend as a waiter, join the slot's list
//   look at the job with a fresh snapshot (READ COMMITTED); done? leave
//   _wait_sleep(id, deadline)   sleep until broadcast, deadline or interrupt
//   look again ...
//   _wait_done()        leave the list, stop counting (also at transaction end)
// Joining the list before looking closes the race with a finish that commits
// between the look and the sleep: its broadcast finds the waiter in the list
// and sets its latch, so the sleep returns at once. If anything run by the
// look (a buffer I/O wait, say) uses another condition variable, the
// backend leaves this list; ConditionVariableTimedSleep then joins again and
// returns at once instead of sleeping, so the loop looks again before it
// really sleeps.
//
// The waiter count lets a commit skip the broadcasts when nobody waits: a
// waiter increments it (a full barrier) before it takes the snapshot of its
// look; a committer reads it after its commit is visible, behind a full
// barrier. So either the committer sees the waiter counted (and broadcasts),
// or the waiter's snapshot sees the commit. The count can only be too high
// (a backend that errored out inside a savepoint keeps counting until its
// transaction ends), which costs broadcasts, never a lost wake-up.
//
// COMMIT PREPARED runs in a backend that did not mark anything: a job
// finished by a prepared transaction wakes its waiters only at their
// timeout (documented). Without shared_preload_libraries there is no
// shared memory: marking does nothing and taskq.wait() refuses (55000).
#include "job_waiters.hpp"

#include "shared_state.hpp"

namespace {

constexpr int kWordBits = 64;
constexpr int kSlotWords = kTaskqWaitSlots / kWordBits;
static_assert(kTaskqWaitSlots % kWordBits == 0, "slots come in whole bitmap words");
static_assert((kTaskqWaitSlots & (kTaskqWaitSlots - 1)) == 0, "a power of two");

// Slots to broadcast on when the current transaction commits.
uint64 slots_to_wake[kSlotWords];
bool any_slot_to_wake = false;
// Whether this backend counts in job_waiters.waiting (at most once).
bool counted_as_waiter = false;

int slot_of(const pg_uuid_t* id) { return static_cast<int>(hash_bytes(id->data, UUID_LEN) & (kTaskqWaitSlots - 1)); }

ConditionVariable* slot_cv(const pg_uuid_t* id) { return &taskq_shared->job_waiters.slots[slot_of(id)].cv; }

void forget_slots() {
  if (!any_slot_to_wake) return;
  memset(slots_to_wake, 0, sizeof(slots_to_wake));
  any_slot_to_wake = false;
}

void stop_counting() {
  if (!counted_as_waiter) return;
  pg_atomic_fetch_sub_u32(&taskq_shared->job_waiters.waiting, 1);
  counted_as_waiter = false;
}

void wake_marked_slots() {
  TaskqJobWaiters* waiters = &taskq_shared->job_waiters;
  // Our commit is visible to new snapshots by now; order that before the
  // read of the count (the waiter side's fetch_add is the other half).
  pg_memory_barrier();
  if (pg_atomic_read_u32(&waiters->waiting) == 0) return;
  for (int w = 0; w < kSlotWords; ++w) {
    uint64 bits = slots_to_wake[w];
    while (bits != 0) {
      const int bit = __builtin_ctzll(bits);
      bits &= bits - 1;
      ConditionVariableBroadcast(&waiters->slots[w * kWordBits + bit].cv);
    }
  }
}

void job_waiters_xact_callback(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
      if (any_slot_to_wake && taskq_shared != nullptr) wake_marked_slots();
      forget_slots();
      if (taskq_shared != nullptr) stop_counting();
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      forget_slots();
      if (taskq_shared != nullptr) stop_counting();
      break;
    default:
      break;
  }
}

void require_shared_memory() {
  if (taskq_shared == nullptr)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("taskq.wait needs taskq in shared_preload_libraries"),
                    errhint("add taskq to shared_preload_libraries and restart PostgreSQL")));
}

void count_as_waiter() {
  if (counted_as_waiter) return;
  // A full barrier: the count is up before the caller's next snapshot.
  pg_atomic_fetch_add_u32(&taskq_shared->job_waiters.waiting, 1);
  counted_as_waiter = true;
}

}  // namespace

void taskq_job_waiters_init(TaskqJobWaiters* waiters) {
  pg_atomic_init_u32(&waiters->waiting, 0);
  for (auto& slot : waiters->slots) ConditionVariableInit(&slot.cv);
}

void taskq_register_job_waiters(void) { RegisterXactCallback(job_waiters_xact_callback, nullptr); }

extern "C" {
PG_FUNCTION_INFO_V1(taskq_wake_waiters_at_commit);
Datum taskq_wake_waiters_at_commit(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0) || taskq_shared == nullptr) PG_RETURN_VOID();
  ArrayType* ids = PG_GETARG_ARRAYTYPE_P(0);
  if (ARR_ELEMTYPE(ids) != UUIDOID)
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("job_ids must be a uuid[]")));
  ArrayIterator it = array_create_iterator(ids, 0, nullptr);
  Datum value;
  bool is_null;
  while (array_iterate(it, &value, &is_null)) {
    if (is_null) continue;
    const int slot = slot_of(DatumGetUUIDP(value));
    slots_to_wake[slot / kWordBits] |= uint64{1} << (slot % kWordBits);
    any_slot_to_wake = true;
  }
  array_free_iterator(it);
  PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(taskq_wait_prepare);
Datum taskq_wait_prepare(PG_FUNCTION_ARGS) {
  require_shared_memory();
  count_as_waiter();
  ConditionVariablePrepareToSleep(slot_cv(PG_GETARG_UUID_P(0)));
  PG_RETURN_VOID();
}

// Sleeps until a broadcast on the job's slot, the deadline, or an interrupt
// (statement_timeout, a cancel, termination: CHECK_FOR_INTERRUPTS inside
// ConditionVariableTimedSleep raises them). Returns at once if the backend
// was not in the slot's list, having joined it. The caller looks again
// either way.
PG_FUNCTION_INFO_V1(taskq_wait_sleep);
Datum taskq_wait_sleep(PG_FUNCTION_ARGS) {
  require_shared_memory();
  count_as_waiter();
  const pg_uuid_t* id = PG_GETARG_UUID_P(0);
  const TimestampTz deadline = PG_GETARG_TIMESTAMPTZ(1);
  const TimestampTz now = GetCurrentTimestamp();
  if (deadline <= now) PG_RETURN_VOID();
  // Whole milliseconds, rounded up so the caller's look after the sleep is
  // past the deadline; at most INT_MAX (ConditionVariableTimedSleep's limit),
  // the caller's loop sleeps again for the rest.
  const int64 micros = deadline - now;
  const long ms = static_cast<long>(Min((micros + 999) / 1000, static_cast<int64>(INT_MAX)));
  // The latch set by a broadcast that came during the caller's look may
  // have been consumed there (a lock wait resets the latch, say), which
  // would leave this sleep waiting for the next broadcast. Set it again:
  // the sleep's first wait then returns at once and checks whether this
  // backend is still on the slot's list; if it was taken off (broadcast),
  // the sleep returns and the caller looks again; if not, it sleeps.
  SetLatch(MyLatch);
  (void)ConditionVariableTimedSleep(slot_cv(id), ms, PG_WAIT_EXTENSION);
  PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(taskq_wait_done);
Datum taskq_wait_done(PG_FUNCTION_ARGS) {
  ConditionVariableCancelSleep();
  if (taskq_shared != nullptr) stop_counting();
  PG_RETURN_VOID();
}

// Whether the row version with this xmin was written by the current
// transaction (or one of its subtransactions): nobody else can finish such
// a job before this transaction ends.
PG_FUNCTION_INFO_V1(taskq_written_by_this_transaction);
Datum taskq_written_by_this_transaction(PG_FUNCTION_ARGS) {
  PG_RETURN_BOOL(TransactionIdIsCurrentTransactionId(PG_GETARG_TRANSACTIONID(0)));
}
}
