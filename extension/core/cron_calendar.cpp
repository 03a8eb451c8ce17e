// Field-by-field search for selected wall-clock minutes; see cron_calendar.hpp.
#include "cron_calendar.hpp"

namespace taskq {

namespace {

// The smallest set bit >= from, or -1.
int next_bit(std::uint64_t mask, int from) {
  if (from > 63) return -1;
  const std::uint64_t rest = mask >> from;
  return rest == 0 ? -1 : from + __builtin_ctzll(rest);
}

bool has_bit(std::uint64_t mask, int bit) { return (mask >> bit & 1ULL) != 0; }

int cron_weekday(const cctz::civil_day& day) {
  // cctz counts from Monday = 0; cron from Sunday = 0.
  return (static_cast<int>(cctz::get_weekday(day)) + 1) % 7;
}

bool day_selected(const CronExpression& e, const cctz::civil_day& day) {
  const bool by_month_day = e.day_of_month_restricted();
  const bool by_week_day = e.day_of_week_restricted();
  const bool month_day = has_bit(e.days_of_month, day.day());
  const bool week_day = has_bit(e.days_of_week, cron_weekday(day));
  if (by_month_day && by_week_day) return month_day || week_day;
  if (by_month_day) return month_day;
  if (by_week_day) return week_day;
  return true;
}

int days_in_month(cctz::year_t year, int month) {
  const cctz::civil_month first(year, month);
  return static_cast<int>(cctz::civil_day(first + 1) - cctz::civil_day(first));
}

}  // namespace

bool cron_selects(const CronExpression& e, const cctz::civil_minute& m) {
  return has_bit(e.months, m.month()) && day_selected(e, cctz::civil_day(m)) && has_bit(e.hours, m.hour()) &&
         has_bit(e.minutes, m.minute());
}

std::optional<cctz::civil_minute> next_selected_minute(const CronExpression& e, cctz::civil_minute m,
                                                       const cctz::civil_second& until) {
  // Each round either returns or moves m strictly forward to the start of
  // the next candidate month, day, hour or minute.
  while (cctz::civil_second(m) < until) {
    if (!has_bit(e.months, m.month())) {
      const int month = next_bit(e.months, m.month() + 1);
      m = month > 0 ? cctz::civil_minute(m.year(), month, 1, 0, 0)
                    : cctz::civil_minute(m.year() + 1, next_bit(e.months, 1), 1, 0, 0);
      continue;
    }
    const cctz::civil_day day(m);
    if (!day_selected(e, day)) {
      if (e.day_of_week_restricted()) {
        m = cctz::civil_minute(day + 1);  // weekdays: look at each day
      } else {
        // Only the day of month decides: jump to the next selected one.
        const int next = next_bit(e.days_of_month, m.day() + 1);
        m = next > 0 && next <= days_in_month(m.year(), m.month()) ? cctz::civil_minute(m.year(), m.month(), next, 0, 0)
                                                                   : cctz::civil_minute(cctz::civil_month(m) + 1);
      }
      continue;
    }
    if (!has_bit(e.hours, m.hour())) {
      const int hour = next_bit(e.hours, m.hour() + 1);
      m = hour >= 0 && hour < 24 ? cctz::civil_minute(day.year(), day.month(), day.day(), hour, 0)
                                 : cctz::civil_minute(day + 1);
      continue;
    }
    if (!has_bit(e.minutes, m.minute())) {
      const int minute = next_bit(e.minutes, m.minute() + 1);
      m = minute >= 0 && minute < 60 ? cctz::civil_minute(m.year(), m.month(), m.day(), m.hour(), minute)
                                     : cctz::civil_minute(cctz::civil_hour(m) + 1);
      continue;
    }
    return m;
  }
  return std::nullopt;
}

}  // namespace taskq
