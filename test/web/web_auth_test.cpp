// Tokens and roles: 401 without or with an unknown token, 403 for a token
// too weak for the route, what each role may do, and failures counted.
#include <gtest/gtest.h>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

class WebAuth : public ::testing::Test {
 protected:
  void SetUp() override { TASKQ_REQUIRE_TEST_ENV(); }
};

TEST_F(WebAuth, MissingAndUnknownTokensAre401) {
  WebProcess web(true);
  const HttpAnswer none = web.get("/v1/queues");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.error_code(), "unauthorized");
  const auto challenge = none.headers.find("WWW-Authenticate");
  ASSERT_NE(challenge, none.headers.end()) << "no WWW-Authenticate header on the 401";
  EXPECT_EQ(challenge->second, "Bearer");
  const HttpAnswer unknown = web.get("/v1/queues", "not-a-token-we-know-of");
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(unknown.error_code(), "unauthorized");
  // A prefix of a real token is just as unknown.
  EXPECT_EQ(web.get("/v1/queues", kAdminToken.substr(0, 10)).status, 401);
  EXPECT_EQ(web.get("/v1/queues", kReadToken).status, 200);
  // Probes and the API description need no token.
  EXPECT_EQ(web.get("/healthz").status, 200);
  EXPECT_EQ(web.get("/v1/openapi.json").status, 200);

  const HttpAnswer metrics = web.get("/metrics", kReadToken);
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("taskq_web_auth_failures_total{reason=\"missing_token\"} 1"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("taskq_web_auth_failures_total{reason=\"unknown_token\"} 2"), std::string::npos);
  // Tokens never reach the log.
  EXPECT_EQ(web.process().log().find(kAdminToken.substr(0, 10)), std::string::npos);
  EXPECT_EQ(web.process().log().find(kReadToken), std::string::npos);
}

TEST_F(WebAuth, EachRoleMayDoWhatItsNameSays) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web(true);
  const std::string jobs = "/v1/queues/" + queue + "/jobs";

  // read: GET only.
  const HttpAnswer read_post = web.post(jobs, "{}", kReadToken);
  EXPECT_EQ(read_post.status, 403);
  EXPECT_EQ(read_post.error_code(), "forbidden");
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1", {queue.c_str()}), "0");
  EXPECT_EQ(web.get("/v1/jobs?queue=" + queue, kReadToken).status, 200);
  EXPECT_EQ(web.post("/v1/queues/" + queue + "/pause", "", kReadToken).status, 403);

  // operate: enqueue, cancel, retry, pause, resume; not queue administration.
  const HttpAnswer enqueued = web.post(jobs, "{}", kOperateToken);
  ASSERT_EQ(enqueued.status, 201) << enqueued.body;
  const std::string id = enqueued.json()["id"];
  EXPECT_EQ(web.post("/v1/jobs/" + id + "/cancel", "", kOperateToken).status, 200);
  EXPECT_EQ(web.post("/v1/jobs/" + id + "/retry", "", kOperateToken).status, 200);
  EXPECT_EQ(web.post("/v1/queues/" + queue + "/pause", "", kOperateToken).status, 200);
  EXPECT_EQ(web.post("/v1/queues/" + queue + "/resume", "", kOperateToken).status, 200);
  const std::string name = unique_name("webauth");
  const std::string create = nlohmann::json{{"queue_name", name}}.dump();
  const HttpAnswer operate_create = web.post("/v1/queues", create, kOperateToken);
  EXPECT_EQ(operate_create.status, 403);
  EXPECT_EQ(web.request("PATCH", "/v1/queues/" + queue, "{}", kOperateToken).status, 403);
  EXPECT_EQ(web.request("DELETE", "/v1/queues/" + queue, "", kOperateToken).status, 403);
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.queues WHERE queue_name = $1", {name.c_str()}), "0");

  // admin: everything.
  EXPECT_EQ(web.post("/v1/queues", create, kAdminToken).status, 201);
  EXPECT_EQ(web.request("PATCH", "/v1/queues/" + name, R"({"max_attempts": 2})", kAdminToken).status, 200);
  EXPECT_EQ(web.request("DELETE", "/v1/queues/" + name, "", kAdminToken).status, 204);
  EXPECT_EQ(web.get("/v1/stats", kAdminToken).status, 200);

  const HttpAnswer metrics = web.get("/metrics", kReadToken);
  EXPECT_NE(metrics.body.find("taskq_web_auth_failures_total{reason=\"forbidden\"} 5"), std::string::npos)
      << metrics.body;
}

}  // namespace
}  // namespace taskq::test
