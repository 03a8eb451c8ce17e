// Shared memory of taskq: where committing backends find their database's
// publisher's latch, each publisher's status for taskq.publisher_status(),
// and the condition variables of taskq.wait() (job_waiters.hpp). Exists
// only when taskq is in shared_preload_libraries; otherwise taskq_shared is
// NULL.
#pragma once

#include "job_waiters.hpp"
#include "pg_includes.hpp"

struct TaskqPublisherStatus {
  int pid;  // 0 while no publisher runs
  bool connected;
  bool blocked;      // broker resource alarm (connection.blocked)
  char state[64];    // "connected", "connecting", "in recovery", "extension not installed", ...
  char broker[256];  // redacted URL
  char last_error[512];
  TimestampTz last_error_at;
  TimestampTz last_publish_at;
  TimestampTz connected_since;
  uint64 published;   // messages sent
  uint64 confirmed;   // acked by the broker
  uint64 failed;      // nacked, returned, unconfirmed or refused
  uint64 reconnects;  // successful connects after the first
  uint64 rescued;     // expired leases rescued by maintenance
  uint64 reconciled;  // lost messages published again
};

// One publisher per database of taskq.database, each in its own slot: slot
// i belongs to the background worker started for the list's i-th entry.
constexpr int kTaskqMaxPublishers = 16;

struct TaskqPublisherSlot {
  Oid database;            // set by the slot's publisher once connected; InvalidOid before
  Latch* latch;            // NULL while the slot's publisher does not run
  bool schedules_changed;  // set at commit by schedule changes, taken by the publisher
  bool flow_changed;       // set at commit when flow control has work for the publisher, taken by it
  TaskqPublisherStatus status;
};

struct TaskqSharedState {
  slock_t mutex;  // guards every field of every slot
  TaskqPublisherSlot slots[kTaskqMaxPublishers];
  TaskqJobWaiters job_waiters;  // not guarded by mutex: atomics and condition variables
};

extern "C" TaskqSharedState* taskq_shared;

void taskq_request_shared_memory(void);

// The slot of the publisher serving database `db`, or -1. Call it with
// taskq_shared set and its spinlock held (slots are claimed and given up
// under it).
int taskq_slot_of_database_locked(Oid db);
