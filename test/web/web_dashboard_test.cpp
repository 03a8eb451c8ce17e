// What the dashboard relies on, over plain HTTP: sign-in trades a token for
// an HttpOnly, SameSite=Strict session cookie and a CSRF token; a session
// may change something only with that token; requests from other sites'
// pages are refused; without a token file only loopback Host names are
// answered; the read routes it draws from (publisher, workers, throughput,
// a job's callbacks, a queue's jobs of every status) answer as documented.
#include <gtest/gtest.h>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

using nlohmann::json;

class WebDashboard : public ::testing::Test {
 protected:
  void SetUp() override { TASKQ_REQUIRE_TEST_ENV(); }
};

struct SignedIn {
  std::string cookie;  // "taskq_session=..."
  std::string csrf;
  json session;
};

SignedIn sign_in(const WebProcess& web, const std::string& token) {
  const HttpAnswer a = web.post("/login", json{{"token", token}}.dump());
  EXPECT_EQ(a.status, 200) << a.body;
  SignedIn s;
  const auto set = a.headers.find("Set-Cookie");
  if (set == a.headers.end()) {
    ADD_FAILURE() << "no Set-Cookie";
    return s;
  }
  const std::string& value = set->second;
  s.cookie = value.substr(0, value.find(';'));
  s.session = a.json();
  s.csrf = s.session.value("csrf_token", "");
  EXPECT_NE(value.find("; HttpOnly"), std::string::npos) << value;
  EXPECT_NE(value.find("; SameSite=Strict"), std::string::npos) << value;
  EXPECT_NE(value.find("; Path=/"), std::string::npos) << value;
  return s;
}

