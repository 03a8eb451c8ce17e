// Schedule expressions: parsing (accepted syntax, exact error messages) and
// next runs in UTC and in zones with daylight saving time, checked against a
// table of expected runs and against a minute-by-minute search over a year.
#include "core/cron_calendar.hpp"
#include "core/cron_expression.hpp"
#include "core/cron_schedule.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using taskq::CronSchedule;
using taskq::UnixMicros;

constexpr UnixMicros kSecond = 1'000'000;

// "2025-03-30T03:00:00+02:00" (or with a fraction) as microseconds.
UnixMicros instant(const std::string& text) {
  cctz::time_point<std::chrono::microseconds> tp;
  const bool ok = cctz::parse("%Y-%m-%dT%H:%M:%E*S%Ez", text, cctz::utc_time_zone(), &tp);
  EXPECT_TRUE(ok) << "bad time in test: " << text;
  return tp.time_since_epoch().count();
}

std::string shown(UnixMicros t, const std::string& zone_name) {
  cctz::time_zone zone;
  EXPECT_TRUE(cctz::load_time_zone(zone_name, &zone));
  const cctz::time_point<std::chrono::microseconds> tp{std::chrono::microseconds(t)};
  return cctz::format("%Y-%m-%dT%H:%M:%E*S%Ez", tp, zone);
}

CronSchedule schedule(const std::string& expression, const std::string& zone = "UTC") {
  taskq::CronScheduleResult created = CronSchedule::create(expression, zone);
  EXPECT_TRUE(created.ok()) << created.error.message;
  if (!created.ok()) return *CronSchedule::create("* * * * *", "UTC").schedule;
  return *created.schedule;
}

// The next `count` runs after `after`, shown in the zone; @every is anchored
// at `after`.
std::vector<std::string> runs(const std::string& expression, const std::string& zone, const std::string& after,
                              std::size_t count) {
  const CronSchedule s = schedule(expression, zone);
  std::vector<std::string> out;
  const UnixMicros anchor = instant(after);
  UnixMicros t = anchor;
  for (std::size_t i = 0; i < count; ++i) {
    const auto next = s.next_run(t, anchor);
    if (!next) {
      out.push_back("none");
      break;
    }
    EXPECT_GT(*next, t);
    out.push_back(shown(*next, zone));
    t = *next;
  }
  return out;
}

struct RunCase {
  const char* expression;
  const char* zone;
  const char* after;
  std::vector<std::string> expected;
};

void expect_runs(const std::vector<RunCase>& cases) {
  for (const RunCase& c : cases) {
    EXPECT_EQ(runs(c.expression, c.zone, c.after, c.expected.size()), c.expected)
        << c.expression << " in " << c.zone << " after " << c.after;
  }
}

TEST(CronSchedule, FieldsListsRangesStepsAndNames) {
  expect_runs({
      {"* * * * *", "UTC", "2025-01-01T00:00:00Z", {"2025-01-01T00:01:00+00:00", "2025-01-01T00:02:00+00:00"}},
      {"*/15 * * * *",
       "UTC",
       "2025-01-01T00:07:30Z",
       {"2025-01-01T00:15:00+00:00", "2025-01-01T00:30:00+00:00", "2025-01-01T00:45:00+00:00",
        "2025-01-01T01:00:00+00:00"}},
      {"0,30 9-10 * * *",
       "UTC",
       "2025-01-01T00:00:00Z",
       {"2025-01-01T09:00:00+00:00", "2025-01-01T09:30:00+00:00", "2025-01-01T10:00:00+00:00",
        "2025-01-01T10:30:00+00:00", "2025-01-02T09:00:00+00:00"}},
      {"1-30/10 * * * *",
       "UTC",
       "2025-01-01T00:00:00Z",
       {"2025-01-01T00:01:00+00:00", "2025-01-01T00:11:00+00:00", "2025-01-01T00:21:00+00:00",
        "2025-01-01T01:01:00+00:00"}},
      {"5/20 * * * *",  // from 5 to the maximum by 20
       "UTC",
       "2025-01-01T00:00:00Z",
       {"2025-01-01T00:05:00+00:00", "2025-01-01T00:25:00+00:00", "2025-01-01T00:45:00+00:00",
        "2025-01-01T01:05:00+00:00"}},
      {"0 12 * jan,JUL Mon-FRI",  // names, any case
       "UTC",
       "2025-01-30T00:00:00Z",
       {"2025-01-30T12:00:00+00:00", "2025-01-31T12:00:00+00:00", "2025-07-01T12:00:00+00:00"}},
      {"0 0 * * fri-sun",  // sun ending a range is 7
       "UTC",
       "2025-01-01T00:00:00Z",
       {"2025-01-03T00:00:00+00:00", "2025-01-04T00:00:00+00:00", "2025-01-05T00:00:00+00:00",
        "2025-01-10T00:00:00+00:00"}},
      {"0 0 * * 7", "UTC", "2025-01-01T00:00:00Z", {"2025-01-05T00:00:00+00:00", "2025-01-12T00:00:00+00:00"}},
      {"0 0 * * 5-7",
       "UTC",
       "2025-01-01T00:00:00Z",
       {"2025-01-03T00:00:00+00:00", "2025-01-04T00:00:00+00:00", "2025-01-05T00:00:00+00:00"}},
      {"0 0 1 */3 *",
       "UTC",
       "2025-01-01T00:00:00Z",
       {"2025-04-01T00:00:00+00:00", "2025-07-01T00:00:00+00:00", "2025-10-01T00:00:00+00:00",
        "2026-01-01T00:00:00+00:00"}},
      {"\t0  12 * * *  ", "UTC", "2025-01-01T00:00:00Z", {"2025-01-01T12:00:00+00:00"}},  // any blanks
  });
}

