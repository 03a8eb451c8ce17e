// Several jobs per message (docs/message-format.md#several-jobs-per-message):
// which queues ask for it, and how a claimed batch is cut into messages.
#pragma once

#include "publisher/publisher_state.hpp"

namespace taskq::publisher {

struct PackedQueue {
  char* queue_name;
  int jobs_per_message;
};

// The plan of st.packing, read again from taskq._batched_queues() in the
// pass's transaction when it is a second old (a database still at 0.1.0 has
// no such function: no queue packs). So an alter_queue of jobs_per_message
// applies within a second.
const PackingPlan& packing_plan(PublisherState& st);

// Jobs per message for this queue: 1 unless the plan says otherwise.
int jobs_per_message(const PackingPlan& plan, const char* queue_name);

// The next message of a claimed batch: starting at the first row not yet
// taken, it takes up to jobs_per_message rows of that row's queue and
// priority, in claim order, with at most kMaxPackedBodyBytes of bodies (one
// row always goes, whatever its size). Marks them in `taken` and writes
// their indexes to `members`; returns how many (0: every row is taken).
constexpr size_t kMaxPackedBodyBytes = 1024 * 1024;
int next_message(const PackingPlan& plan, const taskq_outbox_message* rows, int count, bool* taken, int* members,
                 int* first_untaken);

}  // namespace taskq::publisher
