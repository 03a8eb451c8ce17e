// Flow control, the publisher's part: taskq._flow_step() in a transaction
// of its own (sql/src/55_flow_control.sql says what it does) when a
// committed transaction asked for it (taskq_shared->flow_changed), when the
// time it returned last has come, and with its sweep at every maintenance.
// A database without limits costs nothing: the step then returns no time,
// and nothing asks for it.
#pragma once

#include "publisher/publisher_state.hpp"

namespace taskq::publisher {

// Runs the flow step if it is asked for or due; cheap (no query) otherwise.
// sweep: also the maintenance safety net (fill every key's free slots), which
// goes on in the next rounds while it has more keys to look at.
void run_flow_step(PublisherState& st, bool sweep);

// Milliseconds until the flow step is due; LONG_MAX if it is not timed.
long milliseconds_until_flow_step(const PublisherState& st);

}  // namespace taskq::publisher
