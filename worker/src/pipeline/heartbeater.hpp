// The heartbeater stage: extends the leases of in-flight jobs
// (taskq._heartbeat_batch), stops the handlers of the ones whose heartbeat
// is refused (cancel requested, lease lost), acks long jobs early, and
// pings the database while idle so that /healthz knows it is there.
#pragma once

#include "operations/connection_events.hpp"
#include "operations/metrics.hpp"
#include "pipeline/in_flight.hpp"
#include "pipeline/wake_fd.hpp"
#include "taskq/worker.hpp"

namespace taskq {

class Heartbeater {
 public:
  // All references must outlive the heartbeater.
  Heartbeater(const WorkerOptions& options, WorkState& state, const WakeFd& wake, Metrics& metrics,
              ConnectionEvents& events)
      : options_(options),
        state_(state),
        wake_(wake),
        metrics_(metrics),
        watch_(&events, ConnectionEvent::Service::kDatabase, "heartbeater") {}

  // The heartbeater thread; returns once shutdown stops the finisher.
  void run();

 private:
  const WorkerOptions& options_;
  WorkState& state_;
  const WakeFd& wake_;
  Metrics& metrics_;
  ConnectionWatch watch_;  // its database connection
};

}  // namespace taskq
