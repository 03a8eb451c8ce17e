// Routes about jobs: enqueue, read one, list (newest first, keyset pages),
// its callbacks and dependencies, retry, cancel. Each is one SQL API call
// or one read; a job is always rendered as the contract columns of its
// taskq.jobs row, JSON field names = column names.
#include <algorithm>
#include <charconv>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "api_error.hpp"
#include "api_routes.hpp"
#include "connection_pool.hpp"

namespace taskq::web {
namespace {

// The columns of taskq.jobs that applications read (docs/sql-api.md);
// internal ones (flow_state, dependencies_left, ...) stay inside the
// database. A job's dependencies are not a column: a job may have 100,000,
// so they have a route of their own with keyset pages (dependencies below).
constexpr const char* kJobColumns =
    "j.id, j.queue_name, j.task, j.payload, j.status, j.priority, j.attempts, j.max_attempts, j.run_at, "
    "j.lease_expires_at, j.worker, j.result, j.last_error, j.callback_url, j.unique_key, j.headers, "
    "j.created_at, j.started_at, j.finished_at, j.updated_at, j.concurrency_key";

// One job as JSON from a row source such as "taskq.cancel($1::uuid)".
std::string job_json_from(const std::string& source) {
  return std::string("SELECT pg_catalog.to_json(j)::text FROM (SELECT ") + kJobColumns + " FROM " + source + " j) j";
}

constexpr int kDefaultLimit = 50;
constexpr int kMaxLimit = 1000;

const std::vector<Field>& enqueue_fields() {
  static const std::vector<Field> fields = {
      {"payload", FieldType::kJson, "jsonb", "the job's input, any JSON value (default {}); at most 1 MiB"},
      {"task", FieldType::kString, "text", "what to run, for handlers that serve several tasks"},
      {"run_at", FieldType::kString, "timestamptz", "not before this time (RFC 3339)", "date-time"},
      {"delay", FieldType::kString, "interval", "not before this long from now (\"30 seconds\", \"PT30S\")",
       "duration"},
      {"priority", FieldType::kInteger, "int", "0..9, higher runs first (classic queues; default 0)"},
      {"max_attempts", FieldType::kInteger, "int", "attempts before it fails for good (default: the queue's)"},
      {"callback_url", FieldType::kString, "text", "http(s) URL told when the job finishes", "uri"},
      {"unique_key", FieldType::kString, "text",
       "while an unfinished job of the queue has this key, that job is returned and nothing is created"},
      {"headers", FieldType::kJson, "jsonb", "a JSON object of string values, passed to the handler"},
      {"depends_on", FieldType::kStringArray, "uuid[]",
       "ids of jobs that must complete first: until they have, the job is waiting (unknown id: 404; one that "
       "failed or was cancelled: 409)",
       "uuid"},
      {"concurrency_key", FieldType::kString, "text",
       "what the queue's concurrency_limit counts by: at most that many running jobs per key (1 to 255 bytes)"},
  };
  return fields;
}

const std::vector<Field>& retry_fields() {
  static const std::vector<Field> fields = {
      {"delay", FieldType::kString, "interval", "run again after this long (default: at once)", "duration"}};
  return fields;
}

int parse_limit(const std::string& text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 1 || value > kMaxLimit)
    throw bad_request("invalid_parameter", "limit must be an integer from 1 to " + std::to_string(kMaxLimit));
  return value;
}

// The caller's W3C trace context (request headers traceparent and
// tracestate) becomes the job's: added to its headers argument unless the
// body's headers have a traceparent of their own (the more specific one, as
// a job's header wins over the session setting in SQL). taskq.enqueue checks
// the values and drops invalid ones with a warning, never failing the call;
// several traceparent headers are joined, which it then refuses.
void add_trace_context(const httplib::Request& http, std::vector<Argument>& args) {
  if (!http.has_header("traceparent")) return;
  const auto joined = [&](const char* name) {
    std::string out;
    for (std::size_t i = 0; i < http.get_header_value_count(name); ++i)
      out += (i ? "," : "") + http.get_header_value(name, i);
    return out;
  };
  auto given = std::find_if(args.begin(), args.end(), [](const Argument& a) { return a.name == "headers"; });
  nlohmann::json headers = nlohmann::json::object();
  if (given != args.end() && given->value) {
    headers = nlohmann::json::parse(*given->value, nullptr, /*allow_exceptions=*/false);
    // Not an object: taskq.enqueue refuses it as it is.
    if (!headers.is_object() || headers.contains("traceparent")) return;
  }
  headers["traceparent"] = joined("traceparent");
  if (http.has_header("tracestate")) headers["tracestate"] = joined("tracestate");
  std::string text = headers.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (given == args.end()) {
    args.push_back({"headers", "jsonb", std::move(text)});
  } else {
    given->value = std::move(text);
  }
}

Reply enqueue(Services* s, const RouteRequest& req) {
  std::vector<Argument> args{{"queue_name", "text", req.path.at("queue")}};
  for (Argument& a : parse_body(req.http.body, enqueue_fields())) args.push_back(std::move(a));
  add_trace_context(req.http, args);
  // taskq.enqueue returns the id; the row is read by a second statement in
  // the same transaction and round trip (a statement cannot see rows its
  // own function call inserted). The id travels in a transaction-local
  // setting, so no value is ever spliced into the text.
  const std::string first =
      "SELECT pg_catalog.set_config('taskq_web.job_id', " + sql_call("taskq.enqueue", args) + "::text, true)";
  static const std::string second = job_json_from("taskq.job(pg_catalog.current_setting('taskq_web.job_id')::uuid)");
  auto db = s->pool->acquire();
  PgResult r = db->run_pair(first, param_values(args), second);
  return {201, only_row(r.get(), "the job vanished before it could be read")};
}

Reply get_job(Services* s, const RouteRequest& req) {
  static const std::string sql = job_json_from("taskq.job($1::uuid)");
  const std::string& id = req.path.at("id");
  auto db = s->pool->acquire();
  PgResult r = db->run(sql, {id});
  return {200, only_row(r.get(), "job " + id + " does not exist")};
}

Reply list_jobs(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {"queue", "status", "task", "limit", "after"});
  // Empty values count as not given, so ?queue=&status= from a form works.
  auto given = [&](const char* name) {
    const auto it = req.http.params.find(name);
    return it == req.http.params.end() || it->second.empty() ? Param() : Param(it->second);
  };
  const Param limit_text = given("limit");
  const int limit = limit_text ? parse_limit(*limit_text) : kDefaultLimit;

