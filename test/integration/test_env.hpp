// Helpers for integration tests: they run against the PostgreSQL and
// RabbitMQ started by scripts/test-env (TASKQ_TEST_* environment) and skip
// with a clear message anywhere else.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/amqp_connection.hpp"
#include "db/pg_connection.hpp"

namespace taskq::test {

std::string env(const char* name);

#define TASKQ_REQUIRE_TEST_ENV()                                                \
  do {                                                                          \
    if (::taskq::test::env("TASKQ_TEST_DATABASE_URL").empty())                  \
      GTEST_SKIP() << "needs the servers of scripts/test-env (run: make test)"; \
  } while (0)

// Polls pred every `every` until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = std::chrono::milliseconds(20));

// Runs a shell command; returns its exit status.
int run(const std::string& command);
// scripts/test-env ACTION on this environment (broker-stop, pg-restart, ...).
void env_action(const std::string& action);
// rabbitmqctl for the test node.
int rabbitmqctl(const std::string& args);

// A TCP port on 127.0.0.1 that nobody listens on right now (another process
// could take it before the caller does: fine for tests).
int free_tcp_port();

// A name no other test (or earlier run) uses.
std::string unique_name(const std::string& prefix);

// A connection to the test database, with the extension created.
PgConnection db();
// ALTER SYSTEM SET name = value (or RESET with an empty value) and reload.
void set_setting(PgConnection& conn, const std::string& name, const std::string& value);

struct Delivery {
  std::string body;
  std::string message_id, type, content_type;
  int priority = -1, delivery_mode = -1;
  std::uint64_t timestamp = 0;
  std::map<std::string, std::string> headers;  // strings as is, integers as decimal text
  bool redelivered = false;
};

// A plain AMQP client for inspecting what the publisher sent.
class BrokerClient {
 public:
  BrokerClient();
  // basic.get with auto-ack; nullopt when the queue is empty or missing.
  std::optional<Delivery> get(const std::string& queue);
  // Ready messages; -1 if the queue does not exist.
  long count(const std::string& queue);
  void delete_queue(const std::string& queue);

 private:
  AmqpConnection connection_;
};

// Takes messages from `queue` until `expected` have arrived or `timeout`
// passed; returns all it got.
std::vector<Delivery> collect(BrokerClient& broker, const std::string& queue, std::size_t expected,
                              std::chrono::milliseconds timeout);

}  // namespace taskq::test
