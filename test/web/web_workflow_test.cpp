// Dependencies and flow control over HTTP: enqueue with depends_on and
// concurrency_key, a job's dependencies both ways in keyset pages, queue
// limits set, changed and removed (JSON null), held and waiting in the
// statistics, and the bad input of each with its status and code.
#include <gtest/gtest.h>

#include <set>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class WebWorkflow : public ::testing::Test {
 protected:
  void SetUp() override { TASKQ_REQUIRE_TEST_ENV(); }
};

// Runs job `id` through its first attempt to completed, as a worker would.
void complete(PgConnection& db, const std::string& id) {
  db.exec("SELECT taskq.start($1::uuid, 1, 'web-test-worker')", {id.c_str()});
  ASSERT_EQ(db.value("SELECT taskq.complete($1::uuid, 1)", {id.c_str()}), "t");
}

json stats_of(const WebProcess& web, const std::string& queue) {
  const json all = web.get("/v1/stats").json();
  for (const auto& q : all["queues"])
    if (q["queue_name"] == queue) return q;
  return nullptr;
}

TEST_F(WebWorkflow, EnqueueWithDependsOnIsWaitingAndReleasedByTheCompletion) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const std::string jobs = "/v1/queues/" + queue + "/jobs";
  const std::string first = web.post(jobs, R"({"task": "extract"})").json()["id"];
  const HttpAnswer a = web.post(jobs, json{{"task", "load"},
                                           {"depends_on", {first, first}},  // twice counts once
                                           {"concurrency_key", "tenant-42"}}
                                          .dump());
  ASSERT_EQ(a.status, 201) << a.body;
  const json load = a.json();
  const std::string id = load["id"];
  EXPECT_EQ(load["status"], "waiting");
  EXPECT_EQ(load["concurrency_key"], "tenant-42");
  EXPECT_EQ(db.value("SELECT concurrency_key FROM taskq.jobs WHERE id = $1", {id.c_str()}), "tenant-42");
  EXPECT_EQ(db.value("SELECT string_agg(depends_on_job_id::text, ',') FROM taskq.job_dependencies WHERE job_id = $1",
                     {id.c_str()}),
            first);
  EXPECT_EQ(web.get("/v1/jobs/" + id).json()["concurrency_key"], "tenant-42");
  EXPECT_EQ(stats_of(web, queue)["waiting"], 1);

  // Both ways: what it waits for, what waits for the first job.
  const HttpAnswer mine = web.get("/v1/jobs/" + id + "/dependencies");
  ASSERT_EQ(mine.status, 200) << mine.body;
  const json expected_edge = {{"id", first},         {"queue_name", queue}, {"task", "extract"},
                              {"status", "pending"}, {"satisfied", false},  {"cancelled_job", false}};
  EXPECT_EQ(mine.json(), json({{"depends_on", {{"jobs", {expected_edge}}, {"next_after", nullptr}}},
                               {"dependents", {{"jobs", json::array()}, {"next_after", nullptr}}}}));
  const json theirs = web.get("/v1/jobs/" + first + "/dependencies").json();
  ASSERT_EQ(theirs["dependents"]["jobs"].size(), 1u) << theirs;
  EXPECT_EQ(theirs["dependents"]["jobs"][0]["id"], id);
  EXPECT_EQ(theirs["dependents"]["jobs"][0]["status"], "waiting");
  EXPECT_EQ(theirs["depends_on"]["jobs"], json::array());

  // The completion releases it; the edge says it counted.
  complete(db, first);
  EXPECT_EQ(web.get("/v1/jobs/" + id).json()["status"], "pending");
  const json after = web.get("/v1/jobs/" + id + "/dependencies?side=depends_on").json();
  EXPECT_FALSE(after.contains("dependents")) << after;
  ASSERT_EQ(after["depends_on"]["jobs"].size(), 1u) << after;
  EXPECT_EQ(after["depends_on"]["jobs"][0]["status"], "completed");
  EXPECT_EQ(after["depends_on"]["jobs"][0]["satisfied"], true);

  // No dependencies (an empty array, null) is an ordinary pending job.
  EXPECT_EQ(web.post(jobs, R"({"depends_on": []})").json()["status"], "pending");
  EXPECT_EQ(web.post(jobs, R"({"depends_on": null, "concurrency_key": null})").json()["status"], "pending");
}

