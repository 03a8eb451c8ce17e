// See shutdown.hpp.
#include "pipeline/shutdown.hpp"

#include <mutex>

#include "operations/log.hpp"
#include "pipeline/consumer.hpp"

namespace taskq {

using namespace std::chrono_literals;

void let_in_flight_finish(const WorkerOptions& options, WorkState& state, Consumer& consumer) {
  std::size_t running;
  {
    std::lock_guard<std::mutex> lock(state.mu);
    state.stop_starting = true;
    state.pending.clear();
    running = state.in_flight.size();
  }
  state.starter_cv.notify_all();
  consumer.cancel_consumers();
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
    if (!consumer.acknowledge_while_stopping(100ms)) {
      std::unique_lock<std::mutex> lock(state.mu);
      state.changed_cv.wait_for(lock, 100ms);
    }
  }
}

}  // namespace taskq
