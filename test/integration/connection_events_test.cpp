// Worker::on_connection_event: an embedding program hears about its
// worker's connections. A broker restart gives the consumer's connection
// lost (with the reason), reconnecting (with the delay until the next try)
// and connected again; a database restart gives the same for the database
// connections; jobs run again afterwards. Real servers restarted through
// scripts/test-env.
#include <atomic>
#include <mutex>
#include <sstream>
#include <thread>

#include "taskq/worker.hpp"
#include "test_env.hpp"

using namespace std::chrono_literals;
using taskq::ConnectionEvent;
using namespace taskq::test;

namespace {

class WorkerConnectionEvents : public ::testing::Test {
 protected:
  using Service = ConnectionEvent::Service;
  using Kind = ConnectionEvent::Kind;

  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    conn_.emplace(db());
    queue_ = unique_name("events");
    conn_->exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
    taskq::WorkerOptions options;
    options.database = env("TASKQ_TEST_DATABASE_URL");
    options.broker = env("TASKQ_TEST_BROKER_URL");
    options.shutdown_timeout = 5s;
    worker_ = std::make_unique<taskq::Worker>(options);
    worker_->handle_queue(
        queue_, [](const taskq::Job&, const taskq::CancellationToken&) { return taskq::Outcome::completed(); });
    worker_->on_connection_event([this](const ConnectionEvent& e) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(e);
    });
    thread_ = std::thread([this] { worker_->run(); });
  }

  void TearDown() override {
    if (thread_.joinable()) {
      worker_->stop();
      thread_.join();
    }
  }

  // The events so far (a copy: listeners run on the worker's threads).
  std::vector<ConnectionEvent> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  std::string listing() {
    std::ostringstream out;
    for (const auto& e : events())
      out << to_string(e.service) << " " << e.connection << " " << to_string(e.kind) << " " << e.next_delay.count()
          << "ms " << e.reason << "\n";
    return out.str();
  }
  // Index of the first event after `from` that matches, or -1.
  long find(Service service, Kind kind, std::size_t from = 0, const std::string& connection = "") {
    const auto all = events();
    for (std::size_t i = from; i < all.size(); ++i)
      if (all[i].service == service && all[i].kind == kind && (connection.empty() || all[i].connection == connection))
        return static_cast<long>(i);
    return -1;
  }
  bool wait_for(Service service, Kind kind, std::size_t from = 0, const std::string& connection = "",
                std::chrono::milliseconds timeout = 90s) {
    return wait_until([&] { return find(service, kind, from, connection) >= 0; }, timeout, 50ms);
  }

  // A job enqueued now completes (every connection is in use again).
  bool a_job_runs() {
    taskq::PgConnection c = db();
    const std::string id = c.value("SELECT taskq.enqueue($1)", {queue_.c_str()});
    return wait_until(
        [&] { return c.value("SELECT status::text FROM taskq.jobs WHERE id = $1", {id.c_str()}) == "completed"; }, 90s,
        100ms);
  }

  std::optional<taskq::PgConnection> conn_;
  std::string queue_;
  std::unique_ptr<taskq::Worker> worker_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<ConnectionEvent> events_;
};

