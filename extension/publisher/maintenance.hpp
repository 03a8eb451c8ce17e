// The publisher's periodic maintenance: rescuing expired leases, purging
// finished jobs, releasing held jobs and reconciling lost messages.
#pragma once

#include "publisher/publisher_state.hpp"

namespace taskq::publisher {

// Runs one maintenance transaction; asks for a publishing pass right after
// it (woken_during_pass) when it made jobs due.
void run_maintenance(PublisherState& st);

}  // namespace taskq::publisher
