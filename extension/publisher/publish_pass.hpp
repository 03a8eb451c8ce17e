// One publishing pass of the worker: a transaction that claims due outbox
// rows, publishes them, waits for the broker's confirms and records the
// outcomes.
#pragma once

#include "publisher/publisher_state.hpp"

namespace taskq::publisher {

// Runs one pass over a live connection. Returns the number of rows claimed
// in its last batch (a full batch: go again); 0 when the connection was
// lost, and then it has been dropped.
int publish_pass(PublisherState& st);

}  // namespace taskq::publisher
