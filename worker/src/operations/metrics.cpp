// See metrics.hpp. Rendering follows the Prometheus text format: one
// # HELP and # TYPE line per family, label values escaped, histogram
// buckets cumulative with a final +Inf bucket.
#include "operations/metrics.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iterator>
#include <set>

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

// Shortest text that reads back as the same double ("0.005", not
// "0.0050000000000000001"), with the format's spellings of the specials.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// One sample line: name{labels} value. labels is already escaped.
template <typename Value>
void sample(std::string& out, const char* name, const std::string& labels, const Value& value) {
  if (labels.empty())
    fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
  else
    fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, labels, value);
}

std::string label(const char* name, const std::string& value) {
  return std::string(name) + "=\"" + escape_label(value) + "\"";
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
    case DropReason::kHeld:
      return "held";
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
  // Copy under the lock, format without it: a scrape then holds up the
  // threads recording jobs for a copy of a few small maps, not for the
  // formatting (milliseconds with many queues).
  std::unique_lock<std::mutex> lock(mu_);
  const auto started = started_;
  const auto finished = finished_;
  const auto dropped = dropped_;
  const auto durations = durations_;
  const auto callbacks = callbacks_;
  const auto reconnects = reconnects_;
  const auto connected = connected_;
  const long in_flight = in_flight_;
  lock.unlock();

  std::string out;
  out.reserve(4096 + 1500 * durations.size());  // one queue takes about 1.4 kB

  family(out, "taskq_worker_jobs_started_total", "counter", "Jobs this worker started (taskq.start returned the job).");
  for (const auto& [queue, n] : started) sample(out, "taskq_worker_jobs_started_total", label("queue", queue), n);

  family(out, "taskq_worker_jobs_finished_total", "counter",
         "Attempts this worker finished, by queue and outcome (completed, retried, failed, cancelled, stale, "
         "unrecorded).");
  for (const auto& [key, n] : finished)
    sample(out, "taskq_worker_jobs_finished_total",
           label("queue", key.first) + "," + label("outcome", to_string(key.second)), n);

  family(out, "taskq_worker_deliveries_dropped_total", "counter",
         "Deliveries acknowledged without running a job, by queue and reason (malformed, stale, no_handler, held).");
  for (const auto& [key, n] : dropped)
    sample(out, "taskq_worker_deliveries_dropped_total",
           label("queue", key.first) + "," + label("reason", to_string(key.second)), n);

  family(out, "taskq_worker_handler_duration_seconds", "histogram", "Time handlers ran, by queue.");
  for (const auto& [queue, h] : durations) {
    const std::string q = label("queue", queue);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
      cumulative += h.buckets[i];
      sample(out, "taskq_worker_handler_duration_seconds_bucket", q + ",le=\"" + number(kDurationBuckets[i]) + "\"",
             cumulative);
    }
    // +Inf holds every observation, also those above the last bound.
    sample(out, "taskq_worker_handler_duration_seconds_bucket", q + ",le=\"+Inf\"", h.count);
    sample(out, "taskq_worker_handler_duration_seconds_sum", q, number(h.sum));
    sample(out, "taskq_worker_handler_duration_seconds_count", q, h.count);
  }

  family(out, "taskq_worker_callbacks_total", "counter",
         "Callback delivery attempts, by result (delivered, retried, dead).");
  for (const auto& [result, n] : callbacks)
    sample(out, "taskq_worker_callbacks_total", label("result", to_string(result)), n);

  family(out, "taskq_worker_reconnects_total", "counter", "Reconnections after a lost connection, by service.");
  for (const auto& [service, n] : reconnects)
    sample(out, "taskq_worker_reconnects_total", label("service", service), n);

  // broker and database are always shown (0 until first connected), so an
  // alert on == 0 also fires for a worker that never got connected.
  family(out, "taskq_worker_connected", "gauge", "1 while the worker's connection to the service is up.");
  std::set<std::string> services = {"broker", "database"};
  for (const auto& entry : connected) services.insert(entry.first);
  for (const auto& service : services) {
    auto it = connected.find(service);
    sample(out, "taskq_worker_connected", label("service", service), it != connected.end() && it->second ? 1 : 0);
  }

  family(out, "taskq_worker_jobs_in_flight", "gauge", "Jobs whose handler is running now.");
  sample(out, "taskq_worker_jobs_in_flight", "", in_flight);
  return out;
}

}  // namespace taskq
