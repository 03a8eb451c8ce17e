// The worker library (taskq::Worker with in-process handlers) against the
// real PostgreSQL and RabbitMQ: handler routing, outcomes, cancellation,
// deliveries that outlive RabbitMQ's consumer_timeout, and a shutdown that
// is bounded even when a handler never returns.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include <httplib.h>
#include <unistd.h>

#include "callbacks/callback_signature.hpp"
#include "http_receiver.hpp"
#include "taskq/worker.hpp"
#include "test_env.hpp"
#include "worker_process.hpp"

using namespace std::chrono_literals;
using taskq::PgConnection;
using namespace taskq::test;

namespace {

class WorkerLibrary : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    conn_.emplace(db());
    queue_ = unique_name("lib");
  }

  void TearDown() override {
    // Lets go of a handler that ignores its token before waiting for run():
    // without a bounded shutdown, run() would wait for it forever.
    if (release_) release_();
    if (worker_) {
      worker_->stop();
      if (thread_.joinable()) thread_.join();
    }
    for (const auto& name : reset_settings_) set_setting(conn(), name, "");
  }

  PgConnection& conn() { return *conn_; }

  taskq::Worker& worker(taskq::WorkerOptions options = {}) {
    options.database = env("TASKQ_TEST_DATABASE_URL");
    options.broker = env("TASKQ_TEST_BROKER_URL");
    if (options.shutdown_timeout == 30s) options.shutdown_timeout = 5s;
    worker_ = std::make_unique<taskq::Worker>(options);
    return *worker_;
  }

  void run() {
    returned_ = false;
    thread_ = std::thread([this] {
      try {
        worker_->run();
      } catch (const std::exception& e) {
        ADD_FAILURE() << "Worker::run() threw: " << e.what();
      }
      returned_ = true;
    });
  }

  std::string enqueue(const std::string& payload = "{}", const std::string& extra = "") {
    return conn().value("SELECT taskq.enqueue($1, $2::jsonb" + extra + ")", {queue_.c_str(), payload.c_str()});
  }

  std::string field(const std::string& id, const std::string& expr) {
    return conn().value("SELECT " + expr + " FROM taskq.jobs WHERE id = $1", {id.c_str()});
  }

  bool wait_status(const std::string& id, const std::string& status, std::chrono::milliseconds timeout = 30s) {
    return wait_until([&] { return field(id, "status::text") == status; }, timeout, 50ms);
  }

  std::optional<PgConnection> conn_;
  std::string queue_;
  std::unique_ptr<taskq::Worker> worker_;
  std::thread thread_;
  std::atomic<bool> returned_{false};        // run() returned
  std::function<void()> release_;            // unblocks a stuck handler (TearDown calls it)
  std::vector<std::string> reset_settings_;  // RESET by TearDown
};

// A door a handler waits at, ignoring its cancellation token, until the
// test opens it. Shared with the handler, so the test can tell when the
// worker let go of the handler (use_count drops).
struct Door {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  bool waiting = false;
  std::atomic<bool> left{false};  // the handler went on past the door

  void wait() {
    std::unique_lock<std::mutex> lock(mu);
    waiting = true;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
    left = true;
  }
  void let_through() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
  bool someone_waiting() {
    std::lock_guard<std::mutex> lock(mu);
    return waiting;
  }
};

TEST_F(WorkerLibrary, TaskHandlersWinOverTheQueueHandler) {
  conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
  auto& w = worker();
  w.handle_queue(queue_, [](const taskq::Job&, const taskq::CancellationToken&) {
    return taskq::Outcome::completed({{"by", "queue"}});
  });
  w.handle_task("resize", [](const taskq::Job& job, const taskq::CancellationToken&) {
    return taskq::Outcome::completed({{"by", "task"}, {"n", job.payload["n"]}, {"attempt", job.attempt}});
  });
  run();
  const std::string plain = enqueue();
  const std::string resize = enqueue(R"({"n": 7})", ", task => 'resize'");
  const std::string other = enqueue("{}", ", task => 'unknown-task'");
  ASSERT_TRUE(wait_status(plain, "completed"));
  ASSERT_TRUE(wait_status(resize, "completed"));
  ASSERT_TRUE(wait_status(other, "completed"));
  EXPECT_EQ(field(plain, "result->>'by'"), "queue");
  EXPECT_EQ(field(resize, "result::text"), R"({"n": 7, "by": "task", "attempt": 1})");
  EXPECT_EQ(field(other, "result->>'by'"), "queue") << "a task without its own handler runs the queue's";
}

