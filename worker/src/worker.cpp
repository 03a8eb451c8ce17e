// taskq::Worker: the threads of one worker process and how a delivery moves
// through them (in_flight.hpp draws the picture).
//
//   consumer (the thread in run()): owns the RabbitMQ connection; reads
//     deliveries into `pending`, sends acks; reconnects with backoff.
//   starter: starts as many pending deliveries as there are free runner
//     slots in one taskq._start_batch round trip; garbage and stale
//     deliveries are acked and dropped at once.
//   runners (concurrency of them): run handlers.
//   finisher: records outcomes (taskq._complete_batch, taskq.fail), then
//     queues the acks.
//   heartbeater: extends the leases of in-flight jobs, stops the ones whose
//     heartbeat is refused (cancel requested, lease lost), and acks long jobs
//     early.
//
// The guarantee: a delivery is acked only once its job's outcome is
// recorded (or the delivery turned out stale), so a crash anywhere leaves
// either an unacked message that RabbitMQ redelivers or a started job whose
// lease runs out and is retried through the outbox. The one exception is a
// job that runs longer than `early_ack_after`: its delivery is acked while it
// runs, because RabbitMQ would otherwise close the channel after its
// consumer_timeout; PostgreSQL's lease already owns the job from its start.
// Duplicates of any delivery are fenced by the attempt number.
//
// The library's rooms (worker/src/): pipeline/ (these threads' shared state
// and stages), broker/ (RabbitMQ), db/ (PostgreSQL), handlers/ (exec and
// http handlers), callbacks/ (delivery of taskq.callbacks), operations/
// (metrics, /healthz, logs) and command_line/ (the taskq-worker program's
// flags).
#include "taskq/worker.hpp"

#include <poll.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "broker/broker_consumer.hpp"
#include "broker/job_parser.hpp"
#include "callbacks/callback_dispatcher.hpp"
#include "core/backoff.hpp"
#include "db/job_store.hpp"
#include "operations/log.hpp"
#include "operations/metrics.hpp"
#include "operations/metrics_server.hpp"
#include "operations/worker_name.hpp"
#include "pipeline/db_retry.hpp"
#include "pipeline/in_flight.hpp"
#include "pipeline/topology.hpp"
#include "pipeline/wake_fd.hpp"

namespace taskq {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxBatch = 256;  // items per start/complete/heartbeat round trip
// Handlers quicker than this on average (recent jobs) get started ahead.
constexpr double kLookaheadBelowSeconds = 0.05;
// After the shutdown timeout, stopped handlers get this long to return and
// their outcomes to be recorded before the worker gives up on them (their
// leases then retry them).
constexpr auto kShutdownGrace = 10s;
// The prefetch follows the handlers' speed at most this often.
constexpr auto kPrefetchChangeEvery = 5s;
// An idle worker checks its database this often (for /healthz).
constexpr auto kIdlePingEvery = 5s;

// Internal threads expect no exceptions (database and broker failures are
// handled where they happen). Anything else is a bug or out of memory: log
// it and crash rather than run on in an unknown state; nothing is lost, since
// unacked deliveries are requeued and started jobs are retried after their
// lease.
template <typename Fn>
auto guarded(const char* thread, Fn fn) {
  return [thread, fn]() {
    try {
      fn();
    } catch (const std::exception& e) {
      log::error("{} thread: unexpected error: {}; aborting", thread, e.what());
      std::abort();
    }
  };
}

JobOutcome outcome_of_status(const std::optional<std::string>& status) {
  if (!status) return JobOutcome::kStale;
  if (*status == "pending") return JobOutcome::kRetried;
  if (*status == "cancelled") return JobOutcome::kCancelled;
  return JobOutcome::kFailed;
}

}  // namespace

struct Worker::Impl {
  WorkerOptions options;
  std::map<std::string, Handler> by_queue;
  std::map<std::string, Handler> by_task;
  Metrics metrics;

  WorkState state;
  WakeFd wake;
  std::atomic<bool> stopping{false};
  std::atomic<Clock::rep> give_up_recording_at{Clock::time_point::max().time_since_epoch().count()};
  std::atomic<std::uint64_t> generation{0};
  Topology topology;

  // --- starter -----------------------------------------------------------------

