// Move-only RAII owners of libpq handles (PGconn, PGresult), and the one
// function that classifies database failures for retry decisions.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace taskq {

// What a caller should do about a failed database call.
enum class DbFailure {
  // Rolled back for sure: serialization failure, deadlock, or the connection
  // lost inside a transaction block before its COMMIT. Run it again.
  kTransient,
  // The connection broke while the statement may have committed: a COMMIT,
  // or a statement outside a transaction block (which commits on its own),
  // such as every call of the worker. Run it again only if a repeat of a
  // call that did commit is harmless: the worker's calls are (taskq's SQL
  // answers a repeat as it answered the call, docs/sql-api.md), so
  // pipeline/db_retry.hpp retries them; anything else must re-read state.
  kOutcomeUnknown,
  kPermanent,  // a bug or bad input: retrying changes nothing
};

class DbError : public std::runtime_error {
 public:
  DbError(DbFailure kind, std::string sqlstate, const std::string& message, bool connection_lost = false)
      : std::runtime_error(message), kind_(kind), sqlstate_(std::move(sqlstate)), connection_lost_(connection_lost) {}
  DbFailure kind() const { return kind_; }
  const std::string& sqlstate() const { return sqlstate_; }
  // The connection is gone (or could not be opened), as opposed to a
  // statement refused on a working one (a deadlock, bad input).
  bool connection_lost() const { return connection_lost_; }

 private:
  DbFailure kind_;
  std::string sqlstate_;
  bool connection_lost_;
};

// Classifies by SQLSTATE ("" when the server sent none, e.g. lost connection),
// by whether the connection is still usable, and by whether the statement
// could have committed (COMMIT, or any statement outside a transaction block).
DbFailure classify_db_failure(const std::string& sqlstate, bool connection_ok, bool may_have_committed);

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

class PgConnection {
 public:
  // Connects (connect_timeout applies); throws DbError on failure.
  explicit PgConnection(const std::string& conninfo, int connect_timeout_s = 10);
  PgConnection(PgConnection&&) noexcept = default;
  PgConnection& operator=(PgConnection&&) noexcept = default;

  PGconn* get() const { return conn_.get(); }
  bool ok() const { return conn_ && PQstatus(conn_.get()) == CONNECTION_OK; }

  // Runs a statement with text parameters (NULL-able via nullptr).
  // Throws DbError (classified) unless it succeeded; a lost connection is
  // kOutcomeUnknown unless the statement ran inside a transaction block.
  PgResult exec(const std::string& sql, const std::vector<const char*>& params = {});
  // First column of the first row, or "" when there is no row / it is NULL.
  std::string value(const std::string& sql, const std::vector<const char*>& params = {});

 private:
  struct ConnDeleter {
    void operator()(PGconn* c) const { PQfinish(c); }
  };
  std::unique_ptr<PGconn, ConnDeleter> conn_;
};

}  // namespace taskq
