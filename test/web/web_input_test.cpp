// Bad input of every kind gets a 4xx with the documented error code, never
// a 500, and changes nothing.
#include <gtest/gtest.h>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

class WebInput : public ::testing::Test {
 protected:
  void SetUp() override { TASKQ_REQUIRE_TEST_ENV(); }
};

struct BadRequest {
  std::string method, path, body;
  int status;
  std::string code;
  std::string message_part;  // the field or parameter the message must name
};

TEST_F(WebInput, EachKindOfBadInputHasItsStatusAndCode) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const std::string jobs = "/v1/queues/" + queue + "/jobs";
  const std::string id = web.post(jobs).json()["id"];
  const std::string unknown_id = "01900000-0000-7000-8000-000000000000";
  const std::vector<BadRequest> cases = {
      // Malformed JSON, not an object, unknown fields, wrong types: 400.
      {"POST", jobs, "{\"payload\": ", 400, "invalid_json", ""},
      {"POST", jobs, "[1, 2]", 400, "not_an_object", ""},
      {"POST", jobs, R"({"payload": {}, "colour": "red"})", 400, "unknown_field", "colour"},
      {"POST", jobs, R"({"priority": "high"})", 400, "wrong_type", "priority"},
      {"POST", jobs, R"({"priority": 1.5})", 400, "wrong_type", "priority"},
      {"POST", jobs, R"({"task": 7})", 400, "wrong_type", "task"},
      {"POST", jobs, R"({"task": "a\u0000b"})", 400, "invalid_text", "task"},
      {"POST", jobs, "{\"task\": \"\xff\"}", 400, "invalid_json", ""},
      {"POST", "/v1/queues", R"({"max_attempts": 3})", 400, "missing_field", "queue_name"},
      {"POST", "/v1/queues", R"({"queue_name": "x", "paused": true})", 400, "unknown_field", "paused"},
      {"POST", "/v1/jobs/" + id + "/cancel", R"({"now": true})", 400, "unknown_field", "now"},
      {"GET", "/v1/jobs?colour=red", "", 400, "unknown_parameter", "colour"},
      {"GET", "/v1/jobs?limit=0", "", 400, "invalid_parameter", "limit"},
      {"GET", "/v1/jobs?limit=ten", "", 400, "invalid_parameter", "limit"},
      {"GET", "/v1/jobs?limit=1001", "", 400, "invalid_parameter", "limit"},
      {"GET", "/v1/jobs?queue=a&queue=b", "", 400, "duplicate_parameter", "queue"},
      {"DELETE", "/v1/queues/" + queue + "?force=yes", "", 400, "invalid_parameter", "force"},
      // Values the SQL API refuses: 422 with its SQLSTATE.
      {"POST", jobs, R"({"priority": 12})", 422, "22023", ""},
      {"POST", jobs, R"({"priority": 99999999999})", 422, "22003", ""},
      {"POST", jobs, R"({"delay": "soon"})", 422, "22007", ""},
      {"POST", jobs, R"({"run_at": "yesterday-ish"})", 422, "22007", ""},
      {"POST", jobs, R"({"payload": null})", 422, "22004", ""},
      {"POST", jobs, R"({"callback_url": "ftp://example.com/"})", 422, "22023", ""},
      {"POST", "/v1/queues/bad%20name/jobs", "{}", 422, "22023", ""},
      {"POST", "/v1/queues", R"({"queue_name": "x y"})", 422, "22023", ""},
      {"POST", "/v1/queues", R"({"queue_name": "ok", "lease": null})", 422, "22004", ""},
      {"GET", "/v1/jobs/not-a-uuid", "", 422, "22P02", ""},
      {"GET", "/v1/jobs?status=sleeping", "", 422, "22P02", ""},
      {"GET", "/v1/jobs?after=zzz", "", 422, "22P02", ""},
      // Unknown job or queue: 404.
      {"GET", "/v1/jobs/" + unknown_id, "", 404, "42704", ""},
      {"POST", "/v1/jobs/" + unknown_id + "/retry", "", 404, "42704", ""},
      {"POST", "/v1/jobs/" + unknown_id + "/cancel", "", 404, "42704", ""},
      {"POST", "/v1/queues/no_such_queue_here/jobs", "{}", 404, "42704", ""},
      {"PATCH", "/v1/queues/no_such_queue_here", "{}", 404, "42704", ""},
      {"POST", "/v1/queues/no_such_queue_here/pause", "", 404, "42704", ""},
      {"DELETE", "/v1/queues/no_such_queue_here", "", 404, "42704", ""},
      // Not allowed in the current state, already there: 409.
      {"POST", "/v1/jobs/" + id + "/retry", "", 409, "55000", ""},
      {"POST", "/v1/queues", nlohmann::json{{"queue_name", queue}}.dump(), 409, "42710", ""},
      {"PATCH", "/v1/queues/" + queue, R"({"queue_type": "quorum"})", 409, "55000", ""},
      // Routes that do not exist.
      {"GET", "/v1/nothing", "", 404, "not_found", ""},
      {"PUT", "/v1/jobs/" + id, "", 405, "method_not_allowed", ""},
  };
  for (const BadRequest& c : cases) {
    const HttpAnswer a = web.request(c.method, c.path, c.body);
    EXPECT_EQ(a.status, c.status) << c.method << " " << c.path << " " << c.body << " -> " << a.body;
    EXPECT_EQ(a.error_code(), c.code) << c.method << " " << c.path << " " << c.body << " -> " << a.body;
    EXPECT_EQ(a.content_type, "application/json") << c.path;
    const nlohmann::json j = a.json();
    ASSERT_TRUE(j.is_object() && j["error"]["message"].is_string()) << a.body;
    if (!c.message_part.empty()) {
      EXPECT_NE(j["error"]["message"].get<std::string>().find(c.message_part), std::string::npos) << a.body;
    }
  }
  // Only the one job of the set-up was created, and it is still pending.
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1", {queue.c_str()}), "1");
  EXPECT_EQ(db.value("SELECT status FROM taskq.jobs WHERE id = $1", {id.c_str()}), "pending");
  EXPECT_EQ(web.get("/metrics").body.find("status=\"500\""), std::string::npos);
}

TEST_F(WebInput, BodiesOverTheLimitAre413) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const std::string big = "{\"payload\": \"" + std::string(2 * 1024 * 1024, 'a') + "\"}";
  const HttpAnswer a = web.post("/v1/queues/" + queue + "/jobs", big);
  EXPECT_EQ(a.status, 413);
  EXPECT_EQ(a.error_code(), "payload_too_large") << a.body;
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1", {queue.c_str()}), "0");
  // Under the limit but over the SQL API's 1 MiB payload limit: 422.
  const std::string large = "{\"payload\": \"" + std::string(1024 * 1024 + 100, 'a') + "\"}";
  const HttpAnswer b = web.post("/v1/queues/" + queue + "/jobs", large);
  EXPECT_EQ(b.status, 422) << b.body;
  EXPECT_EQ(b.error_code(), "22023");
}

TEST_F(WebInput, SqlTextInInputIsOnlyData) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const std::string sneaky = "x'); DROP TABLE taskq.jobs; --";
  const HttpAnswer a = web.post("/v1/queues/" + queue + "/jobs", nlohmann::json{{"task", sneaky}}.dump());
  ASSERT_EQ(a.status, 201) << a.body;
  EXPECT_EQ(a.json()["task"], sneaky);
  EXPECT_EQ(web.get("/v1/jobs?queue=" + queue + "&task=" + url_encode(sneaky)).json()["jobs"].size(), 1u);
}

}  // namespace
}  // namespace taskq::test
