// Flow control with real taskq-worker processes: a queue's
// concurrency_limit holds per concurrency_key across workers (sampled in
// SQL every 10 ms for the whole run) and a held job starts within a second
// of a slot freeing; rate_limit spreads starts across workers; a worker
// killed while holding a slot gives it back when its lease expires; broker
// and database restarts lose no held job; a delivery held back by a limit
// is counted in the worker's metrics and acknowledged, and its job runs
// later, once.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using namespace taskq::test;

namespace {

using Clock = std::chrono::steady_clock;

// Samples, every 10 ms on a connection of its own, the largest number of
// running jobs of one concurrency key of `queue`, until stopped.
class RunningPerKeySampler {
 public:
  explicit RunningPerKeySampler(std::string queue) : queue_(std::move(queue)) {
    thread_ = std::thread([this] { run(); });
  }
  ~RunningPerKeySampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long max_running() const { return max_; }
  long samples() const { return samples_; }
  std::chrono::milliseconds longest_gap() const { return longest_gap_; }
  long failed_samples() const { return failed_; }

 private:
  void run() {
    std::optional<taskq::PgConnection> c;
    auto last = Clock::now();
    while (!stop_) {
      try {
        if (!c) c.emplace(db());
        const long n =
            std::stol(c->value("SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM taskq.jobs"
                               " WHERE queue_name = $1 AND status = 'running' GROUP BY concurrency_key) per_key",
                               {queue_.c_str()}));
        max_ = std::max(max_.load(), n);
        ++samples_;
        const auto now = Clock::now();
        longest_gap_ = std::max(longest_gap_.load(), std::chrono::duration_cast<std::chrono::milliseconds>(now - last));
        last = now;
      } catch (const std::exception&) {
        ++failed_;  // a database restart: connect again
        c.reset();
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  std::string queue_;
  std::atomic<bool> stop_{false};
  std::atomic<long> max_{0};
  std::atomic<long> samples_{0};
  std::atomic<long> failed_{0};
  std::atomic<std::chrono::milliseconds> longest_gap_{0ms};
  std::thread thread_;
};

class FlowControl : public WorkerFixture {
 protected:
  void TearDown() override {
    // Later tests of this run get the cheap paths of a database without
    // limits again.
    if (conn_) {
      for (const auto& q : queues_) {
        try {
          conn().exec("SELECT taskq.drop_queue($1, force => true)", {q.c_str()});
        } catch (const std::exception&) {
        }
      }
    }
    WorkerFixture::TearDown();
  }

  std::string limited_queue(const std::string& prefix, const std::string& options) {
    queues_.push_back(create_queue(prefix, options));
    return queues_.back();
  }

  // Jobs of `queue` over `keys` keys, n per key, in the order k0, k1, ...,
  // k0, k1, ...; ids in enqueue order.
  std::vector<std::string> enqueue_keyed(const std::string& queue, int keys, int per_key) {
    std::vector<std::string> ids;
    for (int i = 0; i < keys * per_key; ++i) {
      const std::string key = "k" + std::to_string(i % keys);
      const std::string priority = std::to_string(i % 3);
      ids.push_back(conn().value(
          "SELECT taskq.enqueue($1, jsonb_build_object('n', $2::int), concurrency_key => $3, priority => $4::int)",
          {queue.c_str(), std::to_string(i).c_str(), key.c_str(), priority.c_str()}));
    }
    return ids;
  }

  std::vector<std::unique_ptr<WorkerProcess>> start_workers(int n, const std::string& queue, const std::string& handler,
                                                            const std::vector<std::string>& extra = {}) {
    std::vector<std::unique_ptr<WorkerProcess>> workers;
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> flags = extra;
      flags.push_back("--name");
      flags.push_back("flow-" + std::to_string(i));
      workers.push_back(std::make_unique<WorkerProcess>(worker_args({{queue, "exec:" + handler}}, flags)));
    }
    return workers;
  }

  static void stop_all(std::vector<std::unique_ptr<WorkerProcess>>& workers) {
    for (auto& w : workers) w->terminate();
    for (auto& w : workers) EXPECT_EQ(w->wait_exit(60s), 0);
  }

  // The longest time a key with waiting jobs had a free slot: from each
  // completion to the next start of its key (if a job of the key was still
  // waiting then), in PostgreSQL's clock.
  double longest_free_slot_seconds(const std::string& queue) {
    return std::stod(conn().value(
        "SELECT coalesce(extract(epoch FROM max(next_start - done.finished_at)), 0) FROM ("
        "  SELECT j.finished_at, (SELECT min(s.started_at) FROM taskq.jobs s"
        "                         WHERE s.queue_name = j.queue_name AND s.concurrency_key = j.concurrency_key"
        "                           AND s.started_at >= j.finished_at) AS next_start"
        "  FROM taskq.jobs j WHERE j.queue_name = $1 AND j.status = 'completed') done",
        {queue.c_str()}));
  }

  std::vector<std::string> queues_;
};

TEST_F(FlowControl, ConcurrencyLimitHoldsPerKeyAcrossThreeWorkers) {
  const std::string queue = limited_queue("fconc", "concurrency_limit => 2");
  const std::string handler = scratch().script("slow.sh", std::string(kRecordRun) + "\nsleep 0.1\necho '\"ok\"'");
  RunningPerKeySampler sampler(queue);
  const auto ids = enqueue_keyed(queue, 5, 30);
  auto workers = start_workers(3, queue, handler, {"--concurrency", "8"});
  EXPECT_TRUE(wait_status_count(queue, "completed", static_cast<long>(ids.size()), 180s))
      << count_jobs(queue, "completed") << " of " << ids.size() << " completed";
  sampler.stop();
  stop_all(workers);

  EXPECT_LE(sampler.max_running(), 2) << "a key had more running jobs than its limit";
  EXPECT_EQ(sampler.max_running(), 2) << "the limit was never reached: the test measured nothing";
  EXPECT_GT(sampler.samples(), 100) << "too few samples";
  EXPECT_LT(sampler.longest_gap(), 500ms) << "the sampler missed part of the run";
  EXPECT_EQ(sampler.failed_samples(), 0);
  expect_each_ran_once(ids);
  EXPECT_EQ(conn().value("SELECT max(attempts) FROM taskq.jobs WHERE queue_name = $1", {queue.c_str()}), "1")
      << "a held job spent an attempt";
  // Released by the transaction that freed the slot, not found by a poll.
  EXPECT_LT(longest_free_slot_seconds(queue), 1.0) << "a held job started more than a second after its slot freed";
  EXPECT_EQ(conn().value("SELECT held FROM taskq.queue_stats WHERE queue_name = $1", {queue.c_str()}), "0");
}

TEST_F(FlowControl, RateLimitSpreadsStartsAcrossThreeWorkers) {
  const std::string queue = limited_queue("frate", "rate_limit => 50, rate_period => '1 second'");
  const std::string handler = scratch().script("quick.sh", std::string(kRecordRun) + "\necho '\"ok\"'");
  auto workers = start_workers(3, queue, handler, {"--concurrency", "8"});
  ASSERT_TRUE(wait_consumer(queue, 60s)) << "the workers did not start consuming";
  std::this_thread::sleep_for(500ms);  // all three: their consumers come up within moments of each other
  // More than 10 s worth, so that the rate and not the supply decides.
  enqueue_many(queue, 700);
  ASSERT_TRUE(wait_status_count(queue, "completed", 1, 60s)) << "nothing started";
  const std::string first =
      conn().value("SELECT min(started_at) FROM taskq.jobs WHERE queue_name = $1", {queue.c_str()});
  // Until ten seconds after the first start have passed in PostgreSQL's clock.
  ASSERT_TRUE(wait_until(
      [&] { return conn().value("SELECT now() > $1::timestamptz + interval '10.5 seconds'", {first.c_str()}) == "t"; },
      60s, 100ms));
  stop_all(workers);

  const long in_ten_seconds = std::stol(
      conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1"
                   " AND started_at >= $2::timestamptz AND started_at < $2::timestamptz + interval '10 seconds'",
                   {queue.c_str(), first.c_str()}));
  EXPECT_GE(in_ten_seconds, 475) << "starts in the first 10 s";
  EXPECT_LE(in_ten_seconds, 525) << "starts in the first 10 s";
  // Every window of one second that begins at a start.
  const long busiest_second = std::stol(conn().value(
      "SELECT max((SELECT count(*) FROM taskq.jobs s WHERE s.queue_name = j.queue_name"
      "            AND s.started_at >= j.started_at AND s.started_at < j.started_at + interval '1 second'))"
      " FROM taskq.jobs j WHERE j.queue_name = $1 AND j.started_at IS NOT NULL",
      {queue.c_str()}));
  EXPECT_LE(busiest_second, 55) << "a one-second window had more starts than the limit allows";
  // Spread out: not the limit's worth at once, then a pause.
  const long busiest_tenth = std::stol(conn().value(
      "SELECT max((SELECT count(*) FROM taskq.jobs s WHERE s.queue_name = j.queue_name"
      "            AND s.started_at >= j.started_at AND s.started_at < j.started_at + interval '100 milliseconds'))"
      " FROM taskq.jobs j WHERE j.queue_name = $1 AND j.started_at IS NOT NULL",
      {queue.c_str()}));
  EXPECT_LE(busiest_tenth, 30) << "starts came in bursts";
  RecordProperty("starts_in_10s", static_cast<int>(in_ten_seconds));
  RecordProperty("busiest_second", static_cast<int>(busiest_second));
  RecordProperty("busiest_100ms", static_cast<int>(busiest_tenth));
  std::printf("rate 50/s, 3 workers: %ld starts in 10 s, busiest second %ld, busiest 100 ms %ld\n", in_ten_seconds,
              busiest_second, busiest_tenth);
  // Nothing ran twice, and nothing spent an attempt while held.
  const auto ran = runs();
  for (const auto& [id, attempts] : ran) EXPECT_EQ(attempts, std::vector<int>({1})) << id;
}

TEST_F(FlowControl, AWorkerKilledHoldingASlotGivesItBackWhenItsLeaseExpires) {
  // No fast maintenance: the publisher's flow step rescues a lease that
  // holds a slot a job waits for when it expires (maintenance: every 30 s).
  const std::string queue =
      limited_queue("fslotkill", "concurrency_limit => 1, lease => '3 seconds', backoff_base => '100 ms'");
  const std::string handler = scratch().script("kill9.sh", std::string(kRecordRun) + R"(
[ "$TASKQ_ATTEMPT" = 1 ] && [ "$TASKQ_TASK" = first ] && sleep 300
echo '"done"')");
  const std::string first = enqueue(queue, "{}", ", task => 'first', concurrency_key => 'tenant'");
  WorkerProcess doomed(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_until([&] { return runs().count(first) == 1; }, 60s)) << "the first job never started";
  const std::string second = enqueue(queue, "{}", ", task => 'second', concurrency_key => 'tenant'");
  ASSERT_TRUE(wait_until(
      [&] { return conn().value("SELECT flow_state FROM taskq.jobs WHERE id = $1", {second.c_str()}) == "key_held"; },
      30s))
      << "the second job of the key was not held back";
  doomed.kill();
  scratch().kill_handlers();
  const auto killed = Clock::now();

  WorkerProcess survivor(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_until([&] { return runs().count(second) == 1; }, 60s)) << "the slot never came back";
  const auto waited = Clock::now() - killed;
  EXPECT_GE(waited, 1500ms) << "the slot came back while the dead worker's lease was valid";
  EXPECT_LT(waited, 8s) << "the slot came back long after the lease (3 s) expired";
  // The killed attempt is retried (its slot taken in turn); nothing is lost.
  ASSERT_TRUE(wait_job_status(first, "completed", 60s)) << job(first).status;
  ASSERT_TRUE(wait_job_status(second, "completed", 60s)) << job(second).status;
  survivor.terminate();
  EXPECT_EQ(survivor.wait_exit(60s), 0);
  EXPECT_EQ(runs()[first], std::vector<int>({1, 2}));
  EXPECT_EQ(runs()[second], std::vector<int>({1}));
}

TEST_F(FlowControl, BrokerAndDatabaseRestartsLoseNoHeldJob) {
  const std::string queue = limited_queue("frestarts", "concurrency_limit => 2, lease => '20 seconds'");
  const std::string handler = scratch().script("steady.sh", std::string(kRecordRun) + "\nsleep 0.05\necho '\"ok\"'");
  RunningPerKeySampler sampler(queue);
  const auto ids = enqueue_keyed(queue, 3, 40);
  auto workers = start_workers(2, queue, handler, {"--concurrency", "4"});
  ASSERT_TRUE(wait_status_count(queue, "completed", 20, 120s)) << "jobs did not start flowing";
  env_action("broker-restart");
  ASSERT_TRUE(wait_until(
      [&] {
        try {
          return count_jobs(queue, "completed") >= 60;
        } catch (const std::exception&) {
          return false;
        }
      },
      120s, 200ms))
      << "jobs did not flow again after the broker restart";
  env_action("pg-restart");
  conn_.emplace(db());
  EXPECT_TRUE(wait_until(
      [&] {
        try {
          return count_jobs(queue, "completed") == static_cast<long>(ids.size());
        } catch (const std::exception&) {
          conn_.emplace(db());
          return false;
        }
      },
      180s, 200ms))
      << count_jobs(queue, "completed") << " of " << ids.size() << " completed";
  sampler.stop();
  stop_all(workers);
  EXPECT_LE(sampler.max_running(), 2) << "a key had more running jobs than its limit";
  expect_each_ran_once(ids);
  EXPECT_EQ(conn().value("SELECT held FROM taskq.queue_stats WHERE queue_name = $1", {queue.c_str()}), "0");
}

TEST_F(FlowControl, ADeliveryHeldBackIsCountedAckedAndItsJobRunsLaterOnce) {
  const std::string queue = limited_queue("fheld", "concurrency_limit => 1");
  const std::string handler = scratch().script("gate.sh", std::string(kRecordRun) + R"(
if [ "$TASKQ_TASK" = long ]; then
  while [ ! -e "$DIR/release" ]; do sleep 0.05; done
fi
echo '"ok"')");
  const int port = free_tcp_port();
  WorkerProcess worker(
      worker_args({{queue, "exec:" + handler}}, {"--metrics-addr", "127.0.0.1:" + std::to_string(port)}));
  const std::string running = enqueue(queue, "{}", ", task => 'long', concurrency_key => 'k'");
  ASSERT_TRUE(wait_until([&] { return runs().count(running) == 1; }, 60s)) << "the first job never started";
  const std::string waiting = enqueue(queue, "{}", ", task => 'short', concurrency_key => 'k'");
  ASSERT_TRUE(wait_until(
      [&] { return conn().value("SELECT flow_state FROM taskq.jobs WHERE id = $1", {waiting.c_str()}) == "key_held"; },
      30s));
  // A duplicate (or a message of a third party) for the held job reaches
  // the worker: the start is refused, the delivery acked and counted.
  const std::string body = conn().value(
      "SELECT jsonb_build_object('id', id, 'queue', queue_name, 'task', task, 'payload', payload, 'attempt', 1,"
      " 'max_attempts', max_attempts, 'enqueued_at', created_at, 'headers', '{}'::jsonb)::text"
      " FROM taskq.jobs WHERE id = $1",
      {waiting.c_str()});
  publish_as_taskq(queue, body);
  httplib::Client client("127.0.0.1", port);
  const std::string sample = "taskq_worker_deliveries_dropped_total{queue=\"" + queue + "\",reason=\"held\"} 1";
  std::string page;
  EXPECT_TRUE(wait_until(
      [&] {
        auto res = client.Get("/metrics");
        page = res ? res->body : "";
        return page.find(sample) != std::string::npos;
      },
      30s, 100ms))
      << page;
  // Left unacknowledged: only the running job's delivery (acked after its outcome).
  EXPECT_TRUE(wait_until([&] { return rabbit_queue_total_messages("taskq." + queue) == 1; }, 10s))
      << "the held delivery was not acknowledged: " << rabbit_queue_total_messages("taskq." + queue) << " messages";
  JobRow held = job(waiting);
  EXPECT_EQ(held.status, "pending");
  EXPECT_EQ(held.attempts, 0) << "a held start spent an attempt";
  EXPECT_EQ(runs().count(waiting), 0u);

  run("touch " + scratch().file("release"));
  ASSERT_TRUE(wait_job_status(waiting, "completed", 60s)) << job(waiting).status;
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once({running, waiting});
}

}  // namespace
