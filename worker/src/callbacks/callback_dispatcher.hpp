// callbacks/: delivering taskq.callbacks rows. This dispatcher drives it;
// the store (SQL), the sender (HTTP), the signature, the retry schedule and
// the address policy (SSRF guard) are its parts.
//
// Delivers taskq.callbacks rows (docs/callbacks.md): claims due rows
// under a lease, POSTs them signed (CallbackSender), records delivered /
// retry-later / dead, and sleeps until woken by LISTEN taskq_callbacks, the
// next due row or the poll fallback. Database losses are retried with capped
// backoff; run() never throws.
//
// At-least-once: a dispatcher that dies mid-delivery leaves a lease that runs
// out, and another dispatcher sends the same X-Taskq-Delivery again. On the
// happy path each callback is POSTed exactly once (SKIP LOCKED claims, and a
// lease longer than the POST's timeout).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "operations/connection_events.hpp"
#include "operations/metrics.hpp"
#include "taskq/worker.hpp"

namespace taskq {

class CallbackDispatcher {
 public:
  // `worker_name` identifies the process in taskq.callbacks.leased_by (a
  // per-instance suffix is added so that two dispatchers never share a
  // lease). `metrics` and `events` may be nullptr; the dispatcher's database
  // connection reports as "callbacks".
  CallbackDispatcher(std::string database_conninfo, std::string worker_name, CallbackOptions options, Metrics* metrics,
                     ConnectionEvents* events = nullptr);
  ~CallbackDispatcher();
  CallbackDispatcher(const CallbackDispatcher&) = delete;
  CallbackDispatcher& operator=(const CallbackDispatcher&) = delete;

  // Delivers until `stop` is true, then lets the POSTs in flight finish
  // (each is bounded by options.timeout), records them and returns. Returns
  // at once when options.enabled is false.
  void run(const std::atomic<bool>& stop);

  // What this instance has done so far (thread-safe).
  struct Stats {
    std::uint64_t delivered = 0, retried = 0, dead = 0;
    std::uint64_t connections_opened = 0;  // the other POSTs reused a connection
    std::uint64_t reconnects = 0;          // to PostgreSQL, after a loss
  };
  Stats stats() const;
  // The name this instance leases rows under.
  const std::string& lease_holder() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taskq
