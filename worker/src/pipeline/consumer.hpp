// The consumer stage (the thread in Worker::run()): owns the RabbitMQ
// connection (a BrokerConsumer, replaced on every reconnect); reads
// deliveries into WorkState::pending, sends the acks the other stages queue,
// lets the prefetch follow the handlers' speed, and reconnects with backoff.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "broker/broker_consumer.hpp"
#include "core/broker_nodes.hpp"
#include "operations/metrics.hpp"
#include "pipeline/in_flight.hpp"
#include "pipeline/shutdown.hpp"
#include "pipeline/topology.hpp"
#include "pipeline/wake_fd.hpp"
#include "taskq/worker.hpp"

namespace taskq {

class Consumer {
 public:
  // All references must outlive the consumer.
  Consumer(const WorkerOptions& options, const Topology& topology, WorkState& state, const WakeFd& wake,
           const StopRequest& stop, Metrics& metrics)
      : options_(options), topology_(topology), state_(state), wake_(wake), stop_(stop), metrics_(metrics) {}

  // The first connection; throws what BrokerConsumer throws.
  void connect();
  // Consumes until stop() (reconnecting as often as it takes).
  void run();

  // --- shutdown ---------------------------------------------------------------
  // No more deliveries (unacked ones are requeued at close).
  void cancel_consumers();
  // Sends the acks of what finished and waits up to `wait` for more;
  // deliveries still on the wire are left unacked (requeued at close).
  // False when there is no connection to do it on.
  bool acknowledge_while_stopping(std::chrono::milliseconds wait);
  // Sends the last acks and closes the connection.
  void close();

 private:
  std::unique_ptr<BrokerConsumer> connect_broker();
  int wanted_prefetch();
  void flush_acks(BrokerConsumer& consumer);
  void wait_for_events(const BrokerConsumer* consumer, std::chrono::milliseconds timeout);
  void take_delivery(Delivery&& d);

  const WorkerOptions& options_;
  const Topology& topology_;
  WorkState& state_;
  const WakeFd& wake_;
  const StopRequest& stop_;
  Metrics& metrics_;
  BrokerNodes nodes_;                       // parsed from options_.broker by the first connect
  std::unique_ptr<BrokerConsumer> broker_;  // null while disconnected
  std::uint64_t generation_ = 0;            // of the latest connection
};

}  // namespace taskq
