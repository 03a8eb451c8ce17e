// broker/: the RabbitMQ side of taskq-worker: this consuming connection,
// and the parsing of the messages it delivers into jobs (job_parser).
//
// The consuming side of one RabbitMQ connection: basic.qos, the topology of
// every consumed taskq queue (declared exactly as the publisher declares it),
// basic.consume with manual acks, non-blocking reads of deliveries, acks.
//
// rabbitmq-c connections are not thread-safe: one thread owns a
// BrokerConsumer. Delivery tags are only valid on the connection that
// delivered them, so every delivery carries the connection's generation and
// acks for another generation must be dropped (the broker has requeued those
// messages when the old connection died).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/amqp_connection.hpp"

namespace taskq {

// The jobs of one packed message (packed_message.hpp) not yet done with:
// the message is acked when the last one is. Guarded by the worker's
// WorkState::mu, like the acks themselves.
struct PackedAck {
  int unreleased = 0;
};

struct Delivery {
  std::uint64_t tag = 0;
  std::uint64_t generation = 0;       // of the connection it arrived on
  std::string queue;                  // taskq queue it was consumed from
  std::string body;                   // one job's body (for a packed message: its element)
  std::shared_ptr<PackedAck> packed;  // set for the jobs of a packed message
};

struct ConsumedQueue {
  std::string name;        // taskq queue name
  std::string queue_type;  // classic or quorum, from taskq.queues
};

class BrokerConsumer {
 public:
  // Connects, declares and subscribes. Throws AmqpError (or
  // std::invalid_argument for a bad URL).
  BrokerConsumer(const BrokerUrl& url, const ConnectOptions& options, const std::string& exchange,
                 const std::vector<ConsumedQueue>& queues, int prefetch, std::uint64_t generation);

  std::uint64_t generation() const { return generation_; }
  int socket_fd() const { return connection_.socket_fd(); }
  // True when rabbitmq-c holds unread data, so the socket may not become
  // readable again although deliveries are waiting: do not block in poll().
  bool has_buffered_data() const;

  // Hands every delivery that has arrived to `sink`, without blocking, and
  // services heartbeats. Throws AmqpError when the connection or channel
  // failed or the broker cancelled a consumer (its queue was deleted):
  // reconnecting declares everything again.
  void drain(const std::function<void(Delivery&&)>& sink);

  void ack(std::uint64_t tag);
  // How many unacknowledged deliveries the broker lets each consumer hold;
  // re-subscribes, since RabbitMQ applies a new limit to new consumers only.
  // Lowering it revokes nothing already delivered.
  void set_prefetch(int prefetch);
  int prefetch() const { return prefetch_; }
  // Stops deliveries (shutdown); unacked ones stay ours until acked or the
  // connection closes, when the broker requeues them.
  void cancel_consumers() noexcept;
  void close() noexcept { connection_.close(); }
  // The taskq queue a consumer tag of ours stands for (nullopt: not ours).
  static std::optional<std::string> queue_of_tag(const std::string& tag);
  // For a connection that failed: do not wait long for the broker's answer.
  void close_quickly() noexcept { connection_.close_quickly(); }

 private:
  // Consumer tags: "taskq-worker:<queue>#<n>" (queue names never hold '#').
  static constexpr const char* kTagPrefix = "taskq-worker:";
  static constexpr char kTagSeparator = '#';

  void qos(int prefetch);
  void subscribe();  // one new consumer per queue, under the current basic.qos
  void cancel(const std::vector<std::string>& tags) noexcept;

  AmqpConnection connection_;
  std::uint64_t generation_;
  int prefetch_ = 0;
  std::vector<std::string> queues_;         // taskq queue names
  std::vector<std::string> consumer_tags_;  // current subscriptions
  std::uint64_t subscriptions_ = 0;
};

}  // namespace taskq
