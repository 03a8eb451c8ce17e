// Cutting a claimed batch into messages (see message_packing.hpp).
#include "publisher/message_packing.hpp"

#include "publisher/pass_transaction.hpp"

extern "C" {
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

namespace taskq::publisher {

namespace {

constexpr long kPlanMaxAgeMs = 1000;

PackingPlan read_plan(MemoryContext context) {
  PackingPlan plan = {nullptr, 0};
  if (SPI_execute("SELECT to_regprocedure('taskq._batched_queues()') IS NOT NULL", true, 1) != SPI_OK_SELECT ||
      SPI_processed != 1)
    elog(ERROR, "taskq publisher: looking for taskq._batched_queues() failed");
  bool isnull;
  if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull))) return plan;
  if (SPI_execute("SELECT queue_name, jobs_per_message FROM taskq._batched_queues()", true, 0) != SPI_OK_SELECT)
    elog(ERROR, "taskq publisher: reading the queues with jobs_per_message failed");
  if (SPI_processed == 0) return plan;
  plan.n_queues = static_cast<int>(SPI_processed);
  plan.queues = static_cast<PackedQueue*>(MemoryContextAlloc(context, sizeof(PackedQueue) * plan.n_queues));
  for (int i = 0; i < plan.n_queues; i++) {
    plan.queues[i].queue_name = copy_value(context, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
    plan.queues[i].jobs_per_message =
        DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
  }
  return plan;
}

}  // namespace

const PackingPlan& packing_plan(PublisherState& st) {
  const TimestampTz now = GetCurrentTimestamp();
  if (st.packing_read_at != 0 && !TimestampDifferenceExceeds(st.packing_read_at, now, kPlanMaxAgeMs)) return st.packing;
  if (st.packing_context == nullptr)
    st.packing_context = AllocSetContextCreate(TopMemoryContext, "taskq publisher packing", ALLOCSET_SMALL_SIZES);
  // Emptied first: an ERROR while reading leaves no plan pointing at freed memory.
  st.packing = PackingPlan{nullptr, 0};
  MemoryContextReset(st.packing_context);
  st.packing = read_plan(st.packing_context);
  st.packing_read_at = now;
  return st.packing;
}

int jobs_per_message(const PackingPlan& plan, const char* queue_name) {
  for (int i = 0; i < plan.n_queues; i++)
    if (strcmp(plan.queues[i].queue_name, queue_name) == 0) return plan.queues[i].jobs_per_message;
  return 1;
}

int next_message(const PackingPlan& plan, const taskq_outbox_message* rows, int count, bool* taken, int* members,
                 int* first_untaken) {
  int first = *first_untaken;
  while (first < count && taken[first]) first++;
  *first_untaken = first;
  if (first == count) return 0;
  const taskq_outbox_message& lead = rows[first];
  const int wanted = jobs_per_message(plan, lead.queue_name);
  int n = 0;
  size_t bytes = 0;
  for (int i = first; i < count && n < wanted; i++) {
    if (taken[i]) continue;
    const taskq_outbox_message& row = rows[i];
    if (i != first && (row.priority != lead.priority || strcmp(row.queue_name, lead.queue_name) != 0)) continue;
    const size_t size = strlen(row.body);
    if (n > 0 && bytes + size > kMaxPackedBodyBytes) break;
    bytes += size;
    taken[i] = true;
    members[n++] = i;
  }
  return n;
}

}  // namespace taskq::publisher
