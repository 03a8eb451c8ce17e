// /v1/schedules: list, create or replace (PUT), remove (DELETE), each one
// call of taskq.schedule / taskq.unschedule, with the errors those raise
// mapped like every other route, and the admin role required for changes.
#include <gtest/gtest.h>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

using nlohmann::json;

class WebSchedules : public ::testing::Test {
 protected:
  void SetUp() override { TASKQ_REQUIRE_TEST_ENV(); }
};

TEST_F(WebSchedules, PutListReplaceDelete) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  const std::string name = unique_name("sched");
  WebProcess web;
  const HttpAnswer put = web.request("PUT", "/v1/schedules/" + name,
                                     json{{"cron", "*/5 * * * *"},
                                          {"queue_name", queue},
                                          {"payload", {{"n", 1}}},
                                          {"task", "tick"},
                                          {"timezone", "Europe/Berlin"},
                                          {"priority", 4},
                                          {"headers", {{"h", "v"}}}}
                                         .dump());
  ASSERT_EQ(put.status, 200) << put.body;
  const json s = put.json();
  EXPECT_EQ(s["schedule_name"], name);
  EXPECT_EQ(s["cron"], "*/5 * * * *");
  EXPECT_EQ(s["timezone"], "Europe/Berlin");
  EXPECT_EQ(s["queue_name"], queue);
  EXPECT_EQ(s["task"], "tick");
  EXPECT_EQ(s["priority"], 4);
  EXPECT_EQ(s["enabled"], true);
  EXPECT_EQ(s["catch_up"], false);
  EXPECT_FALSE(s["next_run_at"].is_null());
  EXPECT_FALSE(s.contains("anchor_at"));  // internal
  EXPECT_EQ(db.value("SELECT cron FROM taskq.schedules WHERE schedule_name = $1", {name.c_str()}), "*/5 * * * *");

  const json listed = web.get("/v1/schedules").json();
  bool found = false;
  for (const auto& row : listed["schedules"]) found = found || (row["schedule_name"] == name && row == s);
  EXPECT_TRUE(found) << listed.dump();

  // PUT again replaces: the fields left out take the SQL defaults again.
  const HttpAnswer replaced = web.request("PUT", "/v1/schedules/" + name,
                                          json{{"cron", "@hourly"}, {"queue_name", queue}, {"enabled", false}}.dump());
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  EXPECT_EQ(replaced.json()["cron"], "@hourly");
  EXPECT_EQ(replaced.json()["timezone"], "UTC");
  EXPECT_EQ(replaced.json()["enabled"], false);
  EXPECT_EQ(replaced.json()["created_at"], s["created_at"]);

  const HttpAnswer removed = web.request("DELETE", "/v1/schedules/" + name);
  EXPECT_EQ(removed.status, 204) << removed.body;
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.schedules WHERE schedule_name = $1", {name.c_str()}), "0");
  const HttpAnswer again = web.request("DELETE", "/v1/schedules/" + name);
  EXPECT_EQ(again.status, 404);
  EXPECT_EQ(again.error_code(), "42704");
}

TEST_F(WebSchedules, BadInputIsRefusedAndWritesNothing) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  const std::string name = unique_name("sched");
  WebProcess web;
  auto put = [&](const std::string& path_name, const std::string& body) {
    return web.request("PUT", "/v1/schedules/" + path_name, body);
  };
  const HttpAnswer bad_cron = put(name, json{{"cron", "61 * * * *"}, {"queue_name", queue}}.dump());
  EXPECT_EQ(bad_cron.status, 422);
  EXPECT_EQ(bad_cron.error_code(), "22023");
  EXPECT_NE(bad_cron.json()["error"]["message"].get<std::string>().find("minute"), std::string::npos);
  EXPECT_EQ(put(name, json{{"cron", "@daily"}, {"queue_name", queue}, {"timezone", "Mars/Olympus"}}.dump()).status,
            422);
  const HttpAnswer no_queue = put(name, json{{"cron", "@daily"}, {"queue_name", "no_such_queue_here"}}.dump());
  EXPECT_EQ(no_queue.status, 404);
  EXPECT_EQ(no_queue.error_code(), "42704");
  EXPECT_EQ(put(name, json{{"queue_name", queue}}.dump()).error_code(), "missing_field");
  EXPECT_EQ(put(name, json{{"cron", "@daily"}, {"queue_name", queue}, {"colour", 1}}.dump()).error_code(),
            "unknown_field");
  EXPECT_EQ(put(name, json{{"cron", 5}, {"queue_name", queue}}.dump()).error_code(), "wrong_type");
  EXPECT_EQ(put(name, json{{"cron", "@daily"}, {"queue_name", queue}, {"priority", 10}}.dump()).status, 422);
  // Injected names are just names that are not allowed.
  EXPECT_EQ(
      put("x'%3B%20DROP%20TABLE%20taskq.jobs%3B--", json{{"cron", "@daily"}, {"queue_name", queue}}.dump()).status,
      422);
  EXPECT_EQ(web.request("DELETE", "/v1/schedules/bad%20name").status, 422);
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.schedules WHERE queue_name = $1", {queue.c_str()}), "0");
}

TEST_F(WebSchedules, ChangesNeedAnAdminToken) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  const std::string name = unique_name("sched");
  WebProcess web(true);
  const std::string body = json{{"cron", "@daily"}, {"queue_name", queue}}.dump();
  EXPECT_EQ(web.get("/v1/schedules", kReadToken).status, 200);
  EXPECT_EQ(web.request("PUT", "/v1/schedules/" + name, body, kOperateToken).status, 403);
  EXPECT_EQ(web.request("PUT", "/v1/schedules/" + name, body).status, 401);
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.schedules WHERE schedule_name = $1", {name.c_str()}), "0");
  EXPECT_EQ(web.request("PUT", "/v1/schedules/" + name, body, kAdminToken).status, 200);
  EXPECT_EQ(web.request("DELETE", "/v1/schedules/" + name, "", kOperateToken).status, 403);
  EXPECT_EQ(web.request("DELETE", "/v1/schedules/" + name, "", kAdminToken).status, 204);
}

}  // namespace
}  // namespace taskq::test