TEST(CronSchedule, Macros) {
  expect_runs({
      {"@yearly", "UTC", "2025-06-01T00:00:00Z", {"2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"}},
      {"@annually", "UTC", "2025-06-01T00:00:00Z", {"2026-01-01T00:00:00+00:00"}},
      {"@monthly", "UTC", "2025-06-01T00:00:00Z", {"2025-07-01T00:00:00+00:00", "2025-08-01T00:00:00+00:00"}},
      {"@weekly", "UTC", "2025-01-01T00:00:00Z", {"2025-01-05T00:00:00+00:00", "2025-01-12T00:00:00+00:00"}},
      {"@daily", "UTC", "2025-06-01T00:00:00Z", {"2025-06-02T00:00:00+00:00", "2025-06-03T00:00:00+00:00"}},
      {"@MIDNIGHT", "UTC", "2025-06-01T00:00:00Z", {"2025-06-02T00:00:00+00:00"}},
      {"@hourly", "UTC", "2025-06-01T00:00:00Z", {"2025-06-01T01:00:00+00:00", "2025-06-01T02:00:00+00:00"}},
  });
}

TEST(CronSchedule, CalendarEdges) {
  expect_runs({
      // Leap days, also across 2100, which is not a leap year.
      {"0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z", {"2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"}},
      {"0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", {"2104-02-29T00:00:00+00:00"}},
      // End of month: only months with a 31st.
      {"0 0 31 * *",
       "UTC",
       "2025-01-31T12:00:00Z",
       {"2025-03-31T00:00:00+00:00", "2025-05-31T00:00:00+00:00", "2025-07-31T00:00:00+00:00",
        "2025-08-31T00:00:00+00:00"}},
      // Year rollover.
      {"59 23 31 12 *", "UTC", "2025-12-31T23:59:00Z", {"2026-12-31T23:59:00+00:00"}},
      {"0 0 1 1 *", "UTC", "2025-12-31T23:59:59.999999Z", {"2026-01-01T00:00:00+00:00"}},
      {"*/10 * * * *", "UTC", "2025-12-31T23:55:00Z", {"2026-01-01T00:00:00+00:00", "2026-01-01T00:10:00+00:00"}},
      // Strictly after: a tick at `after` is not the next one; a fraction
      // of a second before it is.
      {"0 * * * *", "UTC", "2025-01-01T01:00:00Z", {"2025-01-01T02:00:00+00:00"}},
      {"0 * * * *", "UTC", "2025-01-01T00:59:59.5Z", {"2025-01-01T01:00:00+00:00"}},
      {"0 * * * *", "UTC", "2025-01-01T01:00:00.000001Z", {"2025-01-01T02:00:00+00:00"}},
      // Before the Unix epoch.
      {"30 12 * * *", "UTC", "1969-12-31T13:00:00Z", {"1970-01-01T12:30:00+00:00"}},
  });
}

