// Parsing a delivered message into a taskq::Job: the contract's body, and
// garbage refused with a reason instead of thrown.
#include <gtest/gtest.h>

#include "broker/job_parser.hpp"

namespace {

const char* kGoodBody =
    R"({"id":"01a20626-0a56-722c-bb81-e72fb4aa505b","queue":"emails","task":"welcome","payload":{"to":"a"},)"
    R"("attempt":2,"max_attempts":5,"enqueued_at":"2026-01-01T00:00:00+00:00","headers":{"tenant":"acme"}})";

TEST(JobMessage, ParsesTheContractsBody) {
  std::string error;
  auto job = taskq::parse_job_message(kGoodBody, "emails", &error);
  ASSERT_TRUE(job) << error;
  EXPECT_EQ(job->id, "01a20626-0a56-722c-bb81-e72fb4aa505b");
  EXPECT_EQ(job->task, "welcome");
  EXPECT_EQ(job->attempt, 2);
  EXPECT_EQ(job->max_attempts, 5);
  EXPECT_EQ(job->payload["to"], "a");
  EXPECT_EQ(job->headers.at("tenant"), "acme");
  EXPECT_TRUE(job->depends_on.empty());
}

TEST(JobMessage, ReadsDependsOn) {
  std::string body = kGoodBody;
  body.pop_back();
  std::string error;
  auto job = taskq::parse_job_message(
      body + R"(,"depends_on":["01a20626-0a56-722c-bb81-e72fb4aa5000","01a20626-0a56-722c-bb81-e72fb4aa5001"]})",
      "emails", &error);
  ASSERT_TRUE(job) << error;
  EXPECT_EQ(job->depends_on,
            (std::vector<std::string>{"01a20626-0a56-722c-bb81-e72fb4aa5000", "01a20626-0a56-722c-bb81-e72fb4aa5001"}));
  // Informational: a malformed list does not make a runnable job garbage.
  job = taskq::parse_job_message(body + R"(,"depends_on":"nope"})", "emails", &error);
  ASSERT_TRUE(job) << error;
  EXPECT_TRUE(job->depends_on.empty());
}

TEST(JobMessage, RefusesGarbageWithAReason) {
  for (const char* bad :
       {"", "not json", "[]", R"({"queue":"emails","attempt":1})", R"({"id":"short","queue":"emails","attempt":1})",
        R"({"id":"01a20626-0a56-722c-bb81-e72fb4aa505b","queue":"emails","attempt":0})",
        R"({"id":"01a20626-0a56-722c-bb81-e72fb4aa505b","queue":"emails","attempt":"1"})",
        R"({"id":"01a20626-0a56-722c-bb81-e72fb4aa505b","attempt":1})"}) {
    std::string error;
    EXPECT_FALSE(taskq::parse_job_message(bad, "emails", &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(JobMessage, RefusesIdsThatAreNotUuids) {
  // 36 characters but not a UUID: it would fail the uuid cast of a whole
  // start batch in SQL.
  std::string error;
  EXPECT_FALSE(taskq::parse_job_message(R"({"id":"01a20626-0a56-722c-bb81-e72fb4aa505g","queue":"emails","attempt":1})",
                                        "emails", &error));
  EXPECT_FALSE(taskq::parse_job_message(R"({"id":"01a20626x0a56-722c-bb81-e72fb4aa505b","queue":"emails","attempt":1})",
                                        "emails", &error));
  EXPECT_FALSE(taskq::parse_job_message(
      R"({"id":"'; DROP TABLE taskq.jobs; --xxxxxxxxxxxx","queue":"emails","attempt":1})", "emails", &error));
  EXPECT_TRUE(taskq::parse_job_message(R"({"id":"01A20626-0A56-722C-BB81-E72FB4AA505B","queue":"emails","attempt":1})",
                                       "emails", &error))
      << error;
}

TEST(JobMessage, RefusesAMessageForAnotherQueue) {
  std::string error;
  EXPECT_FALSE(taskq::parse_job_message(kGoodBody, "sms", &error));
  EXPECT_NE(error.find("sms"), std::string::npos);
}

}  // namespace

namespace {

std::string body_with_headers(const std::string& headers) {
  return R"({"id":"01a20626-0a56-722c-bb81-e72fb4aa505b","queue":"emails","payload":{},"attempt":1,"headers":)" +
         headers + "}";
}

TEST(JobMessage, TakesAValidTraceContextFromTheHeaders) {
  std::string error;
  const auto job = taskq::parse_job_message(
      body_with_headers(R"({"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",)"
                        R"("tracestate":"congo=t61rcWkgMzE"})"),
      "emails", &error);
  ASSERT_TRUE(job) << error;
  EXPECT_EQ(job->traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(job->tracestate, "congo=t61rcWkgMzE");
  EXPECT_EQ(job->trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
}

TEST(JobMessage, LeavesAnInvalidTraceContextOut) {
  std::string error;
  // A line break would reach a handler's request headers.
  auto job = taskq::parse_job_message(
      body_with_headers(R"({"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX: 1",)"
                        R"("tracestate":"a=1"})"),
      "emails", &error);
  ASSERT_TRUE(job) << error;  // the job itself is fine
  EXPECT_EQ(job->traceparent, "");
  EXPECT_EQ(job->tracestate, "") << "no tracestate without its traceparent";
  EXPECT_EQ(job->trace_id(), "");
  EXPECT_EQ(job->headers.count("traceparent"), 1u) << "the headers stay as they came";

  job = taskq::parse_job_message(body_with_headers(R"({"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-)"
                                                   R"(00f067aa0ba902b7-01","tracestate":"Bad\nstate"})"),
                                 "emails", &error);
  ASSERT_TRUE(job) << error;
  EXPECT_EQ(job->traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(job->tracestate, "") << "an invalid tracestate alone is dropped";
}

}  // namespace
