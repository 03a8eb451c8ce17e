// Every route's happy path against the real taskq-web and PostgreSQL, and
// what the SQL API wrote being what the HTTP answer says.
#include <gtest/gtest.h>

#include <set>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

using nlohmann::json;

// The columns of taskq.jobs that applications read, as the JSON fields of a
// job: the contract's, and concurrency_key (flow control).
const std::set<std::string> kJobFields = {
    "id",          "queue_name",   "task",           "payload",          "status",     "priority",
    "attempts",    "max_attempts", "run_at",         "lease_expires_at", "worker",     "result",
    "last_error",  "callback_url", "unique_key",     "headers",          "created_at", "started_at",
    "finished_at", "updated_at",   "concurrency_key"};

std::set<std::string> keys(const json& j) {
  std::set<std::string> out;
  for (const auto& [k, v] : j.items()) out.insert(k);
  return out;
}

class WebRoutes : public ::testing::Test {
 protected:
  void SetUp() override { TASKQ_REQUIRE_TEST_ENV(); }
};

TEST_F(WebRoutes, EnqueueReturnsTheJobRowAndGetReadsIt) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const HttpAnswer a = web.post("/v1/queues/" + queue + "/jobs",
                                R"({"payload": {"n": 12345678901234567890123, "x": 0.1}, "task": "send",
                                    "priority": 3, "headers": {"h": "v"}, "unique_key": "k1"})");
  ASSERT_EQ(a.status, 201) << a.body;
  EXPECT_EQ(a.content_type, "application/json");
  const json job = a.json();
  EXPECT_EQ(keys(job), kJobFields);
  EXPECT_EQ(job["queue_name"], queue);
  EXPECT_EQ(job["status"], "pending");
  EXPECT_EQ(job["task"], "send");
  EXPECT_EQ(job["priority"], 3);
  EXPECT_EQ(job["headers"], json({{"h", "v"}}));
  // Numbers reach jsonb as written, every digit kept.
  const std::string stored =
      db.value("SELECT payload::text FROM taskq.jobs WHERE id = $1", {job["id"].get<std::string>().c_str()});
  EXPECT_EQ(stored, R"({"n": 12345678901234567890123, "x": 0.1})");

  const HttpAnswer got = web.get("/v1/jobs/" + job["id"].get<std::string>());
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json(), job);

  // Same unique_key while unfinished: the existing job comes back.
  const HttpAnswer again = web.post("/v1/queues/" + queue + "/jobs", R"({"unique_key": "k1"})");
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(again.json()["id"], job["id"]);
}

TEST_F(WebRoutes, EnqueueWithNoBodyTakesTheDefaults) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const HttpAnswer a = web.post("/v1/queues/" + queue + "/jobs");
  ASSERT_EQ(a.status, 201) << a.body;
  EXPECT_EQ(a.json()["payload"], json::object());
  EXPECT_EQ(a.json()["max_attempts"], 5);
  EXPECT_EQ(a.json()["priority"], 0);
}

TEST_F(WebRoutes, ScriptInAPayloadRoundTripsUnchanged) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const json payload = {{"html", "<script>alert('x')</script>"}, {"quote", "\"&amp;</script>"}};
  const HttpAnswer a = web.post("/v1/queues/" + queue + "/jobs", json{{"payload", payload}}.dump());
  ASSERT_EQ(a.status, 201) << a.body;
  EXPECT_EQ(a.json()["payload"], payload);
  const HttpAnswer got = web.get("/v1/jobs/" + a.json()["id"].get<std::string>());
  EXPECT_EQ(got.json()["payload"], payload);
  EXPECT_EQ(got.content_type, "application/json");
  ASSERT_EQ(got.headers.count("X-Content-Type-Options"), 1u);
  EXPECT_EQ(got.headers.find("X-Content-Type-Options")->second, "nosniff");
}

TEST_F(WebRoutes, CancelThenRetry) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const std::string id = web.post("/v1/queues/" + queue + "/jobs").json()["id"];
  const HttpAnswer cancelled = web.post("/v1/jobs/" + id + "/cancel");
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(cancelled.json()["status"], "cancelled");
  EXPECT_EQ(keys(cancelled.json()), kJobFields);
  EXPECT_EQ(db.value("SELECT status FROM taskq.jobs WHERE id = $1", {id.c_str()}), "cancelled");

  const HttpAnswer retried = web.post("/v1/jobs/" + id + "/retry", R"({"delay": "1 hour"})");
  ASSERT_EQ(retried.status, 200) << retried.body;
  EXPECT_EQ(retried.json()["status"], "pending");
  EXPECT_EQ(db.value("SELECT run_at > now() + interval '59 minutes' FROM taskq.jobs WHERE id = $1", {id.c_str()}), "t");
}