TEST_F(WebWorkflow, ACancelledDependencyShowsWhichEdgeCancelled) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const std::string jobs = "/v1/queues/" + queue + "/jobs";
  const std::string first = web.post(jobs).json()["id"];
  const std::string second = web.post(jobs, json{{"depends_on", {first}}}.dump()).json()["id"];
  ASSERT_EQ(web.post("/v1/jobs/" + first + "/cancel").status, 200);
  const json job = web.get("/v1/jobs/" + second).json();
  EXPECT_EQ(job["status"], "cancelled");
  EXPECT_NE(job["last_error"].get<std::string>().find(first), std::string::npos) << job;
  const json edges = web.get("/v1/jobs/" + second + "/dependencies").json();
  EXPECT_EQ(edges["depends_on"]["jobs"][0]["cancelled_job"], true) << edges;
  EXPECT_EQ(edges["depends_on"]["jobs"][0]["status"], "cancelled");
  // A cancelled dependency is refused for a new dependent: 55000.
  const HttpAnswer refused = web.post(jobs, json{{"depends_on", {first}}}.dump());
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_EQ(refused.error_code(), "55000");
}

TEST_F(WebWorkflow, DependenciesComeInKeysetPagesNeverAllAtOnce) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  // 1,001 dependencies (through SQL: the HTTP body would be 40 kB).
  const std::string id = db.value(
      "SELECT taskq.enqueue($1, depends_on => ARRAY(SELECT taskq.enqueue_many($1, "
      "(SELECT jsonb_agg(i) FROM generate_series(1, 1001) i))))",
      {queue.c_str()});
  WebProcess web;
  const std::string base = "/v1/jobs/" + id + "/dependencies";
  const json first = web.get(base).json();
  EXPECT_EQ(first["depends_on"]["jobs"].size(), 50u);  // the default page
  EXPECT_TRUE(first["depends_on"]["next_after"].is_string());
  EXPECT_TRUE(first["dependents"]["next_after"].is_null());

  const json big = web.get(base + "?side=depends_on&limit=1000").json();
  ASSERT_EQ(big["depends_on"]["jobs"].size(), 1000u);
  const std::string next = big["depends_on"]["next_after"];
  EXPECT_EQ(next, big["depends_on"]["jobs"][999]["id"]);
  const json rest = web.get(base + "?side=depends_on&limit=1000&after=" + next).json();
  ASSERT_EQ(rest["depends_on"]["jobs"].size(), 1u);
  EXPECT_TRUE(rest["depends_on"]["next_after"].is_null());

  // Small pages: every dependency once, in id order.
  std::vector<std::string> seen;
  std::string after;
  for (int page = 0; page < 200; ++page) {
    const json p =
        web.get(base + "?side=depends_on&limit=7" + (after.empty() ? "" : "&after=" + after)).json()["depends_on"];
    for (const auto& j : p["jobs"]) seen.push_back(j["id"]);
    if (p["next_after"].is_null()) break;
    after = p["next_after"];
  }
  ASSERT_EQ(seen.size(), 1001u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 1001u);
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.job_dependencies WHERE job_id = $1", {id.c_str()}), "1001");
}