  // Quick: recent handlers finished in under kLookaheadBelowSeconds on
  // average, and none running now has taken longer than that. (The average
  // alone learns only from finished jobs, so it would not see a long job
  // that is running.) Caller holds state.mu.
  bool quick_handlers() const {
    if (state.recent_handler_seconds >= kLookaheadBelowSeconds) return false;
    const auto too_old = Clock::now() - std::chrono::duration<double>(kLookaheadBelowSeconds);
    for (const auto& [key, job] : state.in_flight)
      if (job->running_since && *job->running_since < too_old) return false;
    return true;
  }

  // How many more jobs may start now. Short jobs are started ahead of the
  // runners, up to `concurrency` of them: a start costs one round trip and
  // one commit whatever its batch size, so bigger batches are what make
  // thousands of short jobs per second possible. Long jobs are not started
  // ahead: a job shown `running` would wait behind another long job here
  // while other workers might be idle. Caller holds state.mu.
  int free_slots() const {
    const int lookahead = quick_handlers() ? options.concurrency : 0;
    return options.concurrency + lookahead - state.handlers_busy;
  }

  void queue_ack(const Delivery& d) {
    {
      std::lock_guard<std::mutex> lock(state.mu);
      state.acks.emplace_back(d.generation, d.tag);
    }
    wake.wake();
  }

  const Handler* handler_for(const Job& job) const {
    if (!job.task.empty()) {
      auto t = by_task.find(job.task);
      if (t != by_task.end()) return &t->second;
    }
    auto q = by_queue.find(job.queue);
    return q == by_queue.end() ? nullptr : &q->second;
  }

