// operations/: what an operator sees of a worker: these metrics, the
// /metrics and /healthz server, the log, and HOST:PORT parsing.
//
// The worker's counters, gauges and handler-duration histogram, rendered in
// the Prometheus text exposition format for /metrics. Thread-safe: runner,
// consumer and callback threads all record into one instance.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace taskq {

// How a job's attempt ended, as far as this worker is concerned.
enum class JobOutcome {
  kCompleted,  // taskq.complete() recorded it
  kRetried,    // taskq.fail() put it back to pending
  kFailed,     // taskq.fail() ended it failed
  kCancelled,  // taskq.fail() ended it cancelled (cancel requested)
  kStale,      // the outcome call came back stale: lease lost meanwhile
  kUnrecorded  // could not be recorded (shutdown past its deadline): the lease retries it
};

// Why a delivery was acknowledged without running anything. kHeld: a flow
// limit of its queue (rate_limit, concurrency_limit) held the job back; it
// is published again when its turn comes.
enum class DropReason { kMalformed, kStale, kNoHandler, kHeld };

enum class CallbackResult { kDelivered, kRetried, kDead };

class Metrics {
 public:
  // Upper bounds (seconds) of the handler-duration histogram buckets.
  static constexpr std::array<double, 14> kDurationBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                              1,     2.5,  5,     10,   30,  60,   300};

  void job_started(const std::string& queue);
  void job_finished(const std::string& queue, JobOutcome outcome, double handler_seconds);
  void delivery_dropped(const std::string& queue, DropReason reason);
  void callback_finished(CallbackResult result);
  void reconnected(const std::string& service);  // "broker" or "database"
  void set_connected(const std::string& service, bool up);
  void add_in_flight(int delta);

  bool connected(const std::string& service) const;
  long in_flight() const;

  // The whole registry in Prometheus text format (version 0.0.4).
  std::string render() const;

 private:
  struct Histogram {
    std::array<std::uint64_t, kDurationBuckets.size()> buckets{};  // non-cumulative counts
    std::uint64_t count = 0;
    double sum = 0;
  };

  mutable std::mutex mu_;
  std::map<std::string, std::uint64_t> started_;                          // by queue
  std::map<std::pair<std::string, JobOutcome>, std::uint64_t> finished_;  // by queue, outcome
  std::map<std::pair<std::string, DropReason>, std::uint64_t> dropped_;
  std::map<std::string, Histogram> durations_;  // by queue
  std::map<CallbackResult, std::uint64_t> callbacks_;
  std::map<std::string, std::uint64_t> reconnects_;  // by service
  std::map<std::string, bool> connected_;            // by service
  long in_flight_ = 0;
};

const char* to_string(JobOutcome outcome);
const char* to_string(DropReason reason);
const char* to_string(CallbackResult result);

}  // namespace taskq
