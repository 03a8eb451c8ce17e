// Which wall-clock minutes a cron expression selects, on the proleptic
// Gregorian calendar and without any time zone: the building block of
// cron_schedule.hpp, which maps wall-clock minutes to instants.
#pragma once

#include "no_postgres.hpp"

#include "cron_expression.hpp"

#include <cctz/civil_time.h>

#include <optional>

namespace taskq {

// Whether the expression (not @every) selects this minute, with the
// day-of-month/day-of-week rule of cron_expression.hpp.
bool cron_selects(const CronExpression& expression, const cctz::civil_minute& minute);

// The first selected minute m with from <= m < until, if any. Steps field by
// field (to the next selected month, day, hour, minute), so a search over a
// year costs at most a few iterations per day, not one per minute.
std::optional<cctz::civil_minute> next_selected_minute(const CronExpression& expression, cctz::civil_minute from,
                                                       const cctz::civil_second& until);

}  // namespace taskq
