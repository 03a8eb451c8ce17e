// See broker_consumer.hpp.
#include "broker_consumer.hpp"

#include <sys/time.h>

namespace taskq {
namespace {

std::string to_string(amqp_bytes_t b) { return std::string(static_cast<const char*>(b.bytes), b.len); }

}  // namespace

BrokerConsumer::BrokerConsumer(const BrokerUrl& url, const ConnectOptions& options, const std::string& exchange,
                               const std::vector<ConsumedQueue>& queues, int prefetch, std::uint64_t generation)
    : connection_(url, options), generation_(generation) {
  amqp_connection_state_t state = connection_.state();
  set_prefetch(prefetch);
  for (const auto& queue : queues) {
    // The same arguments as the publisher's declaration, or the broker
    // refuses one of the two with PRECONDITION_FAILED.
    declare_taskq_queue(connection_, exchange, queue.name, queue.queue_type);
    const std::string rabbit_queue = rabbitmq_queue_name(queue.name);
    auto* ok = amqp_basic_consume(state, AmqpConnection::kChannel, amqp_cstring_bytes(rabbit_queue.c_str()),
                                  amqp_empty_bytes, /*no_local=*/0, /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
    check_rpc_reply(amqp_get_rpc_reply(state), "consuming " + rabbit_queue);
    queue_by_consumer_tag_[to_string(ok->consumer_tag)] = queue.name;
  }
}

bool BrokerConsumer::has_buffered_data() const {
  return amqp_data_in_buffer(connection_.state()) || amqp_frames_enqueued(connection_.state());
}

void BrokerConsumer::drain(const std::function<void(Delivery&&)>& sink) {
  amqp_connection_state_t state = connection_.state();
  for (;;) {
    amqp_maybe_release_buffers(state);
    amqp_envelope_t envelope;
    timeval immediately{0, 0};  // rabbitmq-c: a zero timeout polls without blocking
    const amqp_rpc_reply_t reply = amqp_consume_message(state, &envelope, &immediately, 0);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
      // The queue comes from the consumer tag, not the routing key: a message
      // moved by hand (shovel, default exchange) keeps its job's queue.
      auto queue = queue_by_consumer_tag_.find(to_string(envelope.consumer_tag));
      Delivery d{envelope.delivery_tag, generation_,
                 queue != queue_by_consumer_tag_.end() ? queue->second : to_string(envelope.routing_key),
                 to_string(envelope.message.body)};
      amqp_destroy_envelope(&envelope);
      sink(std::move(d));
      continue;
    }
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) return;
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      // A method instead of a delivery; rabbitmq-c put the frame back.
      amqp_frame_t frame;
      const int rc = amqp_simple_wait_frame(state, &frame);
      if (rc != AMQP_STATUS_OK) throw status_error(rc, "reading a frame");
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      switch (frame.payload.method.id) {
        case AMQP_BASIC_CANCEL_METHOD:
          throw AmqpError(AmqpError::Scope::kConnection, 0,
                          "the broker cancelled a consumer (its queue was deleted or became unavailable)");
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
          throw close_error(frame.payload.method, "consuming");
        default:
          continue;  // e.g. basic.ack of an earlier session's method: nothing to do
      }
    }
    check_rpc_reply(reply, "consuming");
  }
}

void BrokerConsumer::set_prefetch(int prefetch) {
  // A synchronous method: rabbitmq-c keeps deliveries that arrive before its
  // answer queued for drain().
  amqp_basic_qos(connection_.state(), AmqpConnection::kChannel, 0, static_cast<std::uint16_t>(prefetch), 0);
  check_rpc_reply(amqp_get_rpc_reply(connection_.state()), "basic.qos");
  prefetch_ = prefetch;
}

void BrokerConsumer::ack(std::uint64_t tag) {
  const int rc = amqp_basic_ack(connection_.state(), AmqpConnection::kChannel, tag, /*multiple=*/0);
  if (rc != AMQP_STATUS_OK) throw status_error(rc, "acknowledging a delivery");
}

void BrokerConsumer::cancel_consumers() noexcept {
  // Asynchronous (no wait for cancel-ok): deliveries already on the wire
  // still arrive and are simply not started.
  for (const auto& [tag, queue] : queue_by_consumer_tag_) {
    amqp_basic_cancel_t cancel{};
    cancel.consumer_tag = amqp_bytes_t{tag.size(), const_cast<char*>(tag.data())};
    cancel.nowait = 1;
    amqp_send_method(connection_.state(), AmqpConnection::kChannel, AMQP_BASIC_CANCEL_METHOD, &cancel);
  }
  queue_by_consumer_tag_.clear();
}

}  // namespace taskq
