// Claiming due outbox rows as messages for the broker, batch by batch
// within one transaction (taskq._outbox_claim, FOR UPDATE SKIP LOCKED).
#pragma once

#include "publisher/publisher_state.hpp"

namespace taskq::publisher {

// Keyset cursor of the rows claimed so far in this transaction.
struct ClaimCursor {
  bool set;
  Datum due_at;  // timestamptz (pass-by-value)
  int64 id;
};

// Claims up to a batch of due rows after the cursor, and advances it; the
// messages' strings live in the pass memory context. Returns how many.
int claim_batch(PublisherState& st, taskq_outbox_message** out, ClaimCursor* cursor);

}  // namespace taskq::publisher
