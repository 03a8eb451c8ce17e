// GET /v1/openapi.json is the served API exactly: every route of the table
// the server serves is documented, every documented operation answers (with
// a status it documents), and the document has the structure OpenAPI 3.1
// asks for (checked by check_openapi.py).
#include <gtest/gtest.h>

#include <fstream>

#include "api_routes.hpp"
#include "web_fixture.hpp"

namespace taskq::test {
namespace {

using nlohmann::json;

class WebOpenApi : public ::testing::Test {
 protected:
  void SetUp() override { TASKQ_REQUIRE_TEST_ENV(); }
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST_F(WebOpenApi, EveryRouteIsDocumentedAndEveryDocumentedRouteAnswers) {
  WebProcess web(true);
  const HttpAnswer a = web.get("/v1/openapi.json");
  ASSERT_EQ(a.status, 200);
  const json doc = a.json();
  ASSERT_EQ(doc["openapi"], "3.1.0");

  // The route table the server is built from, and the document, agree.
  const std::vector<web::Route> routes = web::api_routes(nullptr);
  std::size_t documented = 0;
  for (const auto& [path, item] : doc["paths"].items()) documented += item.size();
  EXPECT_EQ(documented, routes.size());
  for (const web::Route& r : routes) {
    ASSERT_TRUE(doc["paths"].contains(r.path)) << r.path;
    ASSERT_TRUE(doc["paths"][r.path].contains(lower(r.method))) << r.method << " " << r.path;
    EXPECT_EQ(doc["paths"][r.path][lower(r.method)]["operationId"], r.operation_id);
  }

  // Every documented operation answers with one of its documented statuses
  // (unknown ids and queues make most of them 404s, which they document).
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      std::string concrete = path;
      for (const auto& [from, to] :
           std::vector<std::pair<std::string, std::string>>{{"{id}", "01900000-0000-7000-8000-000000000000"},
                                                            {"{queue}", "no_such_queue_for_openapi"},
                                                            {"{name}", "no_such_schedule_for_openapi"}}) {
        const auto at = concrete.find(from);
        if (at != std::string::npos) concrete.replace(at, from.size(), to);
      }
      std::string m = method;
      for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      // A body the SQL API refuses (no such queue) where one is needed.
      const std::string body = path == "/v1/queues" && m == "POST" ? R"({"queue_name": "bad name"})" : "";
      const HttpAnswer answer = web.request(m, concrete, body, kAdminToken);
      EXPECT_NE(answer.status, 0) << m << " " << concrete;
      EXPECT_NE(answer.status, 405) << m << " " << concrete;
      EXPECT_NE(answer.error_code(), "not_found") << m << " " << concrete << ": route not served";
      EXPECT_TRUE(op["responses"].contains(std::to_string(answer.status)))
          << m << " " << concrete << " answered " << answer.status << ", undocumented: " << answer.body;
      // Public (no token) exactly where the role says so.
      EXPECT_EQ(op.contains("security") && op["security"].empty(), op["x-taskq-role"] == "public") << m << " " << path;
    }
  }
  // And an undocumented path is not served.
  EXPECT_EQ(web.get("/v1/no_such_route", kAdminToken).status, 404);
  // The public ones answer without a token.
  EXPECT_EQ(web.get("/healthz").status, 200);
  EXPECT_EQ(web.get("/v1/openapi.json").status, 200);
}

TEST_F(WebOpenApi, TheDocumentHasTheStructureOfOpenApi31) {
  WebProcess web;
  const HttpAnswer a = web.get("/v1/openapi.json");
  ASSERT_EQ(a.status, 200);
  ScratchDir dir;
  std::ofstream(dir.file("openapi.json")) << a.body;
  const std::string script = std::string(TASKQ_SOURCE_DIR) + "/test/web/check_openapi.py";
  EXPECT_EQ(run("python3 '" + script + "' '" + dir.file("openapi.json") + "'"), 0);
}

TEST_F(WebOpenApi, JobFieldsAreTheJobsColumnsOfTheContract) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  WebProcess web;
  const json doc = web.get("/v1/openapi.json").json();
  const json job = web.post("/v1/queues/" + queue + "/jobs").json();
  std::vector<std::string> documented, served;
  for (const auto& [k, v] : doc["components"]["schemas"]["Job"]["properties"].items()) documented.push_back(k);
  for (const auto& [k, v] : job.items()) served.push_back(k);
  std::sort(documented.begin(), documented.end());
  EXPECT_EQ(documented, served);  // nlohmann::json keeps keys sorted
}

}  // namespace
}  // namespace taskq::test
