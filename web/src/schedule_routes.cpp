// Routes about periodic jobs: list, create or replace, remove. Each is one
// SQL API call (taskq.schedule, taskq.unschedule) or a read of the table
// taskq.schedules; a schedule is rendered as its row without the internal
// anchor_at, JSON field names = column names.
#include "api_error.hpp"
#include "api_routes.hpp"
#include "connection_pool.hpp"

namespace taskq::web {
namespace {

// The columns of taskq.schedules that users read (docs/sql-api.md) and the
// job options a PUT sets, so a GET shows everything a PUT wrote.
constexpr const char* kScheduleColumns =
    "s.schedule_name, s.cron, s.timezone, s.queue_name, s.task, s.payload, s.priority, s.max_attempts, s.headers, "
    "s.callback_url, s.catch_up, s.enabled, s.next_run_at, s.last_run_at, s.last_job_id, s.created_at, s.updated_at";

std::string schedule_json_from(const std::string& source) {
  return std::string("SELECT pg_catalog.to_json(s)::text FROM (SELECT ") + kScheduleColumns + " FROM " + source +
         " s) s";
}

const std::vector<Field>& put_fields() {
  static const std::vector<Field> fields = {
      {"cron", FieldType::kString, "text",
       "five fields (minute hour day-of-month month day-of-week), @daily and the like, or @every <interval>", "", true},
      {"queue_name", FieldType::kString, "text", "the queue each tick's job goes to", "", true},
      {"payload", FieldType::kJson, "jsonb", "each job's input (default {})"},
      {"task", FieldType::kString, "text", "each job's task"},
      {"timezone", FieldType::kString, "text", "the time zone cron is read in (default UTC)"},
      {"priority", FieldType::kInteger, "int", "each job's priority, 0..9 (default 0)"},
      {"max_attempts", FieldType::kInteger, "int", "each job's attempts (default: the queue's)"},
      {"headers", FieldType::kJson, "jsonb", "each job's headers, a JSON object of string values"},
      {"callback_url", FieldType::kString, "text", "http(s) URL told when each job finishes", "uri"},
      {"catch_up", FieldType::kBoolean, "boolean",
       "after a pause, one job per missed tick (at most 1000) instead of one for the latest (default false)"},
      {"enabled", FieldType::kBoolean, "boolean", "false keeps the schedule but fires nothing (default true)"},
  };
  return fields;
}

Reply list_schedules(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {});
  static const std::string sql = schedule_json_from("taskq.schedules") + " ORDER BY s.schedule_name";
  auto db = s->pool->acquire();
  PgResult r = db->run(sql, {});
  return {200, "{\"schedules\":" + json_array(r.get()) + "}\n"};
}

Reply put_schedule(Services* s, const RouteRequest& req) {
  std::vector<Argument> args{{"schedule_name", "text", req.path.at("name")}};
  for (Argument& a : parse_body(req.http.body, put_fields())) args.push_back(std::move(a));
  auto db = s->pool->acquire();
  PgResult r = db->run(schedule_json_from(sql_call("taskq.schedule", args)), param_values(args));
  return {200, only_row(r.get(), "the schedule was not saved")};
}

Reply delete_schedule(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {});
  parse_body(req.http.body, {});
  auto db = s->pool->acquire();
  PgResult r = db->run("SELECT taskq.unschedule(schedule_name => $1::text)::text", {req.path.at("name")});
  if (std::string(PQgetvalue(r.get(), 0, 0)) != "true")
    throw ApiError(404, "42704", "schedule \"" + req.path.at("name") + "\" does not exist");
  return {204, ""};
}

}  // namespace

std::vector<Route> schedule_routes(Services* s) {
  return {
      {"GET",
       "/v1/schedules",
       "listSchedules",
       Role::kRead,
       {"List schedules", "Every row of taskq.schedules, by name.", {}, {}, 200, "ScheduleList", {400}},
       with_services(s, list_schedules)},
      {"PUT",
       "/v1/schedules/{name}",
       "putSchedule",
       Role::kAdmin,
       {"Create or replace a schedule",
        "Calls taskq.schedule(): at each tick of cron in timezone a job is enqueued into queue_name. Replacing a "
        "schedule with the same cron, timezone and enabled keeps its ticks. 404 for an unknown queue, 422 for a bad "
        "expression, time zone or job option.",
        {},
        put_fields(),
        200,
        "Schedule",
        {400, 404, 413, 422}},
       with_services(s, put_schedule)},
      {"DELETE",
       "/v1/schedules/{name}",
       "deleteSchedule",
       Role::kAdmin,
       {"Remove a schedule",
        "Calls taskq.unschedule(); the jobs it made stay. 404 if there is no schedule of that name.",
        {},
        {},
        204,
        "",
        {400, 404, 413, 422}},
       with_services(s, delete_schedule)},
  };
}

}  // namespace taskq::web
