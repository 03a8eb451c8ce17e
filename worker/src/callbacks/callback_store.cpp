// PostgreSQL side of callback delivery; see callback_store.hpp.
#include "callbacks/callback_store.hpp"

#include <nlohmann/json.hpp>

#include <cstdlib>

#include "core/trace_context.hpp"

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
      "SELECT id, job_id, delivery_id, url, event, body::text, attempts, traceparent, tracestate "
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
    // They become request headers: only valid Trace Context (a row may have
    // been written by hand).
    if (const char* parent = PQgetvalue(r.get(), i, 7); traceparent_problem(parent) == nullptr) {
      row.traceparent = parent;
      if (const char* state = PQgetvalue(r.get(), i, 8); *state != '\0' && tracestate_problem(state) == nullptr)
        row.tracestate = state;
    }
    out.push_back(std::move(row));
  }
  return out;
}

std::vector<bool> CallbackStore::record(const std::string& holder, const std::vector<Outcome>& outcomes) {
  // One round trip for the whole batch: the outcomes travel as a JSON array
  // (which also takes care of quoting whatever a receiver answered).
  nlohmann::json batch = nlohmann::json::array();
  for (const auto& o : outcomes) {
    batch.push_back({{"id", o.id},
                     {"delivered", o.delivered},
                     {"status", o.status > 0 ? nlohmann::json(o.status) : nlohmann::json(nullptr)},
                     {"error", o.error},
                     {"retry_ms", o.retry_in.count()},
                     {"give_up", o.give_up}});
  }
  // Invalid UTF-8 in an error (a receiver's bytes) becomes U+FFFD rather
  // than an exception or an error from PostgreSQL.
  const std::string json = batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  PgResult r = conn_.exec(
      "SELECT CASE WHEN (e->>'delivered')::boolean "
      "THEN taskq._callback_delivered((e->>'id')::bigint, $1, (e->>'status')::int) "
      "ELSE taskq._callback_failed((e->>'id')::bigint, $1, (e->>'status')::int, e->>'error', "
      "(e->>'retry_ms')::bigint * interval '1 millisecond', (e->>'give_up')::boolean) END "
      "FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n",
      {holder.c_str(), json.c_str()});
  std::vector<bool> out;
  out.reserve(outcomes.size());
  for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(PQgetvalue(r.get(), i, 0)[0] == 't');
  return out;
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
      if (!space)
        message.push_back(*p);
      else if (!message.empty() && message.back() != ' ')
        message.push_back(' ');
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
