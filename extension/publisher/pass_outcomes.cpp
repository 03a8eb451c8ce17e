// Outcomes of a publishing pass into the database (see pass_outcomes.hpp).
#include "publisher/pass_outcomes.hpp"

#include "publisher/pass_transaction.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
}

namespace taskq::publisher {
namespace {

Datum int8_array(const int64* values, int count) {
  Datum* datums = static_cast<Datum*>(palloc(sizeof(Datum) * (count > 0 ? count : 1)));
  for (int i = 0; i < count; i++) datums[i] = Int64GetDatum(values[i]);
  return PointerGetDatum(construct_array(datums, count, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
}

// Keeps the job ids of confirmed rows until the pass has committed.
void remember_published_jobs(PassState* pass, ArrayType* jobs) {
  Datum* ids;
  int count;
  deconstruct_array(jobs, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &ids, nullptr, &count);
  if (pass->n_published_jobs + count > pass->published_capacity) {
    pass->published_capacity = Max(2 * pass->published_capacity, pass->n_published_jobs + count);
    pass->published_jobs = static_cast<pg_uuid_t*>(
        repalloc(pass->published_jobs, sizeof(pg_uuid_t) * static_cast<Size>(pass->published_capacity)));
  }
  for (int i = 0; i < count; i++) pass->published_jobs[pass->n_published_jobs++] = *DatumGetUUIDP(ids[i]);
}

}  // namespace

void record_publish_times(const PassState* pass) {
  if (pass->n_published_jobs == 0) return;
  begin_transaction("taskq publisher: recording publish times");
  if (lock_outbox()) {
    Datum* datums = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<Size>(pass->n_published_jobs)));
    for (int i = 0; i < pass->n_published_jobs; i++) datums[i] = UUIDPGetDatum(&pass->published_jobs[i]);
    Oid argtypes[1] = {UUIDARRAYOID};
    Datum args[1] = {
        PointerGetDatum(construct_array(datums, pass->n_published_jobs, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR))};
    if (SPI_execute_with_args("SELECT taskq._jobs_published($1)", 1, argtypes, args, nullptr, false, 0) !=
        SPI_OK_SELECT)
      elog(ERROR, "taskq publisher: recording publish times failed");
  }
  finish_transaction();
}

void record_outcomes(PassState* pass) {
  Oid argtypes[2] = {INT8ARRAYOID, TEXTOID};
  Datum args[2];
  if (pass->n_confirmed > 0) {
    args[0] = int8_array(pass->confirmed, pass->n_confirmed);
    if (SPI_execute_with_args("SELECT taskq._outbox_published($1)", 1, argtypes, args, nullptr, false, 0) !=
            SPI_OK_SELECT ||
        SPI_processed != 1)
      elog(ERROR, "taskq publisher: recording confirmed rows failed");
    // A library newer than the extension's SQL in this database must fail
    // cleanly here, not read another type as an array.
    if (SPI_gettypeid(SPI_tuptable->tupdesc, 1) != UUIDARRAYOID)
      ereport(ERROR, (errmsg("taskq publisher: taskq._outbox_published returns the wrong type"),
                      errhint("The taskq library and the extension's SQL differ; run ALTER EXTENSION taskq UPDATE.")));
    bool isnull;
    const Datum jobs = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (!isnull) remember_published_jobs(pass, DatumGetArrayTypeP(jobs));
  }
  if (pass->n_failed > 0) {
    args[0] = int8_array(pass->failed, pass->n_failed);
    args[1] = CStringGetTextDatum(pass->failure_reason[0] ? pass->failure_reason : pass->error);
    if (SPI_execute_with_args("SELECT taskq._outbox_failed($1, $2)", 2, argtypes, args, nullptr, false, 0) !=
        SPI_OK_SELECT)
      elog(ERROR, "taskq publisher: recording failed rows failed");
  }
  pass->total_confirmed += pass->n_confirmed;
  pass->total_failed += pass->n_failed;
  pass->n_confirmed = 0;
  pass->n_failed = 0;
}

}  // namespace taskq::publisher
