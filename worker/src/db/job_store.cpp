// See job_store.hpp.
#include "db/job_store.hpp"

#include <unordered_map>

#include "db/valid_text.hpp"

namespace taskq {
namespace {

nlohmann::json item(const AttemptRef& ref) { return {{"id", ref.job_id}, {"attempt", ref.attempt}}; }

// Maps "job_id|attempt" of returned rows back to input positions. A job may
// appear twice in a batch (duplicate deliveries); only its first occurrence
// with the returned attempt counts as the one that acted.
std::string key(const std::string& job_id, int attempt) { return job_id + '|' + std::to_string(attempt); }

}  // namespace

JobStore::JobStore(std::string conninfo, std::string worker_name)
    : conninfo_(std::move(conninfo)), worker_name_(std::move(worker_name)) {}

PgConnection& JobStore::connection() {
  if (!db_ || !db_->ok()) {
    db_.reset();
    db_.emplace(conninfo_);
    // Finishing a job that others depend on needs READ COMMITTED (see
    // docs/sql-api.md "Dependencies and workflows"), whatever the database
    // or role default says.
    db_->exec("SET default_transaction_isolation = 'read committed'", {});
  }
  return *db_;
}

PgResult JobStore::exec(const std::string& sql, const std::vector<const char*>& params) {
  try {
    return connection().exec(sql, params);
  } catch (const DbError&) {
    // A broken connection is re-opened by the next call; a healthy one is
    // kept (the failed statement ran in its own implicit transaction).
    if (db_ && !db_->ok()) db_.reset();
    throw;
  }
}

std::vector<std::optional<StartedJob>> JobStore::start(const std::vector<AttemptRef>& items,
                                                       const std::string& request_id, std::vector<bool>* held) {
  std::vector<std::optional<StartedJob>> out(items.size());
  if (held != nullptr) held->assign(items.size(), false);
  if (items.empty()) return out;
  nlohmann::json batch = nlohmann::json::array();
  for (const auto& i : items) batch.push_back(item(i));
  const std::string body = batch.dump();
  const PgResult r = exec(
      "SELECT job_id, attempt, max_attempts, lease_ms, held FROM taskq._start_batch($1::jsonb, $2, $3::uuid, true)",
      {body.c_str(), worker_name_.c_str(), request_id.c_str()});
  std::unordered_map<std::string, StartedJob> started;
  std::unordered_map<std::string, bool> held_back;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    const std::string k = key(PQgetvalue(r.get(), row, 0), std::atoi(PQgetvalue(r.get(), row, 1)));
    if (std::string(PQgetvalue(r.get(), row, 4)) == "t") {
      held_back.emplace(k, true);
      continue;
    }
    StartedJob job;
    job.max_attempts = std::atoi(PQgetvalue(r.get(), row, 2));
    job.lease = std::chrono::milliseconds(std::atoll(PQgetvalue(r.get(), row, 3)));
    started.emplace(k, job);
  }
  for (std::size_t n = 0; n < items.size(); ++n) {
    const std::string k = key(items[n].job_id, items[n].attempt);
    auto it = started.find(k);
    if (it == started.end()) {
      auto h = held_back.find(k);
      if (h != held_back.end() && held != nullptr) {
        (*held)[n] = true;
        held_back.erase(h);  // a duplicate later in the batch is stale
      }
      continue;
    }
    out[n] = it->second;
    started.erase(it);  // a duplicate later in the batch is stale
  }
  return out;
}

void JobStore::ping() { exec("SELECT 1", {}); }

std::vector<bool> JobStore::heartbeat(const std::vector<AttemptRef>& items) {
  std::vector<bool> out(items.size(), false);
  if (items.empty()) return out;
  nlohmann::json batch = nlohmann::json::array();
  for (const auto& i : items) batch.push_back(item(i));
  const std::string body = batch.dump();
  const PgResult r = exec("SELECT id FROM taskq._heartbeat_batch($1::jsonb) AS id", {body.c_str()});
  std::unordered_map<std::string, bool> extended;
  for (int row = 0; row < PQntuples(r.get()); ++row) extended[PQgetvalue(r.get(), row, 0)] = true;
  for (std::size_t n = 0; n < items.size(); ++n) out[n] = extended.count(items[n].job_id) > 0;
  return out;
}

std::vector<bool> JobStore::complete(const std::vector<Completion>& items) {
  std::vector<bool> out(items.size(), false);
  if (items.empty()) return out;
  nlohmann::json batch = nlohmann::json::array();
  for (const auto& c : items) {
    nlohmann::json i = item(c.ref);
    i["result"] = c.result;
    if (!c.enqueue.is_null()) i["enqueue"] = c.enqueue;  // absent: the batch skips the follow-up look-up
    batch.push_back(std::move(i));
  }
  // Results are valid text already (handlers' output goes through
  // valid_text); "replace" only guards the in-process handlers' strings.
  const std::string body = batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const PgResult r = exec("SELECT id FROM taskq._complete_batch($1::jsonb) AS id", {body.c_str()});
  std::unordered_map<std::string, bool> done;
  for (int row = 0; row < PQntuples(r.get()); ++row) done[PQgetvalue(r.get(), row, 0)] = true;
  for (std::size_t n = 0; n < items.size(); ++n) {
    auto it = done.find(items[n].ref.job_id);
    if (it == done.end() || !it->second) continue;
    out[n] = true;
    it->second = false;  // a duplicate later in the batch is stale
  }
  return out;
}

namespace {
// A job_status result: the new status, or nullopt (NULL) when the call was stale.
std::optional<std::string> status_of(const PgResult& r) {
  if (PQntuples(r.get()) == 0 || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
  return std::string(PQgetvalue(r.get(), 0, 0));
}
}  // namespace

std::optional<std::string> JobStore::fail(const AttemptRef& ref, const std::string& error,
                                          std::optional<std::chrono::seconds> retry_in, bool permanent) {
  const std::string attempt = std::to_string(ref.attempt);
  const std::string interval = retry_in ? std::to_string(retry_in->count()) + " seconds" : std::string();
  // Error texts come from handlers (stderr, HTTP bodies).
  const std::string clean_error = valid_text(error);
  const PgResult r = exec("SELECT taskq.fail($1::uuid, $2::int, $3, $4::interval, $5::boolean)",
                          {ref.job_id.c_str(), attempt.c_str(), clean_error.c_str(),
                           retry_in ? interval.c_str() : nullptr, permanent ? "true" : "false"});
  return status_of(r);
}

std::optional<std::string> JobStore::give_back(const AttemptRef& ref, const std::string& error) {
  const std::string attempt = std::to_string(ref.attempt);
  const std::string clean_error = valid_text(error);
  return status_of(exec("SELECT taskq._give_back($1::uuid, $2::int, $3)",
                        {ref.job_id.c_str(), attempt.c_str(), clean_error.c_str()}));
}

}  // namespace taskq
