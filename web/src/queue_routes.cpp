// Routes about queues: list, create, change, drop, pause, resume, and the
// per-queue statistics (taskq.queue_stats). A queue is rendered as its
// taskq.queues row, JSON field names = column names.
#include "api_error.hpp"
#include "api_routes.hpp"
#include "connection_pool.hpp"

namespace taskq::web {
namespace {

// The options create_queue and alter_queue share (docs/sql-api.md).
std::vector<Field> queue_option_fields() {
  return {
      {"max_attempts", FieldType::kInteger, "int", "attempts before a job fails for good, 1 to 1000"},
      {"lease", FieldType::kString, "interval", "how long a started job may run between heartbeats", "duration"},
      {"backoff_base", FieldType::kString, "interval", "first retry delay; doubles per attempt", "duration"},
      {"backoff_max", FieldType::kString, "interval", "longest retry delay", "duration"},
      {"retention", FieldType::kString, "interval", "how long finished jobs are kept", "duration"},
      {"delivery_delay", FieldType::kString, "interval", "added to every job's run_at", "duration"},
      {"queue_type", FieldType::kString, "text", "classic or quorum (RabbitMQ queue type; cannot be changed)"},
      {"rate_limit", FieldType::kInteger, "int",
       "at most this many jobs of the queue start in any window of rate_period, 1 to 1,000,000"},
      {"rate_period", FieldType::kString, "interval", "the window of rate_limit, 1 millisecond to 1 day", "duration"},
      {"concurrency_limit", FieldType::kInteger, "int",
       "at most this many running jobs per concurrency_key, 1 to 100,000 (jobs without a key are not limited)"},
      {"jobs_per_message", FieldType::kInteger, "int",
       "up to this many jobs of the queue per RabbitMQ message, 1 to 100 (1: one message per job)"},
  };
}

// The options whose NULL means "no limit": PATCH takes a JSON null for them
// as "remove it" (taskq.remove_queue_limit), as a JSON merge patch would,
// since taskq.alter_queue reads a NULL as "unchanged".
bool is_limit(const std::string& name) { return name == "rate_limit" || name == "concurrency_limit"; }

const std::vector<Field>& create_fields() {
  static const std::vector<Field> fields = [] {
    std::vector<Field> f{{"queue_name", FieldType::kString, "text",
                          "1 to 100 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit", "", true}};
    for (Field& o : queue_option_fields()) {
      o.description += " (default: the SQL API's)";
      f.push_back(std::move(o));
    }
    return f;
  }();
  return fields;
}

const std::vector<Field>& alter_fields() {
  static const std::vector<Field> fields = [] {
    std::vector<Field> f = queue_option_fields();
    for (Field& o : f)
      o.description +=
          is_limit(o.name) ? " (left out: unchanged; null: no limit any more)" : " (left out or null: unchanged)";
    return f;
  }();
  return fields;
}

std::string queue_json_from(const std::string& source) {
  return "SELECT pg_catalog.to_json(q)::text FROM " + source + " q";
}

Reply list_queues(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {});
  auto db = s->pool->acquire();
  PgResult r = db->run("SELECT pg_catalog.to_json(q)::text FROM taskq.queues q ORDER BY q.queue_name", {});
  return {200, "{\"queues\":" + json_array(r.get()) + "}\n"};
}

Reply create_queue(Services* s, const RouteRequest& req) {
  const std::vector<Argument> args = parse_body(req.http.body, create_fields());
  auto db = s->pool->acquire();
  PgResult r = db->run(queue_json_from(sql_call("taskq.create_queue", args)), param_values(args));
  return {201, only_row(r.get(), "the queue was not created")};
}

Reply alter_queue(Services* s, const RouteRequest& req) {
  std::vector<Argument> args{{"queue_name", "text", req.path.at("queue")}};
  std::vector<std::string> removed;
  for (Argument& a : parse_body(req.http.body, alter_fields())) {
    if (is_limit(a.name) && !a.value)
      removed.push_back(a.name);
    else
      args.push_back(std::move(a));
  }
  // One statement, one transaction: alter_queue, then each removal on the
  // row it returned (LATERAL orders the calls; each sees the one before),
  // the last row being the answer. Limit names are constants of this file.
  std::string source = sql_call("taskq.alter_queue", args) + " q0";
  for (std::size_t i = 0; i < removed.size(); ++i)
    source += " CROSS JOIN LATERAL taskq.remove_queue_limit(queue_name => q" + std::to_string(i) +
              ".queue_name, limit_name => '" + removed[i] + "') q" + std::to_string(i + 1);
  const std::string last = "q" + std::to_string(removed.size());
  auto db = s->pool->acquire();
  PgResult r = db->run("SELECT pg_catalog.to_json(" + last + ")::text FROM " + source, param_values(args));
  return {200, only_row(r.get(), "queue \"" + req.path.at("queue") + "\" does not exist")};
}

Reply drop_queue(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {"force"});
  std::vector<Argument> args{{"queue_name", "text", req.path.at("queue")}};
  const auto force = req.http.params.find("force");
  if (force != req.http.params.end()) {
    if (force->second != "true" && force->second != "false")
      throw bad_request("invalid_parameter", "force must be true or false");
    args.push_back({"force", "boolean", force->second});
  }
  auto db = s->pool->acquire();
  db->run("SELECT " + sql_call("taskq.drop_queue", args), param_values(args));
  return {204, ""};
}