TEST_F(WorkerConnectionEvents, ABrokerRestartIsLostReconnectingAndConnectedAgain) {
  ASSERT_TRUE(wait_for(Service::kBroker, Kind::kConnected, 0, "consumer", 30s)) << listing();
  ASSERT_TRUE(a_job_runs());
  const std::size_t before = events().size();
  env_action("broker-restart");
  ASSERT_TRUE(wait_for(Service::kBroker, Kind::kConnected, before, "consumer")) << listing();
  const long lost = find(Service::kBroker, Kind::kLost, before, "consumer");
  const long retry = find(Service::kBroker, Kind::kReconnecting, before, "consumer");
  const long back = find(Service::kBroker, Kind::kConnected, before, "consumer");
  ASSERT_GE(lost, 0) << listing();
  ASSERT_GE(retry, 0) << listing();
  EXPECT_LT(lost, retry) << listing();
  EXPECT_LT(retry, back) << listing();
  const auto all = events();
  EXPECT_FALSE(all[lost].reason.empty()) << "lost says why";
  EXPECT_GT(all[retry].next_delay.count(), 0) << "reconnecting says when";
  EXPECT_LE(all[retry].next_delay.count(), 30'000);
  EXPECT_EQ(find(Service::kDatabase, Kind::kLost, before), -1) << "the database was not touched:\n" << listing();
  EXPECT_TRUE(a_job_runs());
}

TEST_F(WorkerConnectionEvents, ADatabaseRestartIsLostReconnectingAndConnectedAgain) {
  // A job first, so that the starter's and finisher's connections are open.
  ASSERT_TRUE(wait_for(Service::kBroker, Kind::kConnected, 0, "consumer", 30s)) << listing();
  ASSERT_TRUE(a_job_runs());
  ASSERT_TRUE(wait_for(Service::kDatabase, Kind::kConnected, 0, "callbacks", 30s)) << listing();
  // The heartbeater's connection opens with its first idle ping (5 s).
  ASSERT_TRUE(wait_for(Service::kDatabase, Kind::kConnected, 0, "heartbeater", 30s)) << listing();
  EXPECT_GE(find(Service::kDatabase, Kind::kConnected, 0, "starter"), 0) << listing();
  EXPECT_GE(find(Service::kDatabase, Kind::kConnected, 0, "finisher"), 0) << listing();
  const std::size_t before = events().size();
  env_action("pg-restart");
  conn_.reset();  // the old connection died with the server
  // The callback dispatcher listens on its connection: it notices at once.
  ASSERT_TRUE(wait_for(Service::kDatabase, Kind::kLost, before, "callbacks")) << listing();
  ASSERT_TRUE(wait_for(Service::kDatabase, Kind::kConnected, before, "callbacks")) << listing();
  const long lost = find(Service::kDatabase, Kind::kLost, before, "callbacks");
  const long retry = find(Service::kDatabase, Kind::kReconnecting, before, "callbacks");
  const long back = find(Service::kDatabase, Kind::kConnected, before, "callbacks");
  ASSERT_GE(retry, 0) << listing();
  EXPECT_LT(lost, retry);
  EXPECT_LT(retry, back);
  const auto all = events();
  EXPECT_FALSE(all[lost].reason.empty());
  EXPECT_GT(all[retry].next_delay.count(), 0);
  // The job connections find out when they are next used: the heartbeater
  // within its idle ping, the others with the next job.
  EXPECT_TRUE(wait_for(Service::kDatabase, Kind::kLost, before, "heartbeater", 30s)) << listing();
  EXPECT_TRUE(a_job_runs());
  EXPECT_TRUE(wait_for(Service::kDatabase, Kind::kConnected, before, "heartbeater", 30s)) << listing();
  for (const std::string connection : {"starter", "finisher"}) {
    const long gone = find(Service::kDatabase, Kind::kLost, before, connection);
    EXPECT_GE(gone, 0) << connection << ":\n" << listing();
    if (gone >= 0) {
      EXPECT_GE(find(Service::kDatabase, Kind::kConnected, static_cast<std::size_t>(gone), connection), 0)
          << connection << ":\n"
          << listing();
    }
  }
  EXPECT_EQ(find(Service::kBroker, Kind::kLost, before), -1) << "the broker was not touched:\n" << listing();
}

TEST_F(WorkerConnectionEvents, AThrowingListenerIsLoggedAndTheWorkerGoesOn) {
  // Registered in SetUp already: the worker runs. A second worker here
  // whose only listener throws still runs jobs.
  ASSERT_TRUE(wait_for(Service::kBroker, Kind::kConnected, 0, "consumer", 30s));
  const std::string queue = unique_name("events_throw");
  conn_->exec("SELECT taskq.create_queue($1)", {queue.c_str()});
  taskq::WorkerOptions options;
  options.database = env("TASKQ_TEST_DATABASE_URL");
  options.broker = env("TASKQ_TEST_BROKER_URL");
  options.shutdown_timeout = 5s;
  taskq::Worker other(options);
  other.handle_queue(queue,
                     [](const taskq::Job&, const taskq::CancellationToken&) { return taskq::Outcome::completed(); });
  std::atomic<int> calls{0};
  other.on_connection_event([&](const ConnectionEvent&) {
    ++calls;
    throw std::runtime_error("listener bug");
  });
  std::thread t([&] { other.run(); });
  const std::string id = conn_->value("SELECT taskq.enqueue($1)", {queue.c_str()});
  const bool done = wait_until(
      [&] { return conn_->value("SELECT status::text FROM taskq.jobs WHERE id = $1", {id.c_str()}) == "completed"; },
      30s, 50ms);
  other.stop();
  t.join();
  EXPECT_TRUE(done);
  EXPECT_GE(calls.load(), 1);
}

}  // namespace
