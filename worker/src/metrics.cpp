// See metrics.hpp. Rendering follows the Prometheus text format: one
// # HELP and # TYPE line per family, label values escaped, histogram
// buckets cumulative with a final +Inf bucket.
#include "metrics.hpp"

#include <sstream>

namespace taskq {
namespace {

// Label values may hold any UTF-8; the format requires \ " and newline escaped.
std::string escape_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void family(std::ostringstream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

}  // namespace

const char* to_string(JobOutcome outcome) {
  switch (outcome) {
    case JobOutcome::kCompleted:
      return "completed";
    case JobOutcome::kRetried:
      return "retried";
    case JobOutcome::kFailed:
      return "failed";
    case JobOutcome::kCancelled:
      return "cancelled";
    case JobOutcome::kStale:
      return "stale";
    case JobOutcome::kUnrecorded:
      return "unrecorded";
  }
  return "unknown";
}

const char* to_string(DropReason reason) {
  switch (reason) {
    case DropReason::kMalformed:
      return "malformed";
    case DropReason::kStale:
      return "stale";
    case DropReason::kNoHandler:
      return "no_handler";
  }
  return "unknown";
}

const char* to_string(CallbackResult result) {
  switch (result) {
    case CallbackResult::kDelivered:
      return "delivered";
    case CallbackResult::kRetried:
      return "retried";
    case CallbackResult::kDead:
      return "dead";
  }
  return "unknown";
}

void Metrics::job_started(const std::string& queue) {
  std::lock_guard<std::mutex> lock(mu_);
  ++started_[queue];
}

void Metrics::job_finished(const std::string& queue, JobOutcome outcome, double handler_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++finished_[{queue, outcome}];
  Histogram& h = durations_[queue];
  std::size_t i = 0;
  while (i < kDurationBuckets.size() && handler_seconds > kDurationBuckets[i]) ++i;
  if (i < kDurationBuckets.size()) ++h.buckets[i];
  ++h.count;
  h.sum += handler_seconds;
}

void Metrics::delivery_dropped(const std::string& queue, DropReason reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++dropped_[{queue, reason}];
}

void Metrics::callback_finished(CallbackResult result) {
  std::lock_guard<std::mutex> lock(mu_);
  ++callbacks_[result];
}

void Metrics::reconnected(const std::string& service) {
  std::lock_guard<std::mutex> lock(mu_);
  ++reconnects_[service];
}

void Metrics::set_connected(const std::string& service, bool up) {
  std::lock_guard<std::mutex> lock(mu_);
  connected_[service] = up;
}

void Metrics::add_in_flight(int delta) {
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_ += delta;
}

bool Metrics::connected(const std::string& service) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = connected_.find(service);
  return it != connected_.end() && it->second;
}

long Metrics::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

std::string Metrics::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream out;
  out.precision(17);

  family(out, "taskq_worker_jobs_started_total", "counter", "Jobs this worker started (taskq.start returned the job).");
  for (const auto& [queue, n] : started_)
    out << "taskq_worker_jobs_started_total{queue=\"" << escape_label(queue) << "\"} " << n << '\n';

  family(out, "taskq_worker_jobs_finished_total", "counter",
         "Attempts this worker finished, by queue and outcome (completed, retried, failed, cancelled, stale, "
         "unrecorded).");
  for (const auto& [key, n] : finished_)
    out << "taskq_worker_jobs_finished_total{queue=\"" << escape_label(key.first) << "\",outcome=\""
        << to_string(key.second) << "\"} " << n << '\n';

  family(out, "taskq_worker_deliveries_dropped_total", "counter",
         "Deliveries acknowledged without running a job, by queue and reason.");
  for (const auto& [key, n] : dropped_)
    out << "taskq_worker_deliveries_dropped_total{queue=\"" << escape_label(key.first) << "\",reason=\""
        << to_string(key.second) << "\"} " << n << '\n';

  family(out, "taskq_worker_handler_duration_seconds", "histogram", "Time handlers ran, by queue.");
  for (const auto& [queue, h] : durations_) {
    const std::string q = escape_label(queue);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
      cumulative += h.buckets[i];
      out << "taskq_worker_handler_duration_seconds_bucket{queue=\"" << q << "\",le=\"" << kDurationBuckets[i] << "\"} "
          << cumulative << '\n';
    }
    out << "taskq_worker_handler_duration_seconds_bucket{queue=\"" << q << "\",le=\"+Inf\"} " << h.count << '\n';
    out << "taskq_worker_handler_duration_seconds_sum{queue=\"" << q << "\"} " << h.sum << '\n';
    out << "taskq_worker_handler_duration_seconds_count{queue=\"" << q << "\"} " << h.count << '\n';
  }

  family(out, "taskq_worker_callbacks_total", "counter",
         "Callback delivery attempts, by result (delivered, retried, dead).");
  for (const auto& [result, n] : callbacks_)
    out << "taskq_worker_callbacks_total{result=\"" << to_string(result) << "\"} " << n << '\n';

  family(out, "taskq_worker_reconnects_total", "counter", "Reconnections after a lost connection, by service.");
  for (const auto& [service, n] : reconnects_)
    out << "taskq_worker_reconnects_total{service=\"" << escape_label(service) << "\"} " << n << '\n';

  family(out, "taskq_worker_connected", "gauge", "1 while the worker's connection to the service is up.");
  for (const auto& [service, up] : connected_)
    out << "taskq_worker_connected{service=\"" << escape_label(service) << "\"} " << (up ? 1 : 0) << '\n';

  family(out, "taskq_worker_jobs_in_flight", "gauge", "Jobs whose handler is running now.");
  out << "taskq_worker_jobs_in_flight " << in_flight_ << '\n';
  return out.str();
}

}  // namespace taskq
