// The publisher's flow step (see flow_step.hpp).
#include "publisher/flow_step.hpp"

#include "publisher/pass_transaction.hpp"
#include "publisher/status_update.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/timestamp.h"
}

namespace taskq::publisher {
namespace {

bool take_flow_changed(void) {
  bool changed = false;
  update_shared([&](TaskqPublisherSlot& shared) {
    changed = shared.flow_changed;
    shared.flow_changed = false;
  });
  return changed;
}

bool step_exists(void) {
  bool isnull = true;
  bool exists = false;
  if (SPI_execute("SELECT to_regprocedure('taskq._flow_step(boolean)') IS NOT NULL", true, 1) == SPI_OK_SELECT &&
      SPI_processed == 1)
    exists = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  return !isnull && exists;
}

}  // namespace

void run_flow_step(PublisherState& st, bool sweep) {
  // Taken before the transaction starts: a request committed after this
  // point raises the flag again and gets a step of its own.
  const bool asked = take_flow_changed();
  const bool due = st.next_flow_at != 0 && GetCurrentTimestamp() >= st.next_flow_at;
  // A sweep that did not get through every key goes on in the next round.
  sweep = sweep || st.flow_sweep_pending;
  if (st.flow_known && !asked && !due && !sweep) return;
  bool sweep_again = false;

  begin_transaction("taskq publisher: flow control");
  TimestampTz next = 0;
  // The SQL of a version before flow control (until ALTER EXTENSION UPDATE)
  // has nothing to gate.
  if (lock_outbox() && step_exists()) {
    Oid argtypes[1] = {BOOLOID};
    Datum args[1] = {BoolGetDatum(sweep)};
    if (SPI_execute_with_args("SELECT next_at, sweep_again FROM taskq._flow_step($1)", 1, argtypes, args, nullptr,
                              false, 1) == SPI_OK_SELECT &&
        SPI_processed == 1) {
      bool isnull;
      const Datum when = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
      if (!isnull) next = DatumGetTimestampTz(when);
      const Datum again = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
      sweep_again = !isnull && DatumGetBool(again);
    }
  }
  finish_transaction();
  st.next_flow_at = next;
  st.flow_known = true;
  st.flow_sweep_pending = sweep_again;
}

long milliseconds_until_flow_step(const PublisherState& st) {
  if (st.flow_sweep_pending) return 0;
  if (st.next_flow_at == 0) return LONG_MAX;
  return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), st.next_flow_at);
}

}  // namespace taskq::publisher
