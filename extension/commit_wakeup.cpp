// Wakes the database's publisher when a transaction that wrote outbox rows, or changed
// taskq.schedules, commits.
//
// taskq._wake_publisher_at_commit() is called by every SQL function that
// writes an outbox row; it only sets a backend-local flag. The transaction
// callback sets the publisher's latch at commit and forgets the flag on
// abort, so rolled-back jobs cost the publisher nothing and committed ones
// reach it without waiting for taskq.poll_interval. A flag set inside a
// rolled-back savepoint can cause one spurious wake-up, which is harmless.
//
// taskq._schedules_changed_at_commit() (schedule, unschedule, drop_queue)
// does the same and also raises the slot's schedules_changed, so that
// the publisher, which otherwise sleeps until the next tick it knows of,
// looks at the schedules again.
//
// taskq._flow_changed_at_commit() (flow control: rows set aside for a
// limit, a start held back, limits changed) raises the slot's
// flow_changed the same way: the publisher then runs taskq._flow_step()
// before it would otherwise.
#include "pg_includes.hpp"
#include "shared_state.hpp"

static bool wake_at_commit = false;
static bool schedules_changed = false;
static bool flow_changed = false;
// The slot of this database's publisher (see shared_state.hpp), looked up
// at the first commit that needs it and checked at every later one: a
// publisher that restarts keeps its slot.
static int my_publisher_slot = -1;

// The latch of this database's publisher, or NULL; raises its
// schedules_changed and flow_changed flags when asked. Called with the
// spinlock held.
static Latch* publisher_latch_locked(bool raise_schedules_changed, bool raise_flow_changed) {
  if (my_publisher_slot < 0 || taskq_shared->slots[my_publisher_slot].database != MyDatabaseId) {
    my_publisher_slot = taskq_slot_of_database_locked(MyDatabaseId);
    if (my_publisher_slot < 0) return nullptr;  // no publisher serves this database (yet)
  }
  TaskqPublisherSlot& slot = taskq_shared->slots[my_publisher_slot];
  if (raise_schedules_changed) slot.schedules_changed = true;
  if (raise_flow_changed) slot.flow_changed = true;
  return slot.latch;
}

static void taskq_xact_callback(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
      if ((wake_at_commit || schedules_changed || flow_changed) && taskq_shared != nullptr) {
        SpinLockAcquire(&taskq_shared->mutex);
        Latch* latch = publisher_latch_locked(schedules_changed, flow_changed);
        SpinLockRelease(&taskq_shared->mutex);
        if (latch != nullptr) SetLatch(latch);
      }
      wake_at_commit = false;
      schedules_changed = false;
      flow_changed = false;
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:  // COMMIT PREPARED is caught by the poll
      wake_at_commit = false;
      schedules_changed = false;
      flow_changed = false;
      break;
    default:
      break;
  }
}

void taskq_register_commit_wakeup(void) { RegisterXactCallback(taskq_xact_callback, nullptr); }

extern "C" {
PG_FUNCTION_INFO_V1(taskq_wake_publisher_at_commit);
Datum taskq_wake_publisher_at_commit(PG_FUNCTION_ARGS) {
  wake_at_commit = true;
  PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(taskq_flow_changed_at_commit);
Datum taskq_flow_changed_at_commit(PG_FUNCTION_ARGS) {
  flow_changed = true;
  PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(taskq_schedules_changed_at_commit);
Datum taskq_schedules_changed_at_commit(PG_FUNCTION_ARGS) {
  schedules_changed = true;
  PG_RETURN_VOID();
}
}