TEST_F(WebWorkflow, QueueLimitsAreSetChangedAndRemovedWithNull) {
  PgConnection db = taskq::test::db();
  WebProcess web;
  const std::string name = unique_name("webl");
  const HttpAnswer created = web.post(
      "/v1/queues",
      json{{"queue_name", name}, {"rate_limit", 50}, {"rate_period", "2 seconds"}, {"concurrency_limit", 2}}.dump());
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.json()["rate_limit"], 50);
  EXPECT_EQ(created.json()["rate_period"], "PT2S");
  EXPECT_EQ(created.json()["concurrency_limit"], 2);
  const std::string path = "/v1/queues/" + name;

  const HttpAnswer raised = web.request("PATCH", path, R"({"concurrency_limit": 4, "rate_period": null})");
  ASSERT_EQ(raised.status, 200) << raised.body;
  EXPECT_EQ(raised.json()["concurrency_limit"], 4);
  EXPECT_EQ(raised.json()["rate_limit"], 50);
  EXPECT_EQ(raised.json()["rate_period"], "PT2S");  // null: unchanged

  // null removes a limit (taskq.remove_queue_limit), leaving the other.
  const HttpAnswer no_rate = web.request("PATCH", path, R"({"rate_limit": null})");
  ASSERT_EQ(no_rate.status, 200) << no_rate.body;
  EXPECT_TRUE(no_rate.json()["rate_limit"].is_null());
  EXPECT_EQ(no_rate.json()["concurrency_limit"], 4);
  EXPECT_EQ(
      db.value("SELECT coalesce(rate_limit::text, 'none') FROM taskq.queues WHERE queue_name = $1", {name.c_str()}),
      "none");

  // Both, with another option, in one transaction.
  const HttpAnswer none =
      web.request("PATCH", path, R"({"concurrency_limit": null, "rate_limit": null, "max_attempts": 7})");
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_TRUE(none.json()["concurrency_limit"].is_null());
  EXPECT_TRUE(none.json()["rate_limit"].is_null());
  EXPECT_EQ(none.json()["max_attempts"], 7);
  EXPECT_EQ(db.value("SELECT (rate_limit, concurrency_limit, max_attempts)::text FROM taskq.queues "
                     "WHERE queue_name = $1",
                     {name.c_str()}),
            "(,,7)");

  // A refused option refuses the removal with it.
  ASSERT_EQ(web.request("PATCH", path, R"({"concurrency_limit": 3})").status, 200);
  const HttpAnswer refused = web.request("PATCH", path, R"({"max_attempts": 0, "concurrency_limit": null})");
  EXPECT_EQ(refused.status, 422) << refused.body;
  EXPECT_EQ(db.value("SELECT (concurrency_limit, max_attempts)::text FROM taskq.queues WHERE queue_name = $1",
                     {name.c_str()}),
            "(3,7)");
  const HttpAnswer unknown = web.request("PATCH", "/v1/queues/no_such_queue_here", R"({"rate_limit": null})");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(unknown.error_code(), "42704");
  web.request("DELETE", path + "?force=true");
}

TEST_F(WebWorkflow, HeldCountsThePendingJobsALimitHoldsBack) {
  PgConnection db = taskq::test::db();
  WebProcess web;
  const std::string name = unique_name("webh");
  ASSERT_EQ(web.post("/v1/queues", json{{"queue_name", name}, {"concurrency_limit", 1}}.dump()).status, 201);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(web.post("/v1/queues/" + name + "/jobs", R"({"concurrency_key": "tenant-1"})").status, 201);
  // The publisher's flow step admits one job of the key and parks the others.
  json stats;
  const bool parked = wait_until(
      [&] {
        stats = stats_of(web, name);
        return stats.is_object() && stats["held"] == 2;
      },
      15s, 50ms);
  EXPECT_TRUE(parked) << stats;
  EXPECT_EQ(stats["pending"], 3);
  // Removing the limit over HTTP releases them.
  ASSERT_EQ(web.request("PATCH", "/v1/queues/" + name, R"({"concurrency_limit": null})").status, 200);
  EXPECT_EQ(stats_of(web, name)["held"], 0);
  web.request("DELETE", "/v1/queues/" + name + "?force=true");
}

struct BadRequest {
  std::string method, path, body;
  int status;
  std::string code;
  std::string message_part;
};

