// PostgreSQL side of callback delivery; see callback_store.hpp.
#include "callback_store.hpp"

#include <cstdlib>

namespace taskq {
namespace {

std::string millis_interval(std::chrono::milliseconds d) { return std::to_string(d.count()) + " milliseconds"; }

}  // namespace

CallbackStore::CallbackStore(const std::string& conninfo) : conn_(conninfo) { conn_.exec("LISTEN taskq_callbacks"); }

std::vector<CallbackRow> CallbackStore::claim(const std::string& holder, int max_rows,
                                              std::chrono::milliseconds lease) {
  const std::string rows = std::to_string(max_rows);
  const std::string lease_text = millis_interval(lease);
  PgResult r = conn_.exec(
      "SELECT id, job_id, delivery_id, url, event, body::text, attempts "
      "FROM taskq._callbacks_claim($1, $2::int, $3::interval) ORDER BY id",
      {holder.c_str(), rows.c_str(), lease_text.c_str()});
  std::vector<CallbackRow> out;
  const int n = PQntuples(r.get());
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    CallbackRow row;
    row.id = std::strtoll(PQgetvalue(r.get(), i, 0), nullptr, 10);
    row.job_id = PQgetvalue(r.get(), i, 1);
    row.delivery_id = PQgetvalue(r.get(), i, 2);
    row.url = PQgetvalue(r.get(), i, 3);
    row.event = PQgetvalue(r.get(), i, 4);
    row.body = PQgetvalue(r.get(), i, 5);
    row.attempts = std::atoi(PQgetvalue(r.get(), i, 6));
    out.push_back(std::move(row));
  }
  return out;
}

bool CallbackStore::delivered(std::int64_t id, const std::string& holder, long status) {
  const std::string id_text = std::to_string(id);
  const std::string status_text = std::to_string(status);
  return conn_.value("SELECT taskq._callback_delivered($1::bigint, $2, $3::int)",
                     {id_text.c_str(), holder.c_str(), status_text.c_str()}) == "t";
}

bool CallbackStore::failed(std::int64_t id, const std::string& holder, long status, const std::string& error,
                           std::chrono::milliseconds retry_in, bool give_up) {
  const std::string id_text = std::to_string(id);
  const std::string status_text = std::to_string(status);
  const std::string retry_text = millis_interval(retry_in);
  // No response at all is recorded as a NULL last_status.
  return conn_.value("SELECT taskq._callback_failed($1::bigint, $2, $3::int, $4, $5::interval, $6::boolean)",
                     {id_text.c_str(), holder.c_str(), status > 0 ? status_text.c_str() : nullptr, error.c_str(),
                      retry_text.c_str(), give_up ? "true" : "false"}) == "t";
}

std::optional<std::chrono::milliseconds> CallbackStore::next_due_in() {
  const std::string ms =
      conn_.value("SELECT ceil(greatest(0, extract(epoch FROM taskq._callbacks_next_due() - now()) * 1000))::bigint");
  if (ms.empty()) return std::nullopt;
  return std::chrono::milliseconds(std::strtoll(ms.c_str(), nullptr, 10));
}

int CallbackStore::socket() const { return PQsocket(conn_.get()); }

bool CallbackStore::drain_notifications() {
  if (PQconsumeInput(conn_.get()) == 0) {
    // libpq's message spans lines; logs want one.
    std::string message;
    for (const char* p = PQerrorMessage(conn_.get()); *p != '\0'; ++p) {
      const bool space = *p == '\n' || *p == '\t' || *p == '\r';
      if (!space) message.push_back(*p);
      else if (!message.empty() && message.back() != ' ') message.push_back(' ');
    }
    while (!message.empty() && message.back() == ' ') message.pop_back();
    throw DbError(DbFailure::kTransient, "", "lost the PostgreSQL connection: " + message);
  }
  bool any = false;
  while (PGnotify* n = PQnotifies(conn_.get())) {
    any = true;
    PQfreemem(n);
  }
  return any;
}

}  // namespace taskq
