// AmqpConnection: connection set-up with timeouts everywhere, channel
// management and queue declaration.
#include "amqp_connection.hpp"

#include "amqp_bytes.hpp"

#include <amqp_tcp_socket.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <stdexcept>

namespace taskq {
namespace {

timeval to_timeval(int ms) {
  timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

}  // namespace

AmqpConnection::AmqpConnection(const BrokerUrl& url, const ConnectOptions& options) {
  state_ = amqp_new_connection();
  if (state_ == nullptr) throw AmqpError(AmqpError::Scope::kLibrary, 0, "out of memory creating an AMQP connection");
  try {
    amqp_socket_t* socket = amqp_tcp_socket_new(state_);
    if (socket == nullptr) throw AmqpError(AmqpError::Scope::kLibrary, 0, "could not create a TCP socket");
    timeval connect_timeout = to_timeval(options.connect_timeout_ms);
    const int status = amqp_socket_open_noblock(socket, url.host.c_str(), url.port, &connect_timeout);
    if (status != AMQP_STATUS_OK) throw status_error(status, "connecting to " + url.redacted());

    // rabbitmq-c's sockets block; a send into a full buffer (broker gone
    // silent) must fail instead of hanging the process.
    timeval send_timeout = to_timeval(options.send_timeout_ms);
    setsockopt(amqp_get_sockfd(state_), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
    timeval handshake = to_timeval(options.connect_timeout_ms);
    amqp_set_handshake_timeout(state_, &handshake);
    timeval rpc = to_timeval(options.rpc_timeout_ms);
    amqp_set_rpc_timeout(state_, &rpc);

    // RabbitMQ sends connection.blocked (resource alarms) and basic.cancel
    // (a consumed queue was deleted) only to clients that announce these
    // capabilities; rabbitmq-c announces neither by default. Without them a
    // publisher cannot tell an alarm from a slow broker, and a consumer whose
    // queue is deleted silently receives nothing ever again.
    amqp_table_entry_t capabilities[2];
    capabilities[0].key = amqp_cstring_bytes("connection.blocked");
    capabilities[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[0].value.value.boolean = 1;
    capabilities[1].key = amqp_cstring_bytes("consumer_cancel_notify");
    capabilities[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[1].value.value.boolean = 1;
    amqp_table_entry_t props[2];
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table = amqp_table_t{2, capabilities};
    props[1].key = amqp_cstring_bytes("connection_name");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = bytes_of(options.connection_name);
    amqp_table_t client_properties{options.connection_name.empty() ? 1 : 2, props};
    check_rpc_reply(
        amqp_login_with_properties(state_, url.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE, options.heartbeat_s,
                                   &client_properties, AMQP_SASL_METHOD_PLAIN, url.user.c_str(), url.password.c_str()),
        "logging in to " + url.redacted());
    open_ = true;
    open_channel();
  } catch (...) {
    amqp_destroy_connection(state_);
    state_ = nullptr;
    throw;
  }
}

AmqpConnection::~AmqpConnection() {
  close();
  if (state_ != nullptr) amqp_destroy_connection(state_);
}

void AmqpConnection::close() noexcept {
  if (!open_ || state_ == nullptr) return;
  open_ = false;
  // Best effort: a dead broker just times out (rpc timeout) and we move on.
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
}

void AmqpConnection::close_quickly() noexcept {
  if (state_ == nullptr) return;
  timeval short_timeout = to_timeval(500);
  amqp_set_rpc_timeout(state_, &short_timeout);
  close();
}

void AmqpConnection::open_channel() {
  amqp_channel_open(state_, kChannel);
  check_rpc_reply(amqp_get_rpc_reply(state_), "opening a channel");
}

void AmqpConnection::reopen_channel() {
  // The broker sent channel.close; answer with close-ok, then open again.
  amqp_channel_close_ok_t close_ok{};
  amqp_send_method(state_, kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
  open_channel();
}

void AmqpConnection::declare_exchange(const std::string& exchange) {
  amqp_exchange_declare(state_, kChannel, bytes_of(exchange), amqp_cstring_bytes("direct"), /*passive=*/0,
                        /*durable=*/1, /*auto_delete=*/0, /*internal=*/0, amqp_empty_table);
  check_rpc_reply(amqp_get_rpc_reply(state_), "declaring exchange " + exchange);
}

QueueInfo AmqpConnection::declare_queue(const std::string& queue, const std::string& queue_type) {
  amqp_table_entry_t args[2];
  int n = 0;
  args[n].key = amqp_cstring_bytes("x-queue-type");
  args[n].value.kind = AMQP_FIELD_KIND_UTF8;
  args[n].value.value.bytes = bytes_of(queue_type);
  ++n;
  if (queue_type == "classic") {
    args[n].key = amqp_cstring_bytes("x-max-priority");
    args[n].value.kind = AMQP_FIELD_KIND_U8;
    args[n].value.value.u8 = 9;
    ++n;
  }
  amqp_table_t table{n, args};
  auto* ok = amqp_queue_declare(state_, kChannel, bytes_of(queue), /*passive=*/0, /*durable=*/1, /*exclusive=*/0,
                                /*auto_delete=*/0, table);
  check_rpc_reply(amqp_get_rpc_reply(state_), "declaring queue " + queue);
  return QueueInfo{ok->message_count, ok->consumer_count};
}

QueueInfo AmqpConnection::inspect_queue(const std::string& queue) {
  auto* ok = amqp_queue_declare(state_, kChannel, bytes_of(queue), /*passive=*/1, 0, 0, 0, amqp_empty_table);
  check_rpc_reply(amqp_get_rpc_reply(state_), "inspecting queue " + queue);
  return QueueInfo{ok->message_count, ok->consumer_count};
}

void AmqpConnection::bind_queue(const std::string& queue, const std::string& exchange, const std::string& routing_key) {
  amqp_queue_bind(state_, kChannel, bytes_of(queue), bytes_of(exchange), bytes_of(routing_key), amqp_empty_table);
  check_rpc_reply(amqp_get_rpc_reply(state_), "binding queue " + queue);
}

std::string rabbitmq_queue_name(const std::string& queue_name) { return "taskq." + queue_name; }

void declare_taskq_queue(AmqpConnection& connection, const std::string& exchange, const std::string& queue_name,
                         const std::string& queue_type) {
  const std::string queue = rabbitmq_queue_name(queue_name);
  connection.declare_exchange(exchange);
  connection.declare_queue(queue, queue_type);
  connection.bind_queue(queue, exchange, queue_name);
}

}  // namespace taskq
