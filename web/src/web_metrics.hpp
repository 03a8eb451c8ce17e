// taskq-web's own metrics, rendered for GET /metrics in the Prometheus
// text format 0.0.4:
//   taskq_web_requests_total{route,status}             counter
//   taskq_web_request_duration_seconds{route}          histogram
//   taskq_web_auth_failures_total{reason}              counter (missing_token,
//                                                      unknown_token, forbidden, csrf,
//                                                      cross_origin, host)
//   taskq_web_db_statements_total                      counter
// `route` is the route's template ("GET /v1/jobs/{id}"), or "unmatched",
// so label values stay few whatever clients send. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace taskq::web {

class WebMetrics {
 public:
  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1,    2.5,   10};

  void request_done(const std::string& route, int status, double seconds);
  void auth_failed(const std::string& reason);

  std::string render() const;

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> buckets{};  // non-cumulative
    std::uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Histogram> durations_;
  std::map<std::string, std::uint64_t> auth_failures_;
};

}  // namespace taskq::web