TEST(CronSchedule, DayOfMonthAndDayOfWeek) {
  expect_runs({
      // Both restricted: either matches (Fridays, and the 13th).
      {"0 0 13 * fri",
       "UTC",
       "2025-06-01T00:00:00Z",
       {"2025-06-06T00:00:00+00:00", "2025-06-13T00:00:00+00:00", "2025-06-20T00:00:00+00:00",
        "2025-06-27T00:00:00+00:00", "2025-07-04T00:00:00+00:00", "2025-07-11T00:00:00+00:00",
        "2025-07-13T00:00:00+00:00", "2025-07-18T00:00:00+00:00"}},
      // Only one restricted: only that one counts.
      {"0 0 13 * *", "UTC", "2025-06-01T00:00:00Z", {"2025-06-13T00:00:00+00:00", "2025-07-13T00:00:00+00:00"}},
      {"0 0 * * fri", "UTC", "2025-06-01T00:00:00Z", {"2025-06-06T00:00:00+00:00", "2025-06-13T00:00:00+00:00"}},
      {"0 0 1-31 * fri", "UTC", "2025-06-01T00:00:00Z", {"2025-06-06T00:00:00+00:00"}},  // 1-31 is every day
      {"0 0 13 * 0-7", "UTC", "2025-06-01T00:00:00Z", {"2025-06-13T00:00:00+00:00"}},    // 0-7 is every day
      // */2 is restricted (odd days), unlike in Vixie cron: odd days or Mondays.
      {"0 0 */2 * mon",
       "UTC",
       "2025-06-01T00:00:00Z",
       {"2025-06-02T00:00:00+00:00", "2025-06-03T00:00:00+00:00", "2025-06-05T00:00:00+00:00",
        "2025-06-07T00:00:00+00:00", "2025-06-09T00:00:00+00:00", "2025-06-11T00:00:00+00:00"}},
      // Feb 30 never happens, but with a day of week it is "or": Mondays.
      {"0 0 30 2 mon", "UTC", "2025-02-01T00:00:00Z", {"2025-02-03T00:00:00+00:00"}},
  });
}

TEST(CronSchedule, EveryIsAnchoredAbsoluteTime) {
  expect_runs({
      {"@every 90s",
       "UTC",
       "2025-01-01T00:00:00Z",
       {"2025-01-01T00:01:30+00:00", "2025-01-01T00:03:00+00:00", "2025-01-01T00:04:30+00:00"}},
      {"@every 1 hour 30 minutes",
       "UTC",
       "2025-01-01T00:00:00Z",
       {"2025-01-01T01:30:00+00:00", "2025-01-01T03:00:00+00:00"}},
      {"@every 1h30m", "UTC", "2025-01-01T00:00:00Z", {"2025-01-01T01:30:00+00:00"}},
      {"@Every 1 Second", "UTC", "2025-01-01T00:00:00Z", {"2025-01-01T00:00:01+00:00", "2025-01-01T00:00:02+00:00"}},
      {"@every 2 weeks 1 day", "UTC", "2025-01-01T00:00:00Z", {"2025-01-16T00:00:00+00:00"}},
      // The anchor's fraction of a second is kept: ticks never drift.
      {"@every 5 minutes", "UTC", "2025-01-01T00:00:00.25Z", {"2025-01-01T00:05:00.25+00:00"}},
      // One hour in absolute time across spring forward: no gap, no double.
      {"@every 1 hour",
       "Europe/Berlin",
       "2025-03-30T00:30:00+01:00",
       {"2025-03-30T01:30:00+01:00", "2025-03-30T03:30:00+02:00", "2025-03-30T04:30:00+02:00"}},
  });
  const CronSchedule every = schedule("@every 90 seconds");
  const UnixMicros anchor = instant("2025-01-01T00:00:00Z");
  // Fired late: the next tick is still on the anchor's grid.
  EXPECT_EQ(every.next_run(instant("2025-01-01T10:00:00.5Z"), anchor), instant("2025-01-01T10:01:30Z"));
  EXPECT_EQ(every.next_run(instant("2025-01-01T10:01:29Z"), anchor), instant("2025-01-01T10:01:30Z"));
  EXPECT_EQ(every.next_run(instant("2025-01-01T10:01:30Z"), anchor), instant("2025-01-01T10:03:00Z"));
  // Before the anchor: the first tick is one interval after it.
  EXPECT_EQ(every.next_run(instant("2024-06-01T00:00:00Z"), anchor), instant("2025-01-01T00:01:30Z"));
  EXPECT_EQ(every.next_run(anchor, anchor), anchor + 90 * kSecond);
  // Out of range is "no next run", not an overflow.
  EXPECT_EQ(every.next_run(INT64_MAX - kSecond, INT64_MAX - 2 * kSecond), std::nullopt);
}