  void starter_loop() {
    JobStore store(options.database, options.name);
    for (;;) {
      std::vector<Delivery> batch;
      {
        std::unique_lock<std::mutex> lock(state.mu);
        state.starter_cv.wait(lock,
                              [&] { return state.stop_starting || (!state.pending.empty() && free_slots() > 0); });
        // Pending deliveries are never acked now: the broker requeues them
        // when the connection closes.
        if (state.stop_starting) return;
        const auto n = std::min<std::size_t>({state.pending.size(), static_cast<std::size_t>(free_slots()), kMaxBatch});
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(state.pending.front()));
          state.pending.pop_front();
        }
        // Reserve the slots while the start is under way.
        state.handlers_busy += static_cast<int>(n);
        state.starting = true;
      }
      const int reserved = static_cast<int>(batch.size());
      const int used = start_batch(store, batch);
      std::lock_guard<std::mutex> lock(state.mu);
      state.handlers_busy -= reserved - used;
      state.starting = false;
      state.changed_cv.notify_all();  // shutdown waits for this
    }
  }

  // Starts what it can of `batch`; returns how many jobs went to runners
  // (their slots stay reserved until their handlers return).
  int start_batch(JobStore& store, std::vector<Delivery>& batch) {
    std::vector<std::pair<Delivery*, Job>> valid;
    for (auto& d : batch) {
      std::string error;
      auto job = parse_job_message(d.body, d.queue, &error);
      if (!job) {
        log::error(log::JobRef::queue_only(d.queue), "dropping a malformed message: {}", error);
        metrics.delivery_dropped(d.queue, DropReason::kMalformed);
        queue_ack(d);
        continue;
      }
      valid.emplace_back(&d, std::move(*job));
    }
    if (valid.empty()) return 0;

    std::vector<AttemptRef> items;
    for (const auto& [d, job] : valid) items.push_back({job.id, job.attempt});
    std::vector<std::optional<StartedJob>> started;
    try {
      const bool ok = retrying(
          metrics, "starting jobs", [&] { started = store.start(items); }, [&] { return stopping.load(); });
      if (!ok) return 0;  // shutting down: not acked, the broker requeues them
    } catch (const DbError& e) {
      // Something in the batch is refused outright (a bug, or a message the
      // parser let through): find it by starting them one at a time.
      log::warn("database: starting a batch of {} failed: {}; starting them one by one", items.size(), e.what());
      started.assign(items.size(), std::nullopt);
      for (std::size_t n = 0; n < items.size(); ++n) {
        try {
          if (!retrying(
                  metrics, "starting a job", [&] { started[n] = store.start({items[n]})[0]; },
                  [&] { return stopping.load(); }))
            valid[n].first = nullptr;  // shutting down: left unacked, the broker requeues it
        } catch (const DbError& single) {
          log::error(valid[n].second, "dropping a message the database refuses: {}", single.what());
          metrics.delivery_dropped(valid[n].second.queue, DropReason::kMalformed);
          queue_ack(*valid[n].first);
          valid[n].first = nullptr;
        }
      }
    }

    int used = 0;
    const auto now = Clock::now();
    for (std::size_t n = 0; n < valid.size(); ++n) {
      auto& [delivery, job] = valid[n];
      if (delivery == nullptr) continue;
      if (!started[n]) {
        log::info(job, "stale delivery dropped");
        metrics.delivery_dropped(job.queue, DropReason::kStale);
        queue_ack(*delivery);
        continue;
      }
      auto entry = std::make_unique<InFlight>();
      entry->delivery = std::move(*delivery);
      job.max_attempts = started[n]->max_attempts;
      entry->job = std::move(job);
      entry->handler = handler_for(entry->job);
      entry->started_at = now;
      entry->heartbeat_every = std::max<std::chrono::milliseconds>(started[n]->lease / 3, 100ms);
      entry->next_heartbeat = now + entry->heartbeat_every;
      log::info(entry->job, "started");
      metrics.job_started(entry->job.queue);
      std::lock_guard<std::mutex> lock(state.mu);
      InFlight* raw = entry.get();
      state.in_flight[entry->key()] = std::move(entry);
      state.runnable.push_back(raw);
      state.runner_cv.notify_one();
      ++used;
    }
    state.changed_cv.notify_all();  // the heartbeater plans the new jobs' heartbeats
    return used;
  }

  // --- runners -----------------------------------------------------------------

  void runner_loop() {
    for (;;) {
      InFlight* job;
      {
        std::unique_lock<std::mutex> lock(state.mu);
        state.runner_cv.wait(lock, [&] { return state.stop_runners || !state.runnable.empty(); });
        if (state.runnable.empty()) return;
        job = state.runnable.front();
        state.runnable.pop_front();
      }
      metrics.add_in_flight(1);
      const auto began = Clock::now();
      {
        std::lock_guard<std::mutex> lock(state.mu);
        job->running_since = began;
      }
      Outcome outcome = run_handler(*job);
      const double seconds = std::chrono::duration<double>(Clock::now() - began).count();
      metrics.add_in_flight(-1);
      std::lock_guard<std::mutex> lock(state.mu);
      --state.handlers_busy;
      // Moving average over roughly the last ten jobs.
      state.recent_handler_seconds = 0.9 * state.recent_handler_seconds + 0.1 * seconds;
      job->handler_done = true;
      job->running_since.reset();
      state.finished.push_back({job, std::move(outcome), seconds});
      state.finisher_cv.notify_one();
      state.starter_cv.notify_one();
    }
  }

  static Outcome run_handler(InFlight& job) {
    if (job.token.cancelled()) return Outcome::retry("stopped before it ran: " + job.token.reason());
    if (job.handler == nullptr) return Outcome::retry("no handler registered for this queue or task");
    try {
      return (*job.handler)(job.job, job.token);
    } catch (const std::exception& e) {
      return Outcome::retry(std::string("handler threw: ") + e.what());
    } catch (...) {
      return Outcome::retry("handler threw a non-standard exception");
    }
  }

  // --- finisher ----------------------------------------------------------------

  // Keep trying to record outcomes (every call is fenced, so a retry is
  // safe) unless shutdown is past its grace period: then the leases retry
  // the jobs instead.
  bool finisher_overdue() const {
    return stopping.load() && Clock::now().time_since_epoch().count() > give_up_recording_at.load();
  }

  void finisher_loop() {
    JobStore store(options.database, options.name);
    for (;;) {
      std::vector<FinishedJob> batch;
      {
        std::unique_lock<std::mutex> lock(state.mu);
        state.finisher_cv.wait(lock, [&] { return state.stop_finisher || !state.finished.empty(); });
        if (state.finished.empty()) return;
        while (!state.finished.empty() && batch.size() < kMaxBatch) {
          batch.push_back(std::move(state.finished.front()));
          state.finished.pop_front();
        }
      }
      std::vector<JobOutcome> outcomes(batch.size(), JobOutcome::kUnrecorded);
      record(store, batch, outcomes);
      {
        std::lock_guard<std::mutex> lock(state.mu);
        for (std::size_t n = 0; n < batch.size(); ++n) {
          InFlight* job = batch[n].job;
          // Unrecorded: not acked; the lease retries the job and the broker
          // redelivers the message, which then comes back stale.
          if (outcomes[n] != JobOutcome::kUnrecorded && !job->acked)
            state.acks.emplace_back(job->delivery.generation, job->delivery.tag);
          state.in_flight.erase(job->key());
        }
        state.changed_cv.notify_all();
      }
      wake.wake();
    }
  }

  void record(JobStore& store, std::vector<FinishedJob>& batch, std::vector<JobOutcome>& outcomes) {
    auto overdue = [&] { return finisher_overdue(); };

    std::vector<std::size_t> completed;
    std::vector<Completion> items;
    for (std::size_t n = 0; n < batch.size(); ++n) {
      if (batch[n].outcome.kind != Outcome::Kind::kCompleted) continue;
      completed.push_back(n);
      items.push_back({{batch[n].job->job.id, batch[n].job->job.attempt}, batch[n].outcome.result});
    }
    if (!items.empty()) {
      std::vector<bool> done;
      try {
        if (retrying(
                metrics, "recording completed jobs", [&] { done = store.complete(items); }, overdue)) {
          for (std::size_t k = 0; k < completed.size(); ++k)
            outcomes[completed[k]] = done[k] ? JobOutcome::kCompleted : JobOutcome::kStale;
        }
      } catch (const DbError& e) {
        // Refused as a whole (e.g. a result over the size limit): record
        // one by one; a result the database refuses fails its job for good.
        log::warn("database: recording {} completions failed: {}; recording them one by one", items.size(), e.what());
        for (std::size_t k = 0; k < completed.size(); ++k) {
          FinishedJob& f = batch[completed[k]];
          try {
            if (retrying(
                    metrics, "recording a completed job", [&] { done = store.complete({items[k]}); }, overdue))
              outcomes[completed[k]] = done[0] ? JobOutcome::kCompleted : JobOutcome::kStale;
          } catch (const DbError& single) {
            f.outcome = Outcome::failed(std::string("the result could not be recorded: ") + single.what());
          }
        }
      }
    }

    for (std::size_t n = 0; n < batch.size(); ++n) {
      FinishedJob& f = batch[n];
      if (f.outcome.kind == Outcome::Kind::kCompleted) continue;
      const AttemptRef ref{f.job->job.id, f.job->job.attempt};
      // Stopped by our shutdown, not by its own failure: the attempt does
      // not count (a deploy must not fail a job on its last attempt).
      const bool give_back = f.job->stopped_by_shutdown && f.outcome.kind == Outcome::Kind::kRetry;
      std::optional<std::string> status;
      try {
        if (retrying(
                metrics, "recording a failed job",
                [&] {
                  status = give_back ? store.give_back(ref, f.outcome.error)
                                     : store.fail(ref, f.outcome.error, f.outcome.retry_in,
                                                  f.outcome.kind == Outcome::Kind::kFailed);
                },
                overdue))
          outcomes[n] = outcome_of_status(status);
      } catch (const DbError& e) {
        log::error(f.job->job, "recording its failure failed: {}; its lease will retry it", e.what());
      }
    }

    for (std::size_t n = 0; n < batch.size(); ++n) {
      const FinishedJob& f = batch[n];
      const Job& job = f.job->job;
      metrics.job_finished(job.queue, outcomes[n], f.seconds);
      switch (outcomes[n]) {
        case JobOutcome::kCompleted:
          log::info(job, {{"seconds", f.seconds}}, "completed");
          break;
        case JobOutcome::kStale:
          log::warn(job, "outcome was stale (lease lost or cancelled meanwhile)");
          break;
        case JobOutcome::kUnrecorded:
          log::error(job, "outcome not recorded; its lease will retry it");
          break;
        default:
          log::warn(job, {{"seconds", f.seconds}}, "{}: {}", to_string(outcomes[n]), f.outcome.error);
      }
    }
  }

  // --- heartbeater -------------------------------------------------------------

  void heartbeat_loop() {
    JobStore store(options.database, options.name);
    auto last_contact = Clock::now();
    std::unique_lock<std::mutex> lock(state.mu);
    while (!state.stop_finisher) {
      const auto now = Clock::now();
      std::vector<AttemptRef> due;
      std::vector<std::string> keys;
      auto next_wake = now + 1s;
      for (auto& [key, job] : state.in_flight) {
        if (job->next_heartbeat <= now) {
          due.push_back({job->job.id, job->job.attempt});
          keys.push_back(key);
          job->next_heartbeat = now + job->heartbeat_every;
        }
        next_wake = std::min(next_wake, job->next_heartbeat);
        if (!job->acked && now - job->started_at >= options.early_ack_after) {
          // RabbitMQ would close the channel at its consumer_timeout; the
          // job is PostgreSQL's (lease) since its start.
          job->acked = true;
          state.acks.emplace_back(job->delivery.generation, job->delivery.tag);
          wake.wake();
          log::info(job->job, "still running after {}s: delivery acknowledged early", options.early_ack_after.count());
        }
      }
      if (!due.empty()) {
        lock.unlock();
        std::vector<bool> extended;
        bool ok = true;
        for (std::size_t from = 0; from < due.size() && ok; from += kMaxBatch) {
          const std::vector<AttemptRef> part(due.begin() + static_cast<long>(from),
                                             due.begin() + static_cast<long>(std::min(due.size(), from + kMaxBatch)));
          try {
            const auto got = store.heartbeat(part);
            extended.insert(extended.end(), got.begin(), got.end());
            metrics.set_connected("database", true);
          } catch (const DbError& e) {
            metrics.set_connected("database", false);
            // Try again soon; a lease is several heartbeats long.
            log::warn("database: heartbeat failed: {}", e.what());
            ok = false;
          }
        }
        lock.lock();
        last_contact = Clock::now();
        for (std::size_t n = 0; n < keys.size(); ++n) {
          auto it = state.in_flight.find(keys[n]);
          if (it == state.in_flight.end()) continue;  // finished meanwhile
          if (!ok) {
            it->second->next_heartbeat = std::min(it->second->next_heartbeat, Clock::now() + 1s);
          } else if (!extended[n] && !it->second->handler_done && !it->second->token.cancelled()) {
            it->second->token.cancel("cancel requested or lease lost");
            log::warn(it->second->job, "heartbeat refused (cancel requested or lease lost): stopping its handler");
          }
        }
        continue;
      }
      if (now - last_contact >= kIdlePingEvery) {
        // Nothing to heartbeat: still tell /healthz whether the database is there.
        lock.unlock();
        try {
          store.ping();
          metrics.set_connected("database", true);
        } catch (const DbError& e) {
          metrics.set_connected("database", false);
        }
        lock.lock();
        last_contact = Clock::now();
        continue;
      }
      state.changed_cv.wait_until(lock, std::min(next_wake, last_contact + kIdlePingEvery));
    }
  }

  // --- consumer ----------------------------------------------------------------

  std::unique_ptr<BrokerConsumer> connect_broker() {
    ConnectOptions connect;
    connect.connection_name = "taskq-worker " + options.name;
    auto consumer = std::make_unique<BrokerConsumer>(BrokerUrl::parse(options.broker), connect, topology.exchange,
                                                     topology.queues, wanted_prefetch(), ++generation);
    metrics.set_connected("broker", true);
    // Deliveries of the dead connection that were not started yet: the
    // broker has requeued them and delivers them again.
    std::lock_guard<std::mutex> lock(state.mu);
    auto& pending = state.pending;
    pending.erase(std::remove_if(pending.begin(), pending.end(),
                                 [&](const Delivery& d) { return d.generation != consumer->generation(); }),
                  pending.end());
    return consumer;
  }

  // Deliveries stay unacknowledged until their outcome commits, so the
  // prefetch must cover a start batch, a complete batch and their commit
  // round trips for short jobs to flow. For long jobs a deep prefetch would
  // only hoard messages here that an idle worker elsewhere could run. By
  // default it follows the handlers; --prefetch fixes it.
  int wanted_prefetch() {
    if (options.prefetch > 0) return std::min(options.prefetch, 65535);
    bool quick;
    {
      std::lock_guard<std::mutex> lock(state.mu);
      quick = quick_handlers();
    }
    return std::min(quick ? 16 * options.concurrency : 2 * options.concurrency, 65535);
  }

  void flush_acks(BrokerConsumer& consumer) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> batch;
    {
      std::lock_guard<std::mutex> lock(state.mu);
      batch.swap(state.acks);
    }
    for (const auto& [gen, tag] : batch)
      if (gen == consumer.generation()) consumer.ack(tag);  // others died with their connection
  }

  // Waits until the socket has data, acks are queued, stop() was called, or
  // `timeout` passed. rabbitmq-c is called at least every second, which is
  // what sends and checks AMQP heartbeats.
  void wait_for_events(const BrokerConsumer* consumer, std::chrono::milliseconds timeout) {
    if (consumer != nullptr && consumer->has_buffered_data()) return;
    pollfd fds[2] = {{wake.fd(), POLLIN, 0}, {consumer ? consumer->socket_fd() : -1, POLLIN, 0}};
    poll(fds, consumer ? 2 : 1, static_cast<int>(std::min<std::chrono::milliseconds>(timeout, 1s).count()));
    wake.drain();
  }

  void take_delivery(Delivery&& d) {
    std::lock_guard<std::mutex> lock(state.mu);
    if (state.stop_starting) return;  // shutting down: the broker requeues it at close
    state.pending.push_back(std::move(d));
    state.starter_cv.notify_one();
  }

  void consume(std::unique_ptr<BrokerConsumer>& consumer) {
    Backoff reconnect(BackoffPolicy{200ms, 30s, 0.5});
    auto retry_at = Clock::now();
    auto last_prefetch_change = Clock::now() - kPrefetchChangeEvery;
    while (!stopping.load()) {
      try {
        if (!consumer) {
          if (Clock::now() < retry_at) {
            wait_for_events(nullptr, std::chrono::duration_cast<std::chrono::milliseconds>(retry_at - Clock::now()));
            continue;
          }
          consumer = connect_broker();
          metrics.reconnected("broker");
          log::info("broker: connected again, consuming {} queue(s)", topology.queues.size());
          reconnect.reset();
        }
        flush_acks(*consumer);
        // A change re-subscribes (see set_prefetch); a mix of quick and slow
        // jobs must not make that happen all the time.
        if (const int prefetch = wanted_prefetch();
            prefetch != consumer->prefetch() && Clock::now() - last_prefetch_change >= kPrefetchChangeEvery) {
          last_prefetch_change = Clock::now();
          consumer->set_prefetch(prefetch);
          log::info("broker: prefetch now {} ({} handlers)", prefetch,
                    prefetch > 2 * options.concurrency ? "quick" : "slow");
        }
        wait_for_events(consumer.get(), 1s);
        consumer->drain([this](Delivery&& d) { take_delivery(std::move(d)); });
      } catch (const std::exception& e) {
        if (consumer) consumer->close_quickly();  // a half-open socket must not hold us up
        consumer.reset();
        metrics.set_connected("broker", false);
        const auto delay = reconnect.next();
        retry_at = Clock::now() + delay;
        log::warn("broker: {}; reconnecting in {} ms", e.what(), delay.count());
      }
    }
  }

  // --- start-up and shutdown ---------------------------------------------------

  void run() {
    if (options.database.empty()) throw StartupError("no database given (--database or TASKQ_DATABASE_URL)");
    if (options.broker.empty()) throw StartupError("no broker given (--broker or TASKQ_BROKER_URL)");
    if (by_queue.empty()) throw StartupError("no handler registered (--handler QUEUE=...)");
    if (options.concurrency < 1) throw StartupError("concurrency must be at least 1");
    if (options.name.empty()) options.name = default_worker_name();
    // First, so that a bad or busy address fails the start (exit 2) rather
    // than going unnoticed; /healthz says 503 until both connections are up.
    std::unique_ptr<MetricsServer> metrics_server;
    if (!options.metrics_addr.empty()) {
      metrics_server = std::make_unique<MetricsServer>(options.metrics_addr, metrics);
      log::info("serving /metrics and /healthz on {}", metrics_server->address());
    }
    topology = look_up_topology(options.database, by_queue, metrics);
    std::unique_ptr<BrokerConsumer> consumer;
    try {
      consumer = connect_broker();
    } catch (const std::invalid_argument& e) {
      throw StartupError(std::string("bad broker URL: ") + e.what());
    } catch (const std::exception& e) {
      throw StartupError(e.what());
    }
    log::info("taskq-worker {} consuming {} queue(s) with concurrency {}", options.name, topology.queues.size(),
              options.concurrency);

    std::vector<std::thread> runners;
    for (int i = 0; i < options.concurrency; ++i) runners.emplace_back(guarded("runner", [this] { runner_loop(); }));
    std::thread starter(guarded("starter", [this] { starter_loop(); }));
    std::thread finisher(guarded("finisher", [this] { finisher_loop(); }));
    std::thread heartbeater(guarded("heartbeater", [this] { heartbeat_loop(); }));
    // Callbacks of finished jobs (taskq.callbacks), from this process too;
    // rows are leased, so any number of workers share them.
    std::atomic<bool> stop_callbacks{false};
    CallbackDispatcher callbacks(options.database, options.name, options.callbacks, &metrics);
    std::thread callback_thread(guarded("callbacks", [&] { callbacks.run(stop_callbacks); }));

    consume(consumer);
    shutdown(consumer);

    {
      std::lock_guard<std::mutex> lock(state.mu);
      state.stop_runners = true;
      state.stop_finisher = true;
    }
    state.runner_cv.notify_all();
    state.finisher_cv.notify_all();
    state.changed_cv.notify_all();
    for (auto& t : runners) t.join();
    starter.join();
    finisher.join();
    heartbeater.join();
    // Last, so that callbacks of the jobs that just finished can still go
    // out from here (each POST in flight is bounded by its timeout).
    stop_callbacks = true;
    callback_thread.join();
    if (consumer) {
      try {
        flush_acks(*consumer);
      } catch (const std::exception&) {
      }
      consumer->close();
    }
    log::info("stopped");
  }

  // Stops taking work, lets in-flight jobs finish within the shutdown
  // timeout, then stops their handlers; returns when every in-flight job's
  // outcome is recorded (or given up on).
  void shutdown(std::unique_ptr<BrokerConsumer>& consumer) {
    std::size_t running;
    {
      std::lock_guard<std::mutex> lock(state.mu);
      state.stop_starting = true;
      state.pending.clear();
      running = state.in_flight.size();
    }
    state.starter_cv.notify_all();
    if (consumer) consumer->cancel_consumers();
    log::info("stopping: waiting up to {}s for {} running job(s)", options.shutdown_timeout.count(), running);

    const auto deadline = Clock::now() + options.shutdown_timeout;
    bool cancelled = false;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(state.mu);
        // A start already sent may still commit; the jobs it starts are ours
        // to run (else they would sit "running" until their lease, their
        // attempt spent without a run).
        if (state.in_flight.empty() && !state.starting) break;
        if (Clock::now() >= deadline) {
          // Every round: a start that committed late adds jobs after the first.
          for (auto& [key, job] : state.in_flight) {
            if (job->handler_done || job->token.cancelled()) continue;
            job->stopped_by_shutdown = true;  // its attempt is given back, not counted
            job->token.cancel("the worker is shutting down");
          }
          if (!cancelled)
            log::warn("stopping: {} job(s) still running after {}s; stopping them (they will be retried)",
                      state.in_flight.size(), options.shutdown_timeout.count());
          cancelled = true;
        }
        if (cancelled && Clock::now() >= deadline + kShutdownGrace) {
          log::error("stopping: {} job(s) did not stop in time; their leases will retry them", state.in_flight.size());
          break;
        }
      }
      // Keep acknowledging what finishes; deliveries still on the wire are
      // left unacked (requeued at close).
      if (consumer) {
        try {
          flush_acks(*consumer);
          wait_for_events(consumer.get(), 100ms);
          consumer->drain([](Delivery&&) {});
        } catch (const std::exception& e) {
          log::warn("broker: {} while stopping; outcomes are recorded, unacked messages come back stale", e.what());
          consumer->close_quickly();
          consumer.reset();
        }
      } else {
        std::unique_lock<std::mutex> lock(state.mu);
        state.changed_cv.wait_for(lock, 100ms);
      }
    }
  }
};

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<Impl>()) { impl_->options = std::move(options); }
Worker::~Worker() = default;

void Worker::handle_queue(const std::string& queue, Handler handler) { impl_->by_queue[queue] = std::move(handler); }
void Worker::handle_task(const std::string& task, Handler handler) { impl_->by_task[task] = std::move(handler); }

void Worker::run() { impl_->run(); }

std::string Worker::metrics_text() const { return impl_->metrics.render(); }

void Worker::stop() {
  if (!impl_->stopping.load())
    impl_->give_up_recording_at.store(
        (Clock::now() + impl_->options.shutdown_timeout + kShutdownGrace).time_since_epoch().count());
  impl_->stopping.store(true);
  impl_->wake.wake();
}

}  // namespace taskq