TEST_F(WebRoutes, ListFiltersByQueueStatusAndTask) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(web.post("/v1/queues/" + queue + "/jobs", i % 2 ? R"({"task":"odd"})" : "{}").json()["id"]);
  web.post("/v1/jobs/" + ids[0] + "/cancel");

  const json all = web.get("/v1/jobs?queue=" + queue).json();
  ASSERT_EQ(all["jobs"].size(), 5u);
  EXPECT_EQ(all["jobs"][0]["id"], ids[4]);  // newest first
  EXPECT_EQ(all["jobs"][4]["id"], ids[0]);
  EXPECT_TRUE(all["next_after"].is_null());
  EXPECT_EQ(web.get("/v1/jobs?queue=" + queue + "&task=odd").json()["jobs"].size(), 2u);
  const json cancelled = web.get("/v1/jobs?queue=" + queue + "&status=cancelled").json();
  ASSERT_EQ(cancelled["jobs"].size(), 1u);
  EXPECT_EQ(cancelled["jobs"][0]["id"], ids[0]);
  const json page = web.get("/v1/jobs?queue=" + queue + "&limit=2&status=&task=").json();
  ASSERT_EQ(page["jobs"].size(), 2u);
  EXPECT_EQ(page["next_after"], ids[3]);
  EXPECT_EQ(web.get("/v1/jobs?limit=3").json()["jobs"].size(), 3u);
}

TEST_F(WebRoutes, QueueLifeCycle) {
  PgConnection db = taskq::test::db();
  WebProcess web;
  const std::string name = unique_name("webq");
  const HttpAnswer created =
      web.post("/v1/queues", json{{"queue_name", name}, {"lease", "10 minutes"}, {"max_attempts", 3}}.dump());
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.json()["queue_name"], name);
  EXPECT_EQ(created.json()["lease"], "PT10M");
  EXPECT_EQ(created.json()["max_attempts"], 3);
  EXPECT_EQ(created.json()["queue_type"], "classic");  // the SQL default

  bool listed = false;
  const json queues = web.get("/v1/queues").json();
  for (const auto& q : queues["queues"]) listed = listed || q["queue_name"] == name;
  EXPECT_TRUE(listed);

  const HttpAnswer altered = web.request("PATCH", "/v1/queues/" + name, R"({"retention": "PT1H", "lease": null})");
  ASSERT_EQ(altered.status, 200) << altered.body;
  EXPECT_EQ(altered.json()["retention"], "PT1H");
  EXPECT_EQ(altered.json()["lease"], "PT10M");

  const HttpAnswer paused = web.post("/v1/queues/" + name + "/pause");
  ASSERT_EQ(paused.status, 200) << paused.body;
  EXPECT_EQ(paused.json()["paused"], true);
  EXPECT_EQ(db.value("SELECT paused FROM taskq.queues WHERE queue_name = $1", {name.c_str()}), "t");
  const HttpAnswer resumed = web.post("/v1/queues/" + name + "/resume");
  ASSERT_EQ(resumed.status, 200) << resumed.body;
  EXPECT_EQ(resumed.json()["paused"], false);

  web.post("/v1/queues/" + name + "/jobs");
  const HttpAnswer refused = web.request("DELETE", "/v1/queues/" + name);
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_EQ(refused.error_code(), "55000");
  const HttpAnswer dropped = web.request("DELETE", "/v1/queues/" + name + "?force=true");
  EXPECT_EQ(dropped.status, 204) << dropped.body;
  EXPECT_EQ(dropped.body, "");
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.queues WHERE queue_name = $1", {name.c_str()}), "0");
}

TEST_F(WebRoutes, StatsHealthzMetricsAndTheDashboardPage) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  web.post("/v1/queues/" + queue + "/jobs");
  const HttpAnswer stats = web.get("/v1/stats");
  ASSERT_EQ(stats.status, 200) << stats.body;
  bool found = false;
  const json all = stats.json();
  for (const auto& q : all["queues"]) {
    if (q["queue_name"] != queue) continue;
    found = true;
    EXPECT_EQ(q["pending"], 1);
    EXPECT_TRUE(q.contains("outbox_backlog"));
  }
  EXPECT_TRUE(found);

  const HttpAnswer health = web.get("/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.json()["database"], "up");

  const HttpAnswer metrics = web.get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.content_type.find("text/plain"), std::string::npos);
  EXPECT_NE(metrics.body.find("taskq_web_requests_total{route=\"POST /v1/queues/{queue}/jobs\",status=\"201\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("taskq_web_request_duration_seconds_bucket{route=\"GET /v1/stats\",le=\"+Inf\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("taskq_web_auth_failures_total{reason=\"unknown_token\"} 0"), std::string::npos);

  const HttpAnswer page = web.get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.content_type.find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("/assets/app.js"), std::string::npos);
  // No inline script: every <script> has a src.
  for (std::size_t at = page.body.find("<script"); at != std::string::npos; at = page.body.find("<script", at + 1))
    EXPECT_EQ(page.body.compare(at, 12, "<script src="), 0) << page.body.substr(at, 40);
  const HttpAnswer chart = web.get("/assets/chart.min.js");
  EXPECT_EQ(chart.status, 200);
  EXPECT_NE(chart.content_type.find("text/javascript"), std::string::npos);
  EXPECT_GT(chart.body.size(), 100000u);  // Chart.js itself, from libjs-chart.js
  EXPECT_EQ(web.get("/assets/no-such-file.js").status, 404);
}

}  // namespace
}  // namespace taskq::test
