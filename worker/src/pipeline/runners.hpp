// The runner stage: `concurrency` threads, each taking started jobs from
// WorkState::runnable, running their handler, and handing the outcome to
// the finisher. A handler's exception becomes a retryable failure. A
// runner whose handler shutdown gave up on may return after run() did: it
// then drops the outcome (see worker.cpp for what keeps its state alive).
#pragma once

#include "operations/metrics.hpp"
#include "pipeline/in_flight.hpp"
#include "taskq/worker.hpp"

namespace taskq {

class Runners {
 public:
  // Both references must outlive the runners.
  Runners(WorkState& state, Metrics& metrics) : state_(state), metrics_(metrics) {}

  // One runner thread (every runner thread runs this); returns once
  // shutdown stops the runners and nothing is left to run.
  void run();

 private:
  static Outcome run_handler(InFlight& job);

  WorkState& state_;
  Metrics& metrics_;
};

}  // namespace taskq