  // Only constant fragments go into the text, values are parameters. Ids
  // are time-ordered, so newest first is a backward index scan from
  // `after`; which index serves it best depends on how rare the filtered
  // queue, status or task is, so each list is planned for its values.
  std::vector<Param> params;
  auto placeholder = [&](Param value, const char* cast) {
    params.push_back(std::move(value));
    return " $" + std::to_string(params.size()) + "::" + cast;
  };
  std::string where = " WHERE true";
  const Param queue = given("queue"), status = given("status"), task = given("task"), after = given("after");
  if (queue) where += " AND j.queue_name =" + placeholder(queue, "text");
  if (task) where += " AND j.task =" + placeholder(task, "text");
  if (after) where += " AND j.id <" + placeholder(after, "uuid");
  const std::string limit_param = placeholder(std::to_string(limit + 1), "int");  // one more: is there a next page
  const std::string select = std::string("SELECT ") + kJobColumns + " FROM taskq.jobs j";
  std::string source;
  if (queue && !status && !s->job_statuses.empty()) {
    // A queue's jobs of every status: jobs_list (queue_name, status, id)
    // holds each status in id order, so one short backward scan per status
    // (pending ones from jobs_pending or the primary key), merged.
    for (const std::string& value : s->job_statuses) {
      if (!source.empty()) source += " UNION ALL ";
      source += "(" + select + where + " AND j.status =" + placeholder(value, "taskq.job_status") +
                " ORDER BY j.id DESC LIMIT" + limit_param + ")";
    }
  } else {
    if (status) where += " AND j.status =" + placeholder(status, "taskq.job_status");
    source = select + where + " ORDER BY j.id DESC LIMIT" + limit_param;
  }
  const std::string sql =
      "SELECT pg_catalog.to_json(j)::text, j.id::text FROM (" + source + ") j ORDER BY j.id DESC LIMIT" + limit_param;
  auto db = s->pool->acquire();
  PgResult r = db->run_planned_each_time(sql, params);
  const int rows = PQntuples(r.get());
  const bool more = rows > limit;
  std::string body = "{\"jobs\":" + json_array(r.get(), 0, limit) + ",\"next_after\":";
  body += more ? "\"" + std::string(PQgetvalue(r.get(), limit - 1, 1)) + "\"" : "null";
  return {200, body + "}\n"};
}

