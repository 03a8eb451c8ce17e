// Parsing of schedule expressions (taskq.schedule's `cron` argument) into a
// set of bit masks per field, or an @every interval. What the expression
// selects on a calendar is cron_calendar.hpp; when it fires in a time zone is
// cron_schedule.hpp. The syntax is documented for users in docs/sql-api.md.
//
// Five fields, separated by blanks: minute (0-59), hour (0-23), day of month
// (1-31), month (1-12 or jan-dec), day of week (0-7 or sun-sat; 0 and 7 are
// Sunday). Each field is a comma-separated list of items; an item is `*`, a
// value, or a range `a-b`, optionally followed by a step `/n`: `*/15`,
// `1-30/5`, and `a/n` meaning a to the field's maximum by n. Names are
// case-insensitive; `sun` ending a range means 7, so `fri-sun` works.
// Ranges do not wrap around (`22-2` is an error: write `22-23,0-2`).
//
// Day of month and day of week: when both are restricted (neither selects
// every value), a day matches if EITHER matches, as in Vixie cron: `0 0 1 *
// mon` runs on the 1st and on every Monday. When one of them selects every
// value, only the other one counts. Unlike Vixie cron, "restricted" depends
// on the values, not on the spelling: `*/2` in the day-of-month field is
// restricted (odd days), `1-31` is not.
//
// Macros: @yearly (= @annually) `0 0 1 1 *`, @monthly `0 0 1 * *`, @weekly
// `0 0 * * 0`, @daily (= @midnight) `0 0 * * *`, @hourly `0 * * * *`, and
// `@every <interval>`: one or more `<number> <unit>` parts, the blank
// between them optional, units s/sec/second(s), m/min/minute(s),
// h/hr/hour(s), d/day(s), w/week(s): `@every 90s`, `@every 1 hour 30
// minutes`, `@every 1h30m`. At least 1 second, at most 3650 days.
//
// An expression whose day of month never occurs in its months (`0 0 30 2 *`)
// is rejected here, so every accepted expression has a next run.
#pragma once

#include "no_postgres.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskq {

// Bit v of a mask is set when the field selects value v.
struct CronExpression {
  std::uint64_t minutes = 0;        // bits 0-59
  std::uint64_t hours = 0;          // bits 0-23
  std::uint64_t days_of_month = 0;  // bits 1-31
  std::uint64_t months = 0;         // bits 1-12
  std::uint64_t days_of_week = 0;   // bits 0-6, Sunday = 0 (7 is folded into 0)
  // Non-zero for @every: the interval. The masks are then unused.
  std::int64_t every_seconds = 0;

  bool is_every() const { return every_seconds > 0; }
  // The hour field selects all 24 hours; decides the DST rule (cron_schedule.hpp).
  bool every_hour() const;
  bool day_of_month_restricted() const;
  bool day_of_week_restricted() const;
};

// Where and why an expression or a time zone was refused. The message is
// complete and ready for a user (lower case, no full stop), e.g.
//   invalid cron expression "61 * * * *": minute field: 61 is out of range 0-59
struct CronError {
  std::string message;
  // 1-based position (in bytes) of the offending text in the expression; 0
  // when the error is not about one place (field count, time zone). The
  // message says the same where it names a position.
  std::size_t position = 0;
};

struct CronParseResult {
  std::optional<CronExpression> expression;  // empty: see error
  CronError error;

  bool ok() const { return expression.has_value(); }
};

// Longest expression accepted; longer input is refused without being quoted.
inline constexpr std::size_t kMaxCronExpressionLength = 1000;

// Never throws (an allocation failure becomes an error result).
CronParseResult parse_cron_expression(std::string_view text) noexcept;

}  // namespace taskq
