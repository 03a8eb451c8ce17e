// One long-lived database connection of taskq-web: the worker's
// PgConnection, set up for the API (UTC, ISO 8601 intervals, a statement
// timeout) and running every statement as a prepared statement, prepared
// on its first use on this connection. User input only ever travels as
// parameters; statement texts are built from constants alone.
#pragma once

#include <cstdint>
#include <string>
#include <optional>
#include <unordered_map>
#include <vector>

#include "db/pg_connection.hpp"

namespace taskq::web {

// A statement parameter: nullopt is SQL NULL.
using Param = std::optional<std::string>;

// Statements run by every DbSession since start (taskq_web_db_statements_total:
// what an open dashboard costs the database).
std::uint64_t statements_run();

class DbSession {
 public:
  // Connects and sets the session up; throws DbError.
  explicit DbSession(const std::string& conninfo);

  bool ok() const { return conn_.ok(); }

  // Runs `sql` (prepared once per connection) with text parameters.
  // Throws ApiError (api_error.hpp) when it fails.
  PgResult run(const std::string& sql, const std::vector<Param>& params);
  // The same, planned for these very values each time (not prepared): for
  // queries whose best index depends on the values, such as job lists
  // filtered by a rare queue or status, where a generic plan would not do.
  PgResult run_planned_each_time(const std::string& sql, const std::vector<Param>& params);

  // Runs `first` then `second` in one implicit transaction and one network
  // round trip (libpq pipeline mode), returning the second's result; the
  // second sees what the first did. Throws ApiError if either fails (then
  // neither took effect).
  PgResult run_pair(const std::string& first, const std::vector<Param>& params, const std::string& second);

 private:
  const std::string& prepared(const std::string& sql, int n_params);

  PgConnection conn_;
  std::unordered_map<std::string, std::string> statements_;  // sql -> prepared statement name
};

}  // namespace taskq::web
