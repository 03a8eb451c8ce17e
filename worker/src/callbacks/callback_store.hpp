// The callback dispatcher's side of PostgreSQL: one connection that claims
// taskq.callbacks rows under a lease, records how each delivery went, tells
// when the next row becomes due, and LISTENs for new ones (docs/internals.md
// "Functions the worker calls").
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "db/pg_connection.hpp"

namespace taskq {

// One claimed taskq.callbacks row: what to POST where.
struct CallbackRow {
  std::int64_t id = 0;
  std::string job_id;
  std::string delivery_id;
  std::string url;
  std::string event;  // job.completed | job.failed | job.cancelled
  std::string body;   // the contract's body, as JSON text (sent and signed as is)
  int attempts = 0;   // including the one this claim started
  // The job's W3C trace context, sent as headers of the same names; empty
  // when it had none (or an invalid one).
  std::string traceparent;
  std::string tracestate;
};

class CallbackStore {
 public:
  // Connects and LISTENs on taskq_callbacks; throws DbError.
  explicit CallbackStore(const std::string& conninfo);

  std::vector<CallbackRow> claim(const std::string& holder, int max_rows, std::chrono::milliseconds lease);
  // How one delivery went, to be recorded.
  struct Outcome {
    std::int64_t id = 0;
    bool delivered = false;
    long status = 0;  // 0: no response (recorded as NULL)
    std::string error;
    std::chrono::milliseconds retry_in{0};
    bool give_up = false;
  };
  // Records a batch in one statement (one transaction). For each outcome, in
  // order: false when the lease had been lost (another dispatcher owns the
  // row now, or it is no longer pending), and nothing was changed for it.
  std::vector<bool> record(const std::string& holder, const std::vector<Outcome>& outcomes);
  // Time until the next pending row can be claimed (zero if one can now);
  // nullopt when there is none.
  std::optional<std::chrono::milliseconds> next_due_in();

  // The connection's socket, readable when a notification (or an error)
  // arrived.
  int socket() const;
  // Reads what arrived on the socket; true if it held a notification.
  // Throws DbError when the connection is gone.
  bool drain_notifications();

 private:
  PgConnection conn_;
};

}  // namespace taskq
