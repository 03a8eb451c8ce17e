// What exec and http handlers make of a successful run's output: the
// result, and the follow-up jobs of the reserved member "taskq_enqueue"
// (docs/worker.md, "Follow-up jobs").
#include <gtest/gtest.h>

#include "handlers/exec_handler.hpp"
#include "handlers/handler_result.hpp"
#include "handlers/http_handler.hpp"

namespace {

using nlohmann::json;

TEST(HandlerResult, TheReservedMemberBecomesTheFollowUpJobs) {
  const auto o = taskq::completed_from_output(
      R"({"size": 1024, "taskq_enqueue": [{"queue": "uploads", "payload": {"n": 1}, "delay": "10 seconds"}]})");
  EXPECT_EQ(o.kind, taskq::Outcome::Kind::kCompleted);
  EXPECT_EQ(o.result, json({{"size", 1024}})) << "the result is the object without it";
  EXPECT_EQ(o.enqueue, json::parse(R"([{"queue": "uploads", "payload": {"n": 1}, "delay": "10 seconds"}])"));
}

TEST(HandlerResult, OtherOutputIsTheResultAsBefore) {
  EXPECT_TRUE(taskq::completed_from_output("").result.is_null());
  EXPECT_EQ(taskq::completed_from_output("plain words").result, json("plain words"));
  EXPECT_EQ(taskq::completed_from_output("[1, 2]").result, json::array({1, 2}));
  EXPECT_EQ(taskq::completed_from_output(R"({"enqueue": [1]})").result, json({{"enqueue", {1}}}));
  // Nested members are data, not instructions.
  EXPECT_EQ(taskq::completed_from_output(R"({"a": {"taskq_enqueue": []}})").result,
            json::parse(R"({"a": {"taskq_enqueue": []}})"));
  for (const char* out : {"", "plain words", "[1, 2]", R"({"a": {"taskq_enqueue": []}})"})
    EXPECT_TRUE(taskq::completed_from_output(out).enqueue.is_null()) << out;
}

TEST(HandlerResult, AMalformedListIsPassedOnForTheDatabaseToRefuse) {
  const auto o = taskq::completed_from_output(R"({"taskq_enqueue": "uploads"})");
  EXPECT_EQ(o.enqueue, json("uploads"));
  EXPECT_EQ(o.result, json::object()) << "an object that had only the member is {}";
}

TEST(HandlerResult, ExecAndHttpHandlersBothUseIt) {
  taskq::ProcessResult run;
  run.started = true;
  run.exit_code = 0;
  run.stdout_data = R"({"ok": true, "taskq_enqueue": [{"queue": "q"}]})"
                    "\n";
  const auto exec = taskq::map_process_result(run);
  EXPECT_EQ(exec.result, json({{"ok", true}}));
  EXPECT_EQ(exec.enqueue, json::parse(R"([{"queue": "q"}])"));
  const auto http = taskq::map_http_result(201, R"({"ok": true, "taskq_enqueue": [{"queue": "q"}]})", "");
  EXPECT_EQ(http.result, json({{"ok", true}}));
  EXPECT_EQ(http.enqueue, json::parse(R"([{"queue": "q"}])"));
  EXPECT_TRUE(taskq::map_http_result(500, R"({"taskq_enqueue": [{"queue": "q"}]})", "").enqueue.is_null())
      << "only a completion enqueues";
}

TEST(Outcome, ThenEnqueueAddsFollowUpJobs) {
  const auto o = taskq::Outcome::completed({{"n", 1}})
                     .then_enqueue("emails", {{"payload", {{"to", "a@b.c"}}}})
                     .then_enqueue("audit");
  EXPECT_EQ(o.enqueue, json::parse(R"([{"queue": "emails", "payload": {"to": "a@b.c"}}, {"queue": "audit"}])"));
  EXPECT_EQ(o.result, json({{"n", 1}}));
  auto bad = taskq::Outcome::completed();
  EXPECT_THROW(bad.then_enqueue("q", json::array()), std::invalid_argument);
}

}  // namespace
