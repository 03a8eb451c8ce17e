// Worker::use: middleware run around every handler call in registration
// order (the first is the outermost), can skip the handler or change its
// outcome, see the handler's exceptions, and an exception leaving the chain
// is a retryable failure that names who threw it. Also for exec handlers.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "handlers/exec_handler.hpp"
#include "taskq/worker.hpp"
#include "test_env.hpp"
#include "worker_process.hpp"

using namespace std::chrono_literals;
using taskq::PgConnection;
using namespace taskq::test;

namespace {

class WorkerMiddleware : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    conn_.emplace(db());
    queue_ = unique_name("mw");
    // Retries an hour later: a retryable failure stays visible as pending.
    conn_->exec("SELECT taskq.create_queue($1, backoff_base => '1 hour', backoff_max => '1 hour')", {queue_.c_str()});
    taskq::WorkerOptions options;
    options.database = env("TASKQ_TEST_DATABASE_URL");
    options.broker = env("TASKQ_TEST_BROKER_URL");
    options.shutdown_timeout = 5s;
    worker_ = std::make_unique<taskq::Worker>(options);
  }

  void TearDown() override {
    if (thread_.joinable()) {
      worker_->stop();
      thread_.join();
    }
  }

  void run() {
    thread_ = std::thread([this] { worker_->run(); });
  }

  void note(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    trail_.push_back(what);
  }
  std::vector<std::string> trail() {
    std::lock_guard<std::mutex> lock(mu_);
    return trail_;
  }

  std::string enqueue(const std::string& payload = "{}") {
    return conn_->value("SELECT taskq.enqueue($1, $2::jsonb)", {queue_.c_str(), payload.c_str()});
  }
  std::string field(const std::string& id, const std::string& expr) {
    return conn_->value("SELECT " + expr + " FROM taskq.jobs WHERE id = $1", {id.c_str()});
  }
  // Waits until the job is finished, or pending again after a failed attempt.
  bool wait_attempt_over(const std::string& id) {
    return wait_until(
        [&] {
          const std::string s = field(id, "status::text");
          return s == "completed" || s == "failed" || (s == "pending" && field(id, "attempts") == "1");
        },
        30s, 50ms);
  }

  std::optional<PgConnection> conn_;
  std::string queue_;
  std::unique_ptr<taskq::Worker> worker_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> trail_;
};

TEST_F(WorkerMiddleware, RunInRegistrationOrderAroundTheHandler) {
  worker_->use([&](const taskq::Job& job, const taskq::CancellationToken&, const taskq::Next& next) {
    note("outer before " + job.payload.value("name", ""));
    taskq::Outcome outcome = next();
    note("outer after");
    return outcome;
  });
  worker_->use([&](const taskq::Job&, const taskq::CancellationToken& token, const taskq::Next& next) {
    note(std::string("inner before, cancelled=") + (token.cancelled() ? "yes" : "no"));
    taskq::Outcome outcome = next();
    note("inner after");
    outcome.result["seen_by"] = "inner";  // a middleware may change the outcome
    return outcome;
  });
  worker_->handle_queue(queue_, [&](const taskq::Job&, const taskq::CancellationToken&) {
    note("handler");
    return taskq::Outcome::completed({{"by", "handler"}});
  });
  run();
  const std::string id = enqueue(R"({"name": "a"})");
  ASSERT_TRUE(wait_attempt_over(id));
  EXPECT_EQ(field(id, "status::text"), "completed");
  EXPECT_EQ(field(id, "result::text"), R"({"by": "handler", "seen_by": "inner"})");
  EXPECT_EQ(trail(), (std::vector<std::string>{"outer before a", "inner before, cancelled=no", "handler", "inner after",
                                               "outer after"}));
}