TEST_F(WorkerLibrary, HandlerExceptionsAreRetryableFailures) {
  conn().exec("SELECT taskq.create_queue($1, max_attempts => 3, backoff_base => '1 hour', backoff_max => '1 hour')",
              {queue_.c_str()});
  std::atomic<int> calls{0};
  auto& w = worker();
  w.handle_queue(queue_, [&](const taskq::Job& job, const taskq::CancellationToken&) -> taskq::Outcome {
    ++calls;
    if (job.attempt == 1) throw std::runtime_error("disk full");
    return taskq::Outcome::completed({{"attempt", job.attempt}});
  });
  run();
  const std::string id = enqueue();
  // Attempt 1 throws: a retryable failure, due after the queue's backoff ...
  ASSERT_TRUE(wait_until([&] { return field(id, "attempts") == "1" && field(id, "status::text") == "pending"; }, 30s));
  EXPECT_EQ(field(id, "last_error"), "handler threw: disk full");
  EXPECT_EQ(field(id, "run_at > now() + interval '30 minutes'"), "t");
  // ... which the test brings forward: attempt 2 completes.
  conn().exec("UPDATE taskq.jobs SET run_at = now() WHERE id = $1", {id.c_str()});
  conn().exec("UPDATE taskq.outbox SET due_at = now() WHERE job_id = $1", {id.c_str()});
  ASSERT_TRUE(wait_status(id, "completed"));
  EXPECT_EQ(field(id, "attempts"), "2");
  EXPECT_EQ(calls.load(), 2);
}

TEST_F(WorkerLibrary, RetryInSetsTheDelayAndFailedIsPermanent) {
  conn().exec("SELECT taskq.create_queue($1, max_attempts => 5)", {queue_.c_str()});
  auto& w = worker();
  w.handle_task("later", [](const taskq::Job&, const taskq::CancellationToken&) {
    return taskq::Outcome::retry("rate limited", std::chrono::seconds(600));
  });
  w.handle_queue(queue_, [](const taskq::Job&, const taskq::CancellationToken&) {
    return taskq::Outcome::failed("invalid payload");
  });
  run();
  const std::string later = enqueue("{}", ", task => 'later'");
  const std::string bad = enqueue();
  ASSERT_TRUE(
      wait_until([&] { return field(later, "attempts") == "1" && field(later, "status::text") == "pending"; }, 30s));
  EXPECT_EQ(field(later, "run_at BETWEEN now() + interval '9 minutes' AND now() + interval '10 minutes'"), "t");
  EXPECT_EQ(field(later, "last_error"), "rate limited");
  ASSERT_TRUE(wait_status(bad, "failed"));
  EXPECT_EQ(field(bad, "attempts"), "1") << "failed for good on the first attempt";
  EXPECT_EQ(field(bad, "last_error"), "invalid payload");
}

TEST_F(WorkerLibrary, CancelReachesARunningHandlerThroughItsToken) {
  conn().exec("SELECT taskq.create_queue($1, lease => '3 seconds')", {queue_.c_str()});
  std::atomic<bool> running{false};
  auto& w = worker();
  w.handle_queue(queue_, [&](const taskq::Job&, const taskq::CancellationToken& token) {
    running = true;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!token.cancelled() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
    return token.cancelled() ? taskq::Outcome::retry("stopped: " + token.reason())
                             : taskq::Outcome::completed({{"cancelled", false}});
  });
  run();
  const std::string id = enqueue();
  ASSERT_TRUE(wait_until([&] { return running.load(); }, 30s));
  ASSERT_TRUE(wait_status(id, "running"));
  conn().exec("SELECT taskq.cancel($1)", {id.c_str()});
  // The next heartbeat (a third of the 3 s lease) is refused.
  ASSERT_TRUE(wait_status(id, "cancelled", 15s));
  EXPECT_EQ(field(id, "last_error"), "stopped: cancel requested or lease lost");
}