Reply callbacks(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {});
  // callbacks_job (job_id) finds them; the body (a snapshot of the job) is
  // left out, the job itself says it.
  static const std::string sql =
      "SELECT EXISTS (SELECT FROM taskq.jobs j WHERE j.id = $1::uuid)::text, "
      "(SELECT COALESCE(pg_catalog.json_agg(c ORDER BY c.id), '[]')::text FROM ("
      "SELECT c.id, c.delivery_id, c.event, c.url, c.state, c.attempts, c.next_attempt_at, c.last_status, "
      "c.last_error, c.created_at, c.delivered_at FROM taskq.callbacks c WHERE c.job_id = $1::uuid) c)";
  const std::string& id = req.path.at("id");
  auto db = s->pool->acquire();
  PgResult r = db->run(sql, {id});
  if (std::string(PQgetvalue(r.get(), 0, 0)) != "true") throw ApiError(404, "42704", "job " + id + " does not exist");
  return {200, "{\"callbacks\":" + std::string(PQgetvalue(r.get(), 0, 1)) + "}\n"};
}

// One page of a job's dependency edges, one side of them: the jobs it waits
// for (edges whose job_id is the job, along the primary key) or those that
// wait for it (along job_dependencies_dependents). Ordered by the other
// job's id, so `after` continues a page by an index range; a dependency
// purged since has no row any more (queue_name, task and status null).
constexpr const char* kDependenciesSql =
    "SELECT 0, EXISTS (SELECT FROM taskq.jobs j WHERE j.id = $1::uuid)::text, NULL::uuid "
    "UNION ALL (SELECT 1, pg_catalog.to_json(d)::text, d.id FROM ("
    "SELECT e.depends_on_job_id AS id, j.queue_name, j.task, j.status, e.satisfied, e.cancelled_job "
    "FROM taskq.job_dependencies e LEFT JOIN taskq.jobs j ON j.id = e.depends_on_job_id "
    "WHERE e.job_id = $1::uuid AND ($3::uuid IS NULL OR e.depends_on_job_id > $3::uuid) "
    "ORDER BY e.depends_on_job_id LIMIT $2::int) d) "
    "UNION ALL (SELECT 2, pg_catalog.to_json(d)::text, d.id FROM ("
    "SELECT e.job_id AS id, j.queue_name, j.task, j.status, e.satisfied, e.cancelled_job "
    "FROM taskq.job_dependencies e LEFT JOIN taskq.jobs j ON j.id = e.job_id "
    "WHERE e.depends_on_job_id = $1::uuid AND ($5::uuid IS NULL OR e.job_id > $5::uuid) "
    "ORDER BY e.job_id LIMIT $4::int) d) "
    "ORDER BY 1, 3";

Reply dependencies(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {"side", "limit", "after"});
  auto given = [&](const char* name) {
    const auto it = req.http.params.find(name);
    return it == req.http.params.end() || it->second.empty() ? Param() : Param(it->second);
  };
  const Param side = given("side"), limit_text = given("limit"), after = given("after");
  if (side && *side != "depends_on" && *side != "dependents")
    throw bad_request("invalid_parameter", "side must be depends_on or dependents");
  if (after && !side) throw bad_request("invalid_parameter", "after needs side (the list it continues)");
  const int limit = limit_text ? parse_limit(*limit_text) : kDefaultLimit;
  const bool want[3] = {true, !side || *side == "depends_on", !side || *side == "dependents"};
  const std::string fetch = std::to_string(limit + 1);  // one more: is there a next page
  const std::string& id = req.path.at("id");
  auto db = s->pool->acquire();
  PgResult r = db->run(kDependenciesSql, {id, want[1] ? fetch : "0", want[1] ? after : Param(), want[2] ? fetch : "0",
                                          want[2] ? after : Param()});
  if (std::string(PQgetvalue(r.get(), 0, 1)) != "true") throw ApiError(404, "42704", "job " + id + " does not exist");
  std::string body = "{";
  for (int part : {1, 2}) {
    if (!want[part]) continue;
    std::string jobs, last;
    int n = 0;
    bool more = false;
    for (int row = 1; row < PQntuples(r.get()); ++row) {
      if (std::atoi(PQgetvalue(r.get(), row, 0)) != part) continue;
      if (n == limit) {
        more = true;
        break;
      }
      jobs += (n++ ? "," : "") + std::string(PQgetvalue(r.get(), row, 1));
      last = PQgetvalue(r.get(), row, 2);
    }
    if (body.size() > 1) body += ",";
    body += std::string("\"") + (part == 1 ? "depends_on" : "dependents") + "\":{\"jobs\":[" + jobs +
            "],\"next_after\":" + (more ? "\"" + last + "\"" : "null") + "}";
  }
  return {200, body + "}\n"};
}

