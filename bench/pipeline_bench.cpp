// Full-pipeline benchmark (issue: taskq-worker), run by `make bench`: jobs
// travel enqueue -> outbox -> publisher (in PostgreSQL) -> RabbitMQ ->
// taskq::Worker (in this process, no-op handler) -> start -> complete -> ack.
//
//  pipeline_throughput  a producer enqueues N jobs (enqueue_many, 100 per
//                       call) while the worker runs; rate = N / (first
//                       enqueue .. last job completed in the database)
//  consume_throughput   N jobs published to RabbitMQ before the worker starts
//                       (as the peers' process_throughput); rate = N / (worker
//                       start .. last job completed)
//  pipeline_latency     one enqueue every 5 ms; per job, handler start minus
//                       the moment its enqueue committed (one clock: same process)
//  worker_memory        resident set size after warm-up and after M more jobs
//  keyed_unlimited      flow control's cost: N jobs over 1,000 concurrency
//  keyed_limit_100      keys (enqueue_many per key) through a queue without
//                       limits, then through one with concurrency_limit 100;
//                       first enqueue .. last completion, as pipeline_throughput
//
// Usage: pipeline_bench [N [LATENCY_JOBS [MEMORY_JOBS [FLOW_JOBS]]]] inside scripts/test-env.
// Prints RESULT lines in the format described in bench/README.md.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "db/pg_connection.hpp"
#include "taskq/worker.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

const char* kQueue = "bench_pipeline";
const char* kPayload =
    R"({"seq":1,"kind":"bench","tenant":"acme","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})";

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

long rss_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1];
}

