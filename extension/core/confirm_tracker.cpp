// ConfirmTracker; see confirm_tracker.hpp.
#include "confirm_tracker.hpp"

namespace taskq {

void ConfirmTracker::published(std::uint64_t delivery_tag, std::int64_t outbox_id, const std::string& message_id) {
  published(delivery_tag, std::vector<std::int64_t>{outbox_id}, message_id);
}

void ConfirmTracker::published(std::uint64_t delivery_tag, std::vector<std::int64_t> outbox_ids,
                               const std::string& message_id) {
  outstanding_rows_ += outbox_ids.size();
  pending_[delivery_tag] = Pending{std::move(outbox_ids), message_id};
}

void ConfirmTracker::settle(std::map<std::uint64_t, Pending>::iterator it, bool positive, const char* negative_reason) {
  ConfirmOutcome outcome{0, positive, {}};
  auto ret = returned_.find(it->second.message_id);
  const bool was_returned = ret != returned_.end();
  if (was_returned) {
    // Acked after a basic.return: the broker took it but no queue did.
    outcome.confirmed = false;
    outcome.reason = "returned: " + ret->second;
    returned_.erase(ret);
  } else if (!positive) {
    outcome.reason = negative_reason;
  }
  nacks_in_a_row_ = positive ? 0 : nacks_in_a_row_ + (was_returned ? 0 : 1);
  for (const std::int64_t id : it->second.outbox_ids) {
    outcome.outbox_id = id;
    resolved_.push_back(outcome);
  }
  outstanding_rows_ -= it->second.outbox_ids.size();
  pending_.erase(it);
}

void ConfirmTracker::resolve(std::uint64_t delivery_tag, bool multiple, bool positive) {
  const char* reason = "nacked by the broker";
  if (!multiple) {
    auto it = pending_.find(delivery_tag);
    if (it != pending_.end()) settle(it, positive, reason);
    return;  // unknown tag: already resolved (e.g. after fail_all); ignore
  }
  // delivery_tag 0 with multiple means "everything so far".
  while (!pending_.empty() && (delivery_tag == 0 || pending_.begin()->first <= delivery_tag))
    settle(pending_.begin(), positive, reason);
}

void ConfirmTracker::ack(std::uint64_t delivery_tag, bool multiple) { resolve(delivery_tag, multiple, true); }

void ConfirmTracker::nack(std::uint64_t delivery_tag, bool multiple) { resolve(delivery_tag, multiple, false); }

void ConfirmTracker::returned(const std::string& message_id, const std::string& reason) {
  returned_[message_id] = reason;
}

void ConfirmTracker::fail_all(const std::string& reason) {
  for (auto& [tag, pending] : pending_)
    for (const std::int64_t id : pending.outbox_ids) resolved_.push_back(ConfirmOutcome{id, false, reason});
  pending_.clear();
  outstanding_rows_ = 0;
  returned_.clear();
}

std::vector<ConfirmOutcome> ConfirmTracker::take_resolved() {
  std::vector<ConfirmOutcome> out;
  out.swap(resolved_);
  return out;
}

}  // namespace taskq
