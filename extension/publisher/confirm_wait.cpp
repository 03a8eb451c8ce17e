// Collecting publisher confirms (see confirm_wait.hpp). How long to wait is
// the one judgement here: too short and a slow broker gets every message
// twice, too long and a dead one holds the pass's row locks.
#include "publisher/confirm_wait.hpp"

#include "publisher/broker_connection.hpp"

extern "C" {
#include "pgstat.h"
#include "utils/timestamp.h"
}

namespace taskq::publisher {
namespace {

constexpr long kConfirmTimeoutMs = 10000;
// While the broker blocks publishing (resource alarm) it is alive but does
// not read what we sent: confirms come once the alarm clears. Giving up
// earlier would publish those messages a second time then.
constexpr long kBlockedConfirmTimeoutMs = 5 * 60 * 1000;

}  // namespace

void collect_outcomes(PublisherState& st, PassState* pass) {
  int64 ids[64];
  bool ok[64];
  char reason[512];
  size_t got;
  while (pass->n_confirmed + pass->n_failed + 64 <= pass->capacity &&
         (got = taskq_pub_take_resolved(st.publisher, ids, ok, 64, reason, sizeof(reason))) > 0) {
    for (size_t k = 0; k < got; k++) {
      if (ok[k]) {
        pass->confirmed[pass->n_confirmed++] = ids[k];
      } else {
        pass->failed[pass->n_failed++] = ids[k];
        strlcpy(pass->failure_reason, reason, sizeof(pass->failure_reason));
      }
    }
    pass->resolved += static_cast<long>(got);
  }
}

void wait_for_confirms(PublisherState& st, PassState* pass, long target) {
  const TimestampTz started = GetCurrentTimestamp();
  TimestampTz deadline = TimestampTzPlusMilliseconds(started, kConfirmTimeoutMs);
  const TimestampTz blocked_deadline = TimestampTzPlusMilliseconds(started, kBlockedConfirmTimeoutMs);
  const int socket = taskq_pub_socket(st.publisher);
  for (;;) {
    if (taskq_pub_poll(st.publisher, pass->error, sizeof(pass->error)) != TASKQ_PUB_OK) {
      pass->lost = true;
      break;
    }
    collect_outcomes(st, pass);
    refresh_blocked(st);
    if (pass->resolved >= target || pass->n_confirmed + pass->n_failed + 64 > pass->capacity) return;
    const TimestampTz now = GetCurrentTimestamp();
    if (st.broker_blocked)  // alive (heartbeats still flow) but not reading: wait for the alarm to clear
      deadline = Max(deadline, Min(TimestampTzPlusMilliseconds(now, kConfirmTimeoutMs), blocked_deadline));
    const long remaining = TimestampDifferenceMilliseconds(now, deadline);
    if (remaining <= 0) {
      snprintf(pass->error, sizeof(pass->error), "no publisher confirm within %ld ms (%s)",
               TimestampDifferenceMilliseconds(started, now),
               st.broker_blocked ? "the broker blocks publishing" : "broker overloaded, blocked or unreachable");
      pass->lost = true;
      break;
    }
    const int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                                     socket, remaining, PG_WAIT_EXTENSION);
    if (rc & WL_LATCH_SET) {
      ResetLatch(MyLatch);
      st.woken_during_pass = true;  // run another pass right after this one
      CHECK_FOR_INTERRUPTS();
    }
  }
  // Lost: nothing outstanding will be confirmed any more.
  taskq_pub_fail_outstanding(st.publisher, pass->error);
  collect_outcomes(st, pass);
}

}  // namespace taskq::publisher
