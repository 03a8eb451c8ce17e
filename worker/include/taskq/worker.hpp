// taskq worker library: consume jobs from RabbitMQ and run them with the
// SQL life cycle (taskq.start -> handler -> taskq.complete / taskq.fail).
//
//   taskq::WorkerOptions options;
//   options.database = "dbname=app";
//   options.broker = "amqp://guest:guest@127.0.0.1:5672/";
//   taskq::Worker worker(options);
//   worker.handle_queue("emails", [](const taskq::Job& job, const taskq::CancellationToken&) {
//     send(job.payload);
//     return taskq::Outcome::completed();
//   });
//   worker.run();  // until stop()
//
// Guarantees: a delivery is acknowledged only once its job's outcome is
// recorded (or it turned out stale), except that a job running longer than
// early_ack_after is acknowledged while it runs (PostgreSQL's lease owns it
// from taskq.start on); stale and duplicate deliveries are dropped (attempt
// fencing); a job's outcome is recorded at most once per attempt. Register
// handlers, middleware and listeners before run(); the rest of the API is
// thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace taskq {

struct Job {
  std::string id;
  std::string queue;
  std::string task;  // empty when the job has none
  nlohmann::json payload;
  int attempt = 0;
  int max_attempts = 0;
  std::map<std::string, std::string> headers;
  // The jobs this one waited for (all completed by now); empty when none.
  std::vector<std::string> depends_on;
  std::string body;  // the message body as received (what http handlers POST)
  // The producer's W3C trace context: the job's `traceparent` and
  // `tracestate` headers when they are valid Trace Context, else empty (they
  // stay in `headers` as stored either way). Every attempt has the same.
  std::string traceparent;
  std::string tracestate;

  // The trace-id of `traceparent` (32 hex digits); empty when there is none.
  std::string_view trace_id() const {
    return traceparent.size() >= 35 ? std::string_view(traceparent).substr(3, 32) : std::string_view();
  }
};

// Set when the job must stop: its cancel was requested, its lease was lost,
// or the worker is shutting down past its grace period.
class CancellationToken {
 public:
  bool cancelled() const { return cancelled_.load(); }
  std::string reason() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reason_;
  }
  void cancel(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.load()) return;
    reason_ = reason;
    cancelled_.store(true);
  }

 private:
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  std::string reason_;
};

struct Outcome {
  enum class Kind { kCompleted, kRetry, kFailed };
  Kind kind = Kind::kCompleted;
  nlohmann::json result;                         // kCompleted
  std::string error;                             // kRetry, kFailed
  std::optional<std::chrono::seconds> retry_in;  // kRetry: overrides the queue's backoff
  // kCompleted: follow-up jobs, enqueued in the transaction that records the
  // completion (and only if it does: not when the outcome is stale). Job
  // specs as taskq.complete's `enqueue` takes them: {"queue": ..., plus
  // taskq.enqueue's arguments by name}. Null: none.
  nlohmann::json enqueue;

  static Outcome completed(nlohmann::json result = nullptr) { return {Kind::kCompleted, std::move(result), {}, {}}; }
  static Outcome retry(std::string error, std::optional<std::chrono::seconds> retry_in = std::nullopt) {
    return {Kind::kRetry, nullptr, std::move(error), retry_in};
  }
  static Outcome failed(std::string error) { return {Kind::kFailed, nullptr, std::move(error), {}}; }

  // Adds a follow-up job of `queue`; options are taskq.enqueue's arguments by
  // name ({"payload": ..., "delay": "5 minutes", "depends_on": [ids]}).
  //   return taskq::Outcome::completed(result).then_enqueue("emails", {{"payload", {{"to", to}}}});
  Outcome& then_enqueue(const std::string& queue, nlohmann::json options = nlohmann::json::object()) {
    if (!options.is_object()) throw std::invalid_argument("follow-up job options must be a JSON object");
    options["queue"] = queue;
    if (!enqueue.is_array()) enqueue = nlohmann::json::array();
    enqueue.push_back(std::move(options));
    return *this;
  }
};

// A handler runs on one of the worker's threads; exceptions it throws become
// retryable failures.
using Handler = std::function<Outcome(const Job&, const CancellationToken&)>;

// Runs the rest of a middleware chain: the next middleware, and after the
// last one the job's handler. Call it at most once; an exception from the
// handler (or a later middleware) comes out of it.
using Next = std::function<Outcome()>;

// Wraps every handler call (Worker::use): it may read the job, time the
// call, skip it (return without calling next), change the outcome it
// returns, or throw; an exception that leaves it is a retryable failure, as
// for handlers. Runs on the handler's thread.
//
//   worker.use([](const taskq::Job& job, const taskq::CancellationToken&, const taskq::Next& next) {
//     const auto began = std::chrono::steady_clock::now();
//     taskq::Outcome outcome = next();
//     record(job.queue, std::chrono::steady_clock::now() - began);
//     return outcome;
//   });
using Middleware = std::function<Outcome(const Job&, const CancellationToken&, const Next&)>;

