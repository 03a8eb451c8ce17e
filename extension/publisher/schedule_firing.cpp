// Firing periodic jobs (see schedule_firing.hpp).
#include "publisher/schedule_firing.hpp"

#include "publisher/pass_transaction.hpp"
#include "publisher/status_update.hpp"

extern "C" {
#include "utils/timestamp.h"
}

namespace taskq::publisher {
namespace {

bool take_schedules_changed(void) {
  bool changed = false;
  update_shared([&](TaskqPublisherSlot& shared) {
    changed = shared.schedules_changed;
    shared.schedules_changed = false;
  });
  return changed;
}

bool single_bool(const char* query) {
  bool isnull = true;
  bool value = false;
  if (SPI_execute(query, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
    value = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  return !isnull && value;
}

}  // namespace

void fire_due_schedules(PublisherState& st) {
  // Taken before the transaction starts: a change committed after this
  // point raises the flag again and gets its own look.
  const bool changed = take_schedules_changed();
  const bool due = st.next_schedule_at != 0 && GetCurrentTimestamp() >= st.next_schedule_at;
  if (st.schedules_known && !changed && !due) return;

  begin_transaction("taskq publisher: firing schedules");
  TimestampTz next = 0;
  // The SQL of a version before periodic jobs (until ALTER EXTENSION
  // UPDATE) has no schedules to fire.
  if (single_bool("SELECT to_regprocedure('taskq._fire_due_schedules()') IS NOT NULL") &&
      SPI_execute("SELECT taskq._fire_due_schedules()", false, 1) == SPI_OK_SELECT && SPI_processed == 1) {
    bool isnull;
    const Datum tick = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (!isnull) next = DatumGetTimestampTz(tick);
  }
  finish_transaction();
  st.next_schedule_at = next;
  st.schedules_known = true;
}

long milliseconds_until_next_tick(const PublisherState& st) {
  if (st.next_schedule_at == 0) return LONG_MAX;
  return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), st.next_schedule_at);
}

}  // namespace taskq::publisher
