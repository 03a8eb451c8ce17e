// The one error shape of the API and how failures become it:
//   {"error": {"code": "<SQLSTATE or short name>", "message": "...", "hint": "..."}}
// ("hint" only when PostgreSQL gave one). Handlers throw ApiError; database
// errors are mapped by SQLSTATE (the table is in docs/web.md "Errors").
#pragma once

#include <stdexcept>
#include <string>

#include "db/pg_connection.hpp"

namespace taskq::web {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string code, const std::string& message, std::string hint = "")
      : std::runtime_error(message), status_(status), code_(std::move(code)), hint_(std::move(hint)) {}
  int status() const { return status_; }
  const std::string& code() const { return code_; }
  const std::string& hint() const { return hint_; }

 private:
  int status_;
  std::string code_;
  std::string hint_;
};

// A request the server could not make sense of: 400 with a short code
// ("invalid_json", "unknown_field", "wrong_type", ...).
ApiError bad_request(const std::string& code, const std::string& message);

// The HTTP status for a SQLSTATE the SQL API raised (500 for ones that no
// input should cause, 503 when the database is unavailable).
int http_status_for_sqlstate(const std::string& sqlstate);

// A database failure as the API reports it. Connection failures (no
// SQLSTATE, class 08) become 503 "database_unavailable"; errors no input
// should cause become 500 without their text (it is logged instead);
// everything else keeps its SQLSTATE as the code and PostgreSQL's message.
ApiError from_db_error(const std::string& sqlstate, const std::string& message, const std::string& hint = "");
ApiError from_db_error(const DbError& error);

// The JSON body for an error.
std::string error_body(const std::string& code, const std::string& message, const std::string& hint = "");

}  // namespace taskq::web