TEST_F(WorkerMiddleware, CanSkipTheHandlerAndChangeItsOutcome) {
  // Refuses jobs without a tenant (the handler never runs), and turns the
  // handler's retry into a permanent failure for one kind of error.
  worker_->use([&](const taskq::Job& job, const taskq::CancellationToken&, const taskq::Next& next) {
    if (!job.payload.contains("tenant")) return taskq::Outcome::failed("no tenant");
    taskq::Outcome outcome = next();
    if (outcome.kind == taskq::Outcome::Kind::kRetry && outcome.error == "bad input")
      return taskq::Outcome::failed("bad input (permanent)");
    return outcome;
  });
  std::atomic<int> handler_calls{0};
  worker_->handle_queue(queue_, [&](const taskq::Job&, const taskq::CancellationToken&) {
    ++handler_calls;
    return taskq::Outcome::retry("bad input");
  });
  run();
  const std::string refused = enqueue();
  const std::string changed = enqueue(R"({"tenant": "acme"})");
  ASSERT_TRUE(wait_attempt_over(refused));
  ASSERT_TRUE(wait_attempt_over(changed));
  EXPECT_EQ(field(refused, "status::text || ': ' || last_error"), "failed: no tenant");
  EXPECT_EQ(field(changed, "status::text || ': ' || last_error"), "failed: bad input (permanent)");
  EXPECT_EQ(handler_calls.load(), 1) << "the refused job's handler never ran";
}

TEST_F(WorkerMiddleware, AThrowIsARetryableFailureThatNamesWhoThrew) {
  worker_->use([&](const taskq::Job& job, const taskq::CancellationToken&, const taskq::Next& next) {
    try {
      return next();
    } catch (const std::exception& e) {
      note(std::string("saw: ") + e.what());
      throw;  // passed on unchanged: still the handler's
    }
  });
  worker_->use([&](const taskq::Job& job, const taskq::CancellationToken&, const taskq::Next& next) {
    if (job.payload.value("who", "") == "middleware") throw std::runtime_error("auth service down");
    return next();
  });
  std::atomic<int> handler_calls{0};
  worker_->handle_queue(queue_, [&](const taskq::Job& job, const taskq::CancellationToken&) -> taskq::Outcome {
    ++handler_calls;
    if (job.payload.value("who", "") == "handler") throw std::runtime_error("disk full");
    return taskq::Outcome::completed();
  });
  run();
  const std::string by_handler = enqueue(R"({"who": "handler"})");
  const std::string by_middleware = enqueue(R"({"who": "middleware"})");
  ASSERT_TRUE(wait_attempt_over(by_handler));
  ASSERT_TRUE(wait_attempt_over(by_middleware));
  EXPECT_EQ(field(by_handler, "status::text || ': ' || last_error"), "pending: handler threw: disk full");
  EXPECT_EQ(field(by_middleware, "status::text || ': ' || last_error"), "pending: middleware threw: auth service down");
  EXPECT_EQ(field(by_middleware, "run_at > now() + interval '30 minutes'"), "t") << "retried with the queue's backoff";
  EXPECT_EQ(handler_calls.load(), 1) << "the middleware threw before the handler";
  const auto seen = trail();
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "saw: disk full"), 1);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "saw: auth service down"), 1)
      << "an outer middleware sees what an inner one throws";
}

TEST_F(WorkerMiddleware, WrapExecHandlersToo) {
  ScratchDir dir;
  const std::string script = dir.script("h.sh", "echo '{\"by\": \"exec\"}'\n");
  worker_->use([&](const taskq::Job& job, const taskq::CancellationToken&, const taskq::Next& next) {
    taskq::Outcome outcome = next();
    note("exec outcome " + outcome.result.dump());
    return outcome;
  });
  worker_->handle_queue(queue_, taskq::make_exec_handler(script, 30s));
  run();
  const std::string id = enqueue();
  ASSERT_TRUE(wait_attempt_over(id));
  EXPECT_EQ(field(id, "status::text"), "completed");
  EXPECT_EQ(trail(), std::vector<std::string>{R"(exec outcome {"by":"exec"})"});
}

}  // namespace
