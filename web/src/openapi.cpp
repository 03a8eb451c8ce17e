// See openapi.hpp. The component schemas describe the rows the SQL API
// returns; their field names are the column names.
#include "openapi.hpp"

#include <algorithm>
#include <cctype>

#include "taskq/version.hpp"

namespace taskq::web {
namespace {

using J = nlohmann::ordered_json;

J nullable(const char* type, const char* format = nullptr) {
  J s = {{"type", {type, "null"}}};
  if (format) s["format"] = format;
  return s;
}

J typed(const char* type, const char* format = nullptr) {
  J s = {{"type", type}};
  if (format) s["format"] = format;
  return s;
}

J ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }

J object_of(J properties) {
  J required = J::array();
  for (const auto& [name, value] : properties.items()) required.push_back(name);
  return {{"type", "object"}, {"properties", std::move(properties)}, {"required", required}};
}

J schemas() {
  J job = object_of({
      {"id", typed("string", "uuid")},
      {"queue_name", typed("string")},
      {"task", nullable("string")},
      {"payload", J::object()},
      {"status", typed("string")},
      {"priority", typed("integer")},
      {"attempts", typed("integer")},
      {"max_attempts", typed("integer")},
      {"run_at", typed("string", "date-time")},
      {"lease_expires_at", nullable("string", "date-time")},
      {"worker", nullable("string")},
      {"result", J::object()},
      {"last_error", nullable("string")},
      {"callback_url", nullable("string")},
      {"unique_key", nullable("string")},
      {"headers", J::object()},
      {"created_at", typed("string", "date-time")},
      {"started_at", nullable("string", "date-time")},
      {"finished_at", nullable("string", "date-time")},
      {"updated_at", typed("string", "date-time")},
      {"concurrency_key", nullable("string")},
  });
  job["description"] =
      "a row of taskq.jobs (the columns applications read); payload, result and headers are any JSON; status is "
      "waiting, pending, running, completed, failed or cancelled";
  J queue = object_of({
      {"queue_name", typed("string")},
      {"max_attempts", typed("integer")},
      {"lease", typed("string", "duration")},
      {"backoff_base", typed("string", "duration")},
      {"backoff_max", typed("string", "duration")},
      {"retention", typed("string", "duration")},
      {"delivery_delay", typed("string", "duration")},
      {"queue_type", typed("string")},
      {"paused", typed("boolean")},
      {"created_at", typed("string", "date-time")},
      {"updated_at", typed("string", "date-time")},
      {"rate_limit", nullable("integer")},
      {"rate_period", typed("string", "duration")},
      {"concurrency_limit", nullable("integer")},
      {"jobs_per_message", typed("integer")},
  });
  queue["description"] = "a row of taskq.queues; intervals as ISO 8601 durations; a null limit: none";
  J stats = object_of({
      {"queue_name", typed("string")},
      {"paused", typed("boolean")},
      {"waiting", typed("integer")},
      {"pending", typed("integer")},
      {"running", typed("integer")},
      {"completed", typed("integer")},
      {"failed", typed("integer")},
      {"cancelled", typed("integer")},
      {"scheduled", typed("integer")},
      {"oldest_pending_age", nullable("string", "duration")},
      {"outbox_backlog", typed("integer")},
      {"held", typed("integer")},
  });
  stats["description"] =
      "a row of the view taskq.queue_stats; held: pending jobs held back by a flow limit (counted in pending too)";
  J schedule = object_of({
      {"schedule_name", typed("string")},
      {"cron", typed("string")},
      {"timezone", typed("string")},
      {"queue_name", typed("string")},
      {"task", nullable("string")},
      {"payload", J::object()},
      {"priority", typed("integer")},
      {"max_attempts", nullable("integer")},
      {"headers", J::object()},
      {"callback_url", nullable("string")},
      {"catch_up", typed("boolean")},
      {"enabled", typed("boolean")},
      {"next_run_at", nullable("string", "date-time")},
      {"last_run_at", nullable("string", "date-time")},
      {"last_job_id", nullable("string", "uuid")},
      {"created_at", typed("string", "date-time")},
      {"updated_at", typed("string", "date-time")},
  });
  schedule["description"] = "a row of taskq.schedules (without its internal anchor_at)";
  J publisher = object_of({
      {"pid", nullable("integer")},
      {"state", typed("string")},
      {"connected", typed("boolean")},
      {"blocked", typed("boolean")},
      {"broker", nullable("string")},
      {"connected_since", nullable("string", "date-time")},
      {"last_error", nullable("string")},
      {"last_error_at", nullable("string", "date-time")},
      {"last_publish_at", nullable("string", "date-time")},
      {"published", typed("integer")},
      {"confirmed", typed("integer")},
      {"failed", typed("integer")},
      {"reconnects", typed("integer")},
      {"rescued", typed("integer")},
      {"reconciled", typed("integer")},
      {"backlog", typed("integer")},
      {"due_backlog", typed("integer")},
  });
  publisher["description"] = "the row of the view taskq.publisher";
  J worker = object_of({
      {"worker", typed("string")},
      {"running", typed("integer")},
      {"queues", {{"type", "array"}, {"items", typed("string")}}},
      {"oldest_started_at", typed("string", "date-time")},
      {"lease_expires_at", typed("string", "date-time")},
  });
  worker["description"] = "a worker (the worker column of running jobs) and the jobs it runs now";
  J minute = object_of({
      {"queue_name", typed("string")},
      {"minute", typed("string", "date-time")},
      {"completed", typed("integer")},
      {"failed", typed("integer")},
      {"cancelled", typed("integer")},
  });
  minute["description"] = "jobs of a queue that finished in one minute (minutes without any are left out)";
  J callback = object_of({
      {"id", typed("integer")},
      {"delivery_id", typed("string", "uuid")},
      {"event", typed("string")},
      {"url", typed("string")},
      {"state", typed("string")},
      {"attempts", typed("integer")},
      {"next_attempt_at", typed("string", "date-time")},
      {"last_status", nullable("integer")},
      {"last_error", nullable("string")},
      {"created_at", typed("string", "date-time")},
      {"delivered_at", nullable("string", "date-time")},
  });
  callback["description"] = "a row of taskq.callbacks without its body: one POST to the job's callback_url";
  J dependency = object_of({
      {"id", typed("string", "uuid")},
      {"queue_name", nullable("string")},
      {"task", nullable("string")},
      {"status", nullable("string")},
      {"satisfied", typed("boolean")},
      {"cancelled_job", typed("boolean")},
  });
  dependency["description"] =
      "one edge of taskq.job_dependencies and the job at its other end (queue_name and status null: purged); "
      "satisfied: the dependency completed and counted; cancelled_job: its failure or cancel cancelled the job "
      "waiting for it";
  const J dependency_page =
      object_of({{"jobs", {{"type", "array"}, {"items", dependency}}}, {"next_after", nullable("string", "uuid")}});
  J dependency_list = {{"type", "object"},
                       {"properties", {{"depends_on", dependency_page}, {"dependents", dependency_page}}}};
  dependency_list["description"] =
      "depends_on: the jobs this one waits for; dependents: the jobs that wait for it (only the one asked for "
      "with side)";
  J error =
      object_of({{"error",
                  {{"type", "object"},
                   {"properties", {{"code", typed("string")}, {"message", typed("string")}, {"hint", typed("string")}}},
                   {"required", {"code", "message"}}}}});
  error["description"] = "code: a SQLSTATE from the SQL API, or a short name for errors found before it is called";
  return {
      {"Job", job},
      {"JobPage",
       object_of({{"jobs", {{"type", "array"}, {"items", ref("Job")}}}, {"next_after", nullable("string", "uuid")}})},
      {"Queue", queue},
      {"QueueList", object_of({{"queues", {{"type", "array"}, {"items", ref("Queue")}}}})},
      {"QueueStats", stats},
      {"StatsList", object_of({{"queues", {{"type", "array"}, {"items", ref("QueueStats")}}}})},
      {"Schedule", schedule},
      {"ScheduleList", object_of({{"schedules", {{"type", "array"}, {"items", ref("Schedule")}}}})},
      {"Session",
       object_of({{"role", typed("string")}, {"csrf_token", typed("string")}, {"sign_in", typed("string")}})},
      {"Publisher", publisher},
      {"WorkerList", object_of({{"workers", {{"type", "array"}, {"items", worker}}}})},
      {"Throughput", object_of({{"minutes", {{"type", "array"}, {"items", minute}}}})},
      {"CallbackList", object_of({{"callbacks", {{"type", "array"}, {"items", callback}}}})},
      {"DependencyList", dependency_list},
      {"Health", object_of({{"status", typed("string")}, {"database", typed("string")}})},
      {"Error", error},
  };
}

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Malformed request: bad JSON, a wrong type, an unknown field or parameter";
    case 401:
      return "No token, or an unknown one";
    case 403:
      return "The token's role may not do this, the CSRF token is missing, or the request came from another site";
    case 404:
      return "No such job, queue or schedule";
    case 409:
      return "Not allowed in the current state, or already exists";
    case 413:
      return "The body is larger than the limit";
    case 422:
      return "The SQL API refused a value";
    case 503:
      return "The database is unavailable";
  }
  return "Error";
}

