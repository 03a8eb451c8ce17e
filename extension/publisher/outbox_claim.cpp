// Claiming outbox rows (see outbox_claim.hpp): one SPI query per batch,
// its values copied out of SPI's memory so they outlive the next query.
#include "publisher/outbox_claim.hpp"

#include "publisher/pass_transaction.hpp"
#include "settings.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

namespace taskq::publisher {
int claim_batch(PublisherState& st, taskq_outbox_message** out, ClaimCursor* cursor) {
  Oid argtypes[3] = {INT4OID, TIMESTAMPTZOID, INT8OID};
  Datum args[3] = {Int32GetDatum(taskq_publish_batch_size), cursor->due_at, Int64GetDatum(cursor->id)};
  const char nulls[3] = {' ', cursor->set ? ' ' : 'n', cursor->set ? ' ' : 'n'};
  if (SPI_execute_with_args("SELECT outbox_id, job_id::text, queue_name, queue_type, task, priority, attempt,"
                            " headers::text, extract(epoch FROM created_at)::bigint, body, due_at"
                            " FROM taskq._outbox_claim($1, $2, $3)",
                            3, argtypes, args, nulls, false, 0) != SPI_OK_SELECT)
    elog(ERROR, "taskq publisher: claiming the outbox failed");
  const int claimed = static_cast<int>(SPI_processed);
  auto* messages = static_cast<taskq_outbox_message*>(
      MemoryContextAllocZero(st.pass_context, sizeof(taskq_outbox_message) * (claimed > 0 ? claimed : 1)));
  for (int i = 0; i < claimed; i++) {
    HeapTuple tuple = SPI_tuptable->vals[i];
    TupleDesc desc = SPI_tuptable->tupdesc;
    bool isnull;
    taskq_outbox_message& m = messages[i];
    m.outbox_id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
    m.job_id = copy_value(st.pass_context, tuple, desc, 2);
    m.queue_name = copy_value(st.pass_context, tuple, desc, 3);
    m.queue_type = copy_value(st.pass_context, tuple, desc, 4);
    m.task = copy_value(st.pass_context, tuple, desc, 5);
    m.priority = DatumGetInt32(SPI_getbinval(tuple, desc, 6, &isnull));
    m.attempt = DatumGetInt32(SPI_getbinval(tuple, desc, 7, &isnull));
    m.headers_json = copy_value(st.pass_context, tuple, desc, 8);
    m.enqueued_at = DatumGetInt64(SPI_getbinval(tuple, desc, 9, &isnull));
    m.body = copy_value(st.pass_context, tuple, desc, 10);
  }
  if (claimed > 0) {
    bool isnull;
    cursor->set = true;
    cursor->id = messages[claimed - 1].outbox_id;
    cursor->due_at = SPI_getbinval(SPI_tuptable->vals[claimed - 1], SPI_tuptable->tupdesc, 11, &isnull);
  }
  *out = messages;
  return claimed;
}

}  // namespace taskq::publisher
