// The publishing pass (see publish_pass.hpp).
//
// One pass is one transaction: claim due rows (FOR UPDATE SKIP LOCKED),
// publish them all, wait for the broker's confirms, then delete exactly the
// confirmed rows and push the others back with a backoff. If anything dies
// in between, the transaction aborts, the rows unlock and are published
// again: delivery is at-least-once, and duplicates are fenced by the
// attempt number in the message.
#include "publisher/publish_pass.hpp"

#include "publisher/broker_connection.hpp"
#include "publisher/confirm_wait.hpp"
#include "publisher/message_packing.hpp"
#include "publisher/outbox_claim.hpp"
#include "publisher/pass_outcomes.hpp"
#include "publisher/pass_state.hpp"
#include "publisher/pass_transaction.hpp"
#include "publisher/status_update.hpp"
#include "settings.hpp"

extern "C" {
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

namespace taskq::publisher {
namespace {

// Batches are pipelined: while the broker confirms batch N, batch N+1 is
// claimed and sent, so the database work and the broker's confirm latency
// overlap. A transaction handles a bounded number of batches so that row
// locks are not held for long.
constexpr int kBatchesPerTransaction = 8;

// Publishes nacked in a row before the publisher gives up on its channel
// (see ConfirmTracker::nacks_in_a_row): a quorum queue's new leader may
// nack a channel for good, while a fresh one is confirmed at once. A queue
// that rejects publishes (an x-overflow policy) nacks any channel; there
// this costs one reconnect per this many publishes, which the outbox's
// backoff of the nacked rows keeps rare.
constexpr uint64 kNacksBeforeFreshConnection = 32;

// Hands a batch to the broker, one message per row, or several rows per
// message for queues with jobs_per_message > 1. Rows not sent because the
// connection died stay untouched: they unlock at commit and go in a later
// pass, with no publish attempt counted against them. `sent` and
// `resolved` count rows, whatever the messages.
void send_batch(PublisherState& st, PassState* pass, const PackingPlan& plan, const taskq_outbox_message* messages,
                int count) {
  if (plan.n_queues == 0) {
    for (int i = 0; i < count && !pass->lost; i++) {
      const int status = taskq_pub_publish(st.publisher, &messages[i], pass->error, sizeof(pass->error));
      if (status == TASKQ_PUB_OK) {
        pass->sent++;
        pass->total_sent++;
      } else if (status == TASKQ_PUB_MESSAGE_FAILED) {
        pass->failed[pass->n_failed++] = messages[i].outbox_id;
        strlcpy(pass->failure_reason, pass->error, sizeof(pass->failure_reason));
      } else {
        pass->lost = true;
      }
    }
    return;
  }
  bool* taken = static_cast<bool*>(palloc0(sizeof(bool) * (count > 0 ? count : 1)));
  int* members = static_cast<int*>(palloc(sizeof(int) * (count > 0 ? count : 1)));
  const taskq_outbox_message** parts =
      static_cast<const taskq_outbox_message**>(palloc(sizeof(taskq_outbox_message*) * (count > 0 ? count : 1)));
  int first_untaken = 0;
  while (!pass->lost) {
    const int n = next_message(plan, messages, count, taken, members, &first_untaken);
    if (n == 0) break;
    for (int k = 0; k < n; k++) parts[k] = &messages[members[k]];
    const int status = n == 1 ? taskq_pub_publish(st.publisher, parts[0], pass->error, sizeof(pass->error))
                              : taskq_pub_publish_packed(st.publisher, parts, n, pass->error, sizeof(pass->error));
    if (status == TASKQ_PUB_OK) {
      pass->sent += n;
      pass->total_sent += n;
    } else if (status == TASKQ_PUB_MESSAGE_FAILED) {
      for (int k = 0; k < n; k++) pass->failed[pass->n_failed++] = parts[k]->outbox_id;
      strlcpy(pass->failure_reason, pass->error, sizeof(pass->failure_reason));
    } else {
      pass->lost = true;
    }
  }
  pfree(parts);
  pfree(members);
  pfree(taken);
}

void start_pass(PublisherState& st, PassState* pass) {
  memset(pass, 0, sizeof(*pass));
  pass->capacity = 3 * taskq_publish_batch_size + 128;
  pass->confirmed = static_cast<int64*>(MemoryContextAlloc(st.pass_context, sizeof(int64) * pass->capacity));
  pass->failed = static_cast<int64*>(MemoryContextAlloc(st.pass_context, sizeof(int64) * pass->capacity));
  pass->published_capacity = pass->capacity;
  pass->published_jobs =
      static_cast<pg_uuid_t*>(MemoryContextAlloc(st.pass_context, sizeof(pg_uuid_t) * pass->published_capacity));
}

// When should we look again without being woken? Not read-only: a
// read-only query runs on the pass's first snapshot and misses the rows
// this pass itself pushed back (_outbox_failed), whose retry would then
// wait for the next poll instead of its due time.
void note_next_due(PublisherState& st) {
  if (SPI_execute("SELECT (extract(epoch FROM taskq._outbox_next_due() - now()) * 1000)::float8", false, 1) ==
          SPI_OK_SELECT &&
      SPI_processed == 1) {
    bool isnull;
    const Datum ms = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    st.next_due_at =
        isnull ? 0 : TimestampTzPlusMilliseconds(GetCurrentTimestamp(), static_cast<long>(DatumGetFloat8(ms)) + 1);
  }
}

void publish_counters(const PassState& pass) {
  update_shared([&](TaskqPublisherSlot& shared) {
    shared.status.published += static_cast<uint64>(pass.total_sent);
    shared.status.confirmed += static_cast<uint64>(pass.total_confirmed);
    shared.status.failed += static_cast<uint64>(pass.total_failed);
    if (pass.total_confirmed > 0) shared.status.last_publish_at = GetCurrentTimestamp();
  });
  if (pass.total_failed > 0) record_error(pass.failure_reason[0] ? pass.failure_reason : pass.error);
}

}  // namespace

int publish_pass(PublisherState& st) {
  begin_transaction("taskq publisher: publishing the outbox");
  if (!lock_outbox()) {
    finish_transaction();
    return 0;
  }

  PassState pass;
  start_pass(st, &pass);
  const PackingPlan& plan = packing_plan(st);
  ClaimCursor cursor = {false, 0, 0};
  taskq_outbox_message* batch;
  int claimed = claim_batch(st, &batch, &cursor);
  send_batch(st, &pass, plan, batch, claimed);
  for (int round = 1; !pass.lost; round++) {
    const long sent_before_next = pass.sent;
    int next_claimed = 0;
    taskq_outbox_message* next = nullptr;
    // No new batch into a blocked connection: the broker would not read it.
    if (claimed == taskq_publish_batch_size && round < kBatchesPerTransaction && !st.broker_blocked) {
      next_claimed = claim_batch(st, &next, &cursor);
      send_batch(st, &pass, plan, next, next_claimed);
    }
    wait_for_confirms(st, &pass, sent_before_next);
    record_outcomes(&pass);
    if (next_claimed == 0) {
      claimed = next == nullptr ? claimed : 0;
      break;
    }
    claimed = next_claimed;
  }
  // Nothing may stay unresolved when the transaction commits.
  while (!pass.lost && pass.resolved < pass.sent) {
    wait_for_confirms(st, &pass, pass.sent);
    record_outcomes(&pass);
  }
  if (!pass.lost && taskq_pub_nacks_in_a_row(st.publisher) >= kNacksBeforeFreshConnection) {
    snprintf(pass.error, sizeof(pass.error),
             "the broker nacked the last %llu publishes; opening a fresh connection (a quorum queue's leader may "
             "have moved)",
             static_cast<unsigned long long>(taskq_pub_nacks_in_a_row(st.publisher)));
    pass.lost = true;
  }
  if (pass.lost) taskq_pub_fail_outstanding(st.publisher, pass.error);
  do {
    collect_outcomes(st, &pass);
    record_outcomes(&pass);
  } while (pass.resolved < pass.sent);

  note_next_due(st);
  finish_transaction();
  record_publish_times(&pass);
  publish_counters(pass);

  MemoryContextReset(st.pass_context);
  if (pass.lost) {
    disconnect(st, pass.error);
    return 0;
  }
  return claimed;
}

}  // namespace taskq::publisher