J success_response(const Route& r) {
  J response = {{"description", reason(r.doc.success_status)}};
  const std::string& schema = r.doc.response_schema;
  if (schema.empty()) return response;
  if (schema.find('/') != std::string::npos)
    response["content"] = {{schema, {{"schema", schema == "application/json" ? J::object() : typed("string")}}}};
  else
    response["content"] = {{"application/json", {{"schema", ref(schema)}}}};
  return response;
}

J operation(const Route& r) {
  J op = {{"operationId", r.operation_id}, {"summary", r.doc.summary}, {"description", r.doc.description}};
  op["x-taskq-role"] = to_string(r.role);
  J params = J::array();
  for (const std::string& segment : split_path_templates(r.path)) {
    J schema = typed("string");
    if (segment == "id") schema["format"] = "uuid";
    params.push_back({{"name", segment}, {"in", "path"}, {"required", true}, {"schema", schema}});
  }
  for (const QueryParam& q : r.doc.query) {
    J schema = typed(q.type.c_str());
    if (!q.format.empty()) schema["format"] = q.format;
    params.push_back(
        {{"name", q.name}, {"in", "query"}, {"required", false}, {"description", q.description}, {"schema", schema}});
  }
  if (!params.empty()) op["parameters"] = params;
  if (!r.doc.body.empty())
    op["requestBody"] = {{"required", false},
                         {"content", {{"application/json", {{"schema", body_schema(r.doc.body)}}}}}};

  J responses = {{std::to_string(r.doc.success_status), success_response(r)}};
  std::vector<int> errors = r.doc.errors;
  if (r.role != Role::kPublic) errors.push_back(401);
  // Any request may be refused for where it came from (another site's
  // page, a non-loopback Host without a token file), besides its role.
  errors.push_back(403);
  if (r.doc.response_schema != "Health") errors.push_back(503);
  std::sort(errors.begin(), errors.end());
  errors.erase(std::unique(errors.begin(), errors.end()), errors.end());
  for (int status : errors) {
    const std::string body = r.doc.response_schema == "Health" && status == 503 ? "Health" : "Error";
    responses[std::to_string(status)] = {{"description", reason(status)},
                                         {"content", {{"application/json", {{"schema", ref(body)}}}}}};
  }
  op["responses"] = responses;
  if (r.role == Role::kPublic) op["security"] = J::array();
  return op;
}

}  // namespace

std::vector<std::string> split_path_templates(const std::string& path) {
  std::vector<std::string> names;
  for (std::size_t open = path.find('{'); open != std::string::npos; open = path.find('{', open + 1)) {
    const std::size_t close = path.find('}', open);
    names.push_back(path.substr(open + 1, close - open - 1));
  }
  return names;
}

nlohmann::ordered_json openapi_document(const std::vector<Route>& routes) {
  J paths = J::object();
  for (const Route& r : routes) {
    std::string method = r.method;
    std::transform(method.begin(), method.end(), method.begin(), [](unsigned char c) { return std::tolower(c); });
    paths[r.path][method] = operation(r);
  }
  return {
      {"openapi", "3.1.0"},
      {"info",
       {{"title", "taskq-web"},
        {"version", version()},
        {"description",
         "The REST API of taskq: every operation is one call of the taskq SQL API. JSON field names are the SQL "
         "column and argument names. Errors: {\"error\": {\"code\", \"message\"}}."}}},
      {"paths", paths},
      {"components",
       {{"schemas", schemas()}, {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
      {"security", {{{"bearer", J::array()}}}},
  };
}

}  // namespace taskq::web
