// The ticks of a schedule that fall in a window of time: what the
// background worker fires when a schedule's next run has come, perhaps
// after the server was down for many ticks (taskq._cron_ticks). Nothing
// here throws to the caller.
#pragma once

#include "no_postgres.hpp"

#include "cron_schedule.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace taskq {

struct CronTicks {
  bool ok = false;                // false: error says why
  std::vector<UnixMicros> ticks;  // ascending: the latest max_ticks ticks of the window
  std::uint64_t skipped = 0;      // older ticks of the window left out
  CronError error;
};

// The ticks t with from <= t <= until (the rules of cron_schedule.hpp,
// `anchor` as there), at most the latest max_ticks of them. @every windows
// cost the same whatever their length; a calendar expression is stepped
// tick by tick, at most one per minute of the window.
CronTicks cron_ticks(std::string_view expression, std::string_view time_zone, UnixMicros from, UnixMicros until,
                     UnixMicros anchor, std::size_t max_ticks) noexcept;

}  // namespace taskq