TEST_F(WebDashboard, SignInGivesASessionWhoseChangesNeedItsCsrfToken) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  const std::string job = db.value("SELECT taskq.enqueue($1)", {queue.c_str()});
  WebProcess web(true);
  EXPECT_EQ(web.get("/session").status, 401);
  EXPECT_EQ(web.post("/login", R"({"token": "not-a-token-we-know-of"})").status, 401);
  EXPECT_EQ(web.post("/login", "{}").error_code(), "missing_field");

  const SignedIn op = sign_in(web, kOperateToken);
  EXPECT_EQ(op.session["role"], "operate");
  EXPECT_EQ(op.session["sign_in"], "token");
  EXPECT_EQ(op.csrf.size(), 43u);
  const HttpAnswer who = web.request("GET", "/session", "", "", {{"Cookie", op.cookie}});
  ASSERT_EQ(who.status, 200);
  EXPECT_EQ(who.json()["csrf_token"], op.csrf);
  // Reads with the cookie alone; changes only with the CSRF token too.
  EXPECT_EQ(web.request("GET", "/v1/jobs/" + job, "", "", {{"Cookie", op.cookie}}).status, 200);
  const HttpAnswer no_csrf = web.request("POST", "/v1/jobs/" + job + "/cancel", "", "", {{"Cookie", op.cookie}});
  EXPECT_EQ(no_csrf.status, 403);
  EXPECT_EQ(no_csrf.error_code(), "csrf");
  const HttpAnswer wrong = web.request("POST", "/v1/jobs/" + job + "/cancel", "", "",
                                       {{"Cookie", op.cookie}, {"X-CSRF-Token", std::string(43, 'A')}});
  EXPECT_EQ(wrong.error_code(), "csrf");
  EXPECT_EQ(db.value("SELECT status FROM taskq.jobs WHERE id = $1", {job.c_str()}), "pending");
  const HttpAnswer ok =
      web.request("POST", "/v1/jobs/" + job + "/cancel", "", "", {{"Cookie", op.cookie}, {"X-CSRF-Token", op.csrf}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(db.value("SELECT status FROM taskq.jobs WHERE id = $1", {job.c_str()}), "cancelled");

  // The session has its token's role: operate may not drop queues.
  EXPECT_EQ(web.request("DELETE", "/v1/queues/" + queue, "", "", {{"Cookie", op.cookie}, {"X-CSRF-Token", op.csrf}})
                .error_code(),
            "forbidden");
  // A read session may change nothing, CSRF token or not.
  const SignedIn reader = sign_in(web, kReadToken);
  EXPECT_EQ(web.request("POST", "/v1/jobs/" + job + "/retry", "", "",
                        {{"Cookie", reader.cookie}, {"X-CSRF-Token", reader.csrf}})
                .error_code(),
            "forbidden");

  // Signing out ends the session (and needs its CSRF token).
  EXPECT_EQ(web.request("POST", "/logout", "", "", {{"Cookie", op.cookie}}).error_code(), "csrf");
  EXPECT_EQ(web.request("POST", "/logout", "", "", {{"Cookie", op.cookie}, {"X-CSRF-Token", op.csrf}}).status, 204);
  EXPECT_EQ(web.request("GET", "/v1/jobs/" + job, "", "", {{"Cookie", op.cookie}}).status, 401);

  const std::string metrics = web.get("/metrics", kReadToken).body;
  EXPECT_NE(metrics.find("taskq_web_auth_failures_total{reason=\"csrf\"} 3"), std::string::npos) << metrics;
  // Neither the session ids nor the CSRF tokens reach the log.
  EXPECT_EQ(web.process().log().find(op.csrf), std::string::npos);
  EXPECT_EQ(web.process().log().find(op.cookie.substr(14)), std::string::npos);
}

TEST_F(WebDashboard, ChangesFromOtherSitesArePagesAreRefused) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  const std::string job = db.value("SELECT taskq.enqueue($1)", {queue.c_str()});
  WebProcess web;  // no token file: the easiest target
  const std::string path = "/v1/jobs/" + job + "/cancel";
  const HttpAnswer evil = web.request("POST", path, "", "", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(evil.status, 403);
  EXPECT_EQ(evil.error_code(), "cross_origin");
  EXPECT_EQ(web.request("POST", path, "", "", {{"Sec-Fetch-Site", "cross-site"}}).error_code(), "cross_origin");
  EXPECT_EQ(web.request("POST", path, "", "", {{"Origin", "null"}}).error_code(), "cross_origin");
  // A page of this very server still needs its session's CSRF token.
  const std::string own = "http://127.0.0.1:" + std::to_string(web.port());
  EXPECT_EQ(web.request("POST", path, "", "", {{"Origin", own}}).error_code(), "csrf");
  EXPECT_EQ(db.value("SELECT status FROM taskq.jobs WHERE id = $1", {job.c_str()}), "pending");
  // Without a token file, /session hands out an admin session at once.
  const HttpAnswer session = web.get("/session");
  ASSERT_EQ(session.status, 200);
  EXPECT_EQ(session.json()["role"], "admin");
  EXPECT_EQ(session.json()["sign_in"], "none");
  ASSERT_EQ(session.headers.count("Set-Cookie"), 1u) << "no session cookie";
  const std::string set = session.headers.find("Set-Cookie")->second;
  const HttpAnswer ok = web.request("POST", path, "", "",
                                    {{"Origin", own},
                                     {"Cookie", set.substr(0, set.find(';'))},
                                     {"X-CSRF-Token", session.json()["csrf_token"].get<std::string>()}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  // Tools outside a browser (no Origin, no cookie) need nothing.
  const std::string other = db.value("SELECT taskq.enqueue($1)", {queue.c_str()});
  EXPECT_EQ(web.post("/v1/jobs/" + other + "/cancel").status, 200);
}

TEST_F(WebDashboard, WithoutATokenFileOnlyLoopbackHostNamesAreAnswered) {
  WebProcess web;
  // DNS rebinding: a page of evil.example whose name now points at
  // 127.0.0.1 sends Host: evil.example.
  const HttpAnswer rebound = web.request("GET", "/v1/stats", "", "", {{"Host", "evil.example:8080"}});
  EXPECT_EQ(rebound.status, 403);
  EXPECT_EQ(rebound.error_code(), "forbidden_host");
  EXPECT_EQ(web.request("GET", "/", "", "", {{"Host", "evil.example"}}).status, 403);
  EXPECT_EQ(web.request("GET", "/v1/stats", "", "", {{"Host", "localhost:1234"}}).status, 200);
  EXPECT_EQ(web.request("GET", "/v1/stats", "", "", {{"Host", "[::1]:1234"}}).status, 200);
  // With a token file the host is the proxy's business.
  WebProcess with_tokens(true);
  EXPECT_EQ(with_tokens.request("GET", "/v1/stats", "", kReadToken, {{"Host", "taskq.example.com"}}).status, 200);
}

TEST_F(WebDashboard, EveryAnswerHasTheContentSecurityPolicy) {
  WebProcess web;
  for (const char* path : {"/", "/assets/app.js", "/v1/stats", "/no/such/thing"}) {
    const HttpAnswer a = web.get(path);
    const auto csp = a.headers.find("Content-Security-Policy");
    ASSERT_NE(csp, a.headers.end()) << path;
    EXPECT_NE(csp->second.find("script-src 'self'"), std::string::npos);
    EXPECT_EQ(csp->second.find("unsafe"), std::string::npos);
    EXPECT_NE(csp->second.find("frame-ancestors 'none'"), std::string::npos);
  }
  // The page's own script builds every element from text: no innerHTML.
  EXPECT_EQ(web.get("/assets/app.js").body.find("innerHTML"), std::string::npos);
}

TEST_F(WebDashboard, AQueuesJobsOfEveryStatusComeNewestFirst) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(db.value("SELECT taskq.enqueue($1)", {queue.c_str()}));
  // Every status, out of id order: cancelled, running, completed, failed, pending.
  db.exec("SELECT taskq.cancel($1)", {ids[4].c_str()});
  for (int i : {0, 2, 3}) db.exec("SELECT taskq.start($1, 1, 'w')", {ids[i].c_str()});
  db.exec("SELECT taskq.complete($1, 1)", {ids[2].c_str()});
  db.exec("SELECT taskq.fail($1, 1, 'x', permanent => true)", {ids[3].c_str()});
  WebProcess web;
  std::vector<std::string> seen;
  std::string after;
  for (int page = 0; page < 4; ++page) {
    const json p = web.get("/v1/jobs?queue=" + queue + "&limit=2" + (after.empty() ? "" : "&after=" + after)).json();
    for (const auto& j : p["jobs"]) seen.push_back(j["id"]);
    if (p["next_after"].is_null()) break;
    after = p["next_after"];
  }
  EXPECT_EQ(seen, std::vector<std::string>(ids.rbegin(), ids.rend()));
  const json failed = web.get("/v1/jobs?queue=" + queue + "&status=failed").json();
  ASSERT_EQ(failed["jobs"].size(), 1u);
  EXPECT_EQ(failed["jobs"][0]["id"], ids[3]);
}

TEST_F(WebDashboard, PublisherWorkersThroughputAndCallbacks) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  const std::string a = db.value("SELECT taskq.enqueue($1, callback_url => 'http://127.0.0.1:9/cb')", {queue.c_str()});
  const std::string b = db.value("SELECT taskq.enqueue($1)", {queue.c_str()});
  const std::string worker = unique_name("host") + ":77";
  db.exec("SELECT taskq.start($1, 1, $2)", {a.c_str(), worker.c_str()});
  db.exec("SELECT taskq.start($1, 1, $2)", {b.c_str(), worker.c_str()});
  WebProcess web;

  const json workers = web.get("/v1/workers").json();
  bool found = false;
  for (const auto& w : workers["workers"]) {
    if (w["worker"] != worker) continue;
    found = true;
    EXPECT_EQ(w["running"], 2);
    EXPECT_EQ(w["queues"], json::array({queue}));
  }
  EXPECT_TRUE(found) << workers.dump();

  db.exec("SELECT taskq.complete($1, 1)", {a.c_str()});
  db.exec("SELECT taskq.fail($1, 1, 'x', permanent => true)", {b.c_str()});
  const json minutes = web.get("/v1/throughput?queue=" + queue).json();
  ASSERT_EQ(minutes["minutes"].size(), 1u) << minutes.dump();
  EXPECT_EQ(minutes["minutes"][0]["completed"], 1);
  EXPECT_EQ(minutes["minutes"][0]["failed"], 1);
  EXPECT_EQ(minutes["minutes"][0]["queue_name"], queue);

  const json callbacks = web.get("/v1/jobs/" + a + "/callbacks").json();
  ASSERT_EQ(callbacks["callbacks"].size(), 1u) << callbacks.dump();
  EXPECT_EQ(callbacks["callbacks"][0]["event"], "job.completed");
  EXPECT_EQ(callbacks["callbacks"][0]["state"], "pending");
  EXPECT_EQ(callbacks["callbacks"][0]["url"], "http://127.0.0.1:9/cb");
  EXPECT_FALSE(callbacks["callbacks"][0].contains("body"));
  EXPECT_EQ(web.get("/v1/jobs/" + b + "/callbacks").json()["callbacks"], json::array());
  EXPECT_EQ(web.get("/v1/jobs/01900000-0000-7000-8000-000000000000/callbacks").status, 404);
  EXPECT_EQ(web.get("/v1/jobs/not-a-uuid/callbacks").status, 422);

  const HttpAnswer publisher = web.get("/v1/publisher");
  ASSERT_EQ(publisher.status, 200);
  for (const char* field : {"state", "connected", "published", "confirmed", "backlog", "due_backlog"})
    EXPECT_TRUE(publisher.json().contains(field)) << field;
}

}  // namespace
}  // namespace taskq::test
