// See consumer.hpp.
#include "pipeline/consumer.hpp"

#include <poll.h>

#include <algorithm>
#include <mutex>

#include "broker/packed_message.hpp"
#include "core/backoff.hpp"
#include "operations/log.hpp"

namespace taskq {
namespace {

using namespace std::chrono_literals;

// The prefetch follows the handlers' speed at most this often.
constexpr auto kPrefetchChangeEvery = 5s;

}  // namespace

void Consumer::connect() { broker_ = connect_broker(); }

std::unique_ptr<BrokerConsumer> Consumer::connect_broker() {
  if (nodes_.size() == 0) nodes_ = BrokerNodes::parse(options_.broker);
  ConnectOptions connect;
  connect.connection_name = "taskq-worker " + options_.name;
  const int prefetch = wanted_prefetch();
  const std::uint64_t generation = ++generation_;
  auto consumer = nodes_.connect_any<std::unique_ptr<BrokerConsumer>>([&](const BrokerUrl& node) {
    return std::make_unique<BrokerConsumer>(node, connect, topology_.exchange, topology_.queues, prefetch, generation);
  });
  if (nodes_.size() > 1) log::info("broker: connected to node {}", nodes_.current().redacted());
  metrics_.set_connected("broker", true);
  watch_.up();
  // Deliveries of the dead connection that were not started yet: the
  // broker has requeued them and delivers them again.
  std::lock_guard<std::mutex> lock(state_.mu);
  auto& pending = state_.pending;
  pending.erase(std::remove_if(pending.begin(), pending.end(),
                               [&](const Delivery& d) { return d.generation != consumer->generation(); }),
                pending.end());
  return consumer;
}

// Deliveries stay unacknowledged until their outcome commits, so the
// prefetch must cover a start batch, a complete batch and their commit
// round trips for short jobs to flow. For long jobs a deep prefetch would
// only hoard messages here that an idle worker elsewhere could run. By
// default it follows the handlers; --prefetch fixes it.
int Consumer::wanted_prefetch() {
  if (options_.prefetch > 0) return std::min(options_.prefetch, 65535);
  bool quick;
  {
    std::lock_guard<std::mutex> lock(state_.mu);
    quick = state_.quick_handlers();
  }
  return std::min(quick ? 16 * options_.concurrency : 2 * options_.concurrency, 65535);
}

void Consumer::flush_acks(BrokerConsumer& consumer) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> batch;
  {
    std::lock_guard<std::mutex> lock(state_.mu);
    batch.swap(state_.acks);
  }
  for (const auto& [gen, tag] : batch)
    if (gen == consumer.generation()) consumer.ack(tag);  // others died with their connection
}

// Waits until the socket has data, acks are queued, stop() was called, or
// `timeout` passed. rabbitmq-c is called at least every second, which is
// what sends and checks AMQP heartbeats.
void Consumer::wait_for_events(const BrokerConsumer* consumer, std::chrono::milliseconds timeout) {
  if (consumer != nullptr && consumer->has_buffered_data()) return;
  pollfd fds[2] = {{wake_.fd(), POLLIN, 0}, {consumer ? consumer->socket_fd() : -1, POLLIN, 0}};
  poll(fds, consumer ? 2 : 1, static_cast<int>(std::min<std::chrono::milliseconds>(timeout, 1s).count()));
  wake_.drain();
}

void Consumer::take_delivery(Delivery&& d) {
  // A packed message becomes one delivery per job, sharing its tag. One
  // that does not split (not a JSON array of jobs) goes on whole, and the
  // starter drops it as malformed.
  std::optional<std::vector<std::string>> jobs;
  if (is_packed_body(d.body)) jobs = split_packed_body(d.body);
  std::lock_guard<std::mutex> lock(state_.mu);
  if (state_.stop_starting) return;  // shutting down: the broker requeues it at close
  if (!jobs) {
    state_.pending.push_back(std::move(d));
  } else {
    auto packed = std::make_shared<PackedAck>();
    packed->unreleased = static_cast<int>(jobs->size());
    for (auto& body : *jobs) state_.pending.push_back(Delivery{d.tag, d.generation, d.queue, std::move(body), packed});
  }
  state_.starter_cv.notify_one();
}

void Consumer::run() {
  Backoff reconnect(BackoffPolicy{200ms, 30s, 0.5});
  auto retry_at = Clock::now();
  auto last_prefetch_change = Clock::now() - kPrefetchChangeEvery;
  while (!stop_.requested()) {
    try {
      if (!broker_) {
        if (Clock::now() < retry_at) {
          wait_for_events(nullptr, std::chrono::duration_cast<std::chrono::milliseconds>(retry_at - Clock::now()));
          continue;
        }
        broker_ = connect_broker();
        metrics_.reconnected("broker");
        log::info("broker: connected again, consuming {} queue(s)", topology_.queues.size());
        reconnect.reset();
      }
      flush_acks(*broker_);
      // A change re-subscribes (see set_prefetch); a mix of quick and slow
      // jobs must not make that happen all the time.
      if (const int prefetch = wanted_prefetch();
          prefetch != broker_->prefetch() && Clock::now() - last_prefetch_change >= kPrefetchChangeEvery) {
        last_prefetch_change = Clock::now();
        broker_->set_prefetch(prefetch);
        log::info("broker: prefetch now {} ({} handlers)", prefetch,
                  prefetch > 2 * options_.concurrency ? "quick" : "slow");
      }
      wait_for_events(broker_.get(), 1s);
      broker_->drain([this](Delivery&& d) { take_delivery(std::move(d)); });
    } catch (const std::exception& e) {
      if (broker_) {
        broker_->close_quickly();  // a half-open socket must not hold us up
        nodes_.move_on();          // a cluster's next node first: this one may be gone
      }
      broker_.reset();
      metrics_.set_connected("broker", false);
      const auto delay = reconnect.next();
      retry_at = Clock::now() + delay;
      log::warn("broker: {}; reconnecting in {} ms", e.what(), delay.count());
      watch_.down(e.what(), delay);
    }
  }
}

void Consumer::cancel_consumers() {
  if (broker_) broker_->cancel_consumers();
}

bool Consumer::acknowledge_while_stopping(std::chrono::milliseconds wait) {
  if (!broker_) return false;
  try {
    flush_acks(*broker_);
    wait_for_events(broker_.get(), wait);
    broker_->drain([](Delivery&&) {});
  } catch (const std::exception& e) {
    log::warn("broker: {} while stopping; outcomes are recorded, unacked messages come back stale", e.what());
    watch_.down(e.what(), std::nullopt);
    broker_->close_quickly();
    broker_.reset();
  }
  return true;
}

void Consumer::close() {
  if (!broker_) return;
  try {
    flush_acks(*broker_);
  } catch (const std::exception&) {
  }
  broker_->close();
}

}  // namespace taskq
