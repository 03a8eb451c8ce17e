// Shared memory of taskq: where committing backends find the publisher's
// latch, and the publisher's status for taskq.publisher_status(). Exists
// only when taskq is in shared_preload_libraries; otherwise taskq_shared is
// NULL.
#pragma once

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

struct TaskqSharedState {
  slock_t mutex;           // guards every field below
  Latch* publisher_latch;  // NULL while no publisher runs
  bool schedules_changed;  // set at commit by schedule changes, taken by the publisher
  bool flow_changed;       // set at commit when flow control has work for the publisher, taken by it
  TaskqPublisherStatus status;
};

extern "C" TaskqSharedState* taskq_shared;

void taskq_request_shared_memory(void);
