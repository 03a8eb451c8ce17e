// taskq::Worker: one AMQP connection (consumer thread), `concurrency` runner
// threads with a database connection each, and a heartbeat thread.
//
// Life of a delivery:
//   consumer thread: basic.consume (manual acks, basic.qos = prefetch) ->
//     queue of deliveries
//   runner thread: parse (garbage: ack and drop) -> taskq.start (stale: ack
//     and drop) -> ack (PostgreSQL owns the job from here: lease + rescue) ->
//     handler with heartbeats -> taskq.complete / taskq.fail
// Acks go back to the consumer thread (rabbitmq-c connections are not
// thread-safe) tagged with the connection generation: after a reconnect, the
// broker redelivers what was unacked, and old tags are dropped.
//
// Acking right after start (not after complete) is deliberate: a job may run
// longer than RabbitMQ's consumer_timeout without the broker closing the
// channel, and its prefetch slot is freed. Duplicates of an acked delivery
// are fenced by the attempt number.
#include "taskq/worker.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/amqp_connection.hpp"
#include "core/backoff.hpp"
#include "job_message.hpp"
#include "pg_connection.hpp"

namespace taskq {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Delivery {
  std::uint64_t tag;
  std::uint64_t generation;  // which AMQP connection it came on
  std::string queue;         // taskq queue (routing key)
  std::string body;
};

struct RunningJob {
  std::string id;
  int attempt;
  std::chrono::milliseconds heartbeat_every;
  Clock::time_point next_heartbeat;
  CancellationToken* token;
};

std::string default_worker_name() {
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace

struct Worker::Impl {
  WorkerOptions options;
  std::map<std::string, Handler> by_queue;
  std::map<std::string, Handler> by_task;

  std::atomic<bool> stopping{false};
  std::atomic<Clock::rep> stop_deadline{Clock::time_point::max().time_since_epoch().count()};
  std::mutex mu;
  std::condition_variable work_cv;
  std::deque<Delivery> deliveries;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> acks;  // (generation, tag)
  std::atomic<std::uint64_t> generation{0};
  int busy_runners = 0;
  std::map<std::string, RunningJob> running;  // by job id, guarded by mu

  // --- database ------------------------------------------------------------

  // Runs fn with a live connection, reconnecting and retrying transient
  // failures with backoff. Permanent failures are thrown. Gives up (returns
  // false) only when `give_up` says so (shutdown past its deadline).
  template <typename Fn>
  bool with_db(std::optional<PgConnection>& db, Fn&& fn, const std::function<bool()>& give_up) {
    Backoff backoff(BackoffPolicy{100ms, 10s, 0.5});
    for (;;) {
      try {
        if (!db || !db->ok()) db.emplace(options.database);
        fn(*db);
        return true;
      } catch (const DbError& e) {
        if (e.kind() == DbFailure::kPermanent) throw;
        db.reset();
        spdlog::warn("database: {} (retrying)", e.what());
      }
      if (give_up()) return false;
      std::this_thread::sleep_for(backoff.next());
    }
  }

  // --- runner threads --------------------------------------------------------

  const Handler* handler_for(const Job& job) const {
    if (!job.task.empty()) {
      auto t = by_task.find(job.task);
      if (t != by_task.end()) return &t->second;
    }
    auto q = by_queue.find(job.queue);
    return q == by_queue.end() ? nullptr : &q->second;
  }

  void ack(const Delivery& d) {
    std::lock_guard<std::mutex> lock(mu);
    acks.emplace_back(d.generation, d.tag);
  }

  void process(std::optional<PgConnection>& db, const Delivery& delivery) {
    std::string error;
    auto job = parse_job_message(delivery.body, delivery.queue, &error);
    if (!job) {
      spdlog::error("queue={} dropping a malformed message: {}", delivery.queue, error);
      ack(delivery);
      return;
    }
    const Handler* handler = handler_for(*job);
    if (handler == nullptr) {
      spdlog::error("job={} queue={} no handler for this queue or task; leaving it to its lease", job->id, job->queue);
      ack(delivery);
      return;
    }

    // Start: the delivery is acked only once this has committed.
    const std::string attempt = std::to_string(job->attempt);
    bool started = false;
    long lease_ms = 0;
    const bool ok = with_db(
        db,
        [&](PgConnection& c) {
          auto r = c.exec(
              "SELECT max_attempts, (extract(epoch FROM lease_expires_at - now()) * 1000)::bigint"
              " FROM taskq.start($1::uuid, $2::int, $3)",
              {job->id.c_str(), attempt.c_str(), options.name.c_str()});
          started = PQntuples(r.get()) == 1;
          if (started) {
            job->max_attempts = std::atoi(PQgetvalue(r.get(), 0, 0));
            lease_ms = std::atol(PQgetvalue(r.get(), 0, 1));
          }
        },
        [&] { return stopping.load(); });
    if (!ok) return;  // shutting down: not acked, the broker redelivers it
    ack(delivery);
    if (!started) {
      spdlog::info("job={} queue={} attempt={} stale delivery dropped", job->id, job->queue, job->attempt);
      return;
    }
    spdlog::info("job={} queue={} attempt={} started", job->id, job->queue, job->attempt);

    CancellationToken token;
    {
      std::lock_guard<std::mutex> lock(mu);
      const auto every = std::chrono::milliseconds(std::max<long>(lease_ms / 3, 100));
      running[job->id] = RunningJob{job->id, job->attempt, every, Clock::now() + every, &token};
    }
    Outcome outcome;
    const auto began = Clock::now();
    try {
      outcome = (*handler)(*job, token);
    } catch (const std::exception& e) {
      outcome = Outcome::retry(std::string("handler threw: ") + e.what());
    } catch (...) {
      outcome = Outcome::retry("handler threw a non-standard exception");
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      running.erase(job->id);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - began).count();
    record(db, *job, outcome, seconds);
  }

  // Records the outcome. Retrying after a lost connection is safe: the
  // attempt number fences a second complete/fail (it comes back stale).
  void record(std::optional<PgConnection>& db, const Job& job, const Outcome& outcome, double seconds) {
    const std::string attempt = std::to_string(job.attempt);
    std::string status;
    // Keep trying (fencing makes a retry safe) unless shutdown is overdue:
    // then the lease will retry the job instead.
    const auto give_up_at = Clock::now() + std::chrono::minutes(10);
    auto overdue = [&] {
      return Clock::now() > give_up_at ||
             (stopping.load() && Clock::now().time_since_epoch().count() > stop_deadline.load());
    };
    const bool ok = with_db(
        db,
        [&](PgConnection& c) {
          if (outcome.kind == Outcome::Kind::kCompleted) {
            const std::string result = outcome.result.dump();
            status = c.value("SELECT CASE WHEN taskq.complete($1::uuid, $2::int, $3::jsonb) THEN 'completed' END",
                             {job.id.c_str(), attempt.c_str(), outcome.result.is_null() ? nullptr : result.c_str()});
          } else {
            const std::string retry_in =
                outcome.retry_in ? std::to_string(outcome.retry_in->count()) + " seconds" : std::string();
            status = c.value(
                "SELECT taskq.fail($1::uuid, $2::int, $3, $4::interval, $5::boolean)",
                {job.id.c_str(), attempt.c_str(), outcome.error.c_str(), outcome.retry_in ? retry_in.c_str() : nullptr,
                 outcome.kind == Outcome::Kind::kFailed ? "true" : "false"});
          }
        },
        overdue);
    if (!ok) {
      spdlog::error("job={} queue={} attempt={} outcome not recorded; the lease will retry it", job.id, job.queue,
                    job.attempt);
      return;
    }
    if (status.empty()) {
      spdlog::warn("job={} queue={} attempt={} outcome was stale (lease lost or cancelled meanwhile)", job.id,
                   job.queue, job.attempt);
    } else if (outcome.kind == Outcome::Kind::kCompleted) {
      spdlog::info("job={} queue={} attempt={} completed in {:.3f}s", job.id, job.queue, job.attempt, seconds);
    } else {
      spdlog::warn("job={} queue={} attempt={} {} after {:.3f}s: {}", job.id, job.queue, job.attempt, status, seconds,
                   outcome.error);
    }
  }

  void runner_loop() {
    std::optional<PgConnection> db;
    for (;;) {
      Delivery d;
      {
        std::unique_lock<std::mutex> lock(mu);
        work_cv.wait(lock, [&] { return stopping.load() || !deliveries.empty(); });
        if (stopping.load()) return;  // undelivered ones go back to the broker with the connection
        d = std::move(deliveries.front());
        deliveries.pop_front();
        ++busy_runners;
      }
      try {
        process(db, d);
      } catch (const std::exception& e) {
        // A permanent database error (e.g. the extension was dropped): the
        // delivery is not acked; the broker redelivers it after a reconnect.
        spdlog::error("queue={} giving up on a delivery: {}", d.queue, e.what());
        db.reset();
      }
      std::lock_guard<std::mutex> lock(mu);
      --busy_runners;
      work_cv.notify_all();
    }
  }

  // --- heartbeats -------------------------------------------------------------

  void heartbeat_loop() {
    std::optional<PgConnection> db;
    while (!stopping.load() || busy()) {
      std::vector<RunningJob> due;
      {
        std::lock_guard<std::mutex> lock(mu);
        const auto now = Clock::now();
        for (auto& [id, job] : running) {
          if (job.next_heartbeat <= now) {
            due.push_back(job);
            job.next_heartbeat = now + job.heartbeat_every;
          }
        }
      }
      for (const auto& job : due) {
        try {
          if (!db || !db->ok()) db.emplace(options.database);
          const std::string attempt = std::to_string(job.attempt);
          if (db->value("SELECT taskq.heartbeat($1::uuid, $2::int)", {job.id.c_str(), attempt.c_str()}) != "t") {
            std::lock_guard<std::mutex> lock(mu);
            auto it = running.find(job.id);
            if (it != running.end()) it->second.token->cancel("cancel requested or lease lost");
            spdlog::warn("job={} attempt={} heartbeat refused: stopping the handler", job.id, job.attempt);
          }
        } catch (const std::exception& e) {
          db.reset();
          spdlog::warn("heartbeat: {} (retrying)", e.what());
        }
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  bool busy() {
    std::lock_guard<std::mutex> lock(mu);
    return busy_runners > 0;
  }

  // --- consumer ---------------------------------------------------------------

  std::unique_ptr<AmqpConnection> connect_and_consume(PgConnection& db) {
    ConnectOptions connect;
    connect.connection_name = "taskq-worker " + options.name;
    auto conn = std::make_unique<AmqpConnection>(BrokerUrl::parse(options.broker), connect);
    const int prefetch = options.prefetch > 0 ? options.prefetch : 2 * options.concurrency;
    amqp_basic_qos(conn->state(), AmqpConnection::kChannel, 0, static_cast<std::uint16_t>(prefetch), 0);
    check_rpc_reply(amqp_get_rpc_reply(conn->state()), "basic.qos");
    for (const auto& [queue, handler] : by_queue) {
      // The same topology the publisher declares (the queue type must match).
      const std::string type = db.value("SELECT queue_type FROM taskq.queues WHERE queue_name = $1", {queue.c_str()});
      if (type.empty())
        throw StartupError("queue \"" + queue + "\" does not exist (create it with taskq.create_queue)");
      declare_taskq_queue(*conn, "taskq", queue, type);
      const std::string rabbit_queue = rabbitmq_queue_name(queue);
      amqp_basic_consume(conn->state(), AmqpConnection::kChannel, amqp_cstring_bytes(rabbit_queue.c_str()),
                         amqp_empty_bytes, 0, /*no_ack=*/0, 0, amqp_empty_table);
      check_rpc_reply(amqp_get_rpc_reply(conn->state()), "consuming " + rabbit_queue);
    }
    ++generation;
    return conn;
  }

  void flush_acks(AmqpConnection& conn) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> batch;
    {
      std::lock_guard<std::mutex> lock(mu);
      batch.swap(acks);
    }
    for (const auto& [gen, tag] : batch) {
      if (gen != generation.load()) continue;  // from a dead connection: the broker redelivers it
      const int rc = amqp_basic_ack(conn.state(), AmqpConnection::kChannel, tag, 0);
      if (rc != AMQP_STATUS_OK) throw status_error(rc, "acknowledging a delivery");
    }
  }

  // Reads deliveries until stop() or a connection failure (thrown).
  void consume(AmqpConnection& conn) {
    while (!stopping.load()) {
      flush_acks(conn);
      amqp_maybe_release_buffers(conn.state());
      amqp_envelope_t envelope;
      timeval wait{0, 50'000};
      const amqp_rpc_reply_t reply = amqp_consume_message(conn.state(), &envelope, &wait, 0);
      if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) continue;
      if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
        Delivery d{envelope.delivery_tag, generation.load(),
                   std::string(static_cast<char*>(envelope.routing_key.bytes), envelope.routing_key.len),
                   std::string(static_cast<char*>(envelope.message.body.bytes), envelope.message.body.len)};
        amqp_destroy_envelope(&envelope);
        std::lock_guard<std::mutex> lock(mu);
        deliveries.push_back(std::move(d));
        work_cv.notify_one();
        continue;
      }
      if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        // A method arrived instead of a delivery: basic.cancel (queue
        // deleted), or a close.
        amqp_frame_t frame;
        const int rc = amqp_simple_wait_frame(conn.state(), &frame);
        if (rc != AMQP_STATUS_OK) throw status_error(rc, "reading a frame");
        if (frame.frame_type == AMQP_FRAME_METHOD) {
          if (frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD)
            throw AmqpError(AmqpError::Scope::kConnection, 0, "the broker cancelled our consumer (queue deleted?)");
          if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
              frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)
            throw close_error(frame.payload.method, "consuming");
        }
        continue;
      }
      check_rpc_reply(reply, "consuming");
    }
  }

  void run() {
    if (options.database.empty()) throw StartupError("no database given (--database or TASKQ_DATABASE_URL)");
    if (options.broker.empty()) throw StartupError("no broker given (--broker or TASKQ_BROKER_URL)");
    if (by_queue.empty()) throw StartupError("no handler registered (--handler QUEUE=...)");
    if (options.concurrency < 1) throw StartupError("concurrency must be at least 1");
    if (options.name.empty()) options.name = default_worker_name();

    std::optional<PgConnection> db;
    try {
      db.emplace(options.database);
      if (db->value("SELECT to_regproc('taskq.start') IS NOT NULL") != "t")
        throw StartupError("the taskq extension is not installed in that database");
    } catch (const DbError& e) {
      throw StartupError(e.what());
    }
    std::unique_ptr<AmqpConnection> conn;
    try {
      BrokerUrl::parse(options.broker);
      conn = connect_and_consume(*db);
    } catch (const AmqpError& e) {
      throw StartupError(e.what());
    } catch (const std::invalid_argument& e) {
      throw StartupError(std::string("bad broker URL: ") + e.what());
    }
    spdlog::info("taskq-worker {} consuming {} queue(s) with concurrency {}", options.name, by_queue.size(),
                 options.concurrency);

    std::vector<std::thread> threads;
    for (int i = 0; i < options.concurrency; ++i) threads.emplace_back([this] { runner_loop(); });
    std::thread heartbeats([this] { heartbeat_loop(); });

    Backoff reconnect(BackoffPolicy{200ms, 30s, 0.5});
    while (!stopping.load()) {
      try {
        if (!conn) {
          if (!db || !db->ok()) db.emplace(options.database);
          conn = connect_and_consume(*db);
          spdlog::info("reconnected to the broker");
          reconnect.reset();
        }
        consume(*conn);
      } catch (const std::exception& e) {
        conn.reset();
        db.reset();
        if (stopping.load()) break;
        const auto delay = reconnect.next();
        spdlog::warn("broker: {}; reconnecting in {} ms", e.what(), delay.count());
        std::this_thread::sleep_for(delay);
      }
    }
    shutdown(conn, threads, heartbeats);
  }

  void shutdown(std::unique_ptr<AmqpConnection>& conn, std::vector<std::thread>& threads, std::thread& heartbeats) {
    spdlog::info("stopping: waiting up to {}s for {} running job(s)", options.shutdown_timeout.count(), running.size());
    work_cv.notify_all();
    const auto deadline = Clock::now() + options.shutdown_timeout;
    while (busy() && Clock::now() < deadline) {
      if (conn) {
        try {
          flush_acks(*conn);
        } catch (const std::exception&) {
          conn.reset();
        }
      }
      std::this_thread::sleep_for(20ms);
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [id, job] : running) job.token->cancel("worker shutting down");
    }
    for (auto& t : threads) t.join();
    heartbeats.join();
    if (conn) {
      try {
        flush_acks(*conn);
      } catch (const std::exception&) {
      }
      conn->close();
    }
    spdlog::info("stopped");
  }
};

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<Impl>()) { impl_->options = std::move(options); }
Worker::~Worker() = default;

void Worker::handle_queue(const std::string& queue, Handler handler) { impl_->by_queue[queue] = std::move(handler); }
void Worker::handle_task(const std::string& task, Handler handler) { impl_->by_task[task] = std::move(handler); }

void Worker::run() { impl_->run(); }

void Worker::stop() {
  if (!impl_->stopping.exchange(true))
    impl_->stop_deadline.store((Clock::now() + impl_->options.shutdown_timeout + 5s).time_since_epoch().count());
  impl_->work_cv.notify_all();
}

}  // namespace taskq
