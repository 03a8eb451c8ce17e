// The worker's retry policy for database calls: transient failures are
// retried with backoff until they work (or the caller gives up), permanent
// ones are thrown to the caller, which decides what the refusal means.
//
// A lost connection during a call is "outcome unknown" (DbFailure): every
// call of the worker is a single autocommit statement, which may have
// committed with only its answer lost. Those are retried too, because each
// call passed here is safe to repeat: the SQL answers a repeat of a start,
// complete, fail or give-back that committed as it answered the call (the
// job again, true, the same status) and writes nothing more; a heartbeat
// only renews a lease. So a start whose answer was lost still runs its job,
// on the same attempt, instead of coming back stale (docs/worker.md).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "core/backoff.hpp"
#include "db/pg_connection.hpp"
#include "operations/connection_events.hpp"
#include "operations/log.hpp"
#include "operations/metrics.hpp"

namespace taskq {

// Runs fn until it succeeds. Transient and outcome-unknown failures (lost
// connection, serialization failure, deadlock, server shutting down) are
// retried with backoff; permanent ones are thrown. fn must be safe to repeat
// (see above). Returns false when `give_up` says so. `watch` is the
// connection fn uses: a lost connection and each wait before trying again
// become its events.
template <typename Fn, typename GiveUp>
bool retrying(Metrics& metrics, ConnectionWatch& watch, const char* what, Fn&& fn, GiveUp&& give_up) {
  using namespace std::chrono_literals;
  Backoff backoff(BackoffPolicy{100ms, 5s, 0.5});
  bool failed_before = false;
  for (;;) {
    std::optional<std::string> lost;  // why the connection is gone
    try {
      fn();
      if (failed_before) {
        metrics.reconnected("database");
        log::info("database: {} works again", what);
      }
      metrics.set_connected("database", true);
      watch.up();
      return true;
    } catch (const DbError& e) {
      if (e.kind() == DbFailure::kPermanent) throw;
      metrics.set_connected("database", false);
      if (!failed_before) log::warn("database: {} failed: {} (retrying with backoff)", what, e.what());
      failed_before = true;
      if (e.connection_lost()) lost = e.what();
    }
    if (give_up()) {
      if (lost) watch.down(*lost, std::nullopt);
      return false;
    }
    const auto delay = backoff.next();
    if (lost) watch.down(*lost, delay);
    std::this_thread::sleep_for(delay);
  }
}

}  // namespace taskq
