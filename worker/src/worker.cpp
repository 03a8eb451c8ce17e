// taskq::Worker: the threads of one worker process and how a delivery moves
// through them (pipeline/in_flight.hpp draws the picture). This file only
// wires the stages of worker/src/pipeline together: it checks the options,
// starts the threads and runs the shutdown sequence.
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

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "callbacks/callback_dispatcher.hpp"
#include "operations/connection_events.hpp"
#include "operations/log.hpp"
#include "operations/metrics.hpp"
#include "operations/metrics_server.hpp"
#include "operations/worker_name.hpp"
#include "pipeline/consumer.hpp"
#include "pipeline/finisher.hpp"
#include "pipeline/heartbeater.hpp"
#include "pipeline/in_flight.hpp"
#include "pipeline/runners.hpp"
#include "pipeline/shutdown.hpp"
#include "pipeline/starter.hpp"
#include "pipeline/topology.hpp"
#include "pipeline/wake_fd.hpp"

namespace taskq {
namespace {

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

// After the shutdown's last wait, runners whose handler returned leave at
// once; this is only their time to get there.
constexpr std::chrono::milliseconds kRunnersExitWait{200};

}  // namespace

// Shared with the runner threads: a runner whose handler ignores its token
// past the shutdown's grace period is left running after run() returns
// (detached), and everything it touches when the handler does return (the
// WorkState with its InFlight, the Metrics, the Handler) lives here, so the
// Worker may be destroyed meanwhile; the last runner to go frees it.
struct Worker::Impl : std::enable_shared_from_this<Impl> {
  WorkerOptions options;
  std::map<std::string, Handler> by_queue;
  std::map<std::string, Handler> by_task;
  std::vector<Middleware> middleware;  // outermost first
  Metrics metrics;
  ConnectionEvents connection_events;

  WorkState state;
  WakeFd wake;
  StopRequest stop;

  void check_options() {
    if (options.database.empty()) throw StartupError("no database given (--database or TASKQ_DATABASE_URL)");
    if (options.broker.empty()) throw StartupError("no broker given (--broker or TASKQ_BROKER_URL)");
    if (by_queue.empty()) throw StartupError("no handler registered (--handler QUEUE=...)");
    if (options.concurrency < 1) throw StartupError("concurrency must be at least 1");
    if (options.name.empty()) options.name = default_worker_name();
  }

  void run() {
    check_options();
    // First, so that a bad or busy address fails the start (exit 2) rather
    // than going unnoticed; /healthz says 503 until both connections are up.
    std::unique_ptr<MetricsServer> metrics_server;
    if (!options.metrics_addr.empty()) metrics_server = std::make_unique<MetricsServer>(options.metrics_addr, metrics);
    const Topology topology = look_up_topology(options.database, by_queue, metrics);
    Consumer consumer(options, topology, state, wake, stop, metrics, connection_events);
    try {
      consumer.connect();
    } catch (const std::invalid_argument& e) {
      throw StartupError(std::string("bad broker URL: ") + e.what());
    } catch (const std::exception& e) {
      throw StartupError(e.what());
    }
    log::info("taskq-worker {} consuming {} queue(s) with concurrency {}", options.name, topology.queues.size(),
              options.concurrency);

    Starter starter(options, by_queue, by_task, state, wake, stop, metrics, connection_events);
    Finisher finisher(options, state, wake, stop, metrics, connection_events);
    Heartbeater heartbeater(options, state, wake, metrics, connection_events);
    std::vector<std::thread> runner_threads;
    state.runners_running = options.concurrency;
    for (int i = 0; i < options.concurrency; ++i)
      runner_threads.emplace_back(guarded(
          "runner", [self = shared_from_this()] { Runners(self->state, self->metrics, self->middleware).run(); }));
    std::thread starter_thread(guarded("starter", [&starter] { starter.run(); }));
    std::thread finisher_thread(guarded("finisher", [&finisher] { finisher.run(); }));
    std::thread heartbeater_thread(guarded("heartbeater", [&heartbeater] { heartbeater.run(); }));
    // Callbacks of finished jobs (taskq.callbacks), from this process too;
    // rows are leased, so any number of workers share them.
    std::atomic<bool> stop_callbacks{false};
    CallbackDispatcher callbacks(options.database, options.name, options.callbacks, &metrics, &connection_events);
    std::thread callback_thread(guarded("callbacks", [&] { callbacks.run(stop_callbacks); }));

    consumer.run();
    let_in_flight_finish(options, state, consumer);

    {
      std::lock_guard<std::mutex> lock(state.mu);
      state.stop_runners = true;
      state.stop_finisher = true;
    }
    state.runner_cv.notify_all();
    state.finisher_cv.notify_all();
    state.changed_cv.notify_all();
    stop_runners(runner_threads);
    starter_thread.join();
    finisher_thread.join();
    heartbeater_thread.join();
    // Last, so that callbacks of the jobs that just finished can still go
    // out from here (each POST in flight is bounded by its timeout).
    stop_callbacks = true;
    callback_thread.join();
    consumer.close();
    log::info("stopped");
  }

  // Joins the runner threads, or, if a handler is still running (shutdown
  // gave up on it), leaves them all running detached; each holds a
  // reference to this Impl. The jobs they hold are left to their leases.
  void stop_runners(std::vector<std::thread>& threads) {
    {
      std::unique_lock<std::mutex> lock(state.mu);
      if (!state.changed_cv.wait_for(lock, kRunnersExitWait, [&] { return state.runners_running == 0; })) {
        // Started but not picked up (every runner is stuck): these never
        // ran, and must not once a stuck runner comes back.
        const std::set<InFlight*> never_ran(state.runnable.begin(), state.runnable.end());
        state.runnable.clear();
        for (auto& [key, job] : state.in_flight) {
          if (job->handler_done) continue;
          job->abandoned = true;
          if (never_ran.count(job.get()) != 0) continue;
          ++state.abandoned_handlers;  // a runner holds it
          log::error(job->job,
                     "handler still running after the shutdown's grace period; leaving it behind, its lease will "
                     "retry the job");
        }
        for (auto& t : threads) t.detach();
        return;
      }
    }
    for (auto& t : threads) t.join();
  }
};

Worker::Worker(WorkerOptions options) : impl_(std::make_shared<Impl>()) { impl_->options = std::move(options); }
Worker::~Worker() = default;

void Worker::handle_queue(const std::string& queue, Handler handler) { impl_->by_queue[queue] = std::move(handler); }
void Worker::handle_task(const std::string& task, Handler handler) { impl_->by_task[task] = std::move(handler); }
void Worker::use(Middleware middleware) { impl_->middleware.push_back(std::move(middleware)); }
void Worker::on_connection_event(ConnectionListener listener) { impl_->connection_events.add(std::move(listener)); }

void Worker::run() { impl_->run(); }

std::string Worker::metrics_text() const { return impl_->metrics.render(); }

int Worker::handlers_still_running() const {
  std::lock_guard<std::mutex> lock(impl_->state.mu);
  return impl_->state.abandoned_handlers;
}

void Worker::stop() {
  impl_->stop.request(impl_->options.shutdown_timeout);
  impl_->wake.wake();
}

}  // namespace taskq
