// SQLSTATE -> HTTP status and the error body; see api_error.hpp.
#include "api_error.hpp"

#include <nlohmann/json.hpp>

#include "operations/log.hpp"

namespace taskq::web {

ApiError bad_request(const std::string& code, const std::string& message) { return ApiError(400, code, message); }

int http_status_for_sqlstate(const std::string& sqlstate) {
  // Unknown job or queue.
  if (sqlstate == "42704") return 404;
  // A transition the job or queue is not in the state for; a queue or key
  // that already exists.
  if (sqlstate == "55000" || sqlstate == "23505" || sqlstate == "42710") return 409;
  // Class 22 (data exception: bad value, malformed uuid/interval/timestamp,
  // NULL not allowed, out of range) and check violations: the request was
  // well-formed JSON of the right types, but the SQL API refused a value.
  if (sqlstate.rfind("22", 0) == 0 || sqlstate == "23502" || sqlstate == "23514" || sqlstate == "54000") return 422;
  // Lock waits and statement timeouts, connection trouble, server shutdown.
  if (sqlstate == "57014" || sqlstate == "55P03" || sqlstate == "40001" || sqlstate == "40P01" ||
      sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0 || sqlstate == "53300")
    return 503;
  return 500;
}

ApiError from_db_error(const std::string& sqlstate, const std::string& message, const std::string& hint) {
  if (sqlstate.empty() || sqlstate.rfind("08", 0) == 0)
    return ApiError(503, "database_unavailable", "the database is not reachable right now; try again");
  const int status = http_status_for_sqlstate(sqlstate);
  if (status >= 500 && status != 503) {
    log::error("database error {}: {}", sqlstate, message);
    return ApiError(status, sqlstate, "internal error (the server log has the details)");
  }
  return ApiError(status, sqlstate, message, hint);
}

ApiError from_db_error(const DbError& error) { return from_db_error(error.sqlstate(), error.what()); }

std::string error_body(const std::string& code, const std::string& message, const std::string& hint) {
  nlohmann::ordered_json inner = {{"code", code}, {"message", message}};
  if (!hint.empty()) inner["hint"] = hint;
  // Messages may quote user input byte for byte; replace bad UTF-8 rather
  // than fail to render the error.
  return nlohmann::ordered_json{{"error", inner}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace taskq::web
