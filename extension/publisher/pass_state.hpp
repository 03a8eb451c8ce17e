// The outcomes of one publishing transaction, from the messages sent to
// the rows recorded (see publish_pass.cpp). Arrays live in the worker's
// pass memory context, which is reset after the pass.
#pragma once

#include "pg_includes.hpp"

namespace taskq::publisher {

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

}  // namespace taskq::publisher
