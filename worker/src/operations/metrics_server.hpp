// The worker's HTTP endpoint for monitoring (--metrics-addr HOST:PORT):
//   GET /metrics  the Metrics registry, Prometheus text format 0.0.4
//   GET /healthz  200 while the broker and database connections are both
//                 up, else 503; a small JSON body says which is down
// Anything else is 404. It serves from its own small thread pool, so a slow
// scraper never holds up jobs.
#pragma once

#include <memory>
#include <string>

#include "operations/metrics.hpp"

namespace taskq {

class MetricsServer {
 public:
  // Binds and starts serving. Throws StartupError (one line: what, where,
  // why) when the address is malformed, does not resolve, or is in use.
  // PORT 0 picks a free port; port() tells which. `metrics` must outlive
  // the server. [::] listens on IPv6 and IPv4 alike.
  MetricsServer(const std::string& host_port, const Metrics& metrics);
  // Stops accepting, finishes the request being served, joins the threads.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const;
  // HOST:PORT actually bound (with the real port when 0 was asked for).
  std::string address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// /healthz's answer for the current state: {status code, JSON body}.
std::pair<int, std::string> health_response(const Metrics& metrics);

}  // namespace taskq