TEST(CronDst, EuropeBerlinSpringForward) {
  // 2025-03-30: 02:00 CET becomes 03:00 CEST.
  expect_runs({
      // A skipped fixed time runs once, at the change.
      {"30 2 * * *",
       "Europe/Berlin",
       "2025-03-29T12:00:00+01:00",
       {"2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"}},
      {"*/15 2 * * *",
       "Europe/Berlin",
       "2025-03-30T01:50:00+01:00",
       {"2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00"}},
      // Skipped 02:00 and 02:30 and the real 03:00 are one run.
      {"0,30 2,3 * * *",
       "Europe/Berlin",
       "2025-03-30T01:00:00+01:00",
       {"2025-03-30T03:00:00+02:00", "2025-03-30T03:30:00+02:00", "2025-03-31T02:00:00+02:00"}},
      // Every hour: real time, the skipped hour has no tick.
      {"30 * * * *",
       "Europe/Berlin",
       "2025-03-30T00:00:00+01:00",
       {"2025-03-30T00:30:00+01:00", "2025-03-30T01:30:00+01:00", "2025-03-30T03:30:00+02:00",
        "2025-03-30T04:30:00+02:00"}},
      {"*/30 * * * *",
       "Europe/Berlin",
       "2025-03-30T01:00:00+01:00",
       {"2025-03-30T01:30:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-30T03:30:00+02:00"}},
      // From the change itself: its tick is not repeated.
      {"30 2 * * *", "Europe/Berlin", "2025-03-30T03:00:00+02:00", {"2025-03-31T02:30:00+02:00"}},
  });
}

TEST(CronDst, EuropeBerlinFallBack) {
  // 2025-10-26: 03:00 CEST becomes 02:00 CET; 02:00-02:59 happens twice.
  expect_runs({
      // A repeated fixed time runs once, at its first occurrence.
      {"30 2 * * *",
       "Europe/Berlin",
       "2025-10-25T12:00:00+02:00",
       {"2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"}},
      // Starting inside the second pass of the hour, before 02:30 CET.
      {"30 2 * * *", "Europe/Berlin", "2025-10-26T02:10:00+01:00", {"2025-10-27T02:30:00+01:00"}},
      {"30 2 * * *", "Europe/Berlin", "2025-10-26T02:00:00+01:00", {"2025-10-27T02:30:00+01:00"}},
      {"*/20 2 * * *",
       "Europe/Berlin",
       "2025-10-26T01:59:00+02:00",
       {"2025-10-26T02:00:00+02:00", "2025-10-26T02:20:00+02:00", "2025-10-26T02:40:00+02:00",
        "2025-10-27T02:00:00+01:00"}},
      {"*/20 2 * * *", "Europe/Berlin", "2025-10-26T02:50:00+02:00", {"2025-10-27T02:00:00+01:00"}},
      // 03:00 exists only once, after the change.
      {"0 3 * * *", "Europe/Berlin", "2025-10-26T00:00:00+02:00", {"2025-10-26T03:00:00+01:00"}},
      // Every hour: real time, the repeated hour has two ticks.
      {"30 * * * *",
       "Europe/Berlin",
       "2025-10-26T01:00:00+02:00",
       {"2025-10-26T01:30:00+02:00", "2025-10-26T02:30:00+02:00", "2025-10-26T02:30:00+01:00",
        "2025-10-26T03:30:00+01:00"}},
      {"30 * * * *", "Europe/Berlin", "2025-10-26T02:40:00+02:00", {"2025-10-26T02:30:00+01:00"}},
  });
}

TEST(CronDst, AmericaNewYork) {
  expect_runs({
      // 2025-03-09: 02:00 EST becomes 03:00 EDT.
      {"30 2 * * *",
       "America/New_York",
       "2025-03-08T12:00:00-05:00",
       {"2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"}},
      {"0 * * * *",
       "America/New_York",
       "2025-03-09T00:30:00-05:00",
       {"2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T04:00:00-04:00"}},
      // 2025-11-02: 02:00 EDT becomes 01:00 EST; 01:00-01:59 happens twice.
      {"30 1 * * *",
       "America/New_York",
       "2025-11-01T12:00:00-04:00",
       {"2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"}},
      {"0 1 * * *",
       "America/New_York",
       "2025-11-01T12:00:00-04:00",
       {"2025-11-02T01:00:00-04:00", "2025-11-03T01:00:00-05:00"}},
      {"30 * * * *",
       "America/New_York",
       "2025-11-02T00:45:00-04:00",
       {"2025-11-02T01:30:00-04:00", "2025-11-02T01:30:00-05:00", "2025-11-02T02:30:00-05:00"}},
      {"@hourly",
       "America/New_York",
       "2025-11-02T00:30:00-04:00",
       {"2025-11-02T01:00:00-04:00", "2025-11-02T01:00:00-05:00", "2025-11-02T02:00:00-05:00"}},
      // A daily job in the zone: 24 real hours apart except across a change.
      {"0 9 * * *",
       "America/New_York",
       "2025-11-01T10:00:00-04:00",
       {"2025-11-02T09:00:00-05:00", "2025-11-03T09:00:00-05:00"}},
  });
}

