// Publisher-confirm bookkeeping: which outbox rows each delivery tag carries
// (one, or several for a message of several jobs),
// and what the broker said about it. Pure logic, no I/O: unit-tested alone.
//
// The broker answers every publish on a confirm-mode channel with basic.ack
// or basic.nack, possibly for many tags at once (`multiple`: every tag up to
// and including this one). An unroutable mandatory message is first
// returned (basic.return, identified by its message_id) and then acked: such
// an ack must count as a failure.
#pragma once

#include "no_postgres.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace taskq {

struct ConfirmOutcome {
  std::int64_t outbox_id;
  bool confirmed;      // true: safely in the broker; false: publish again later
  std::string reason;  // for failures: "nack", "returned: ...", or the connection error
};

class ConfirmTracker {
 public:
  // Records a published message; delivery tags start at 1 per channel and
  // increase by one per publish.
  void published(std::uint64_t delivery_tag, std::int64_t outbox_id, const std::string& message_id);
  // A message carrying several outbox rows: each gets the message's outcome.
  void published(std::uint64_t delivery_tag, std::vector<std::int64_t> outbox_ids, const std::string& message_id);

  void ack(std::uint64_t delivery_tag, bool multiple);
  void nack(std::uint64_t delivery_tag, bool multiple);
  // basic.return: the message with this message_id could not be routed.
  void returned(const std::string& message_id, const std::string& reason);
  // The channel or connection is gone: nothing outstanding will be confirmed.
  void fail_all(const std::string& reason);

  // Outbox rows (not messages) awaiting an outcome.
  std::size_t outstanding() const { return outstanding_rows_; }
  // basic.nacks since the last basic.ack. RabbitMQ 3.10 nacks every publish
  // on a channel that began publishing to a quorum queue just as its leader
  // died, for as long as the channel lives, while a new channel is
  // confirmed: a long run of nacks means "open a fresh channel".
  std::uint64_t nacks_in_a_row() const { return nacks_in_a_row_; }
  // Outcomes resolved since the last call.
  std::vector<ConfirmOutcome> take_resolved();

 private:
  struct Pending {
    std::vector<std::int64_t> outbox_ids;
    std::string message_id;
  };
  void resolve(std::uint64_t delivery_tag, bool multiple, bool positive);
  void settle(std::map<std::uint64_t, Pending>::iterator it, bool positive, const char* negative_reason);

  std::map<std::uint64_t, Pending> pending_;               // ordered: `multiple` resolves a prefix
  std::unordered_map<std::string, std::string> returned_;  // message_id -> reason
  std::vector<ConfirmOutcome> resolved_;
  std::uint64_t nacks_in_a_row_ = 0;
  std::size_t outstanding_rows_ = 0;
};

}  // namespace taskq