TEST_F(WorkerLibrary, MetricsEndpointCountsJobsAndReportsHealth) {
  conn().exec("SELECT taskq.create_queue($1, max_attempts => 1)", {queue_.c_str()});
  taskq::WorkerOptions options;
  const int port = free_tcp_port();
  options.metrics_addr = "127.0.0.1:" + std::to_string(port);
  auto& w = worker(options);
  w.handle_queue(queue_, [](const taskq::Job& job, const taskq::CancellationToken&) {
    return job.payload.value("ok", true) ? taskq::Outcome::completed() : taskq::Outcome::retry("nope");
  });
  run();
  const std::string good = enqueue(R"({"ok": true})");
  const std::string bad = enqueue(R"({"ok": false})");
  ASSERT_TRUE(wait_status(good, "completed"));
  ASSERT_TRUE(wait_status(bad, "failed"));
  httplib::Client client("127.0.0.1", port);
  std::string body;
  const std::string q = "queue=\"" + queue_ + "\"";
  ASSERT_TRUE(wait_until(
      [&] {
        auto res = client.Get("/metrics");
        body = res ? res->body : "";
        return body.find("taskq_worker_jobs_finished_total{" + q + ",outcome=\"failed\"} 1") != std::string::npos;
      },
      10s));
  EXPECT_NE(body.find("taskq_worker_jobs_started_total{" + q + "} 2"), std::string::npos) << body;
  EXPECT_NE(body.find("taskq_worker_jobs_finished_total{" + q + ",outcome=\"completed\"} 1"), std::string::npos);
  EXPECT_NE(body.find("taskq_worker_handler_duration_seconds_count{" + q + "} 2"), std::string::npos);
  EXPECT_NE(body.find("taskq_worker_connected{service=\"broker\"} 1"), std::string::npos);
  auto health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200) << health->body;
}

// The prefetch counts of this queue's consumers, as RabbitMQ applies them.
std::vector<long> consumer_prefetches(const std::string& queue) {
  std::vector<long> out;
  const auto listing = rabbitmqctl_output("list_consumers --no-table-headers queue_name prefetch_count");
  if (!listing) return out;
  std::istringstream in(*listing);
  for (std::string name, prefetch; in >> name >> prefetch;)
    if (name == "taskq." + queue) out.push_back(std::stol(prefetch));
  return out;
}

// RabbitMQ applies a new basic.qos only to consumers created after it, so
// the worker must re-subscribe for its prefetch to follow the handlers
// (before it did, quick jobs kept the slow start-up limit and the worker sat
// idle between round trips).
TEST_F(WorkerLibrary, PrefetchFollowsTheHandlersSpeedOnTheBroker) {
  conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
  taskq::WorkerOptions options;
  options.concurrency = 2;  // prefetch 4 while handlers are slow, 32 while quick
  auto& w = worker(options);
  w.handle_queue(queue_, [](const taskq::Job& job, const taskq::CancellationToken&) {
    if (job.payload.value("slow", false)) std::this_thread::sleep_for(300ms);
    return taskq::Outcome::completed();
  });
  run();
  ASSERT_TRUE(wait_until([&] { return consumer_prefetches(queue_) == std::vector<long>{4}; }, 30s))
      << "a new worker starts with the slow prefetch";
  conn().exec(
      "SELECT count(*) FROM taskq.enqueue_many($1, (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 100)))",
      {queue_.c_str()});
  EXPECT_TRUE(wait_until([&] { return consumer_prefetches(queue_) == std::vector<long>{32}; }, 30s))
      << "quick handlers: one consumer with the deep prefetch, the old one cancelled";
  ASSERT_TRUE(wait_until(
      [&] {
        return conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status = 'completed'",
                            {queue_.c_str()}) == "100";
      },
      60s));
  // Slow jobs: the worker goes back to the shallow prefetch (at most one
  // change per 5 s, so this takes a while).
  conn().exec(
      "SELECT count(*) FROM taskq.enqueue_many($1, (SELECT jsonb_agg('{\"slow\": true}'::jsonb) FROM "
      "generate_series(1, 40)))",
      {queue_.c_str()});
  EXPECT_TRUE(wait_until([&] { return consumer_prefetches(queue_) == std::vector<long>{4}; }, 30s));
  EXPECT_TRUE(wait_until(
      [&] {
        return conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status = 'completed'",
                            {queue_.c_str()}) == "140";
      },
      60s));
}

TEST_F(WorkerLibrary, ABusyMetricsAddressFailsTheStart) {
  conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
  httplib::Server squatter;
  const int port = squatter.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  taskq::WorkerOptions options;
  options.metrics_addr = "127.0.0.1:" + std::to_string(port);
  options.database = env("TASKQ_TEST_DATABASE_URL");
  options.broker = env("TASKQ_TEST_BROKER_URL");
  taskq::Worker w(options);
  w.handle_queue(queue_,
                 [](const taskq::Job&, const taskq::CancellationToken&) { return taskq::Outcome::completed(); });
  try {
    w.run();
    FAIL() << "run() should have refused the busy address";
  } catch (const taskq::StartupError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
  }
}

