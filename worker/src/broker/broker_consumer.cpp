// See broker_consumer.hpp.
#include "broker/broker_consumer.hpp"

#include <sys/time.h>

#include <string>

#include "core/amqp_bytes.hpp"

namespace taskq {

BrokerConsumer::BrokerConsumer(const BrokerUrl& url, const ConnectOptions& options, const std::string& exchange,
                               const std::vector<ConsumedQueue>& queues, int prefetch, std::uint64_t generation)
    : connection_(url, options), generation_(generation) {
  qos(prefetch);
  for (const auto& queue : queues) {
    // The same arguments as the publisher's declaration, or the broker
    // refuses one of the two with PRECONDITION_FAILED.
    declare_taskq_queue(connection_, exchange, queue.name, queue.queue_type);
    queues_.push_back(queue.name);
  }
  subscribe();
}

void BrokerConsumer::subscribe() {
  amqp_connection_state_t state = connection_.state();
  consumer_tags_.clear();
  for (const auto& queue : queues_) {
    // The tag names the queue (see queue_of_tag) and is new for every
    // subscription, so that an old consumer's deliveries still map to their
    // queue after a re-subscription.
    const std::string tag = std::string(kTagPrefix) + queue + kTagSeparator + std::to_string(++subscriptions_);
    const std::string rabbit_queue = rabbitmq_queue_name(queue);
    amqp_basic_consume(state, AmqpConnection::kChannel, amqp_cstring_bytes(rabbit_queue.c_str()),
                       amqp_cstring_bytes(tag.c_str()), /*no_local=*/0, /*no_ack=*/0, /*exclusive=*/0,
                       amqp_empty_table);
    check_rpc_reply(amqp_get_rpc_reply(state), "consuming " + rabbit_queue);
    consumer_tags_.push_back(tag);
  }
}

std::optional<std::string> BrokerConsumer::queue_of_tag(const std::string& tag) {
  if (tag.rfind(kTagPrefix, 0) != 0) return std::nullopt;
  const auto end = tag.rfind(kTagSeparator);
  const std::size_t begin = std::char_traits<char>::length(kTagPrefix);
  if (end == std::string::npos || end <= begin) return std::nullopt;
  return tag.substr(begin, end - begin);
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
      const auto queue = queue_of_tag(string_of(envelope.consumer_tag));
      Delivery d{envelope.delivery_tag, generation_, queue ? *queue : string_of(envelope.routing_key),
                 string_of(envelope.message.body)};
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

void BrokerConsumer::qos(int prefetch) {
  // A synchronous method: rabbitmq-c keeps deliveries that arrive before its
  // answer queued for drain().
  amqp_basic_qos(connection_.state(), AmqpConnection::kChannel, 0, static_cast<std::uint16_t>(prefetch), 0);
  check_rpc_reply(amqp_get_rpc_reply(connection_.state()), "basic.qos");
  prefetch_ = prefetch;
}

void BrokerConsumer::set_prefetch(int prefetch) {
  qos(prefetch);
  // RabbitMQ applies a basic.qos (global=false) only to consumers created
  // after it; the running ones keep their old limit. So subscribe anew,
  // then cancel the old consumers. Their unacked deliveries stay ours and
  // are acked as usual; for a moment both limits apply, which only lets a
  // few more messages in.
  std::vector<std::string> old;
  old.swap(consumer_tags_);
  subscribe();
  cancel(old);
}

void BrokerConsumer::ack(std::uint64_t tag) {
  const int rc = amqp_basic_ack(connection_.state(), AmqpConnection::kChannel, tag, /*multiple=*/0);
  if (rc != AMQP_STATUS_OK) throw status_error(rc, "acknowledging a delivery");
}

void BrokerConsumer::cancel(const std::vector<std::string>& tags) noexcept {
  // Asynchronous (no wait for cancel-ok): deliveries already on the wire
  // still arrive.
  for (const auto& tag : tags) {
    amqp_basic_cancel_t cancel{};
    cancel.consumer_tag = bytes_of(tag);
    cancel.nowait = 1;
    amqp_send_method(connection_.state(), AmqpConnection::kChannel, AMQP_BASIC_CANCEL_METHOD, &cancel);
  }
}

void BrokerConsumer::cancel_consumers() noexcept {
  cancel(consumer_tags_);
  consumer_tags_.clear();
}

}  // namespace taskq
