// Recovering from an ERROR in a round of the publisher's work (see
// error_recovery.hpp): the same steps as PostgreSQL's own background
// workers after an error, inside a PG_TRY around the round.
#include "publisher/error_recovery.hpp"

#include "publisher/broker_connection.hpp"
#include "publisher/status_update.hpp"

extern "C" {
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

namespace taskq::publisher {
namespace {

// A transient error (a lock timeout, a cancel) costs a short pause; a
// persistent one costs one pass every 10 s instead of a busy loop.
constexpr long kFirstRetryMs = 100;
constexpr long kLongestRetryMs = 10000;

long retry_delay_ms(unsigned failures) {
  long delay = kFirstRetryMs;
  for (unsigned i = 1; i < failures && delay < kLongestRetryMs; i++) delay *= 2;
  return Min(delay, kLongestRetryMs);
}

// Confirms still outstanding belong to the aborted transaction: it never
// deleted their rows, which are claimed and published again by a later
// pass (at-least-once; the attempt in the message fences the duplicate).
// Their late acks carry delivery tags no longer tracked and are ignored.
void forget_outstanding_confirms(PublisherState& st) {
  if (st.publisher == nullptr) return;
  taskq_pub_fail_outstanding(st.publisher, "the pass failed");
  int64 ids[64];
  bool confirmed[64];
  char reason[8];
  while (taskq_pub_take_resolved(st.publisher, ids, confirmed, 64, reason, sizeof(reason)) > 0) {
  }
}

// Once per distinct error, not per retry (like connect failures).
void log_failure(PublisherState& st, const ErrorData* error) {
  if (strcmp(error->message, st.last_logged_error) == 0) return;
  strlcpy(st.last_logged_error, error->message, sizeof(st.last_logged_error));
  ereport(WARNING, (errcode(error->sqlerrcode),
                    errmsg("taskq publisher: a pass failed (retrying with backoff): %s", error->message),
                    error->detail != nullptr ? errdetail_internal("%s", error->detail) : 0,
                    error->hint != nullptr ? errhint("%s", error->hint) : 0,
                    error->context != nullptr ? errcontext("%s", error->context) : 0));
}

// Runs in PG_CATCH: plain data only, and no error may escape (it would
// end the worker after all).
void recover(PublisherState& st, MemoryContext loop_context) {
  HOLD_INTERRUPTS();
  // The error lives in ErrorContext, which FlushErrorState empties.
  MemoryContextSwitchTo(loop_context);
  ErrorData* error = CopyErrorData();
  FlushErrorState();
  // Releases the locks, ends SPI, pops the snapshots and frees the
  // transaction's memory; nothing to do if the error came between
  // transactions.
  AbortCurrentTransaction();
  MemoryContextSwitchTo(loop_context);
  MemoryContextReset(st.pass_context);
  pgstat_report_activity(STATE_IDLE, nullptr);
  forget_outstanding_confirms(st);

  st.pass_failures++;
  st.next_pass_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), retry_delay_ms(st.pass_failures));
  set_state("failing");
  record_error(error->message);
  log_failure(st, error);
  FreeErrorData(error);
  RESUME_INTERRUPTS();
}

void note_recovered(PublisherState& st) {
  ereport(LOG, (errmsg("taskq publisher: passes succeed again after %u failed attempt(s)", st.pass_failures)));
  st.pass_failures = 0;
  st.last_logged_error[0] = '\0';
  set_state(st.broker_blocked ? "blocked" : "connected");
}

}  // namespace

long run_round_recovering(PublisherState& st, Round round) {
  // A commit's wake-up does not cut a backoff short, or a busy database
  // would retry a failing pass at every commit. The connection is still
  // serviced: heartbeats, and a readable socket must be read or the sleep
  // on it would return at once.
  const bool backing_off = st.pass_failures > 0 && GetCurrentTimestamp() < st.next_pass_at;
  MemoryContext loop_context = CurrentMemoryContext;
  volatile long sleep_ms = 0;
  volatile bool failed = false;
  PG_TRY();
  {
    if (backing_off) {
      service_connection(st);
      sleep_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), st.next_pass_at);
    } else {
      sleep_ms = round(st);
    }
  }
  PG_CATCH();
  {
    recover(st, loop_context);
    failed = true;
  }
  PG_END_TRY();
  if (failed) return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), st.next_pass_at);
  // Only a round that reached the broker proves the passes work again.
  if (!backing_off && st.pass_failures > 0 && st.publisher != nullptr) note_recovered(st);
  return sleep_ms;
}

}  // namespace taskq::publisher
