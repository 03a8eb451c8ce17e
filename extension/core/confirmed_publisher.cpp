// ConfirmedPublisher; see confirmed_publisher.hpp.
#include "confirmed_publisher.hpp"

#include "amqp_bytes.hpp"

#include <sys/time.h>

namespace taskq {
namespace {

void confirm_select(AmqpConnection& connection) {
  amqp_confirm_select(connection.state(), AmqpConnection::kChannel);
  check_rpc_reply(amqp_get_rpc_reply(connection.state()), "enabling publisher confirms");
}

}  // namespace

ConfirmedPublisher::ConfirmedPublisher(const BrokerUrl& url, const std::string& exchange, const ConnectOptions& options)
    : connection_(url, options), exchange_(exchange) {
  confirm_select(connection_);
  connection_.declare_exchange(exchange_);
}

void ConfirmedPublisher::ensure_queue(const std::string& queue_name, const std::string& queue_type) {
  if (declared_.count(queue_name) != 0) return;
  try {
    declare_taskq_queue(connection_, exchange_, queue_name, queue_type);
  } catch (const AmqpError& e) {
    if (e.needs_reconnect()) {
      tracker_.fail_all(e.what());
      throw;
    }
    // The broker refused this queue only (e.g. 406: it exists with other
    // arguments). Reset the channel so the other queues keep flowing; the
    // caller fails this queue's messages. Delivery tags restart on the new
    // channel, so nothing may stay outstanding from the old one.
    tracker_.fail_all(std::string("channel reset after: ") + e.what());
    connection_.reopen_channel();
    confirm_select(connection_);
    next_tag_ = 1;
    throw;
  }
  declared_.insert(queue_name);
}

void ConfirmedPublisher::publish(std::int64_t outbox_id, const JobMessage& message) {
  publish(std::vector<std::int64_t>{outbox_id}, message);
}

void ConfirmedPublisher::publish(std::vector<std::int64_t> outbox_ids, const JobMessage& message) {
  MessageProperties properties(message);
  const int status = amqp_basic_publish(connection_.state(), AmqpConnection::kChannel, bytes_of(exchange_),
                                        bytes_of(message.queue_name),
                                        /*mandatory=*/1, /*immediate=*/0, properties.get(), bytes_of(message.body));
  if (status != AMQP_STATUS_OK) {
    AmqpError error = status_error(status, "publishing");
    tracker_.fail_all(error.what());
    throw error;
  }
  tracker_.published(next_tag_++, std::move(outbox_ids), message.job_id);
}

void ConfirmedPublisher::handle_return() {
  // basic.return is followed by the returned message's header and body.
  amqp_message_t message;
  const amqp_rpc_reply_t reply = amqp_read_message(connection_.state(), AmqpConnection::kChannel, &message, 0);
  check_rpc_reply(reply, "reading a returned message");
  std::string message_id;
  if (message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) message_id = string_of(message.properties.message_id);
  amqp_destroy_message(&message);
  tracker_.returned(message_id, "unroutable (no queue bound)");
}

void ConfirmedPublisher::poll() {
  amqp_connection_state_t state = connection_.state();
  for (;;) {
    amqp_frame_t frame;
    timeval no_wait{0, 0};
    const int status = amqp_simple_wait_frame_noblock(state, &frame, &no_wait);
    if (status == AMQP_STATUS_TIMEOUT) return;  // nothing more has arrived
    if (status != AMQP_STATUS_OK) {
      AmqpError error = status_error(status, "waiting for publisher confirms");
      tracker_.fail_all(error.what());
      throw error;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;  // heartbeats are answered inside rabbitmq-c

    const amqp_method_t& method = frame.payload.method;
    switch (method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        const auto* ack = static_cast<const amqp_basic_ack_t*>(method.decoded);
        tracker_.ack(ack->delivery_tag, ack->multiple != 0);
        break;
      }
      case AMQP_BASIC_NACK_METHOD: {
        const auto* nack = static_cast<const amqp_basic_nack_t*>(method.decoded);
        tracker_.nack(nack->delivery_tag, nack->multiple != 0);
        break;
      }
      case AMQP_BASIC_RETURN_METHOD: {
        const auto* ret = static_cast<const amqp_basic_return_t*>(method.decoded);
        // The queue is gone (deleted under us): declare it again next time.
        declared_.erase(string_of(ret->routing_key));
        handle_return();
        break;
      }
      case AMQP_CONNECTION_BLOCKED_METHOD: {
        const auto* blocked = static_cast<const amqp_connection_blocked_t*>(method.decoded);
        blocked_ = true;
        blocked_reason_ = string_of(blocked->reason);
        break;
      }
      case AMQP_CONNECTION_UNBLOCKED_METHOD:
        blocked_ = false;
        blocked_reason_.clear();
        break;
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD: {
        AmqpError error = close_error(method, "waiting for publisher confirms");
        tracker_.fail_all(error.what());
        // Treat both as fatal for this connection: a confirm-mode channel
        // that the broker closed has lost its delivery-tag sequence.
        throw AmqpError(AmqpError::Scope::kConnection, error.reply_code(), error.what());
      }
      default:
        break;
    }
    amqp_maybe_release_buffers(state);
  }
}

long ConfirmedPublisher::ready_messages(const std::string& queue_name) {
  try {
    return static_cast<long>(connection_.inspect_queue(rabbitmq_queue_name(queue_name)).ready_messages);
  } catch (const AmqpError& e) {
    if (e.needs_reconnect() || e.reply_code() != 404) throw;
    tracker_.fail_all(std::string("channel reset after: ") + e.what());
    connection_.reopen_channel();
    confirm_select(connection_);
    next_tag_ = 1;
    declared_.erase(queue_name);
    return -1;
  }
}

}  // namespace taskq