TEST_F(WorkerLibrary, AFinishedJobsCallbackIsPostedOnceAndSigned) {
  conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
  HttpReceiver receiver;
  taskq::WorkerOptions options;
  options.callbacks.secret = "s3cret";
  auto& w = worker(options);
  w.handle_queue(queue_, [](const taskq::Job&, const taskq::CancellationToken&) {
    return taskq::Outcome::completed({{"done", true}});
  });
  run();
  const std::string url = receiver.url("/hook");
  const std::string id = enqueue("{}", ", callback_url => '" + url + "'");
  ASSERT_TRUE(wait_status(id, "completed"));
  ASSERT_TRUE(receiver.wait_for(1, 20s, "/hook"));
  std::this_thread::sleep_for(500ms);  // a second POST would arrive by now
  const auto got = receiver.requests_to("/hook");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header("X-Taskq-Event"), "job.completed");
  EXPECT_EQ(got[0].header("X-Taskq-Job-Id"), id);
  const auto body = nlohmann::json::parse(got[0].body);
  EXPECT_EQ(body["status"], "completed");
  EXPECT_EQ(body["result"], nlohmann::json({{"done", true}}));
  const std::string signature = got[0].header("X-Taskq-Signature");
  const std::string t = signature.substr(2, signature.find(',') - 2);
  EXPECT_EQ(signature, "t=" + t + ",v1=" + taskq::hmac_sha256_hex("s3cret", t + "." + got[0].body));
}

// A handler that ignores its token must not keep run() from returning: past
// the shutdown timeout and the grace period the worker gives up on it and
// leaves its job to its lease, and the Worker can be destroyed while the
// handler still runs. The job then runs again and is recorded once.
TEST_F(WorkerLibrary, AHandlerThatIgnoresItsTokenDoesNotHoldUpTheShutdown) {
  set_setting(conn(), "taskq.maintenance_interval", "1s");  // lease expiry is noticed within a second
  reset_settings_.push_back("taskq.maintenance_interval");
  conn().exec("SELECT taskq.create_queue($1, lease => '2 seconds', backoff_base => '100 ms')", {queue_.c_str()});
  auto door = std::make_shared<Door>();
  release_ = [door] { door->let_through(); };
  taskq::WorkerOptions options;
  options.shutdown_timeout = 1s;
  auto& stuck = worker(options);
  stuck.handle_queue(queue_, [door](const taskq::Job&, const taskq::CancellationToken&) {
    door->wait();
    return taskq::Outcome::completed({{"by", "the handler that ignored its token"}});
  });
  run();
  const std::string id = enqueue();
  ASSERT_TRUE(wait_until([&] { return door->someone_waiting(); }, 30s)) << "the job never started";
  ASSERT_TRUE(wait_status(id, "running"));

  const auto stopped = std::chrono::steady_clock::now();
  worker_->stop();
  // 1 s of shutdown timeout, 10 s of grace, then a margin.
  ASSERT_TRUE(wait_until([&] { return returned_.load(); }, 1s + 10s + 5s, 20ms))
      << "run() did not return while a handler ignored its token";
  EXPECT_GE(std::chrono::steady_clock::now() - stopped, 1s + 10s - 100ms) << "the grace period was cut short";
  thread_.join();
  // Heartbeats stopped with run(); the lease (2 s) has not run out yet.
  EXPECT_EQ(field(id, "status::text"), "running") << "left to its lease, not recorded";
  // Destroying the Worker while its handler is stuck must not crash (the
  // handler's thread keeps what it uses alive).
  worker_.reset();
  EXPECT_FALSE(door->left);

  // The lease runs out, the job is retried, and another worker runs it; the
  // redelivery of the abandoned delivery comes back stale.
  std::atomic<int> second_runs{0};
  auto& next = worker();
  next.handle_queue(queue_, [&](const taskq::Job& job, const taskq::CancellationToken&) {
    ++second_runs;
    return taskq::Outcome::completed({{"by", "the next worker"}, {"attempt", job.attempt}});
  });
  run();
  ASSERT_TRUE(wait_status(id, "completed"));
  EXPECT_EQ(field(id, "attempts"), "2");
  EXPECT_EQ(field(id, "result->>'by'"), "the next worker");

  // The stuck handler returns at last: its outcome is dropped (the attempt
  // it ran is over), and the worker's state goes with its thread.
  door->let_through();
  EXPECT_TRUE(wait_until([&] { return door.use_count() == 2; }, 10s))
      << "the abandoned handler was not released after it returned";  // the test's and release_'s
  EXPECT_TRUE(door->left);
  EXPECT_TRUE(wait_until([&] { return rabbit_queue_total_messages("taskq." + queue_) == 0; }, 10s))
      << "left in RabbitMQ";
  EXPECT_EQ(field(id, "status::text"), "completed");
  EXPECT_EQ(field(id, "result->>'by'"), "the next worker") << "recorded once";
  EXPECT_EQ(second_runs.load(), 1);
}

