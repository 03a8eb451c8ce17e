// SQL-callable schedule arithmetic over the core's cron rules
// (core/cron_schedule.hpp): taskq._cron_next(), which schedule() uses to
// validate and the firing uses to advance next_run_at, and
// taskq._cron_ticks(), the ticks a due schedule fires. Errors about the
// expression or the zone are 22023 with the core's message, which says
// where the expression is wrong.
#include "core_bridge.h"
#include "pg_includes.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/timestamp.h"
}

namespace {

// The most ticks one call may return (the firing asks for at most 1000).
constexpr int kMaxTicksPerCall = 100000;

constexpr int64 kUnixEpochInPostgresMicros = (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

int64 to_unix_micros(TimestampTz t, const char* name) {
  int64 unix_micros;
  if (TIMESTAMP_NOT_FINITE(t))
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must be a finite time", name)));
  if (pg_add_s64_overflow(t, kUnixEpochInPostgresMicros, &unix_micros))
    ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("%s is out of range", name)));
  return unix_micros;
}

// False when the tick is beyond what timestamptz holds.
bool from_unix_micros(int64 unix_micros, TimestampTz* out) {
  if (pg_sub_s64_overflow(unix_micros, kUnixEpochInPostgresMicros, out)) return false;
  return IS_VALID_TIMESTAMP(*out);
}

void report_cron_error(int status, const char* err) {
  if (status == TASKQ_CRON_INVALID) ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", err)));
  ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not compute a schedule: %s", err)));
}

}  // namespace

extern "C" {

// taskq._cron_next(cron text, timezone text, after timestamptz, anchor
// timestamptz): the first tick strictly after `after`; NULL if out of range.
PG_FUNCTION_INFO_V1(taskq_cron_next);
Datum taskq_cron_next(PG_FUNCTION_ARGS) {
  const text* expression = PG_GETARG_TEXT_PP(0);
  const text* zone = PG_GETARG_TEXT_PP(1);
  const int64 after = to_unix_micros(PG_GETARG_TIMESTAMPTZ(2), "after");
  const int64 anchor = to_unix_micros(PG_GETARG_TIMESTAMPTZ(3), "anchor");
  char err[1200];
  bool has_next = false;
  int64 next = 0;
  const int status = taskq_bridge_cron_next(VARDATA_ANY(expression), VARSIZE_ANY_EXHDR(expression), VARDATA_ANY(zone),
                                            VARSIZE_ANY_EXHDR(zone), after, anchor, &has_next, &next, err, sizeof(err));
  if (status != TASKQ_CRON_OK) report_cron_error(status, err);
  TimestampTz result;
  if (!has_next || !from_unix_micros(next, &result)) PG_RETURN_NULL();
  PG_RETURN_TIMESTAMPTZ(result);
}

// taskq._cron_ticks(cron text, timezone text, from timestamptz, until
// timestamptz, anchor timestamptz, max_ticks int): the latest max_ticks
// ticks in [from, until], ascending.
PG_FUNCTION_INFO_V1(taskq_cron_ticks);
Datum taskq_cron_ticks(PG_FUNCTION_ARGS) {
  const text* expression = PG_GETARG_TEXT_PP(0);
  const text* zone = PG_GETARG_TEXT_PP(1);
  const int64 from = to_unix_micros(PG_GETARG_TIMESTAMPTZ(2), "from");
  const int64 until = to_unix_micros(PG_GETARG_TIMESTAMPTZ(3), "until");
  const int64 anchor = to_unix_micros(PG_GETARG_TIMESTAMPTZ(4), "anchor");
  const int32 max_ticks = PG_GETARG_INT32(5);
  if (max_ticks < 0 || max_ticks > kMaxTicksPerCall)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("max_ticks must be between 0 and %d, not %d", kMaxTicksPerCall, max_ticks)));
  int64* ticks = static_cast<int64*>(palloc(sizeof(int64) * (max_ticks > 0 ? max_ticks : 1)));
  size_t count = 0;
  uint64_t skipped = 0;
  char err[1200];
  const int status = taskq_bridge_cron_ticks(
      VARDATA_ANY(expression), VARSIZE_ANY_EXHDR(expression), VARDATA_ANY(zone), VARSIZE_ANY_EXHDR(zone), from, until,
      anchor, reinterpret_cast<int64_t*>(ticks), static_cast<size_t>(max_ticks), &count, &skipped, err, sizeof(err));
  if (status != TASKQ_CRON_OK) report_cron_error(status, err);
  Datum* values = static_cast<Datum*>(palloc(sizeof(Datum) * (count > 0 ? count : 1)));
  int n = 0;
  for (size_t i = 0; i < count; i++) {
    TimestampTz tick;
    if (from_unix_micros(ticks[i], &tick)) values[n++] = TimestampTzGetDatum(tick);
  }
  PG_RETURN_ARRAYTYPE_P(construct_array(values, n, TIMESTAMPTZOID, sizeof(TimestampTz), true, TYPALIGN_DOUBLE));
}
}
