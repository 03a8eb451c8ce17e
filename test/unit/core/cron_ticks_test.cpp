// The due ticks of a window (core/cron_ticks.hpp): both ends included, the
// latest ticks kept when there are more than asked for, @every counted
// without stepping, DST rules as for single next runs, errors passed on.
#include "core/cron_ticks.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using taskq::UnixMicros;

constexpr UnixMicros kSecond = 1'000'000;

UnixMicros instant(const std::string& text) {
  cctz::time_point<std::chrono::microseconds> tp;
  EXPECT_TRUE(cctz::parse("%Y-%m-%dT%H:%M:%E*S%Ez", text, cctz::utc_time_zone(), &tp)) << text;
  return tp.time_since_epoch().count();
}

std::vector<std::string> shown(const std::vector<UnixMicros>& ticks) {
  std::vector<std::string> out;
  for (UnixMicros t : ticks)
    out.push_back(cctz::format("%Y-%m-%dT%H:%M:%S%Ez",
                               cctz::time_point<std::chrono::microseconds>{std::chrono::microseconds(t)},
                               cctz::utc_time_zone()));
  return out;
}

TEST(CronTicks, BothEndsOfTheWindowAreIncluded) {
  const auto got = taskq::cron_ticks("0 * * * *", "UTC", instant("2025-01-01T01:00:00+00:00"),
                                     instant("2025-01-01T03:00:00+00:00"), 0, 10);
  ASSERT_TRUE(got.ok) << got.error.message;
  EXPECT_EQ(shown(got.ticks), (std::vector<std::string>{"2025-01-01T01:00:00+00:00", "2025-01-01T02:00:00+00:00",
                                                        "2025-01-01T03:00:00+00:00"}));
  EXPECT_EQ(got.skipped, 0u);
}

TEST(CronTicks, TheLatestTicksAreKeptWhenThereAreMore) {
  const auto got = taskq::cron_ticks("*/10 * * * *", "UTC", instant("2025-01-01T00:00:00+00:00"),
                                     instant("2025-01-01T01:05:00+00:00"), 0, 2);
  ASSERT_TRUE(got.ok);
  EXPECT_EQ(shown(got.ticks), (std::vector<std::string>{"2025-01-01T00:50:00+00:00", "2025-01-01T01:00:00+00:00"}));
  EXPECT_EQ(got.skipped, 5u);
}

TEST(CronTicks, EveryIsCountedFromTheAnchorEvenOverYears) {
  const UnixMicros anchor = instant("2000-01-01T00:00:00+00:00");
  const UnixMicros until = instant("2025-01-01T00:00:00+00:00");
  const auto got = taskq::cron_ticks("@every 1s", "UTC", anchor, until, anchor, 3);
  ASSERT_TRUE(got.ok);
  EXPECT_EQ(got.ticks, (std::vector<UnixMicros>{until - 2 * kSecond, until - kSecond, until}));
  EXPECT_EQ(got.skipped, static_cast<std::uint64_t>((until - anchor) / kSecond) - 3);
}

TEST(CronTicks, ASkippedTimeIsOneTickAtTheChange) {
  // 02:30 does not exist in Berlin on 2025-03-30: it runs at 03:00 CEST.
  const auto got = taskq::cron_ticks("30 2 * * *", "Europe/Berlin", instant("2025-03-29T00:00:00+00:00"),
                                     instant("2025-03-31T12:00:00+00:00"), 0, 10);
  ASSERT_TRUE(got.ok);
  EXPECT_EQ(shown(got.ticks), (std::vector<std::string>{"2025-03-29T01:30:00+00:00", "2025-03-30T01:00:00+00:00",
                                                        "2025-03-31T00:30:00+00:00"}));
}

TEST(CronTicks, AnEmptyWindowOrNoTicksWantedGivesNone) {
  const UnixMicros t = instant("2025-01-01T00:00:30+00:00");
  EXPECT_TRUE(taskq::cron_ticks("* * * * *", "UTC", t, t + 10 * kSecond, 0, 10).ticks.empty());
  EXPECT_TRUE(taskq::cron_ticks("* * * * *", "UTC", t, t + 3600 * kSecond, 0, 0).ticks.empty());
}

TEST(CronTicks, ErrorsAreTheParsersAndTheZones) {
  const auto bad = taskq::cron_ticks("61 * * * *", "UTC", 0, kSecond, 0, 1);
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.error.message, "invalid cron expression \"61 * * * *\": minute field: 61 is out of range 0-59");
  const auto zone = taskq::cron_ticks("* * * * *", "Nowhere/Land", 0, kSecond, 0, 1);
  EXPECT_FALSE(zone.ok);
  EXPECT_EQ(zone.error.message, "unknown time zone \"Nowhere/Land\"");
}

}  // namespace
