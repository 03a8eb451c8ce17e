// taskq-worker's logs: one line per event, as text for people or as JSON for
// log pipelines (--log-format json). Job events carry the job id, queue and
// attempt as separate fields so they can be searched for:
//
//   taskq::log::info(job, "started");                  // job: a taskq::Job
//   taskq::log::warn(job, {{"seconds", 1.5}}, "retried: {}", error);
//   taskq::log::error(taskq::log::JobRef::queue_only(queue), "malformed message: {}", why);
//   taskq::log::warn("broker: {}; reconnecting", error);
//
// text: 2026-01-02T03:04:05.678Z info job=01a2… queue=emails attempt=2 trace=4bf9… started
// json: {"time":"2026-01-02T03:04:05.678Z","level":"info","msg":"started",
//        "job_id":"01a2…","queue":"emails","attempt":2,"trace_id":"4bf9…"}
// (trace: the trace-id of the job's traceparent, when it has one).
//
// Works without any set-up (text on stderr, level info); the CLI calls
// configure(). Thread-safe: a line is built whole, then written under a
// lock, so lines from different threads never interleave. Logging never
// throws.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "taskq/worker.hpp"

namespace taskq::log {

enum class Format { kText, kJson };
enum class Level { kDebug, kInfo, kWarn, kError };

// The job an event is about. Empty parts (no id, attempt 0) are left out,
// so JobRef::queue_only(q) suits events about a queue (a malformed message).
// Holds views: build it in the log call, do not keep it.
struct JobRef {
  std::string_view id;
  std::string_view queue;
  int attempt = 0;
  std::string_view trace_id;  // of the job's traceparent; empty when none

  JobRef(std::string_view job_id, std::string_view queue_name, int job_attempt, std::string_view trace = {})
      : id(job_id), queue(queue_name), attempt(job_attempt), trace_id(trace) {}
  // Implicit on purpose: log::info(job, "started") reads best at call sites.
  JobRef(const Job& job)  // NOLINT(google-explicit-constructor)
      : JobRef(job.id, job.queue, job.attempt, job.trace_id()) {}
  static JobRef queue_only(std::string_view queue_name) { return JobRef({}, queue_name, 0); }
};

// Extra key/values of an event: JSON values of their own in json lines,
// key=value in text lines. Keys should be snake_case words.
using Fields = std::vector<std::pair<std::string, nlohmann::json>>;

// Receives each finished line, without the trailing newline.
using Sink = std::function<void(const std::string& line)>;

// Formats "text" / "json"; throws std::invalid_argument for anything else.
Format parse_format(const std::string& name);

void set_format(Format format);
void set_level(Level level);  // events below it are skipped (default kInfo)
// Where lines go; nullptr restores the default (stderr, flushed per line).
void set_sink(Sink sink);
// set_format + routes spdlog's default logger through this module too, so
// code still calling spdlog:: directly writes lines in the same format.
void configure(Format format);

bool enabled(Level level);
// One event; `message` may hold anything (quotes, newlines, any bytes).
void write(Level level, const JobRef* job, const Fields* fields, std::string_view message) noexcept;

// The line write() would produce, at a given time (tests, and the sink
// bridge). unix_ms: milliseconds since the epoch.
std::string render(Format format, long long unix_ms, Level level, const JobRef* job, const Fields* fields,
                   std::string_view message);

namespace detail {
template <typename... Args>
void emit(Level level, const JobRef* job, const Fields* fields, fmt::format_string<Args...> format,
          Args&&... args) noexcept {
  if (!enabled(level)) return;
  try {
    write(level, job, fields, fmt::vformat(format, fmt::make_format_args(args...)));
  } catch (...) {
    // A bad format argument must not take the worker down: log the raw text.
    const fmt::string_view raw = format;
    write(level, job, fields, std::string_view(raw.data(), raw.size()));
  }
}
}  // namespace detail

// log::info(...) and friends: callable objects rather than sets of function
// templates, so each level is one definition.
template <Level kLevel>
struct LevelLogger {
  template <typename... Args>
  void operator()(fmt::format_string<Args...> format, Args&&... args) const noexcept {
    detail::emit(kLevel, nullptr, nullptr, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void operator()(const JobRef& job, fmt::format_string<Args...> format, Args&&... args) const noexcept {
    detail::emit(kLevel, &job, nullptr, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void operator()(const JobRef& job, const Fields& fields, fmt::format_string<Args...> format,
                  Args&&... args) const noexcept {
    detail::emit(kLevel, &job, &fields, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void operator()(const Fields& fields, fmt::format_string<Args...> format, Args&&... args) const noexcept {
    detail::emit(kLevel, nullptr, &fields, format, std::forward<Args>(args)...);
  }
};

inline constexpr LevelLogger<Level::kDebug> debug{};
inline constexpr LevelLogger<Level::kInfo> info{};
inline constexpr LevelLogger<Level::kWarn> warn{};
inline constexpr LevelLogger<Level::kError> error{};

}  // namespace taskq::log