TEST(CronDst, SkippedWholeDay) {
  // Samoa moved across the date line: 2011-12-30 did not happen in Apia.
  expect_runs({
      {"0 12 * * *",
       "Pacific/Apia",
       "2011-12-29T13:00:00-10:00",
       {"2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"}},
      {"0 * 30 12 *", "Pacific/Apia", "2011-12-29T13:00:00-10:00", {"2012-12-30T00:00:00+14:00"}},
  });
}

struct ErrorCase {
  std::string expression;
  std::string message;
  std::size_t position;
};

TEST(CronExpression, InvalidExpressionsSayWhere) {
  const std::vector<ErrorCase> cases = {
      {"61 * * * *", "invalid cron expression \"61 * * * *\": minute field: 61 is out of range 0-59", 1},
      {"* 24 * * *", "invalid cron expression \"* 24 * * *\": hour field: 24 is out of range 0-23", 3},
      {"* * 0 * *", "invalid cron expression \"* * 0 * *\": day-of-month field: 0 is out of range 1-31", 5},
      {"* * 32 * *", "invalid cron expression \"* * 32 * *\": day-of-month field: 32 is out of range 1-31", 5},
      {"* * * 13 *", "invalid cron expression \"* * * 13 *\": month field: 13 is out of range 1-12", 7},
      {"* * * * 8", "invalid cron expression \"* * * * 8\": day-of-week field: 8 is out of range 0-7", 9},
      {"99999999999 * * * *",
       "invalid cron expression \"99999999999 * * * *\": minute field: 99999999999 is out of range 0-59", 1},
      {"1-70 * * * *", "invalid cron expression \"1-70 * * * *\": minute field: 70 is out of range 0-59", 3},
      {"* * * *",
       "invalid cron expression \"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), "
       "found 4",
       0},
      {"* * * * * *",
       "invalid cron expression \"* * * * * *\": expected 5 fields (minute hour day-of-month month "
       "day-of-week), found 6",
       0},
      {"", "invalid cron expression \"\": expected 5 fields (minute hour day-of-month month day-of-week), found 0", 0},
      {"30-10 * * * *", "invalid cron expression \"30-10 * * * *\": minute field: range 30-10 is reversed", 1},
      {"0 22-2 * * *", "invalid cron expression \"0 22-2 * * *\": hour field: range 22-2 is reversed", 3},
      {"0 0 * * fri-mon", "invalid cron expression \"0 0 * * fri-mon\": day-of-week field: range fri-mon is reversed",
       9},
      {"*/0 * * * *", "invalid cron expression \"*/0 * * * *\": minute field: step 0 is out of range 1-60", 3},
      {"*/61 * * * *", "invalid cron expression \"*/61 * * * *\": minute field: step 61 is out of range 1-60", 3},
      {"0 0 * * */8", "invalid cron expression \"0 0 * * */8\": day-of-week field: step 8 is out of range 1-7", 11},
      {"*/x * * * *", "invalid cron expression \"*/x * * * *\": minute field: step \"x\" is not a number", 3},
      {"*/ * * * *", "invalid cron expression \"*/ * * * *\": minute field: expected a step at position 3", 3},
      {"1,,2 * * * *", "invalid cron expression \"1,,2 * * * *\": minute field: empty list item at position 3", 3},
      {"1, * * * *", "invalid cron expression \"1, * * * *\": minute field: empty list item at position 3", 3},
      {"* ,1 * * *", "invalid cron expression \"* ,1 * * *\": hour field: empty list item at position 3", 3},
      {"5x * * * *", "invalid cron expression \"5x * * * *\": minute field: unexpected \"x\" at position 2", 2},
      {"*-5 * * * *", "invalid cron expression \"*-5 * * * *\": minute field: unexpected \"-\" at position 2", 2},
      {"1-5-7 * * * *", "invalid cron expression \"1-5-7 * * * *\": minute field: unexpected \"-\" at position 4", 4},
      {"# * * * *", "invalid cron expression \"# * * * *\": minute field: unexpected \"#\" at position 1", 1},
      {"abc * * * *", "invalid cron expression \"abc * * * *\": minute field: \"abc\" is not a number", 1},
      {"0 0 mon * *", "invalid cron expression \"0 0 mon * *\": day-of-month field: \"mon\" is not a number", 5},
      {"* * * foo *",
       "invalid cron expression \"* * * foo *\": month field: \"foo\" is not a number or a month name (jan-dec)", 7},
      {"* * * * funday",
       "invalid cron expression \"* * * * funday\": day-of-week field: \"funday\" is not a number or a day name "
       "(sun-sat)",
       9},
      {"* * * * mon-", "invalid cron expression \"* * * * mon-\": day-of-week field: expected a value at position 13",
       13},
      {"0 0 30 2 *",
       "invalid cron expression \"0 0 30 2 *\": day-of-month field: day \"30\" never occurs in month \"2\"", 5},
      {"0 0 31 4,6,9,11 *",
       "invalid cron expression \"0 0 31 4,6,9,11 *\": day-of-month field: day \"31\" never occurs in month "
       "\"4,6,9,11\"",
       5},
      {"@minutely",
       "invalid cron expression \"@minutely\": unknown macro @minutely (known: @yearly, @annually, @monthly, "
       "@weekly, @daily, @midnight, @hourly, @every <interval>)",
       1},
      {"@daily 5", "invalid cron expression \"@daily 5\": unexpected \"5\" at position 8 after @daily", 8},
      {"@every", "invalid cron expression \"@every\": @every needs an interval, e.g. @every 5 minutes", 0},
      {"@every 0s", "invalid cron expression \"@every 0s\": @every interval must be at least 1 second", 0},
      {"@every 0 hours 0 minutes",
       "invalid cron expression \"@every 0 hours 0 minutes\": @every interval must be at least 1 second", 0},
      {"@every 3651 days", "invalid cron expression \"@every 3651 days\": @every interval must be at most 3650 days",
       0},
      {"@every 5 fortnights",
       "invalid cron expression \"@every 5 fortnights\": @every: unknown unit \"fortnights\" at position 10 (use "
       "seconds, minutes, hours, days or weeks)",
       10},
      {"@every 30",
       "invalid cron expression \"@every 30\": @every: 30 at position 8 has no unit (seconds, minutes, hours, days "
       "or weeks)",
       8},
      {"@every 1.5h", "invalid cron expression \"@every 1.5h\": @every: unexpected \".\" at position 9", 9},
      {"@every minutes",
       "invalid cron expression \"@every minutes\": @every: expected a number at position 8, found \"m\"", 8},
  };
  for (const ErrorCase& c : cases) {
    const taskq::CronParseResult r = taskq::parse_cron_expression(c.expression);
    EXPECT_FALSE(r.ok()) << c.expression;
    EXPECT_EQ(r.error.message, c.message) << c.expression;
    EXPECT_EQ(r.error.position, c.position) << c.expression;
  }
}

