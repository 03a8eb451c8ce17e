// libpq wrappers and failure classification; see pg_connection.hpp.
#include "db/pg_connection.hpp"

namespace taskq {
namespace {

// libpq messages span lines ("...failed: ...\n\tIs the server running...");
// logs and the CLI want one line.
std::string one_line(std::string message) {
  std::string out;
  for (char c : message) {
    if (c == '\n' || c == '\t' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

DbFailure classify_db_failure(const std::string& sqlstate, bool connection_ok, bool may_have_committed) {
  if (!connection_ok) return may_have_committed ? DbFailure::kOutcomeUnknown : DbFailure::kTransient;
  // 40001 serialization_failure, 40P01 deadlock_detected: the transaction
  // was rolled back and may simply be run again.
  if (sqlstate == "40001" || sqlstate == "40P01") return DbFailure::kTransient;
  // Class 08 connection exceptions, 57P01-57P03 admin shutdown / crash /
  // cannot connect now, 53300 too many connections, 55P03 lock not available.
  if (sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" ||
      sqlstate == "53300" || sqlstate == "55P03")
    return may_have_committed ? DbFailure::kOutcomeUnknown : DbFailure::kTransient;
  return DbFailure::kPermanent;
}

PgConnection::PgConnection(const std::string& conninfo, int connect_timeout_s) {
  const char* keywords[] = {"dbname", "connect_timeout", "application_name", "fallback_application_name", nullptr};
  const std::string timeout = std::to_string(connect_timeout_s);
  const char* values[] = {conninfo.c_str(), timeout.c_str(), nullptr, "taskq-worker", nullptr};
  // expand_dbname = 1: the first value may be a full conninfo string or URI.
  conn_.reset(PQconnectdbParams(keywords, values, 1));
  if (!conn_) throw DbError(DbFailure::kTransient, "", "out of memory connecting to PostgreSQL", true);
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    throw DbError(DbFailure::kTransient, "", "cannot connect to PostgreSQL: " + one_line(PQerrorMessage(conn_.get())),
                  true);
  }
}

PgResult PgConnection::exec(const std::string& sql, const std::vector<const char*>& params) {
  // Read before sending: once the connection broke, libpq no longer knows.
  // Outside a transaction block the statement commits by itself, so a
  // connection lost before its answer leaves the outcome unknown (the
  // server may have committed and lost only the reply).
  const bool autocommit = PQtransactionStatus(conn_.get()) == PQTRANS_IDLE;
  PgResult result(PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(params.size()), nullptr, params.data(),
                               nullptr, nullptr, 0));
  const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;

  const char* state = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
  const std::string message = one_line(result ? PQresultErrorMessage(result.get()) : PQerrorMessage(conn_.get()));
  const bool may_have_committed = autocommit || sql.rfind("COMMIT", 0) == 0;
  throw DbError(classify_db_failure(state ? state : "", ok(), may_have_committed), state ? state : "", message, !ok());
}

std::string PgConnection::value(const std::string& sql, const std::vector<const char*>& params) {
  PgResult result = exec(sql, params);
  if (PQntuples(result.get()) == 0 || PQgetisnull(result.get(), 0, 0)) return "";
  return PQgetvalue(result.get(), 0, 0);
}

}  // namespace taskq
