// What is happening now, for the dashboard and for scripts: the publisher
// (the view taskq.publisher), the workers running jobs, and how many jobs
// finished per minute over the last hour. Read-only, each one query that
// an index bounds (docs/web.md "Performance").
#include "api_error.hpp"
#include "api_routes.hpp"
#include "connection_pool.hpp"

namespace taskq::web {
namespace {

Reply publisher(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {});
  auto db = s->pool->acquire();
  PgResult r = db->run("SELECT pg_catalog.to_json(p)::text FROM taskq.publisher p", {});
  return {200, only_row(r.get(), "taskq.publisher has no row")};
}

Reply workers(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {});
  // Running jobs only (a partial index holds them); a worker is the name it
  // gave taskq.start().
  static const std::string sql =
      "SELECT pg_catalog.to_json(w)::text FROM ("
      "SELECT j.worker, count(*) AS running, pg_catalog.array_agg(DISTINCT j.queue_name) AS queues, "
      "min(j.started_at) AS oldest_started_at, min(j.lease_expires_at) AS lease_expires_at "
      "FROM taskq.jobs j WHERE j.status = 'running' AND j.worker IS NOT NULL GROUP BY j.worker) w "
      "ORDER BY w.worker";
  auto db = s->pool->acquire();
  PgResult r = db->run(sql, {});
  return {200, "{\"workers\":" + json_array(r.get()) + "}\n"};
}

Reply throughput(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {"queue"});
  const auto q = req.http.params.find("queue");
  const Param queue = q == req.http.params.end() || q->second.empty() ? Param() : Param(q->second);
  // Queue by queue along jobs_finished (queue_name, finished_at) INCLUDE
  // (status): index-only, and only the last hour's entries are read.
  static const std::string sql =
      "SELECT pg_catalog.to_json(m)::text FROM ("
      "SELECT q.queue_name, c.minute, c.completed, c.failed, c.cancelled FROM taskq.queues q "
      "CROSS JOIN LATERAL (SELECT pg_catalog.date_trunc('minute', j.finished_at) AS minute, "
      "count(*) FILTER (WHERE j.status = 'completed') AS completed, "
      "count(*) FILTER (WHERE j.status = 'failed') AS failed, "
      "count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled "
      "FROM taskq.jobs j WHERE j.queue_name = q.queue_name AND j.status IN ('completed', 'failed', 'cancelled') "
      "AND j.finished_at >= pg_catalog.date_trunc('minute', pg_catalog.now()) - interval '59 minutes' "
      "GROUP BY 1) c WHERE $1::text IS NULL OR q.queue_name = $1::text) m ORDER BY m.minute, m.queue_name";
  auto db = s->pool->acquire();
  PgResult r = db->run(sql, {queue});
  return {200, "{\"minutes\":" + json_array(r.get()) + "}\n"};
}

}  // namespace

std::vector<Route> activity_routes(Services* s) {
  return {
      {"GET",
       "/v1/publisher",
       "getPublisher",
       Role::kRead,
       {"The publisher's state",
        "The row of taskq.publisher: its connection to RabbitMQ, its last error, counters since it started and the "
        "outbox backlog.",
        {},
        {},
        200,
        "Publisher",
        {400}},
       with_services(s, publisher)},
      {"GET",
       "/v1/workers",
       "listWorkers",
       Role::kRead,
       {"Workers running jobs now",
        "Per worker name of running jobs: how many it runs, of which queues, since when, and the earliest lease end.",
        {},
        {},
        200,
        "WorkerList",
        {400}},
       with_services(s, workers)},
      {"GET",
       "/v1/throughput",
       "getThroughput",
       Role::kRead,
       {"Finished jobs per minute, last hour",
        "Per queue and minute of the last hour (this minute included), the jobs that completed, failed and were "
        "cancelled; minutes without any are left out.",
        {{"queue", "string", "only this queue"}},
        {},
        200,
        "Throughput",
        {400}},
       with_services(s, throughput)},
  };
}

}  // namespace taskq::web
