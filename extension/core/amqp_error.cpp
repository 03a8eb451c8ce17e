// Decoding of rabbitmq-c replies into AmqpError (see amqp_error.hpp).
#include "amqp_error.hpp"

#include "amqp_bytes.hpp"

namespace taskq {

AmqpError status_error(int status, const std::string& what) {
  const AmqpError::Scope scope = (status == AMQP_STATUS_CONNECTION_CLOSED || status == AMQP_STATUS_SOCKET_ERROR ||
                                  status == AMQP_STATUS_HEARTBEAT_TIMEOUT || status == AMQP_STATUS_TCP_ERROR ||
                                  status == AMQP_STATUS_SOCKET_CLOSED || status == AMQP_STATUS_TIMEOUT)
                                     ? AmqpError::Scope::kConnection
                                     : AmqpError::Scope::kLibrary;
  return AmqpError(scope, status, what + ": " + amqp_error_string2(status));
}

AmqpError close_error(const amqp_method_t& method, const std::string& what) {
  if (method.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_channel_close_t*>(method.decoded);
    return AmqpError(AmqpError::Scope::kChannel, close->reply_code,
                     what + ": channel closed by the broker: " + std::to_string(close->reply_code) + " " +
                         string_of(close->reply_text));
  }
  if (method.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_connection_close_t*>(method.decoded);
    return AmqpError(AmqpError::Scope::kConnection, close->reply_code,
                     what + ": connection closed by the broker: " + std::to_string(close->reply_code) + " " +
                         string_of(close->reply_text));
  }
  return AmqpError(AmqpError::Scope::kConnection, 0, what + ": unexpected method " + amqp_method_name(method.id));
}

void check_rpc_reply(const amqp_rpc_reply_t& reply, const std::string& what) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return;
    case AMQP_RESPONSE_NONE:
      throw AmqpError(AmqpError::Scope::kLibrary, 0, what + ": missing RPC reply");
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      throw status_error(reply.library_error, what);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      throw close_error(reply.reply, what);
  }
  throw AmqpError(AmqpError::Scope::kLibrary, 0, what + ": unknown reply type");
}

}  // namespace taskq