// A callback POST that hangs holds up run() at most for the callback timeout.
TEST_F(WorkerLibrary, AHangingCallbackPostHoldsUpTheShutdownOnlyForItsTimeout) {
  conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
  HttpReceiver receiver;
  std::atomic<bool> posted{false};  // (the receiver records a request once it has answered)
  receiver.respond([&](const ReceivedRequest&, std::size_t) {
    posted = true;
    Response r;
    r.delay = 120s;
    return r;
  });
  taskq::WorkerOptions options;
  options.callbacks.timeout = 2s;
  auto& w = worker(options);
  w.handle_queue(queue_,
                 [](const taskq::Job&, const taskq::CancellationToken&) { return taskq::Outcome::completed(); });
  run();
  const std::string id = enqueue("{}", ", callback_url => '" + receiver.url("/hang") + "'");
  ASSERT_TRUE(wait_status(id, "completed"));
  ASSERT_TRUE(wait_until([&] { return posted.load(); }, 20s)) << "no callback POST";
  const auto stopped = std::chrono::steady_clock::now();
  worker_->stop();
  EXPECT_TRUE(wait_until([&] { return returned_.load(); }, 2s + 5s, 20ms))
      << "run() waited for a hanging callback POST beyond its timeout";
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, 2s + 5s);
}

// RabbitMQ closes a channel whose delivery stays unacked longer than its
// consumer_timeout. A job that runs longer than early_ack_after has its
// delivery acked while it runs; without that the channel is closed under it.
// Both halves run, so the test shows the broker really enforces the timeout.
class ConsumerTimeout : public WorkerLibrary {
 protected:
  void SetUp() override {
    WorkerLibrary::SetUp();
    if (IsSkipped()) return;
    // Applies to channels opened from now on; checked every half second.
    // RabbitSettings puts the previous values back.
    ASSERT_TRUE(rabbit_.set("consumer_timeout", 2000));
    ASSERT_TRUE(rabbit_.set("channel_tick_interval", 500));
  }

  RabbitSettings rabbit_;

  // Runs one 5-second job; returns the worker's broker reconnect count.
  int run_long_job(std::chrono::seconds early_ack_after) {
    conn().exec("SELECT taskq.create_queue($1, lease => '10 seconds')", {queue_.c_str()});
    taskq::WorkerOptions options;
    options.early_ack_after = early_ack_after;
    auto& w = worker(options);
    std::atomic<int> runs{0};
    w.handle_queue(queue_, [&](const taskq::Job&, const taskq::CancellationToken&) {
      ++runs;
      std::this_thread::sleep_for(5s);
      return taskq::Outcome::completed();
    });
    run();
    const std::string id = enqueue();
    EXPECT_TRUE(wait_status(id, "completed", 40s));
    EXPECT_EQ(field(id, "attempts"), "1");
    // Let a redelivery (after a channel close) reach the worker and be dropped.
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(runs.load(), 1) << "the job ran exactly once";
    EXPECT_EQ(BrokerClient().count("taskq." + queue_), 0) << "nothing left in RabbitMQ";
    const std::string metrics = w.metrics_text();
    const std::string key = "taskq_worker_reconnects_total{service=\"broker\"} ";
    const auto at = metrics.find(key);
    return at == std::string::npos ? 0 : std::atoi(metrics.c_str() + at + key.size());
  }
};

TEST_F(ConsumerTimeout, ALongJobAckedEarlyKeepsItsChannel) { EXPECT_EQ(run_long_job(1s), 0); }

TEST_F(ConsumerTimeout, WithoutTheEarlyAckTheBrokerClosesTheChannelButTheJobStillRunsOnce) {
  EXPECT_GE(run_long_job(3600s), 1);
}

}  // namespace
