// A broker connection in publisher-confirm mode that publishes job messages
// and reports, without ever blocking, what the broker has confirmed. The
// caller (the background worker in PostgreSQL) waits on socket_fd() itself,
// so that signals and latches stay responsive.
#pragma once

#include "no_postgres.hpp"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "amqp_connection.hpp"
#include "confirm_tracker.hpp"
#include "job_message.hpp"

namespace taskq {

class ConfirmedPublisher {
 public:
  // Connects, enables confirms, declares the exchange. Throws AmqpError.
  ConfirmedPublisher(const BrokerUrl& url, const std::string& exchange, const ConnectOptions& options);

  int socket_fd() const { return connection_.socket_fd(); }
  void close_quickly() noexcept { connection_.close_quickly(); }

  // Declares the queue's topology once per connection (and again after a
  // message to it came back unroutable).
  void ensure_queue(const std::string& queue_name, const std::string& queue_type);

  // Publishes with mandatory set; the outcome arrives through poll().
  void publish(std::int64_t outbox_id, const JobMessage& message);
  // A packed message (pack_job_messages) carrying these outbox rows, in
  // its body's order: all of them get the message's outcome.
  void publish(std::vector<std::int64_t> outbox_ids, const JobMessage& message);

  // Handles every frame that has arrived (acks, nacks, returns, closes,
  // heartbeats) without blocking. Throws AmqpError when the connection or
  // channel is gone; outstanding messages are then resolved as failed.
  void poll();

  std::size_t outstanding() const { return tracker_.outstanding(); }
  std::uint64_t nacks_in_a_row() const { return tracker_.nacks_in_a_row(); }
  std::vector<ConfirmOutcome> take_resolved() { return tracker_.take_resolved(); }
  void fail_outstanding(const std::string& reason) { tracker_.fail_all(reason); }

  // Ready messages in the queue's RabbitMQ queue (passive declare); -1 if
  // the queue does not exist (it is then re-declared on the next publish).
  long ready_messages(const std::string& queue_name);

  // Set when the broker announced a resource alarm (connection.blocked).
  bool blocked() const { return blocked_; }
  const std::string& blocked_reason() const { return blocked_reason_; }

 private:
  void handle_return();

  AmqpConnection connection_;
  std::string exchange_;
  ConfirmTracker tracker_;
  std::uint64_t next_tag_ = 1;
  std::set<std::string> declared_;
  bool blocked_ = false;
  std::string blocked_reason_;
};

}  // namespace taskq
