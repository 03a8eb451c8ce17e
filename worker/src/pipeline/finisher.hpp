// The finisher stage: records the outcomes the runners hand over, in
// batches (taskq._complete_batch for completions, taskq.fail or
// taskq._give_back one by one for the rest), then queues their deliveries'
// acks and forgets the jobs.
#pragma once

#include <vector>

#include "db/job_store.hpp"
#include "operations/connection_events.hpp"
#include "operations/metrics.hpp"
#include "pipeline/in_flight.hpp"
#include "pipeline/shutdown.hpp"
#include "pipeline/wake_fd.hpp"
#include "taskq/worker.hpp"

namespace taskq {

class Finisher {
 public:
  // All references must outlive the finisher.
  Finisher(const WorkerOptions& options, WorkState& state, const WakeFd& wake, const StopRequest& stop,
           Metrics& metrics, ConnectionEvents& events)
      : options_(options),
        state_(state),
        wake_(wake),
        stop_(stop),
        metrics_(metrics),
        watch_(&events, ConnectionEvent::Service::kDatabase, "finisher") {}

  // The finisher thread; returns once shutdown stops it and nothing is left
  // to record.
  void run();

 private:
  void record(JobStore& store, std::vector<FinishedJob>& batch, std::vector<JobOutcome>& outcomes);

  const WorkerOptions& options_;
  WorkState& state_;
  const WakeFd& wake_;
  const StopRequest& stop_;
  Metrics& metrics_;
  ConnectionWatch watch_;  // its database connection
};

}  // namespace taskq
