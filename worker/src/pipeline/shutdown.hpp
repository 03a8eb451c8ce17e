// How a worker stops. stop() raises the StopRequest that the stages watch:
// the consumer stops reading, the starter gives up retrying a start, the
// finisher keeps recording outcomes until the grace period is over. run()
// then waits in let_in_flight_finish for the jobs already started.
#pragma once

#include <atomic>
#include <chrono>

#include "pipeline/in_flight.hpp"
#include "taskq/worker.hpp"

namespace taskq {

class Consumer;

// After the shutdown timeout, stopped handlers get this long to return and
// their outcomes to be recorded before the worker gives up on them (their
// leases then retry them).
inline constexpr std::chrono::seconds kShutdownGrace{10};

class StopRequest {
 public:
  // Thread-safe. The first call fixes when recording outcomes stops.
  void request(std::chrono::seconds shutdown_timeout) {
    if (!requested_.load())
      give_up_recording_at_.store((Clock::now() + shutdown_timeout + kShutdownGrace).time_since_epoch().count());
    requested_.store(true);
  }
  bool requested() const { return requested_.load(); }
  // Keep trying to record outcomes (every call is fenced, so a retry is
  // safe) unless shutdown is past its grace period: then the leases retry
  // the jobs instead.
  bool past_recording_deadline() const {
    return requested_.load() && Clock::now().time_since_epoch().count() > give_up_recording_at_.load();
  }

 private:
  std::atomic<bool> requested_{false};
  std::atomic<Clock::rep> give_up_recording_at_{Clock::time_point::max().time_since_epoch().count()};
};

// Stops taking work, lets in-flight jobs finish within the shutdown
// timeout, then stops their handlers; returns when every in-flight job's
// outcome is recorded (or given up on).
void let_in_flight_finish(const WorkerOptions& options, WorkState& state, Consumer& consumer);

}  // namespace taskq
