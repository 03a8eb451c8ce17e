// Shared memory of taskq: where committing backends find the publisher's
// latch, and the publisher's status for the SQL status view. Exists only
// when taskq is in shared_preload_libraries; otherwise taskq_shared is NULL.
#pragma once

#include "pg_includes.hpp"

struct TaskqSharedState {
  slock_t mutex;           // guards every field below
  Latch* publisher_latch;  // NULL while no publisher runs
  int publisher_pid;
};

extern "C" TaskqSharedState* taskq_shared;

void taskq_request_shared_memory(void);
