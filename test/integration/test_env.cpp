// Integration test helpers; see test_env.hpp.
#include "test_env.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "core/amqp_bytes.hpp"

namespace taskq::test {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout, std::chrono::milliseconds every) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

int run(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void env_action(const std::string& action) {
  const std::string cmd = "'" + env("TASKQ_TEST_ENV_SCRIPT") + "' " + action + " '" + env("TASKQ_TEST_STATE") + "'";
  ASSERT_EQ(run(cmd), 0) << cmd;
}

int rabbitmqctl(const std::string& args) {
  return run("'" + env("TASKQ_TEST_RABBITMQCTL") + "' -q " + args + " >/dev/null");
}

int free_tcp_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

PgConnection db() {
  PgConnection conn(env("TASKQ_TEST_DATABASE_URL"));
  conn.exec("SET client_min_messages = warning");
  conn.exec("CREATE EXTENSION IF NOT EXISTS taskq");
  return conn;
}

void set_setting(PgConnection& conn, const std::string& name, const std::string& value) {
  if (value.empty()) {
    conn.exec("ALTER SYSTEM RESET " + name);
  } else {
    std::string quoted = "'";
    for (char c : value) quoted += (c == '\'' ? std::string("''") : std::string(1, c));
    conn.exec("ALTER SYSTEM SET " + name + " = " + quoted + "'");
  }
  conn.exec("SELECT pg_reload_conf()");
}

namespace {

AmqpConnection connect_broker() {
  ConnectOptions options;
  options.connection_name = "taskq integration test";
  return AmqpConnection(BrokerUrl::parse(env("TASKQ_TEST_BROKER_URL")), options);
}

}  // namespace

BrokerClient::BrokerClient() : connection_(connect_broker()) {}

std::optional<Delivery> BrokerClient::get(const std::string& queue) {
  amqp_connection_state_t state = connection_.state();
  amqp_rpc_reply_t reply = amqp_basic_get(state, AmqpConnection::kChannel, amqp_cstring_bytes(queue.c_str()), 1);
  try {
    check_rpc_reply(reply, "basic.get " + queue);
  } catch (const AmqpError& e) {
    if (e.needs_reconnect()) throw;
    connection_.reopen_channel();  // 404: no such queue
    return std::nullopt;
  }
  if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
  const auto* ok = static_cast<const amqp_basic_get_ok_t*>(reply.reply.decoded);
  Delivery d;
  d.redelivered = ok->redelivered != 0;
  amqp_message_t message;
  check_rpc_reply(amqp_read_message(state, AmqpConnection::kChannel, &message, 0), "reading a message");
  const auto& p = message.properties;
  d.body = string_of(message.body);
  if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) d.message_id = string_of(p.message_id);
  if (p._flags & AMQP_BASIC_TYPE_FLAG) d.type = string_of(p.type);
  if (p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) d.content_type = string_of(p.content_type);
  if (p._flags & AMQP_BASIC_PRIORITY_FLAG) d.priority = p.priority;
  if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) d.delivery_mode = p.delivery_mode;
  if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) d.timestamp = p.timestamp;
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < p.headers.num_entries; ++i) {
      const auto& e = p.headers.entries[i];
      std::string value;
      switch (e.value.kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
          value = string_of(e.value.value.bytes);
          break;
        case AMQP_FIELD_KIND_I32:
          value = std::to_string(e.value.value.i32);
          break;
        case AMQP_FIELD_KIND_I64:
          value = std::to_string(e.value.value.i64);
          break;
        default:
          value = "?";
      }
      d.headers[string_of(e.key)] = value;
    }
  }
  amqp_destroy_message(&message);
  return d;
}

long BrokerClient::count(const std::string& queue) {
  try {
    return static_cast<long>(connection_.inspect_queue(queue).ready_messages);
  } catch (const AmqpError& e) {
    if (e.needs_reconnect()) throw;
    connection_.reopen_channel();
    return -1;
  }
}

void BrokerClient::delete_queue(const std::string& queue) {
  amqp_queue_delete(connection_.state(), AmqpConnection::kChannel, amqp_cstring_bytes(queue.c_str()), 0, 0);
  check_rpc_reply(amqp_get_rpc_reply(connection_.state()), "deleting queue " + queue);
}

std::vector<Delivery> collect(BrokerClient& broker, const std::string& queue, std::size_t expected,
                              std::chrono::milliseconds timeout) {
  std::vector<Delivery> got;
  wait_until(
      [&] {
        while (auto d = broker.get(queue)) got.push_back(std::move(*d));
        return got.size() >= expected;
      },
      timeout);
  return got;
}

}  // namespace taskq::test
