// What the publisher background worker keeps between passes, in one place.
//
// Every file of extension/publisher/ belongs to the PostgreSQL-facing layer:
// plain data only (no C++ object with a destructor lives on its stacks) and
// the C++ core is reached only through the noexcept functions of
// core_bridge.h, so ereport() may jump freely. The worker's main loop owns
// the one PublisherState and passes it to each step.
#pragma once

#include "core_bridge.h"
#include "pg_includes.hpp"

namespace taskq::publisher {

struct PackedQueue;  // message_packing.hpp

// The queues whose jobs go several to a message (message_packing.hpp).
struct PackingPlan {
  PackedQueue* queues;  // usually none
  int n_queues;
};

struct PublisherState {
  taskq_publisher* publisher;  // the broker connection, NULL while disconnected
  unsigned connect_failures;
  TimestampTz next_connect_at;
  TimestampTz next_maintenance_at;
  TimestampTz next_due_at;       // earliest not-yet-due outbox row, 0 if none
  TimestampTz next_schedule_at;  // next tick of an enabled schedule, 0 if none
  bool schedules_known;          // next_schedule_at has been read since the start
  TimestampTz next_flow_at;      // when taskq._flow_step() wants to run again, 0 if not timed
  bool flow_known;               // the flow step has run since the start
  bool flow_sweep_pending;       // the last sweep has more keys to look at
  bool woken_during_pass;        // a commit's wake-up arrived while we were busy
  bool broker_blocked;           // connection.blocked received and not lifted yet
  char last_logged_error[512];
  MemoryContext pass_context;  // reset after every transaction
  char* serving_database;
  char* connected_url;  // broker_url/exchange/password_file of the live connection
  char* connected_exchange;
  char* connected_password_file;
  // Of the nodes in taskq.broker_url, the one connected to or to try first
  // (an index the core takes modulo the number of nodes).
  size_t broker_node;

  // Rounds ended by an ERROR in a row, and no round before next_pass_at
  // while there are any (error_recovery.hpp).
  unsigned pass_failures;
  TimestampTz next_pass_at;

  // Read at most once a second (in packing_context), so that a pass pays
  // nothing for jobs_per_message while no queue changes it.
  PackingPlan packing;
  TimestampTz packing_read_at;
  MemoryContext packing_context;
};

}  // namespace taskq::publisher
