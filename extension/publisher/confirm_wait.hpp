// Waiting for the broker's publisher confirms of a pass, on the AMQP socket
// with WaitLatchOrSocket so that SIGTERM and commit wake-ups stay
// responsive.
#pragma once

#include "publisher/pass_state.hpp"
#include "publisher/publisher_state.hpp"

namespace taskq::publisher {

// Moves resolved outcomes from the bridge into the pass (as many as fit).
void collect_outcomes(PublisherState& st, PassState* pass);

// Waits until at least `target` of the messages sent in this transaction
// have an outcome, at most kConfirmTimeoutMs. Marks the pass lost when the
// connection died or the broker stopped confirming.
void wait_for_confirms(PublisherState& st, PassState* pass, long target);

}  // namespace taskq::publisher
