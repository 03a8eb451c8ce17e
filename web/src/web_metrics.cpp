// See web_metrics.hpp.
#include "web_metrics.hpp"

#include <fmt/format.h>

#include "db_session.hpp"

namespace taskq::web {

void WebMetrics::request_done(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{route, status}];
  Histogram& h = durations_[route];
  std::size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  if (b < kBuckets.size()) ++h.buckets[b];
  ++h.count;
  h.sum += seconds;
}

void WebMetrics::auth_failed(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++auth_failures_[reason];
}

std::string WebMetrics::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out += "# HELP taskq_web_requests_total HTTP requests answered, by route and status.\n";
  out += "# TYPE taskq_web_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += fmt::format("taskq_web_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  out += "# HELP taskq_web_request_duration_seconds Time from reading a request to its answer, by route.\n";
  out += "# TYPE taskq_web_request_duration_seconds histogram\n";
  for (const auto& [route, h] : durations_) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += h.buckets[b];
      out += fmt::format("taskq_web_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n", route, kBuckets[b],
                         cumulative);
    }
    out += fmt::format("taskq_web_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n", route, h.count);
    out += fmt::format("taskq_web_request_duration_seconds_sum{{route=\"{}\"}} {}\n", route, h.sum);
    out += fmt::format("taskq_web_request_duration_seconds_count{{route=\"{}\"}} {}\n", route, h.count);
  }
  out += "# HELP taskq_web_db_statements_total SQL statements sent to the database.\n";
  out += "# TYPE taskq_web_db_statements_total counter\n";
  out += fmt::format("taskq_web_db_statements_total {}\n", statements_run());
  out += "# HELP taskq_web_auth_failures_total Requests refused for their token, session or origin.\n";
  out += "# TYPE taskq_web_auth_failures_total counter\n";
  for (const char* reason : {"missing_token", "unknown_token", "forbidden", "csrf", "cross_origin", "host"}) {
    const auto found = auth_failures_.find(reason);
    out += fmt::format("taskq_web_auth_failures_total{{reason=\"{}\"}} {}\n", reason,
                       found == auth_failures_.end() ? 0 : found->second);
  }
  return out;
}

}  // namespace taskq::web
