// When a schedule fires next: a parsed expression (cron_expression.hpp) in
// an IANA time zone. The background worker asks for the next tick after the
// one it has just fired; the SQL layer validates expression and zone with
// the same calls. Nothing here throws to the caller.
//
// Times are microseconds since 1970-01-01 00:00:00 UTC. A cron tick is a
// whole minute of the zone's wall clock; the next run is the first tick
// strictly after the time given.
//
// Daylight saving time and other offset changes (cron expressions only):
// - If the hour field names particular hours (`30 2 * * *`, `0 9-17 * * *`),
//   each selected wall-clock time runs exactly once per day it occurs on:
//   * a time the clock skips (spring forward) runs at the instant of the
//     change, the first valid wall-clock time after it: `30 2 * * *` in
//     Europe/Berlin on 2025-03-30 (02:00 CET becomes 03:00 CEST) runs at
//     03:00 CEST. Several skipped times (`*/15 2 * * *`) make one run there.
//     A daily job does not silently miss a day, and runs as soon as it can.
//   * a time the clock repeats (fall back) runs at its first occurrence
//     only: `30 2 * * *` on 2025-10-26 runs at 02:30 CEST, not again at
//     02:30 CET an hour later. A daily job does not run twice.
// - If the hour field selects every hour (`*`, `*/1`, `0-23`, @hourly), the
//   schedule follows real time instead: every instant whose wall-clock time
//   matches is a tick. A repeated hour runs again (`30 * * * *` runs at
//   02:30 CEST and at 02:30 CET, an hour apart) and a skipped hour has no
//   tick (01:30 CET is followed by 03:30 CEST, also an hour apart), so
//   hourly and every-few-minutes jobs stay evenly spaced.
// This is how Vixie/ISC cron treats "wildcard" jobs and fixed-time jobs when
// the clock changes, except that only the hour field decides.
//
// @every: absolute time, no wall clock and no DST: the ticks are anchor +
// k * interval for k >= 1, where the anchor is the schedule's previous tick
// or its creation time, so ticks never drift however late they are fired.
//
// Time zones: IANA names as in /usr/share/zoneinfo (`Europe/Berlin`,
// `America/New_York`, `Etc/GMT-5`, `UTC`), case-sensitive except `UTC`.
// Names that are not a zone file (paths, `localtime`) are unknown zones.
// Zones are loaded once per process and kept; a tzdata update takes effect
// when the process restarts. Past the zone's last listed offset change
// (about 400 years ahead) a tick is given only where the offset is unchanged.
#pragma once

#include "no_postgres.hpp"

#include "cron_expression.hpp"

#include <cctz/time_zone.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace taskq {

using UnixMicros = std::int64_t;  // microseconds since the Unix epoch, UTC

struct CronScheduleResult;

class CronSchedule {
 public:
  // Parses `expression` and loads `time_zone`. Errors (see CronError):
  //   invalid cron expression "<text>": <field> field: <what>
  //   unknown time zone "<name>"
  static CronScheduleResult create(std::string_view expression, std::string_view time_zone) noexcept;

  // The first tick strictly after `after`. `anchor` is used by @every only
  // (ticks anchor + k * interval, k >= 1; an `after` before the anchor gives
  // anchor + interval). Empty only when the tick would be out of range
  // (past year 292277 or the zone's listed changes); every accepted
  // expression fires at least once in 8 years. Takes microseconds.
  std::optional<UnixMicros> next_run(UnixMicros after, UnixMicros anchor) const noexcept;

  const CronExpression& expression() const { return expression_; }

 private:
  CronSchedule(const CronExpression& expression, const cctz::time_zone& zone) : expression_(expression), zone_(zone) {}

  std::optional<UnixMicros> next_calendar_run(UnixMicros after) const;
  std::optional<UnixMicros> next_every_run(UnixMicros after, UnixMicros anchor) const;

  CronExpression expression_;
  cctz::time_zone zone_;
};

struct CronScheduleResult {
  std::optional<CronSchedule> schedule;  // empty: see error
  CronError error;

  bool ok() const { return schedule.has_value(); }
};

// One call for callers that keep no state, such as a SQL function: parses,
// loads the zone and computes the next run. ok = false: error says why;
// has_next = false: no tick in range (see next_run).
struct CronNextRun {
  bool ok = false;
  bool has_next = false;
  UnixMicros next = 0;
  CronError error;
};

CronNextRun cron_next_run(std::string_view expression, std::string_view time_zone, UnixMicros after,
                          UnixMicros anchor) noexcept;

}  // namespace taskq
