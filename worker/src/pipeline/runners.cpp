// See runners.hpp.
#include "pipeline/runners.hpp"

#include <exception>
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

namespace {

// One call of the chain: middleware i, or the handler after the last. An
// exception the handler throws is remembered, so that the runner can tell
// it from one a middleware throws (which may also be the handler's,
// rethrown: then it is the same object).
struct Chain {
  const std::vector<Middleware>& middleware;
  const Handler& handler;
  const Job& job;
  const CancellationToken& token;
  std::exception_ptr handler_error;

  Outcome call(std::size_t i) {
    if (i == middleware.size()) {
      try {
        return handler(job, token);
      } catch (...) {
        handler_error = std::current_exception();
        throw;
      }
    }
    const Next next = [this, i] { return call(i + 1); };
    return middleware[i](job, token, next);
  }
};

}  // namespace

Outcome Runners::run_handler(InFlight& job) const {
  if (job.token.cancelled()) return Outcome::retry("stopped before it ran: " + job.token.reason());
  if (job.handler == nullptr) return Outcome::retry("no handler registered for this queue or task");
  Chain chain{middleware_, *job.handler, job.job, job.token, nullptr};
  try {
    return chain.call(0);  // without middleware: the handler alone
  } catch (const std::exception& e) {
    const bool handler = chain.handler_error == std::current_exception();
    return Outcome::retry(std::string(handler ? "handler threw: " : "middleware threw: ") + e.what());
  } catch (...) {
    const bool handler = chain.handler_error == std::current_exception();
    return Outcome::retry(handler ? "handler threw a non-standard exception"
                                  : "middleware threw a non-standard exception");
  }
}

}  // namespace taskq
