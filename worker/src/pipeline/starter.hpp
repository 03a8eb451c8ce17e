// The starter stage: takes pending deliveries, as many as there are free
// runner slots, and starts them in one taskq._start_batch round trip; the
// started jobs go to the runners with their handler looked up. Garbage and
// stale deliveries are acked and dropped at once.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/uuid_v7.hpp"
#include "db/job_store.hpp"
#include "operations/connection_events.hpp"
#include "operations/metrics.hpp"
#include "pipeline/in_flight.hpp"
#include "pipeline/shutdown.hpp"
#include "pipeline/wake_fd.hpp"
#include "taskq/worker.hpp"

namespace taskq {

class Starter {
 public:
  // All references must outlive the starter.
  Starter(const WorkerOptions& options, const std::map<std::string, Handler>& by_queue,
          const std::map<std::string, Handler>& by_task, WorkState& state, const WakeFd& wake, const StopRequest& stop,
          Metrics& metrics, ConnectionEvents& events)
      : options_(options),
        by_queue_(by_queue),
        by_task_(by_task),
        state_(state),
        wake_(wake),
        stop_(stop),
        metrics_(metrics),
        watch_(&events, ConnectionEvent::Service::kDatabase, "starter") {}

  // The starter thread; returns once shutdown stops starting.
  void run();

 private:
  int free_slots() const;
  void queue_ack(const Delivery& d);
  const Handler* handler_for(const Job& job) const;
  int start_batch(JobStore& store, std::vector<Delivery>& batch);

  const WorkerOptions& options_;
  const std::map<std::string, Handler>& by_queue_;
  const std::map<std::string, Handler>& by_task_;
  WorkState& state_;
  const WakeFd& wake_;
  const StopRequest& stop_;
  Metrics& metrics_;
  ConnectionWatch watch_;        // its database connection
  UuidV7Generator request_ids_;  // one per batch: its retries repeat it, a duplicate delivery does not
};

}  // namespace taskq
