// Shared memory behind taskq.wait(): condition variables that a finishing
// transaction broadcasts on after it commits, hashed by job id into a fixed
// number of slots, and how many backends are inside taskq.wait() right now
// (so that a commit pays one atomic read when nobody waits).
#pragma once

#include "pg_includes.hpp"

// A power of two. A finish wakes the waiters of every job in its slot; they
// look at their job again and go back to sleep. With 1,000 waiters that is
// about one needless look per finish; 16 KiB of shared memory.
constexpr int kTaskqWaitSlots = 1024;

struct TaskqJobWaiters {
  pg_atomic_uint32 waiting;  // backends between _wait_prepare and _wait_done (or their transaction's end)
  ConditionVariableMinimallyPadded slots[kTaskqWaitSlots];
};

void taskq_job_waiters_init(TaskqJobWaiters* waiters);
void taskq_register_job_waiters(void);
