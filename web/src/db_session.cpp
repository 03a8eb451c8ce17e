// Prepared statements, pipelining and libpq error translation for the API;
// see db_session.hpp.
#include "db_session.hpp"

#include <atomic>

#include "api_error.hpp"

namespace taskq::web {
namespace {

// The session settings every API answer relies on: timestamps in UTC,
// intervals as ISO 8601 durations ("PT5M") in JSON, and no request holding
// a connection forever behind a lock.
constexpr const char* kSessionSetup =
    "SELECT pg_catalog.set_config('TimeZone', 'UTC', false), "
    "pg_catalog.set_config('IntervalStyle', 'iso_8601', false), "
    "pg_catalog.set_config('statement_timeout', '30s', false), "
    "pg_catalog.set_config('application_name', 'taskq-web', false), "
    // Every statement of the API is short and index-driven; JIT compiling
    // one costs more than running it (its cost estimates on large tables
    // cross jit_above_cost easily).
    "pg_catalog.set_config('jit', 'off', false)";

std::atomic<std::uint64_t> statements{0};

std::string field(const PGresult* r, int code) {
  const char* v = r ? PQresultErrorField(r, code) : nullptr;
  return v ? v : "";
}

// The one translation of a failed libpq call into the API's error.
[[noreturn]] void raise(PGconn* conn, const PGresult* result) {
  std::string message = field(result, PG_DIAG_MESSAGE_PRIMARY);
  if (message.empty()) message = conn ? PQerrorMessage(conn) : "no connection";
  const std::string sqlstate = PQstatus(conn) == CONNECTION_OK ? field(result, PG_DIAG_SQLSTATE) : "";
  throw from_db_error(sqlstate, message, field(result, PG_DIAG_MESSAGE_HINT));
}

void check(PGconn* conn, const PgResult& result) {
  const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) raise(conn, result.get());
}

std::vector<const char*> values(const std::vector<Param>& params) {
  std::vector<const char*> out;
  out.reserve(params.size());
  for (const Param& p : params) out.push_back(p ? p->c_str() : nullptr);
  return out;
}

}  // namespace

DbSession::DbSession(const std::string& conninfo) : conn_(conninfo, 5) { conn_.exec(kSessionSetup); }

const std::string& DbSession::prepared(const std::string& sql, int n_params) {
  auto found = statements_.find(sql);
  if (found != statements_.end()) return found->second;
  std::string name = "taskq_web_" + std::to_string(statements_.size() + 1);
  PgResult result(PQprepare(conn_.get(), name.c_str(), sql.c_str(), n_params, nullptr));
  check(conn_.get(), result);
  return statements_.emplace(sql, std::move(name)).first->second;
}

std::uint64_t statements_run() { return statements.load(std::memory_order_relaxed); }

PgResult DbSession::run(const std::string& sql, const std::vector<Param>& params) {
  statements.fetch_add(1, std::memory_order_relaxed);
  const std::string& name = prepared(sql, static_cast<int>(params.size()));
  const auto v = values(params);
  PgResult result(PQexecPrepared(conn_.get(), name.c_str(), static_cast<int>(v.size()), v.data(), nullptr, nullptr, 0));
  check(conn_.get(), result);
  return result;
}

PgResult DbSession::run_planned_each_time(const std::string& sql, const std::vector<Param>& params) {
  statements.fetch_add(1, std::memory_order_relaxed);
  const auto v = values(params);
  PgResult result(
      PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(v.size()), nullptr, v.data(), nullptr, nullptr, 0));
  check(conn_.get(), result);
  return result;
}

PgResult DbSession::run_pair(const std::string& first, const std::vector<Param>& params, const std::string& second) {
  PGconn* conn = conn_.get();
  statements.fetch_add(2, std::memory_order_relaxed);
  const std::string first_name = prepared(first, static_cast<int>(params.size()));
  const std::string second_name = prepared(second, 0);
  const auto v = values(params);
  if (PQenterPipelineMode(conn) != 1) raise(conn, nullptr);
  // Both statements and the Sync go out together; the Sync ends the
  // implicit transaction they share, so an error in either rolls back both.
  const bool sent =
      PQsendQueryPrepared(conn, first_name.c_str(), static_cast<int>(v.size()), v.data(), nullptr, nullptr, 0) == 1 &&
      PQsendQueryPrepared(conn, second_name.c_str(), 0, nullptr, nullptr, nullptr, 0) == 1 && PQpipelineSync(conn) == 1;
  PgResult failure, answer;
  bool synced = false;
  // Results come as: first, NULL, second, NULL, PIPELINE_SYNC. Read all of
  // them (even after an error) so the connection is clean for the next use.
  while (sent && !synced) {
    PgResult r(PQgetResult(conn));
    if (!r) {
      if (PQstatus(conn) != CONNECTION_OK) break;
      continue;
    }
    switch (PQresultStatus(r.get())) {
      case PGRES_PIPELINE_SYNC:
        synced = true;
        break;
      case PGRES_TUPLES_OK:
      case PGRES_COMMAND_OK:
        answer = std::move(r);
        break;
      case PGRES_PIPELINE_ABORTED:
        break;
      default:
        if (!failure) failure = std::move(r);
    }
  }
  PQexitPipelineMode(conn);
  if (!sent || !synced) raise(conn, failure.get());
  if (failure) raise(conn, failure.get());
  return answer;
}

}  // namespace taskq::web
