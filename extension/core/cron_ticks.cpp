// The due ticks of a window (see cron_ticks.hpp).
#include "cron_ticks.hpp"

#include <deque>
#include <limits>
#include <optional>

namespace taskq {

namespace {

constexpr std::int64_t kMicrosPerSecond = 1'000'000;

// @every ticks are evenly spaced: count them instead of stepping.
void every_ticks(const CronSchedule& schedule, UnixMicros first, UnixMicros until, std::size_t max_ticks,
                 CronTicks& out) {
  const std::int64_t interval = schedule.expression().every_seconds * kMicrosPerSecond;
  const std::uint64_t count = static_cast<std::uint64_t>((until - first) / interval) + 1;
  const std::uint64_t kept = count < max_ticks ? count : max_ticks;
  out.skipped = count - kept;
  const __int128 start = static_cast<__int128>(first) + static_cast<__int128>(out.skipped) * interval;
  out.ticks.reserve(kept);
  for (std::uint64_t i = 0; i < kept; ++i) out.ticks.push_back(static_cast<UnixMicros>(start + i * interval));
}

void calendar_ticks(const CronSchedule& schedule, UnixMicros first, UnixMicros until, UnixMicros anchor,
                    std::size_t max_ticks, CronTicks& out) {
  std::deque<UnixMicros> latest;
  for (std::optional<UnixMicros> tick = first; tick && *tick <= until; tick = schedule.next_run(*tick, anchor)) {
    latest.push_back(*tick);
    if (latest.size() > max_ticks) {
      latest.pop_front();
      ++out.skipped;
    }
  }
  out.ticks.assign(latest.begin(), latest.end());
}

}  // namespace

CronTicks cron_ticks(std::string_view expression, std::string_view time_zone, UnixMicros from, UnixMicros until,
                     UnixMicros anchor, std::size_t max_ticks) noexcept {
  CronTicks out;
  try {
    CronScheduleResult created = CronSchedule::create(expression, time_zone);
    if (!created.ok()) {
      out.error = std::move(created.error);
      return out;
    }
    out.ok = true;
    if (from == std::numeric_limits<UnixMicros>::min() || max_ticks == 0) return out;
    // The first tick at or after `from`: ticks are never closer than 1 µs.
    const std::optional<UnixMicros> first = created.schedule->next_run(from - 1, anchor);
    if (!first || *first > until) return out;
    if (created.schedule->expression().is_every()) {
      every_ticks(*created.schedule, *first, until, max_ticks, out);
    } else {
      calendar_ticks(*created.schedule, *first, until, anchor, max_ticks, out);
    }
  } catch (...) {
    out = CronTicks{};
    out.error.message = "out of memory";
  }
  return out;
}

}  // namespace taskq
