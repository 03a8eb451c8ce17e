// Recording what the broker answered: confirmed rows leave the outbox,
// failed ones are pushed back with a backoff (within the pass's
// transaction), and the confirmed jobs' publish times are written after it.
#pragma once

#include "publisher/pass_state.hpp"

namespace taskq::publisher {

// Records the collected outcomes in the outbox (within the transaction)
// and empties the pass's lists of them.
void record_outcomes(PassState* pass);

// Records when the pass's jobs were published, in a short transaction of its
// own after the pass committed (see taskq._jobs_published). If the process
// dies before this, the reconciler counts from the job's creation instead;
// at worst a message is published once more, and start() fences that.
void record_publish_times(const PassState* pass);

}  // namespace taskq::publisher
