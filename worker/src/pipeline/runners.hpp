// The runner stage: `concurrency` threads, each taking started jobs from
// WorkState::runnable, running their handler inside the program's
// middleware (Worker::use), and handing the outcome to the finisher. An
// exception from the handler or a middleware becomes a retryable failure. A
// runner whose handler shutdown gave up on may return after run() did: it
// then drops the outcome (see worker.cpp for what keeps its state alive).
#pragma once

#include <vector>

#include "operations/metrics.hpp"
#include "pipeline/in_flight.hpp"
#include "taskq/worker.hpp"

namespace taskq {

class Runners {
 public:
  // The references must outlive the runners. `middleware`: outermost first.
  Runners(WorkState& state, Metrics& metrics, const std::vector<Middleware>& middleware)
      : state_(state), metrics_(metrics), middleware_(middleware) {}

  // One runner thread (every runner thread runs this); returns once
  // shutdown stops the runners and nothing is left to run.
  void run();

 private:
  Outcome run_handler(InFlight& job) const;

  WorkState& state_;
  Metrics& metrics_;
  const std::vector<Middleware>& middleware_;
};

}  // namespace taskq
