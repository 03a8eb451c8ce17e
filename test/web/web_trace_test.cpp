// The enqueue route takes the caller's W3C trace context from the request
// headers traceparent / tracestate: the job's headers get it, a traceparent
// in the body's headers wins, and an invalid one is dropped (the job is
// still enqueued, 201).
#include <gtest/gtest.h>

#include <httplib.h>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

using nlohmann::json;

const std::string kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const std::string kOtherParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

class WebTrace : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    db_.emplace(taskq::test::db());
    queue_ = make_queue(*db_);
    web_.emplace();
  }

  // POSTs an enqueue with extra request headers; returns the job's headers
  // as stored in taskq.jobs (null when it has none).
  json enqueue(const httplib::Headers& headers, const std::string& body = "{}") {
    httplib::Client client("127.0.0.1", web_->port());
    client.set_read_timeout(30, 0);
    auto r = client.Post("/v1/queues/" + queue_ + "/jobs", headers, body, "application/json");
    EXPECT_TRUE(r);
    if (!r) return nullptr;
    EXPECT_EQ(r->status, 201) << r->body;
    const std::string id = json::parse(r->body, nullptr, false).value("id", "");
    const std::string stored = db_->value("SELECT headers::text FROM taskq.jobs WHERE id = $1", {id.c_str()});
    return stored.empty() ? json(nullptr) : json::parse(stored);
  }

  std::optional<PgConnection> db_;
  std::string queue_;
  std::optional<WebProcess> web_;
};

TEST_F(WebTrace, TheRequestsTraceContextBecomesTheJobs) {
  EXPECT_EQ(enqueue({}), nullptr) << "no trace context: no headers";
  EXPECT_EQ(enqueue({{"traceparent", kParent}}), json({{"traceparent", kParent}}));
  EXPECT_EQ(enqueue({{"traceparent", kParent}, {"tracestate", "congo=t61rcWkgMzE"}}),
            json({{"traceparent", kParent}, {"tracestate", "congo=t61rcWkgMzE"}}));
  EXPECT_EQ(enqueue({{"traceparent", kParent}, {"tracestate", "rojo=1"}, {"tracestate", "congo=2"}}),
            json({{"traceparent", kParent}, {"tracestate", "rojo=1,congo=2"}}))
      << "several tracestate headers are one list";
  EXPECT_EQ(enqueue({{"traceparent", kParent}}, R"({"headers": {"tenant": "acme"}})"),
            json({{"tenant", "acme"}, {"traceparent", kParent}}))
      << "merged with the body's headers";
}

TEST_F(WebTrace, ATraceparentInTheBodysHeadersWins) {
  EXPECT_EQ(enqueue({{"traceparent", kParent}, {"tracestate", "congo=1"}},
                    json({{"headers", {{"traceparent", kOtherParent}}}}).dump()),
            json({{"traceparent", kOtherParent}}));
}

TEST_F(WebTrace, AnInvalidTraceContextIsDroppedAndTheJobStillEnqueued) {
  EXPECT_EQ(enqueue({{"traceparent", "00-not-a-trace-01"}}), json::object());
  EXPECT_EQ(enqueue({{"traceparent", kParent}, {"traceparent", kOtherParent}}), json::object())
      << "two traceparent headers are invalid";
  EXPECT_EQ(enqueue({{"traceparent", kParent}, {"tracestate", "Not Valid"}}), json({{"traceparent", kParent}}));
  EXPECT_EQ(enqueue({{"tracestate", "congo=1"}}), nullptr) << "a tracestate alone is not looked at";
}

}  // namespace
}  // namespace taskq::test
