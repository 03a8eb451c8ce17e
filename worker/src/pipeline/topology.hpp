// What a worker consumes, looked up once at start: the exchange
// (taskq.exchange) and the type of every queue it has a handler for, so
// that the broker side is declared exactly as the publisher declares it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "broker/broker_consumer.hpp"
#include "operations/metrics.hpp"
#include "taskq/worker.hpp"

namespace taskq {

struct Topology {
  std::string exchange = "taskq";
  std::vector<ConsumedQueue> queues;
};

// Throws StartupError when the database cannot be reached, taskq is not
// installed there, or a handled queue does not exist.
Topology look_up_topology(const std::string& database, const std::map<std::string, Handler>& by_queue,
                          Metrics& metrics);

}  // namespace taskq
