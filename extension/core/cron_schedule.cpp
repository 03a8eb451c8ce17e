// Next run of a schedule in its time zone; the rules are in cron_schedule.hpp.
//
// The search walks the zone's offset segments (the spans between two offset
// changes) from `after` on. Inside a segment wall clock and absolute time
// differ by a constant, so the first selected wall-clock minute there
// (cron_calendar.hpp) gives the tick directly. Between segments the DST
// rules apply: a forward change may owe a tick for skipped times, and after
// a backward change the repeated wall-clock times are either ticks again
// (every-hour expressions) or skipped.
#include "cron_schedule.hpp"

#include "cron_calendar.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>

namespace taskq {

namespace {

constexpr std::int64_t kMicrosPerSecond = 1'000'000;
// Feb 29 after a skipped leap year (2096, then 2104) is 8 years away: the
// longest an accepted expression can wait for its next tick.
constexpr int kHorizonYears = 9;
// Far more offset changes than 9 years of any zone's rules have.
constexpr int kMaxSegments = 200;

using Instant = cctz::time_point<cctz::seconds>;

Instant instant(std::int64_t seconds) { return Instant(cctz::seconds(seconds)); }

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

std::optional<UnixMicros> seconds_to_micros(std::int64_t seconds) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max() / kMicrosPerSecond;
  if (seconds > kMax || seconds < -kMax) return std::nullopt;
  return seconds * kMicrosPerSecond;
}

cctz::civil_minute minute_at_or_after(const cctz::civil_second& s) {
  cctz::civil_minute m(s);
  if (cctz::civil_second(m) < s) ++m;
  return m;
}

// IANA names only: letters, digits, `_+-`, and `/` between non-empty parts.
// Anything else (a path, `..`) could make the zone loader read other files.
bool plausible_zone_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name.back() == '/') return false;
  char previous = '/';
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '+' || c == '-' || c == '/';
    if (!ok || (c == '/' && previous == '/')) return false;
    previous = c;
  }
  return true;
}

// cctz remembers every name it was asked for, unknown ones included, so
// check that the zone file exists before asking: garbage names must not
// grow the process's memory. Same directory as cctz: $TZDIR or the system's.
bool zone_file_exists(std::string_view name) {
  const char* dir = std::getenv("TZDIR");
  std::string path = dir != nullptr && *dir != '\0' ? dir : "/usr/share/zoneinfo";
  path += '/';
  path += name;
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<cctz::time_zone> load_zone(std::string_view name) {
  if (name.size() == 3 && (name[0] | 0x20) == 'u' && (name[1] | 0x20) == 't' && (name[2] | 0x20) == 'c') {
    return cctz::utc_time_zone();
  }
  // "localtime" is the server's own zone, which a schedule must not depend on.
  if (!plausible_zone_name(name) || name == "localtime" || !zone_file_exists(name)) return std::nullopt;
  cctz::time_zone zone;
  if (!cctz::load_time_zone(std::string(name), &zone)) return std::nullopt;
  return zone;
}

}  // namespace

CronScheduleResult CronSchedule::create(std::string_view expression, std::string_view time_zone) noexcept {
  CronScheduleResult result;
  try {
    CronParseResult parsed = parse_cron_expression(expression);
    if (!parsed.ok()) {
      result.error = std::move(parsed.error);
      return result;
    }
    const std::optional<cctz::time_zone> zone = load_zone(time_zone);
    if (!zone) {
      result.error.message = "unknown time zone \"" + std::string(time_zone) + "\"";
      return result;
    }
    result.schedule = CronSchedule(*parsed.expression, *zone);
  } catch (...) {
    // Only an allocation can fail here; the short message needs none.
    result.schedule.reset();
    result.error.message = "out of memory";
    result.error.position = 0;
  }
  return result;
}

std::optional<UnixMicros> CronSchedule::next_run(UnixMicros after, UnixMicros anchor) const noexcept {
  try {
    return expression_.is_every() ? next_every_run(after, anchor) : next_calendar_run(after);
  } catch (...) {
    // Nothing below allocates; this keeps the noexcept promise regardless.
    return std::nullopt;
  }
}

std::optional<UnixMicros> CronSchedule::next_every_run(UnixMicros after, UnixMicros anchor) const {
  const __int128 interval = static_cast<__int128>(expression_.every_seconds) * kMicrosPerSecond;
  const __int128 since_anchor = static_cast<__int128>(after) - anchor;
  const __int128 k = since_anchor < 0 ? 1 : since_anchor / interval + 1;
  const __int128 tick = anchor + k * interval;
  if (tick > std::numeric_limits<UnixMicros>::max()) return std::nullopt;
  return static_cast<UnixMicros>(tick);
}

std::optional<UnixMicros> CronSchedule::next_calendar_run(UnixMicros after) const {
  // Ticks are whole seconds: "after 12:00:00.5" is "after 12:00:00".
  const std::int64_t after_seconds = floor_div(after, kMicrosPerSecond);
  const bool first_occurrence_only = !expression_.every_hour();

  // The current segment is known by one instant in it and its wall clock.
  std::int64_t segment_instant = after_seconds;
  cctz::civil_second segment_wall = zone_.lookup(instant(after_seconds)).cs;
  // Wall-clock times from `lowest` on are candidates in this segment.
  cctz::civil_second lowest = segment_wall + 1;
  if (first_occurrence_only) {
    // Just after a backward change, the wall clock is below where it was
    // before the change; those times have had their run already.
    cctz::time_zone::civil_transition previous;
    if (zone_.prev_transition(instant(after_seconds + 1), &previous)) lowest = std::max(lowest, previous.from);
  }
  const cctz::civil_second horizon(cctz::civil_year(segment_wall) + kHorizonYears);

  for (int segment = 0; segment < kMaxSegments; ++segment) {
    cctz::time_zone::civil_transition change;
    const bool has_change = zone_.next_transition(instant(segment_instant), &change);
    const cctz::civil_second end = has_change ? std::min(change.from, horizon) : horizon;
    if (lowest < end) {
      if (const auto minute = next_selected_minute(expression_, minute_at_or_after(lowest), end)) {
        const std::int64_t tick = segment_instant + (cctz::civil_second(*minute) - segment_wall);
        // Past the zone's last listed change cctz still knows the offsets
        // but not when they change; a tick stands only if they agree.
        if (!has_change && zone_.lookup(instant(tick)).cs != cctz::civil_second(*minute)) return std::nullopt;
        return seconds_to_micros(tick);
      }
    }
    if (!has_change || change.from >= horizon) return std::nullopt;
    // The segment's wall clock runs up to change.from; the change happens then.
    const std::int64_t change_instant = segment_instant + (change.from - segment_wall);
    if (first_occurrence_only && change.to > change.from &&
        next_selected_minute(expression_, minute_at_or_after(change.from), change.to)) {
      return seconds_to_micros(change_instant);  // skipped times run at the change
    }
    segment_instant = change_instant;
    segment_wall = change.to;
    lowest = first_occurrence_only ? std::max(change.to, change.from) : change.to;
  }
  return std::nullopt;
}

CronNextRun cron_next_run(std::string_view expression, std::string_view time_zone, UnixMicros after,
                          UnixMicros anchor) noexcept {
  CronNextRun result;
  CronScheduleResult created = CronSchedule::create(expression, time_zone);
  if (!created.ok()) {
    result.error = std::move(created.error);
    return result;
  }
  result.ok = true;
  if (const std::optional<UnixMicros> next = created.schedule->next_run(after, anchor)) {
    result.has_next = true;
    result.next = *next;
  }
  return result;
}

}  // namespace taskq
