// RAII owner of one rabbitmq-c connection with one channel: connect with a
// bounded timeout, log in, open channel 1; every RPC has a timeout too, so a
// blackholed broker never hangs the caller. Shared by the publisher (inside
// PostgreSQL) and taskq-worker.
#pragma once

#include "no_postgres.hpp"

#include <amqp.h>

#include <cstdint>
#include <string>

#include "amqp_error.hpp"
#include "broker_url.hpp"

namespace taskq {

struct ConnectOptions {
  int connect_timeout_ms = 5000;  // TCP connect + AMQP handshake
  int rpc_timeout_ms = 10000;     // every synchronous AMQP method
  int send_timeout_ms = 10000;    // a send into a full socket buffer fails after this
  int heartbeat_s = 10;           // detects half-open connections
  // Advertise the connection.blocked capability: the broker then announces
  // resource alarms with connection.blocked/unblocked frames, which the
  // reader must handle (the publisher does; a plain consumer need not).
  bool notify_blocked = false;
  std::string connection_name;  // shown in the RabbitMQ management UI
};

struct QueueInfo {
  std::uint32_t ready_messages = 0;
  std::uint32_t consumers = 0;
};

class AmqpConnection {
 public:
  static constexpr amqp_channel_t kChannel = 1;

  // Throws AmqpError or std::invalid_argument.
  AmqpConnection(const BrokerUrl& url, const ConnectOptions& options);
  ~AmqpConnection();
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  amqp_connection_state_t state() const { return state_; }
  int socket_fd() const { return amqp_get_sockfd(state_); }

  // After a channel-level error (e.g. a passive declare of a missing queue):
  // the broker has closed channel 1; acknowledge that and open it again.
  void reopen_channel();

  void declare_exchange(const std::string& exchange);
  // Durable queue of the given type ("classic" gets x-max-priority 9).
  QueueInfo declare_queue(const std::string& queue, const std::string& queue_type);
  // Passive declare: throws a channel-scope AmqpError (404) if missing.
  QueueInfo inspect_queue(const std::string& queue);
  void bind_queue(const std::string& queue, const std::string& exchange, const std::string& routing_key);

  // Sends connection.close and waits (bounded) for close-ok; never throws.
  void close() noexcept;
  // The same with a short timeout, for process exit: a dead broker must not
  // delay shutdown.
  void close_quickly() noexcept;

 private:
  void open_channel();

  amqp_connection_state_t state_ = nullptr;
  bool open_ = false;
};

// taskq's topology for one queue: exchange (direct, durable), the RabbitMQ
// queue "taskq.<queue_name>" and its binding by routing key <queue_name>.
std::string rabbitmq_queue_name(const std::string& queue_name);
void declare_taskq_queue(AmqpConnection& connection, const std::string& exchange, const std::string& queue_name,
                         const std::string& queue_type);

}  // namespace taskq