TEST(CronExpression, AbsurdlyLongInputIsRefusedWithoutQuotingIt) {
  const std::string longest = "0 0 * * " + std::string(taskq::kMaxCronExpressionLength - 9, ' ') + "*";
  ASSERT_EQ(longest.size(), taskq::kMaxCronExpressionLength);
  EXPECT_TRUE(taskq::parse_cron_expression(longest).ok());
  const taskq::CronParseResult r = taskq::parse_cron_expression(longest + " ");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error.message, "invalid cron expression: longer than 1000 characters");
  const std::string control = "* * * * *\x01";
  EXPECT_EQ(taskq::parse_cron_expression(control).error.message,
            "invalid cron expression \"" + control + "\": day-of-week field: unexpected character 1 at position 10");
  // A multi-byte character is shown whole.
  EXPECT_EQ(
      taskq::parse_cron_expression("0 0 * * m\xc3\xa4n").error.message,
      "invalid cron expression \"0 0 * * m\xc3\xa4n\": day-of-week field: \"m\xc3\xa4n\" is not a number or a day "
      "name (sun-sat)");
  EXPECT_EQ(taskq::parse_cron_expression("0 0 * * 1\xc3\xa4").error.message,
            "invalid cron expression \"0 0 * * 1\xc3\xa4\": day-of-week field: unexpected \"\xc3\xa4\" at position 10");
}