Reply set_paused(Services* s, const RouteRequest& req, const char* function) {
  parse_body(req.http.body, {});
  auto db = s->pool->acquire();
  PgResult r = db->run(queue_json_from(std::string(function) + "(queue_name => $1::text)"), {req.path.at("queue")});
  return {200, only_row(r.get(), "queue \"" + req.path.at("queue") + "\" does not exist")};
}

Reply pause(Services* s, const RouteRequest& req) { return set_paused(s, req, "taskq.pause_queue"); }
Reply resume(Services* s, const RouteRequest& req) { return set_paused(s, req, "taskq.resume_queue"); }

Reply stats(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {});
  auto db = s->pool->acquire();
  PgResult r = db->run("SELECT pg_catalog.to_json(s)::text FROM taskq.queue_stats s ORDER BY s.queue_name", {});
  return {200, "{\"queues\":" + json_array(r.get()) + "}\n"};
}

}  // namespace

std::vector<Route> queue_routes(Services* s) {
  return {
      {"GET",
       "/v1/queues",
       "listQueues",
       Role::kRead,
       {"List queues", "Every row of taskq.queues, by name.", {}, {}, 200, "QueueList", {400}},
       with_services(s, list_queues)},
      {"POST",
       "/v1/queues",
       "createQueue",
       Role::kAdmin,
       {"Create a queue",
        "Calls taskq.create_queue(); options left out take its defaults.",
        {},
        create_fields(),
        201,
        "Queue",
        {400, 409, 413, 422}},
       with_services(s, create_queue)},
      {"PATCH",
       "/v1/queues/{queue}",
       "alterQueue",
       Role::kAdmin,
       {"Change a queue's options",
        "Calls taskq.alter_queue(): fields left out or null stay as they are, except rate_limit and "
        "concurrency_limit, whose null removes the limit (taskq.remove_queue_limit(), in the same transaction).",
        {},
        alter_fields(),
        200,
        "Queue",
        {400, 404, 409, 413, 422}},
       with_services(s, alter_queue)},
      {"DELETE",
       "/v1/queues/{queue}",
       "dropQueue",
       Role::kAdmin,
       {"Drop a queue and its finished jobs",
        "Calls taskq.drop_queue(); refused (409) while the queue has unfinished jobs, unless force=true.",
        {{"force", "boolean", "also delete its unfinished jobs (default false)"}},
        {},
        204,
        "",
        {400, 404, 409, 422}},
       with_services(s, drop_queue)},
      {"POST",
       "/v1/queues/{queue}/pause",
       "pauseQueue",
       Role::kOperate,
       {"Pause a queue",
        "Calls taskq.pause_queue(): its jobs are no longer published (enqueue still works).",
        {},
        {},
        200,
        "Queue",
        {400, 404, 413, 422}},
       with_services(s, pause)},
      {"POST",
       "/v1/queues/{queue}/resume",
       "resumeQueue",
       Role::kOperate,
       {"Resume a queue",
        "Calls taskq.resume_queue(): its held jobs are published again.",
        {},
        {},
        200,
        "Queue",
        {400, 404, 413, 422}},
       with_services(s, resume)},
      {"GET",
       "/v1/stats",
       "getStats",
       Role::kRead,
       {"Per-queue statistics", "Every row of taskq.queue_stats, by queue name.", {}, {}, 200, "StatsList", {400}},
       with_services(s, stats)},
  };
}

}  // namespace taskq::web
