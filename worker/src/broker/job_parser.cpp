// See job_parser.hpp.
#include "broker/job_parser.hpp"

#include <cctype>

#include "core/trace_context.hpp"

namespace taskq {
namespace {

// 8-4-4-4-12 hex digits: anything else would make the uuid cast in SQL fail
// and take the rest of a batch down with it.
bool is_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace

std::optional<Job> parse_job_message(const std::string& body, const std::string& queue, std::string* error) {
  const auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    *error = "message body is not a JSON object";
    return std::nullopt;
  }
  Job job;
  const auto id = doc.find("id");
  const auto q = doc.find("queue");
  const auto attempt = doc.find("attempt");
  if (id == doc.end() || !id->is_string() || !is_uuid(id->get<std::string>())) {
    *error = "message has no valid job id";
    return std::nullopt;
  }
  if (q == doc.end() || !q->is_string()) {
    *error = "message has no queue";
    return std::nullopt;
  }
  if (attempt == doc.end() || !attempt->is_number_integer() || attempt->get<long long>() < 1 ||
      attempt->get<long long>() > 1'000'000) {
    *error = "message has no valid attempt number";
    return std::nullopt;
  }
  job.id = id->get<std::string>();
  job.queue = q->get<std::string>();
  if (!queue.empty() && job.queue != queue) {
    *error = "message for queue \"" + job.queue + "\" arrived on queue \"" + queue + "\"";
    return std::nullopt;
  }
  job.attempt = static_cast<int>(attempt->get<long long>());
  if (auto t = doc.find("task"); t != doc.end() && t->is_string()) job.task = t->get<std::string>();
  if (auto m = doc.find("max_attempts"); m != doc.end() && m->is_number_integer()) job.max_attempts = m->get<int>();
  if (auto p = doc.find("payload"); p != doc.end()) job.payload = *p;
  if (auto h = doc.find("headers"); h != doc.end() && h->is_object()) {
    for (const auto& [name, value] : h->items())
      if (value.is_string()) job.headers[name] = value.get<std::string>();
  }
  // The trace context goes into environment variables and HTTP headers of
  // handlers: only valid Trace Context does (any producer may publish).
  if (const auto parent = job.headers.find("traceparent");
      parent != job.headers.end() && traceparent_problem(parent->second) == nullptr) {
    job.traceparent = parent->second;
    if (const auto state = job.headers.find("tracestate");
        state != job.headers.end() && tracestate_problem(state->second) == nullptr)
      job.tracestate = state->second;
  }
  // Informational (the database released the job once they completed):
  // a malformed list is ignored rather than dropping a runnable job.
  if (auto d = doc.find("depends_on"); d != doc.end() && d->is_array()) {
    for (const auto& dep : *d)
      if (dep.is_string()) job.depends_on.push_back(dep.get<std::string>());
  }
  job.body = body;
  return job;
}

}  // namespace taskq
