// One place that turns every rabbitmq-c failure into a classified error, so
// callers decide by scope: a channel error means "reopen the channel", a
// connection or library error means "reconnect".
#pragma once

#include "no_postgres.hpp"

#include <amqp.h>

#include <stdexcept>
#include <string>

namespace taskq {

class AmqpError : public std::runtime_error {
 public:
  enum class Scope {
    kChannel,     // the broker closed the channel (e.g. 404 NOT_FOUND, 406 PRECONDITION_FAILED)
    kConnection,  // the broker closed the connection, or the socket failed
    kLibrary,     // a client-side failure (timeout, bad frame, out of memory)
  };

  AmqpError(Scope scope, int reply_code, const std::string& message)
      : std::runtime_error(message), scope_(scope), reply_code_(reply_code) {}

  Scope scope() const { return scope_; }
  // AMQP reply code (e.g. 404) for channel/connection closes, else the
  // negative rabbitmq-c status code.
  int reply_code() const { return reply_code_; }
  bool needs_reconnect() const { return scope_ != Scope::kChannel; }

 private:
  Scope scope_;
  int reply_code_;
};

// Decodes an RPC reply; `what` names the operation for the message.
// Returns normally for AMQP_RESPONSE_NORMAL, throws AmqpError otherwise.
void check_rpc_reply(const amqp_rpc_reply_t& reply, const std::string& what);

// Builds the error for a negative rabbitmq-c status code.
AmqpError status_error(int status, const std::string& what);

// Builds the error for a channel.close / connection.close method received
// outside an RPC (e.g. while waiting for publisher confirms).
AmqpError close_error(const amqp_method_t& method, const std::string& what);

}  // namespace taskq
