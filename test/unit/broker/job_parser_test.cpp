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