TEST(CronExpression, FieldsAreBitsets) {
  const taskq::CronParseResult r = taskq::parse_cron_expression("0,30 */6 1-7 jan-mar sat-sun");
  ASSERT_TRUE(r.ok()) << r.error.message;
  const taskq::CronExpression& e = *r.expression;
  EXPECT_EQ(e.minutes, (1ULL << 0) | (1ULL << 30));
  EXPECT_EQ(e.hours, (1ULL << 0) | (1ULL << 6) | (1ULL << 12) | (1ULL << 18));
  EXPECT_EQ(e.days_of_month, 0xFEULL);
  EXPECT_EQ(e.months, 0xEULL);
  EXPECT_EQ(e.days_of_week, (1ULL << 0) | (1ULL << 6));  // 7 folded into Sunday = 0
  EXPECT_EQ(taskq::parse_cron_expression("0 0 * * sun-sun").expression->days_of_week, 1ULL);
  EXPECT_EQ(taskq::parse_cron_expression("0 0 * * sun-tue").expression->days_of_week, 0x7ULL);
  EXPECT_FALSE(e.every_hour());
  EXPECT_TRUE(taskq::parse_cron_expression("0 0-23 * * *").expression->every_hour());
  EXPECT_TRUE(taskq::parse_cron_expression("0 */1 * * *").expression->every_hour());
  EXPECT_EQ(taskq::parse_cron_expression("@every 1 hour 30 minutes").expression->every_seconds, 5400);
  EXPECT_EQ(taskq::parse_cron_expression("@every 1d 2h 3m 4s").expression->every_seconds, 93784);
}

TEST(CronSchedule, UnknownTimeZones) {
  for (const char* zone : {"Mars/Base", "", "Europe", "europe/berlin", "../etc/passwd", "/etc/localtime", "localtime",
                           "Europe//Berlin", "Europe/Berlin/", "Europe/Berlin\n"}) {
    const taskq::CronScheduleResult r = CronSchedule::create("* * * * *", zone);
    EXPECT_FALSE(r.ok()) << zone;
    EXPECT_EQ(r.error.message, "unknown time zone \"" + std::string(zone) + "\"");
    EXPECT_EQ(r.error.position, 0u);
  }
  for (const char* zone : {"UTC", "utc", "Etc/UTC", "Etc/GMT-5", "America/Argentina/Buenos_Aires", "Asia/Kolkata"}) {
    EXPECT_TRUE(CronSchedule::create("* * * * *", zone).ok()) << zone;
  }
  // The expression is checked first.
  EXPECT_EQ(CronSchedule::create("61 * * * *", "Mars/Base").error.message,
            "invalid cron expression \"61 * * * *\": minute field: 61 is out of range 0-59");
}

TEST(CronSchedule, OneCallApiForTheSqlLayer) {
  const taskq::CronNextRun ok = taskq::cron_next_run("30 2 * * *", "Europe/Berlin", instant("2025-03-29T12:00:00Z"), 0);
  EXPECT_TRUE(ok.ok);
  EXPECT_TRUE(ok.has_next);
  EXPECT_EQ(ok.next, instant("2025-03-30T01:00:00Z"));
  const taskq::CronNextRun bad = taskq::cron_next_run("* * *", "UTC", 0, 0);
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.error.message,
            "invalid cron expression \"* * *\": expected 5 fields (minute hour day-of-month month day-of-week), "
            "found 3");
  const taskq::CronNextRun zone = taskq::cron_next_run("* * * * *", "Nowhere/City", 0, 0);
  EXPECT_FALSE(zone.ok);
  EXPECT_EQ(zone.error.message, "unknown time zone \"Nowhere/City\"");
  // Out of range is no next run, not an error.
  const taskq::CronNextRun end = taskq::cron_next_run("* * * * *", "UTC", INT64_MAX - 1, 0);
  EXPECT_TRUE(end.ok);
  EXPECT_FALSE(end.has_next);
  // The far past works too.
  const taskq::CronNextRun start = taskq::cron_next_run("0 0 1 1 *", "Europe/Berlin", INT64_MIN, 0);
  EXPECT_TRUE(start.has_next);
  EXPECT_GT(start.next, INT64_MIN);
}