long unfinished(taskq::PgConnection& db) {
  return std::atol(
      db.value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status <> 'completed'", {kQueue}).c_str());
}

// Completions the worker has recorded (its metrics count them after the
// commit). Polled while the system is measured, so it must cost nothing
// there: a database query here would compete with the worker for the
// server, and cost more the larger the backlog.
long metric(const taskq::Worker& worker, const std::string& sample) {
  const std::string text = worker.metrics_text();
  const std::string key = sample + " ";
  const auto at = text.find(key);
  return at == std::string::npos ? 0 : std::atol(text.c_str() + at + key.size());
}

long completed(const taskq::Worker& worker, const std::string& queue = kQueue) {
  return metric(worker, "taskq_worker_jobs_finished_total{queue=\"" + queue + "\",outcome=\"completed\"}");
}

// Enqueues n jobs in calls of `per_call`; returns when all are committed.
void produce(taskq::PgConnection& db, long n, int per_call) {
  std::string payloads = "[";
  for (int i = 0; i < per_call; ++i) payloads += std::string(i ? "," : "") + kPayload;
  payloads += "]";
  for (long done = 0; done < n; done += per_call) {
    if (n - done < per_call) {
      std::string rest = "[";
      for (long i = 0; i < n - done; ++i) rest += std::string(i ? "," : "") + kPayload;
      rest += "]";
      db.exec("SELECT count(*) FROM taskq.enqueue_many($1, $2::jsonb)", {kQueue, rest.c_str()});
    } else {
      db.exec("SELECT count(*) FROM taskq.enqueue_many($1, $2::jsonb)", {kQueue, payloads.c_str()});
    }
  }
}

// N jobs of `queue` over `keys` concurrency keys, keys in turn (k0, k1, ...),
// one enqueue_many per key of N / keys jobs each.
void produce_keyed(taskq::PgConnection& db, const std::string& queue, long n, int keys) {
  const long per_key = n / keys;
  std::string payloads = "[";
  for (long i = 0; i < per_key; ++i) payloads += std::string(i ? "," : "") + kPayload;
  payloads += "]";
  for (int k = 0; k < keys; ++k) {
    const std::string key = "tenant-" + std::to_string(k);
    db.exec("SELECT count(*) FROM taskq.enqueue_many($1, $2::jsonb, concurrency_key => $3)",
            {queue.c_str(), payloads.c_str(), key.c_str()});
  }
}

// Waits until `worker` has completed `target` jobs in all; then checks with
// the database (once) that nothing of the queue is unfinished.
bool wait_drained(const taskq::Worker& worker, long target, taskq::PgConnection& db, std::chrono::seconds cap) {
  const auto deadline = Clock::now() + cap;
  while (completed(worker) < target) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return unfinished(db) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const long jobs = argc > 1 ? std::atol(argv[1]) : 20000;
  const long latency_jobs = argc > 2 ? std::atol(argv[2]) : 2000;
  const long memory_jobs = argc > 3 ? std::atol(argv[3]) : 100000;
  const long flow_jobs = argc > 4 ? std::atol(argv[4]) : 20000;
  const std::string database = env_or("TASKQ_TEST_DATABASE_URL", "");
  const std::string broker = env_or("TASKQ_TEST_BROKER_URL", "");
  if (database.empty() || broker.empty()) {
    std::fprintf(stderr, "pipeline_bench: run me inside scripts/test-env (make bench)\n");
    return 2;
  }

  taskq::PgConnection db(database);
  db.exec("SET client_min_messages = warning");
  db.exec("SELECT taskq.drop_queue(queue_name, force => true) FROM taskq.queues WHERE queue_name = $1", {kQueue});
  db.exec("SELECT taskq.create_queue($1)", {kQueue});

  // Handler start times by payload sequence number, for the latency scenario.
  std::mutex mu;
  std::unordered_map<long, Clock::time_point> handler_started;
  std::atomic<bool> record_starts{false};

  taskq::WorkerOptions options;
  options.database = database;
  options.broker = broker;
  options.concurrency = 8;
  options.prefetch = std::atoi(env_or("TASKQ_BENCH_PREFETCH", "0").c_str());  // 0: the library's default
  options.callbacks.enabled = false;
  // --- consume only: the backlog is in RabbitMQ before the worker starts ----
  {
    db.exec("CHECKPOINT");  // no flush of earlier work during the measurement
    produce(db, jobs, 100);
    // Only this queue's rows: a paused queue elsewhere keeps others.
    const auto published_by = Clock::now() + 120s;
    while (db.value("SELECT count(*) FROM taskq.outbox WHERE queue_name = $1", {kQueue}) != "0" &&
           Clock::now() < published_by)
      std::this_thread::sleep_for(20ms);
    taskq::Worker drainer(options);
    drainer.handle_queue(
        kQueue, [](const taskq::Job&, const taskq::CancellationToken&) { return taskq::Outcome::completed(); });
    const auto t0 = Clock::now();
    std::thread drain_thread([&] { drainer.run(); });
    const bool drained = wait_drained(drainer, jobs, db, 300s);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const long done = completed(drainer);
    drainer.stop();
    drain_thread.join();
    std::printf("RESULT peer=taskq scenario=consume_throughput jobs=%ld seconds=%.2f rate=%.0f p50_ms=- p99_ms=-\n",
                done, seconds, static_cast<double>(done) / seconds);
    std::printf("NOTE peer=taskq scenario=consume_throughput capped=%s\n", drained ? "no" : "yes");
  }

  taskq::Worker worker(options);
  worker.handle_queue(kQueue, [&](const taskq::Job& job, const taskq::CancellationToken&) {
    if (record_starts.load()) {
      const auto now = Clock::now();
      std::lock_guard<std::mutex> lock(mu);
      handler_started[job.payload.value("seq", -1L)] = now;
    }
    return taskq::Outcome::completed();
  });
  std::thread worker_thread([&] { worker.run(); });
  std::this_thread::sleep_for(500ms);  // connected and consuming

  std::printf("# pipeline: in-process taskq::Worker, concurrency 8, no-op handler, enqueue_many of 100\n");

  // --- throughput --------------------------------------------------------------
  {
    db.exec("CHECKPOINT");
    const auto t0 = Clock::now();
    produce(db, jobs, 100);
    const double enqueue_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const bool drained = wait_drained(worker, jobs, db, 300s);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const long done = completed(worker);
    std::printf("RESULT peer=taskq scenario=pipeline_throughput jobs=%ld seconds=%.2f rate=%.0f p50_ms=- p99_ms=-\n",
                done, seconds, static_cast<double>(done) / seconds);
    std::printf("NOTE peer=taskq scenario=pipeline_throughput enqueue_seconds=%.2f capped=%s\n", enqueue_s,
                drained ? "no" : "yes");
  }

  // --- latency -----------------------------------------------------------------
  if (latency_jobs > 0) {
    db.exec("CHECKPOINT");
    record_starts = true;
    std::vector<Clock::time_point> committed(static_cast<std::size_t>(latency_jobs));
    const auto t0 = Clock::now();
    for (long i = 0; i < latency_jobs; ++i) {
      const auto due = t0 + i * 5ms;
      std::this_thread::sleep_until(due);
      const std::string payload = "{\"seq\":" + std::to_string(i) + "}";
      db.exec("SELECT taskq.enqueue($1, $2::jsonb)", {kQueue, payload.c_str()});
      committed[static_cast<std::size_t>(i)] = Clock::now();
    }
    wait_drained(worker, jobs + latency_jobs, db, 60s);
    std::vector<double> latencies;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (long i = 0; i < latency_jobs; ++i) {
        auto it = handler_started.find(i);
        if (it != handler_started.end())
          latencies.push_back(
              std::chrono::duration<double, std::milli>(it->second - committed[static_cast<std::size_t>(i)]).count());
      }
    }
    record_starts = false;
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("RESULT peer=taskq scenario=pipeline_latency jobs=%zu seconds=%.2f rate=%.0f p50_ms=%.2f p99_ms=%.2f\n",
                latencies.size(), seconds, static_cast<double>(latencies.size()) / seconds, percentile(latencies, 0.5),
                percentile(latencies, 0.99));
  }

  // --- memory --------------------------------------------------------------------
  if (memory_jobs > 0) {
    db.exec("CHECKPOINT");
    long target = completed(worker) + 10000;
    produce(db, 10000, 100);  // warm-up: allocator pools, connection buffers
    wait_drained(worker, target, db, 120s);
    const long before = rss_kb();
    const auto t0 = Clock::now();
    for (long done = 0; done < memory_jobs; done += 10000) {
      const long n = std::min(10000L, memory_jobs - done);
      target += n;
      produce(db, n, 100);
      wait_drained(worker, target, db, 120s);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const long after = rss_kb();
    std::printf("RESULT peer=taskq scenario=worker_memory jobs=%ld seconds=%.2f rate=%.0f p50_ms=- p99_ms=-\n",
                memory_jobs, seconds, static_cast<double>(memory_jobs) / seconds);
    std::printf("NOTE peer=taskq scenario=worker_memory rss_kb_after_warmup=%ld rss_kb_after=%ld growth_kb=%ld\n",
                before, after, after - before);
  }

  worker.stop();
  worker_thread.join();

  // --- flow control: keyed jobs without and with a concurrency limit ------------
  if (flow_jobs > 0) {
    std::printf("# flow: %ld jobs over 1000 concurrency keys, the same worker settings\n", flow_jobs);
    for (const auto& [scenario, options_sql] : std::vector<std::pair<std::string, std::string>>{
             {"keyed_unlimited", ""}, {"keyed_limit_100", ", concurrency_limit => 100"}}) {
      const std::string queue = "bench_" + scenario;
      db.exec("SELECT taskq.drop_queue(queue_name, force => true) FROM taskq.queues WHERE queue_name = $1",
              {queue.c_str()});
      db.exec("SELECT taskq.create_queue($1" + options_sql + ")", {queue.c_str()});
      taskq::Worker flow_worker(options);
      flow_worker.handle_queue(
          queue, [](const taskq::Job&, const taskq::CancellationToken&) { return taskq::Outcome::completed(); });
      std::thread flow_thread([&] { flow_worker.run(); });
      std::this_thread::sleep_for(500ms);
      db.exec("CHECKPOINT");
      const auto t0 = Clock::now();
      produce_keyed(db, queue, flow_jobs, 1000);
      const double enqueue_s = std::chrono::duration<double>(Clock::now() - t0).count();
      const auto deadline = Clock::now() + 300s;
      while (completed(flow_worker, queue) < flow_jobs && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
      const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      const long done = completed(flow_worker, queue);
      const long held =
          metric(flow_worker, "taskq_worker_deliveries_dropped_total{queue=\"" + queue + "\",reason=\"held\"}");
      flow_worker.stop();
      flow_thread.join();
      std::printf("RESULT peer=taskq scenario=%s jobs=%ld seconds=%.2f rate=%.0f p50_ms=- p99_ms=-\n", scenario.c_str(),
                  done, seconds, static_cast<double>(done) / seconds);
      std::printf("NOTE peer=taskq scenario=%s keys=1000 enqueue_seconds=%.2f held_deliveries=%ld capped=%s\n",
                  scenario.c_str(), enqueue_s, held, done >= flow_jobs ? "no" : "yes");
      // Later benchmarks run without limits again.
      db.exec("SELECT taskq.drop_queue($1, force => true)", {queue.c_str()});
    }
  }
  return 0;
}
