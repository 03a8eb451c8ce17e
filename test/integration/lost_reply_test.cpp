// taskq-worker when PostgreSQL's answer to a call is lost: the call
// committed, the connection broke before the reply arrived, and the worker
// cannot know which. It calls again, and the repeat must get the same answer:
// a start whose reply was lost still runs its job once on the same attempt
// (before, the repeat found the job running, the delivery was dropped as
// stale, and the job sat running until its lease ran out), and a complete
// whose reply was lost is recorded once, as completed.
#include <httplib.h>

#include <regex>

#include "reply_dropping_proxy.hpp"
#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using namespace taskq::test;

namespace {

class LostReply : public WorkerFixture {
 protected:
  void SetUp() override {
    WorkerFixture::SetUp();
    if (IsSkipped()) return;
    const std::string conninfo = env("TASKQ_TEST_DATABASE_URL");
    std::smatch host, port;
    ASSERT_TRUE(std::regex_search(conninfo, host, std::regex("host=(\\S+)")));
    ASSERT_TRUE(std::regex_search(conninfo, port, std::regex("port=(\\d+)")));
    proxy_.emplace(host[1].str(), std::stoi(port[1].str()));
    proxied_conninfo_ = std::regex_replace(conninfo, std::regex("port=\\d+"), "port=" + std::to_string(proxy_->port()));
    metrics_port_ = free_tcp_port();
  }

  // Starts a worker serving a new queue with a handler that records its
  // runs; every database connection of the worker goes through the proxy,
  // its metrics are on metrics_port_. Returns the queue once it consumes.
  std::string serve_new_queue(const std::string& prefix) {
    // A lease far longer than the test waits: only a repeat that gets its
    // job back can finish it in time, not a lease rescue.
    const std::string queue = create_queue(prefix, "lease => '5 minutes'");
    const std::string handler = scratch().script("ok.sh", std::string(kRecordRun) + "\necho '\"ok\"'");
    std::vector<std::string> args =
        worker_args({{queue, "exec:" + handler}}, {"--metrics-addr", "127.0.0.1:" + std::to_string(metrics_port_)});
    for (std::size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--database") args[i + 1] = proxied_conninfo_;
    worker_.emplace(args);
    EXPECT_TRUE(wait_consumer(queue, 60s)) << "the worker did not start consuming";
    return queue;
  }

  // Waits until the worker's /metrics has `sample` (a whole line's start);
  // returns the last page it read.
  std::string wait_metric(const std::string& sample, std::chrono::milliseconds timeout) {
    httplib::Client client("127.0.0.1", metrics_port_);
    std::string body;
    wait_until(
        [&] {
          auto res = client.Get("/metrics");
          body = res ? res->body : "";
          return body.find("\n" + sample) != std::string::npos;
        },
        timeout, 100ms);
    return body;
  }

  std::optional<ReplyDroppingProxy> proxy_;
  std::string proxied_conninfo_;
  int metrics_port_ = 0;
  std::optional<WorkerProcess> worker_;  // declared after proxy_: stopped before it
};

// What the worker's statements contain (db/job_store.cpp), and nothing
// else it sends does (its start-up check names taskq._start_batch too, but
// not with an argument list).
constexpr const char* kStartCall = "taskq._start_batch($1";
constexpr const char* kCompleteCall = "taskq._complete_batch($1";

TEST_F(LostReply, AStartWhoseReplyIsLostStillRunsItsJobOnceOnTheSameAttempt) {
  const std::string queue = serve_new_queue("lostart");
  WorkerProcess& worker = *worker_;

  proxy_->drop_reply_to(kStartCall);
  const std::string id = enqueue(queue);
  ASSERT_TRUE(proxy_->wait_dropped(1, 60s)) << "the start's reply was never lost";
  EXPECT_TRUE(wait_job_status(id, "completed", 60s)) << "status " << job(id).status;
  EXPECT_EQ(job(id).attempts, 1);
  EXPECT_EQ(runs()[id], std::vector<int>({1}));

  const std::string q = "queue=\"" + queue + "\"";
  const std::string metrics = wait_metric("taskq_worker_jobs_finished_total{" + q + ",outcome=\"completed\"} 1", 10s);
  EXPECT_NE(metrics.find("taskq_worker_jobs_started_total{" + q + "} 1"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("taskq_worker_deliveries_dropped_total{" + q), std::string::npos) << metrics;
  EXPECT_EQ(worker.log().find("stale delivery dropped"), std::string::npos) << worker.log();
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
}

TEST_F(LostReply, ACompleteWhoseReplyIsLostIsRecordedOnceAsCompleted) {
  const std::string queue = serve_new_queue("lostcomplete");
  WorkerProcess& worker = *worker_;

  proxy_->drop_reply_to(kCompleteCall);
  // Nobody listens there: the callback row is what counts, not its delivery.
  const std::string id = enqueue(queue, "{}", ", callback_url => 'http://127.0.0.1:9/done'");
  ASSERT_TRUE(proxy_->wait_dropped(1, 60s)) << "the complete's reply was never lost";
  EXPECT_TRUE(wait_job_status(id, "completed", 60s)) << "status " << job(id).status;

  const std::string q = "queue=\"" + queue + "\"";
  const std::string metrics = wait_metric("taskq_worker_jobs_finished_total{" + q + ",outcome=", 30s);
  EXPECT_NE(metrics.find("taskq_worker_jobs_finished_total{" + q + ",outcome=\"completed\"} 1"), std::string::npos)
      << "the repeat of the complete must count as completed, not stale:\n"
      << metrics;
  EXPECT_EQ(metrics.find("taskq_worker_jobs_finished_total{" + q + ",outcome=\"stale\"}"), std::string::npos)
      << metrics;
  EXPECT_EQ(worker.log().find("outcome was stale"), std::string::npos) << worker.log();
  EXPECT_EQ(job(id).attempts, 1);
  EXPECT_EQ(runs()[id], std::vector<int>({1}));
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.callbacks WHERE job_id = $1", {id.c_str()}), "1");
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
}

}  // namespace
