// See log.hpp. Lines are rendered here by hand rather than by spdlog
// patterns: a pattern cannot escape the message for JSON, and the job
// fields are data, not text to be pasted into the message.
#include "operations/log.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <stdexcept>

namespace taskq::log {
namespace {

std::atomic<Format> g_format{Format::kText};
std::atomic<Level> g_level{Level::kInfo};

// The sink and the lock every line is written under; built on first use so
// logging works from static initialisers and before any set-up.
struct Output {
  std::mutex mu;
  Sink sink;
};

Output& output() {
  static Output* out = new Output();  // never destroyed: threads may log during exit
  return *out;
}

const char* level_name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

// 2026-01-02T03:04:05.678Z: UTC, millisecond precision, sortable.
std::string format_time(long long unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[96];  // room for any int the compiler cannot rule out
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}

// Text lines stay one line whatever the message holds: control characters
// (newlines from a handler's stderr, say) are written as escapes.
void append_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20 && c != '\t') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
}

// key=value for text lines; the value is quoted when it could be misread
// (empty, spaces, '=', quotes) so the line still splits on spaces.
void append_pair(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  out += key;
  out += '=';
  const bool quote = value.empty() || value.find_first_of(" =\"\t") != std::string_view::npos;
  if (!quote) {
    append_escaped(out, value);
    return;
  }
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    append_escaped(out, std::string_view(&c, 1));
  }
  out += '"';
}

std::string render_text(long long unix_ms, Level level, const JobRef* job, const Fields* fields,
                        std::string_view message) {
  std::string line = format_time(unix_ms);
  line += ' ';
  line += level_name(level);
  if (job != nullptr) {
    if (!job->id.empty()) append_pair(line, "job", job->id);
    if (!job->queue.empty()) append_pair(line, "queue", job->queue);
    if (job->attempt > 0) append_pair(line, "attempt", std::to_string(job->attempt));
    if (!job->trace_id.empty()) append_pair(line, "trace", job->trace_id);
  }
  line += ' ';
  append_escaped(line, message);
  if (fields != nullptr)
    for (const auto& [key, value] : *fields)
      append_pair(line, key,
                  value.is_string() ? value.get_ref<const std::string&>()
                                    : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return line;
}

std::string render_json(long long unix_ms, Level level, const JobRef* job, const Fields* fields,
                        std::string_view message) {
  nlohmann::ordered_json line;  // keeps time, level, msg first for readers
  line["time"] = format_time(unix_ms);
  line["level"] = level_name(level);
  line["msg"] = std::string(message);
  if (job != nullptr) {
    if (!job->id.empty()) line["job_id"] = std::string(job->id);
    if (!job->queue.empty()) line["queue"] = std::string(job->queue);
    if (job->attempt > 0) line["attempt"] = job->attempt;
    if (!job->trace_id.empty()) line["trace_id"] = std::string(job->trace_id);
  }
  if (fields != nullptr)
    for (const auto& [key, value] : *fields) {
      // An extra field never hides one of the standard keys.
      const std::string name = line.contains(key) ? "field_" + key : key;
      line[name] = value;
    }
  // replace: a message with invalid UTF-8 (a handler's raw output) is still
  // logged, with U+FFFD in place of the bad bytes, instead of throwing.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void write_line(const std::string& line) {
  Output& out = output();
  std::lock_guard<std::mutex> lock(out.mu);
  if (out.sink) {
    out.sink(line);
    return;
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

// spdlog's default logger, pointed at this module by configure(), so that
// code still using spdlog:: writes lines in the chosen format too.
class BridgeSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    Level level = Level::kInfo;
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug:
        level = Level::kDebug;
        break;
      case spdlog::level::info:
        level = Level::kInfo;
        break;
      case spdlog::level::warn:
        level = Level::kWarn;
        break;
      case spdlog::level::err:
      case spdlog::level::critical:
        level = Level::kError;
        break;
      default:
        return;
    }
    if (enabled(level)) write(level, nullptr, nullptr, std::string_view(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}
};

}  // namespace

Format parse_format(const std::string& name) {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  throw std::invalid_argument("log format must be text or json, not \"" + name + "\"");
}

void set_format(Format format) { g_format.store(format); }
void set_level(Level level) { g_level.store(level); }

void set_sink(Sink sink) {
  Output& out = output();
  std::lock_guard<std::mutex> lock(out.mu);
  out.sink = std::move(sink);
}

void configure(Format format) {
  set_format(format);
  auto logger = std::make_shared<spdlog::logger>("taskq", std::make_shared<BridgeSink>());
  logger->set_level(spdlog::level::trace);  // this module's level decides
  spdlog::set_default_logger(std::move(logger));
}

bool enabled(Level level) { return static_cast<int>(level) >= static_cast<int>(g_level.load()); }

std::string render(Format format, long long unix_ms, Level level, const JobRef* job, const Fields* fields,
                   std::string_view message) {
  return format == Format::kJson ? render_json(unix_ms, level, job, fields, message)
                                 : render_text(unix_ms, level, job, fields, message);
}

void write(Level level, const JobRef* job, const Fields* fields, std::string_view message) noexcept {
  if (!enabled(level)) return;
  try {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    const long long unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
    write_line(render(g_format.load(), unix_ms, level, job, fields, message));
  } catch (...) {
    // Out of memory or a throwing sink: the event is lost, the worker is not.
  }
}

}  // namespace taskq::log