// A change in one of the worker's connections (Worker::on_connection_event).
struct ConnectionEvent {
  enum class Service { kBroker, kDatabase };
  enum class Kind {
    kConnected,     // up: the first time, or again after kLost
    kLost,          // it was up and failed (reason says why)
    kReconnecting,  // the worker tries again after next_delay (reason: why the last try failed)
  };
  Service service = Service::kBroker;
  Kind kind = Kind::kConnected;
  // Which of the worker's connections: "consumer" (the broker), or for the
  // database "starter", "finisher", "heartbeater", "callbacks".
  std::string connection;
  std::string reason;                       // kLost, kReconnecting
  std::chrono::milliseconds next_delay{0};  // kReconnecting
};

// Called for every ConnectionEvent, one call at a time, on the thread of
// the connection; it should return quickly (it holds that thread up).
// Exceptions it throws are logged and dropped.
using ConnectionListener = std::function<void(const ConnectionEvent&)>;

// "broker" / "database"; "connected" / "lost" / "reconnecting".
const char* to_string(ConnectionEvent::Service service);
const char* to_string(ConnectionEvent::Kind kind);

// Delivery of taskq.callbacks rows (docs/callbacks.md).
struct CallbackOptions {
  bool enabled = true;  // deliver callbacks from this process
  std::string secret;   // HMAC-SHA256 key for X-Taskq-Signature; empty: unsigned
  // SSRF guard: refuse targets that resolve to loopback, private, link-local
  // or otherwise non-public addresses (checked after DNS resolution).
  bool refuse_private_addresses = false;
  int max_attempts = 10;                      // failed deliveries before a callback is marked dead
  int max_in_flight = 16;                     // POSTs at once
  std::chrono::milliseconds timeout{10'000};  // per POST, connect included
  // Delay before retry n is retry_base * 2^(n-1), capped at retry_max, with
  // jitter (uniform in [d/2, d]).
  std::chrono::milliseconds retry_base{10'000};
  std::chrono::milliseconds retry_max{3'600'000};
  // Fallback wake-up: new callbacks normally wake the dispatcher at once
  // (LISTEN taskq_callbacks); this bounds the delay if a notification is lost.
  std::chrono::milliseconds poll_interval{5'000};
};

struct WorkerOptions {
  std::string database;  // libpq conninfo or URI
  std::string broker;    // amqp://user:password@host:port/vhost
  int concurrency = 4;   // jobs run at once
  // Unacknowledged deliveries per process. 0: follows the handlers, 16 x
  // concurrency while they are quick (under 50 ms on average), 2 x when slow.
  int prefetch = 0;
  std::chrono::seconds shutdown_timeout{30};
  std::string name;  // shown in taskq.jobs.worker; default host:pid
  // A delivery is acknowledged once its job's outcome is recorded, or once
  // the job has run this long (PostgreSQL's lease owns it from taskq.start
  // on): stays below RabbitMQ's consumer_timeout (30 minutes by default).
  std::chrono::seconds early_ack_after{15 * 60};
  CallbackOptions callbacks;
  std::string metrics_addr;  // HOST:PORT for /metrics and /healthz; empty: none
};

// A service could not be reached at start, or the options are invalid.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Jobs of this queue run `handler`, unless a task handler matches.
  void handle_queue(const std::string& queue, Handler handler);
  // Jobs with this task run `handler` (the queue must have a queue handler
  // or be consumed through handle_queue too).
  void handle_task(const std::string& task, Handler handler);
  // Wraps every handler call in `middleware`; the first one registered is
  // the outermost (it runs first and sees the final outcome).
  void use(Middleware middleware);
  // Tells `listener` about every connection of the worker: connected, lost
  // (with the reason), reconnecting (with the delay until the next try).
  // The worker logs the same changes itself.
  void on_connection_event(ConnectionListener listener);

  // Connects (StartupError if PostgreSQL or RabbitMQ cannot be reached),
  // consumes until stop(), then lets in-flight jobs finish within the
  // shutdown timeout (cancelling the rest, which are retried), and returns.
  // Later connection losses are retried with backoff, never thrown. Call it
  // once.
  //
  // It returns at most shutdown_timeout + 10 s (+ callbacks.timeout for a
  // callback POST in flight) after stop(), even if a handler never returns:
  // such a handler is left running on its thread, its job to its lease
  // (retried once the lease expires), and whatever it returns is dropped.
  // Its thread keeps the worker's internal state alive, so the Worker may
  // be destroyed meanwhile; what the handler itself uses must stay valid
  // until it returns. See handlers_still_running().
  void run();
  // Thread-safe; returns at once.
  void stop();

  // The worker's metrics in Prometheus text format (what /metrics serves),
  // for programs that export them their own way. Thread-safe.
  std::string metrics_text() const;

  // Handlers that run() gave up on (they ignored their token past the
  // shutdown's grace period) and that have not returned yet. A program
  // ending while this is not 0 should leave with _exit or std::quick_exit
  // rather than return from main, so that no static object is destroyed
  // under a running handler. Thread-safe.
  int handlers_still_running() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with runner threads that outlive run()
};

}  // namespace taskq