Reply retry(Services* s, const RouteRequest& req) {
  std::vector<Argument> args{{"job_id", "uuid", req.path.at("id")}};
  for (Argument& a : parse_body(req.http.body, retry_fields())) args.push_back(std::move(a));
  auto db = s->pool->acquire();
  PgResult r = db->run(job_json_from(sql_call("taskq.retry", args)), param_values(args));
  return {200, only_row(r.get(), "job " + req.path.at("id") + " does not exist")};
}

Reply cancel(Services* s, const RouteRequest& req) {
  parse_body(req.http.body, {});
  static const std::string sql = job_json_from("taskq.cancel(job_id => $1::uuid)");
  auto db = s->pool->acquire();
  PgResult r = db->run(sql, {req.path.at("id")});
  return {200, only_row(r.get(), "job " + req.path.at("id") + " does not exist")};
}

}  // namespace

std::vector<Route> job_routes(Services* s) {
  return {
      {"POST",
       "/v1/queues/{queue}/jobs",
       "enqueueJob",
       Role::kOperate,
       {"Enqueue a job",
        "Calls taskq.enqueue(). The job is published to RabbitMQ once the transaction commits, which it has when "
        "this answers. With a unique_key that an unfinished job of the queue already has, that job is returned. "
        "The request's traceparent and tracestate headers (W3C Trace Context) become the job's, unless its "
        "headers have a traceparent.",
        {},
        enqueue_fields(),
        201,
        "Job",
        {400, 404, 413, 422}},
       with_services(s, enqueue)},
      {"GET",
       "/v1/jobs/{id}",
       "getJob",
       Role::kRead,
       {"Read a job", "Calls taskq.job().", {}, {}, 200, "Job", {404, 422}},
       with_services(s, get_job)},
      {"GET",
       "/v1/jobs",
       "listJobs",
       Role::kRead,
       {"List jobs, newest first",
        "Keyset pages: pass the previous page's next_after as after. Jobs enqueued meanwhile never shift a page.",
        {{"queue", "string", "only jobs of this queue"},
         {"status", "string", "only jobs in this status (waiting, pending, running, completed, failed, cancelled)"},
         {"task", "string", "only jobs of this task"},
         {"limit", "integer", "jobs per page, 1 to 1000 (default 50)"},
         {"after", "string", "the next_after of the previous page: only jobs older than that one", "uuid"}},
        {},
        200,
        "JobPage",
        {400, 422}},
       with_services(s, list_jobs)},
      {"GET",
       "/v1/jobs/{id}/callbacks",
       "listJobCallbacks",
       Role::kRead,
       {"A job's callbacks",
        "The rows of taskq.callbacks for the job (without their body), oldest first: where each POST goes, its "
        "event and its delivery state (pending, delivered, dead).",
        {},
        {},
        200,
        "CallbackList",
        {400, 404, 422}},
       with_services(s, callbacks)},
      {"GET",
       "/v1/jobs/{id}/dependencies",
       "listJobDependencies",
       Role::kRead,
       {"A job's dependencies",
        "Its edges in taskq.job_dependencies, both ways: depends_on, the jobs it waits for, and dependents, the "
        "jobs that wait for it; each job with its queue, task and status (null once purged) and the edge's "
        "satisfied and cancelled_job. Each list is ordered by job id in keyset pages of at most limit jobs: to "
        "go on, pass side and that list's next_after as after.",
        {{"side", "string", "only this list: depends_on or dependents (default both)"},
         {"limit", "integer", "jobs per list, 1 to 1000 (default 50)"},
         {"after", "string", "with side: that list's next_after of the previous page", "uuid"}},
        {},
        200,
        "DependencyList",
        {400, 404, 422}},
       with_services(s, dependencies)},
      {"POST",
       "/v1/jobs/{id}/retry",
       "retryJob",
       Role::kOperate,
       {"Run a finished job again",
        "Calls taskq.retry(): a completed, failed or cancelled job goes back to pending with a fresh attempt budget.",
        {},
        retry_fields(),
        200,
        "Job",
        {400, 404, 409, 413, 422}},
       with_services(s, retry)},
      {"POST",
       "/v1/jobs/{id}/cancel",
       "cancelJob",
       Role::kOperate,
       {"Cancel a job",
        "Calls taskq.cancel(): a pending job is cancelled at once; for a running one the cancel is requested and "
        "its worker carries it out.",
        {},
        {},
        200,
        "Job",
        {400, 404, 409, 413, 422}},
       with_services(s, cancel)},
  };
}

}  // namespace taskq::web
