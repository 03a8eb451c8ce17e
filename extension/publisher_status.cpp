// taskq.publisher_status(): the publisher's state from shared memory, for
// the taskq.publisher view.
#include "pg_includes.hpp"
#include "shared_state.hpp"

extern "C" {
#include "access/htup_details.h"
#include "funcapi.h"

PG_FUNCTION_INFO_V1(taskq_publisher_status);
}

namespace {

Datum timestamp_or_null(TimestampTz ts, bool* isnull) {
  *isnull = ts == 0;
  return TimestampTzGetDatum(ts);
}

}  // namespace

extern "C" Datum taskq_publisher_status(PG_FUNCTION_ARGS) {
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("taskq.publisher_status must return a record")));
  desc = BlessTupleDesc(desc);

  // The publisher of the current database: each database of taskq.database
  // has its own, and sees only its own.
  TaskqPublisherStatus status;
  memset(&status, 0, sizeof(status));
  if (taskq_shared == nullptr) {
    strlcpy(status.state, "not preloaded (add taskq to shared_preload_libraries)", sizeof(status.state));
  } else {
    SpinLockAcquire(&taskq_shared->mutex);
    const int slot = taskq_slot_of_database_locked(MyDatabaseId);
    if (slot >= 0) status = taskq_shared->slots[slot].status;
    SpinLockRelease(&taskq_shared->mutex);
    const bool found = slot >= 0;
    if (!found) strlcpy(status.state, "not running (is this database in taskq.database?)", sizeof(status.state));
  }

  Datum values[15];
  bool nulls[15] = {false};
  values[0] = Int32GetDatum(status.pid);
  nulls[0] = status.pid == 0;
  values[1] = CStringGetTextDatum(status.state[0] ? status.state : "not running");
  values[2] = BoolGetDatum(status.connected);
  values[3] = BoolGetDatum(status.blocked);
  values[4] = CStringGetTextDatum(status.broker);
  nulls[4] = status.broker[0] == '\0';
  values[5] = timestamp_or_null(status.connected_since, &nulls[5]);
  values[6] = CStringGetTextDatum(status.last_error);
  nulls[6] = status.last_error[0] == '\0';
  values[7] = timestamp_or_null(status.last_error_at, &nulls[7]);
  values[8] = timestamp_or_null(status.last_publish_at, &nulls[8]);
  values[9] = Int64GetDatum(static_cast<int64>(status.published));
  values[10] = Int64GetDatum(static_cast<int64>(status.confirmed));
  values[11] = Int64GetDatum(static_cast<int64>(status.failed));
  values[12] = Int64GetDatum(static_cast<int64>(status.reconnects));
  values[13] = Int64GetDatum(static_cast<int64>(status.rescued));
  values[14] = Int64GetDatum(static_cast<int64>(status.reconciled));
  PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
