// Changes to this publisher's status in shared memory (what taskq.publisher
// shows, see publisher_status.cpp). Every change goes through
// update_shared(), which holds the spinlock for as long as the change runs:
// a change only copies plain values, never calls anything that may fail.
#pragma once

#include "pg_includes.hpp"
#include "shared_state.hpp"

namespace taskq::publisher {

// This publisher's slot in shared memory: its background worker's
// argument, its index in taskq.database.
extern int my_slot;

template <typename Change>
void update_shared(Change&& change) {
  SpinLockAcquire(&taskq_shared->mutex);
  change(taskq_shared->slots[my_slot]);
  SpinLockRelease(&taskq_shared->mutex);
}

// The state word of taskq.publisher ("connected", "connecting", ...).
void set_state(const char* state);

// The last error and when it happened.
void record_error(const char* error);

}  // namespace taskq::publisher
