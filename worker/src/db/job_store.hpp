// db/: the worker's PostgreSQL side: one connection (pg_connection), the
// job life cycle calls (this file), and valid_text for what gets stored.
//
// The worker's side of the job life cycle in SQL, batched: many starts,
// heartbeats or completes per round trip and commit (taskq._start_batch,
// _heartbeat_batch, _complete_batch), failures one at a time through the
// public taskq.fail (they are rare and each computes its own backoff).
//
// One JobStore owns one database connection and is used by one thread.
// Calls throw DbError; the connection is re-opened on the next call after a
// failure. Deciding whether to retry is the caller's business (see
// classify_db_failure): every call here is safe to repeat with the same
// arguments, because the SQL side answers a repeat of a call that did commit
// as it answered that call, writing nothing more (docs/sql-api.md), and
// fences everything else by attempt number.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "db/pg_connection.hpp"

namespace taskq {

struct AttemptRef {
  std::string job_id;
  int attempt = 0;
};

struct StartedJob {
  int max_attempts = 0;
  std::chrono::milliseconds lease{0};
};

struct Completion {
  AttemptRef ref;
  nlohmann::json result;   // null: no result
  nlohmann::json enqueue;  // follow-up job specs (taskq.complete's enqueue); null: none
};

class JobStore {
 public:
  JobStore(std::string conninfo, std::string worker_name);

  // Per item: the started job, or nullopt when the item was stale.
  // request_id (a UUID) names this start: a repeat with the same id, after
  // a lost answer, gets the jobs it started again; another start of the same
  // deliveries (a duplicate) does not. Each start of new deliveries needs a
  // new one. held (if given) gets, per item, whether a flow limit of its
  // queue held the job back: not started, its attempt unspent, and
  // published again when its turn comes, so the delivery is acked like a
  // stale one.
  std::vector<std::optional<StartedJob>> start(const std::vector<AttemptRef>& items, const std::string& request_id,
                                               std::vector<bool>* held = nullptr);
  // Per item: whether the lease was extended (false: stop the job).
  std::vector<bool> heartbeat(const std::vector<AttemptRef>& items);
  // Per item: whether it completed (false: stale).
  std::vector<bool> complete(const std::vector<Completion>& items);
  // The job's new status (pending, failed, cancelled), or nullopt when stale.
  std::optional<std::string> fail(const AttemptRef& ref, const std::string& error,
                                  std::optional<std::chrono::seconds> retry_in, bool permanent);

  // Gives back an attempt this worker stopped (shutdown): pending again at
  // once, the attempt not counted. The new status, or nullopt when stale.
  std::optional<std::string> give_back(const AttemptRef& ref, const std::string& error);

  // A trivial round trip, to notice a lost database while idle.
  void ping();

 private:
  PgConnection& connection();
  PgResult exec(const std::string& sql, const std::vector<const char*>& params);

  std::string conninfo_;
  std::string worker_name_;
  std::optional<PgConnection> db_;
};

}  // namespace taskq