TEST_F(WebWorkflow, BadInputHasItsStatusAndCodeAndChangesNothing) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const std::string jobs = "/v1/queues/" + queue + "/jobs";
  const std::string id = web.post(jobs).json()["id"];
  const std::string unknown_id = "01900000-0000-7000-8000-000000000000";
  const std::string deps = "/v1/jobs/" + id + "/dependencies";
  const std::vector<BadRequest> cases = {
      // Not an array of strings: 400 before the SQL API is asked.
      {"POST", jobs, R"({"depends_on": ")" + id + R"("})", 400, "wrong_type", "depends_on"},
      {"POST", jobs, R"({"depends_on": [1, 2]})", 400, "wrong_type", "depends_on"},
      {"POST", jobs, R"({"depends_on": {"id": ")" + id + R"("}})", 400, "wrong_type", "depends_on"},
      {"POST", jobs, R"({"depends_on": [[")" + id + R"("]]})", 400, "wrong_type", "depends_on"},
      {"POST", jobs, R"({"depends_on": ["a\u0000b"]})", 400, "invalid_text", "depends_on"},
      {"POST", jobs, R"({"concurrency_key": 42})", 400, "wrong_type", "concurrency_key"},
      {"POST", jobs, R"({"depends_ob": []})", 400, "unknown_field", "depends_ob"},
      {"POST", "/v1/queues", R"({"queue_name": "x", "rate_limit": "50"})", 400, "wrong_type", "rate_limit"},
      {"PATCH", "/v1/queues/" + queue, R"({"concurrency_limit": 2.5})", 400, "wrong_type", "concurrency_limit"},
      {"PATCH", "/v1/queues/" + queue, R"({"limit_name": "rate_limit"})", 400, "unknown_field", "limit_name"},
      {"GET", deps + "?side=both", "", 400, "invalid_parameter", "side"},
      {"GET", deps + "?after=" + id, "", 400, "invalid_parameter", "after"},
      {"GET", deps + "?limit=0", "", 400, "invalid_parameter", "limit"},
      {"GET", deps + "?limit=1001", "", 400, "invalid_parameter", "limit"},
      {"GET", deps + "?colour=red", "", 400, "unknown_parameter", "colour"},
      // Well-formed, refused by the SQL API.
      {"POST", jobs, R"({"depends_on": ["not-a-uuid"]})", 422, "22P02", ""},
      // An element cannot end the array literal early: it stays one (bad)
      // uuid, not two good ones (the second unknown: that would be a 404).
      {"POST", jobs, R"({"depends_on": [")" + id + R"(\",\")" + unknown_id + R"("]})", 422, "22P02", ""},
      {"POST", jobs, R"({"depends_on": ["x\\"]})", 422, "22P02", ""},
      {"POST", jobs, R"({"concurrency_key": ""})", 422, "22023", ""},
      {"POST", jobs, json{{"concurrency_key", std::string(256, 'k')}}.dump(), 422, "22023", ""},
      {"POST", "/v1/queues", R"({"queue_name": "neg_limit", "rate_limit": -5})", 422, "22023", ""},
      {"POST", "/v1/queues", R"({"queue_name": "neg_limit", "concurrency_limit": 0})", 422, "22023", ""},
      {"POST", "/v1/queues", R"({"queue_name": "neg_limit", "rate_period": "-1 second"})", 422, "22023", ""},
      {"POST", "/v1/queues", R"({"queue_name": "neg_limit", "rate_period": null})", 422, "22004", ""},
      {"PATCH", "/v1/queues/" + queue, R"({"rate_limit": -1})", 422, "22023", ""},
      {"PATCH", "/v1/queues/" + queue, R"({"concurrency_limit": 100001})", 422, "22023", ""},
      {"GET", "/v1/jobs/not-a-uuid/dependencies", "", 422, "22P02", ""},
      {"GET", deps + "?side=depends_on&after=zzz", "", 422, "22P02", ""},
      // Unknown dependency, unknown job: 404.
      {"POST", jobs, json{{"depends_on", {id, unknown_id}}}.dump(), 404, "42704", unknown_id},
      {"GET", "/v1/jobs/" + unknown_id + "/dependencies", "", 404, "42704", unknown_id},
  };
  for (const BadRequest& c : cases) {
    const HttpAnswer a = web.request(c.method, c.path, c.body);
    EXPECT_EQ(a.status, c.status) << c.method << " " << c.path << " " << c.body << " -> " << a.body;
    EXPECT_EQ(a.error_code(), c.code) << c.method << " " << c.path << " " << c.body << " -> " << a.body;
    if (!c.message_part.empty()) {
      const json j = a.json();
      ASSERT_TRUE(j.is_object() && j["error"]["message"].is_string()) << a.body;
      EXPECT_NE(j["error"]["message"].get<std::string>().find(c.message_part), std::string::npos) << a.body;
    }
  }
  // Nothing was created or changed: the one job, no edges, no queue, no limit.
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1", {queue.c_str()}), "1");
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.job_dependencies WHERE depends_on_job_id = $1", {id.c_str()}), "0");
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.queues WHERE queue_name = 'neg_limit'"), "0");
  EXPECT_EQ(
      db.value("SELECT (rate_limit, concurrency_limit)::text FROM taskq.queues WHERE queue_name = $1", {queue.c_str()}),
      "(,)");
  EXPECT_EQ(web.get("/metrics").body.find("status=\"500\""), std::string::npos);
}

}  // namespace
}  // namespace taskq::test
