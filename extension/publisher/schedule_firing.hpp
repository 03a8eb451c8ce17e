// Periodic jobs, fired by the publisher: when the next tick it knows of is
// due, or a committed transaction changed taskq.schedules, one transaction
// runs taskq._fire_due_schedules(), which enqueues the jobs of the due
// ticks and returns the next tick. In between the publisher neither
// queries the schedules nor wakes up for them.
#pragma once

#include "publisher/publisher_state.hpp"

namespace taskq::publisher {

// Fires the due schedules if there may be any; cheap (no query) otherwise.
void fire_due_schedules(PublisherState& st);

// Milliseconds until the next known tick; LONG_MAX if none.
long milliseconds_until_next_tick(const PublisherState& st);

}  // namespace taskq::publisher
