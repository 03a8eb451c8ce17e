// See runners.hpp.
#include "pipeline/runners.hpp"

#include <mutex>

#include "operations/log.hpp"

namespace taskq {

void Runners::run() {
  for (;;) {
    InFlight* job;
    {
      std::unique_lock<std::mutex> lock(state_.mu);
      state_.runner_cv.wait(lock, [&] { return state_.stop_runners || !state_.runnable.empty(); });
      if (state_.runnable.empty()) {
        --state_.runners_running;
        state_.changed_cv.notify_all();
        return;
      }
      job = state_.runnable.front();
      state_.runnable.pop_front();
    }
    metrics_.add_in_flight(1);
    const auto began = Clock::now();
    {
      std::lock_guard<std::mutex> lock(state_.mu);
      job->running_since = began;
    }
    Outcome outcome = run_handler(*job);
    const double seconds = std::chrono::duration<double>(Clock::now() - began).count();
    metrics_.add_in_flight(-1);
    std::lock_guard<std::mutex> lock(state_.mu);
    --state_.handlers_busy;
    // Moving average over roughly the last ten jobs.
    state_.recent_handler_seconds = 0.9 * state_.recent_handler_seconds + 0.1 * seconds;
    job->handler_done = true;
    job->running_since.reset();
    if (job->abandoned) {
      // run() has returned; the lease retries the job, perhaps already has.
      --state_.abandoned_handlers;
      log::warn(job->job, "handler returned {:.1f}s after it started, after the worker gave up on it: outcome dropped",
                seconds);
      continue;
    }
    state_.finished.push_back({job, std::move(outcome), seconds});
    state_.finisher_cv.notify_one();
    state_.starter_cv.notify_one();
  }
}

Outcome Runners::run_handler(InFlight& job) {
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

}  // namespace taskq