// The wall clock of every minute of a span, looked up once per zone.
struct ZoneMinute {
  std::int64_t instant;  // seconds
  cctz::civil_minute wall;
  bool first_occurrence;            // no earlier instant had this wall-clock time
  cctz::civil_minute skipped_from;  // wall-clock times [skipped_from, wall) did not happen
};

std::vector<ZoneMinute> zone_minutes(const cctz::time_zone& zone, std::int64_t from, std::int64_t to) {
  const auto at = [](std::int64_t s) { return cctz::time_point<cctz::seconds>(cctz::seconds(s)); };
  std::vector<ZoneMinute> out;
  cctz::civil_minute previous(zone.lookup(at(from)).cs);
  for (std::int64_t t = from + 60; t < to; t += 60) {
    const cctz::civil_second wall = zone.lookup(at(t)).cs;
    out.push_back({t, cctz::civil_minute(wall), zone.lookup(wall).pre == at(t), previous + 1});
    previous = cctz::civil_minute(wall);
  }
  return out;
}

// Reference: every minute, with the rules of cron_schedule.hpp spelt out.
std::vector<UnixMicros> brute_force_runs(const taskq::CronExpression& e, const std::vector<ZoneMinute>& minutes) {
  std::vector<UnixMicros> ticks;
  for (const ZoneMinute& m : minutes) {
    const bool selected = taskq::cron_selects(e, m.wall);
    bool tick = false;
    if (e.every_hour()) {
      tick = selected;  // real time: any instant whose wall clock matches
    } else {
      tick = selected && m.first_occurrence;
      for (cctz::civil_minute skipped = m.skipped_from; skipped < m.wall && !tick; ++skipped) {
        tick = taskq::cron_selects(e, skipped);  // skipped times run at the change
      }
    }
    if (tick) ticks.push_back(m.instant * kSecond);
  }
  return ticks;
}

TEST(CronProperty, SteppingEqualsMinuteByMinuteSearchOverAYear) {
  // A leap year with both DST changes in both zones.
  const std::int64_t from = instant("2027-12-01T00:00:00Z") / kSecond;
  const std::int64_t to = instant("2028-12-01T00:00:00Z") / kSecond;
  for (const char* zone_name : {"UTC", "Europe/Berlin", "America/New_York"}) {
    cctz::time_zone zone;
    ASSERT_TRUE(cctz::load_time_zone(zone_name, &zone));
    const std::vector<ZoneMinute> minutes = zone_minutes(zone, from, to);
    for (const char* expression :
         {"*/7 * * * *", "30 2 * * *", "*/20 1-3 * * *", "0 0 29 2 *", "15 10 1,15 * mon", "0 */5 * * sat,sun",
          "45 * 31 * *", "0 2 * 3,10 0", "@hourly", "* 2 * * *", "59 1 * * *", "0 3 * * *"}) {
      const CronSchedule s = schedule(expression, zone_name);
      std::vector<UnixMicros> stepped;
      UnixMicros t = from * kSecond;
      while (true) {
        const auto next = s.next_run(t, 0);
        ASSERT_TRUE(next.has_value()) << expression;
        if (*next >= to * kSecond) break;
        stepped.push_back(*next);
        t = *next;
      }
      const std::vector<UnixMicros> expected = brute_force_runs(s.expression(), minutes);
      EXPECT_FALSE(expected.empty()) << expression;
      EXPECT_EQ(stepped, expected) << expression << " in " << zone_name;
    }
  }
}

TEST(CronProperty, NextRunTakesMicroseconds) {
  // Generous bound for a loaded machine; a minute-by-minute search over a
  // year (the leap-day case) would take milliseconds.
  const CronSchedule leap = schedule("0 0 29 2 *", "Europe/Berlin");
  const CronSchedule busy = schedule("*/5 9-17 * * mon-fri", "America/New_York");
  const UnixMicros start = instant("2025-01-01T00:00:00Z");
  constexpr int kCalls = 20'000;
  const auto began = std::chrono::steady_clock::now();
  UnixMicros sink = 0;
  for (int i = 0; i < kCalls; ++i) {
    sink += leap.next_run(start + i * 60 * kSecond, 0).value_or(0);
    sink += busy.next_run(start + i * 60 * kSecond, 0).value_or(0);
  }
  const auto per_call = (std::chrono::steady_clock::now() - began) / (2 * kCalls);
  EXPECT_NE(sink, 0);
  EXPECT_LT(per_call, std::chrono::microseconds(50));
}

}  // namespace
