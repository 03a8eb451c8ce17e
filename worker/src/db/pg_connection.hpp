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
  kTransient,       // retry the transaction: serialization failure, deadlock, connection lost before commit
  kOutcomeUnknown,  // the connection broke during COMMIT: re-read state, never blindly redo
  kPermanent,       // a bug or bad input: retrying changes nothing
};

class DbError : public std::runtime_error {
 public:
  DbError(DbFailure kind, std::string sqlstate, const std::string& message)
      : std::runtime_error(message), kind_(kind), sqlstate_(std::move(sqlstate)) {}
  DbFailure kind() const { return kind_; }
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  DbFailure kind_;
  std::string sqlstate_;
};

// Classifies by SQLSTATE ("" when the server sent none, e.g. lost connection)
// and by whether the connection is still usable.
DbFailure classify_db_failure(const std::string& sqlstate, bool connection_ok, bool during_commit);

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
  // Throws DbError (classified) unless it succeeded.
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
