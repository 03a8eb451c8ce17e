// Worker pieces without servers: message validation, exec and HTTP outcome
// mapping, running a real child process, and the command line.
#include <gtest/gtest.h>

#include "cli_options.hpp"
#include "exec_handler.hpp"
#include "http_handler.hpp"
#include "job_message.hpp"
#include "pg_connection.hpp"
#include "valid_text.hpp"

using namespace std::chrono_literals;
using taskq::Outcome;

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

TEST(ValidText, KeepsValidUtf8) {
  const std::string text = "plain, \xC3\xA9t\xC3\xA9, \xE2\x82\xAC, \xF0\x9F\x98\x80";
  EXPECT_EQ(taskq::valid_text(text), text);
}

TEST(ValidText, DropsNulBytesAndReplacesInvalidSequences) {
  EXPECT_EQ(taskq::valid_text(std::string("a\0b", 3)), "ab");
  const std::string replacement = "\xEF\xBF\xBD";
  EXPECT_EQ(taskq::valid_text("a\xFF"
                              "b"),
            "a" + replacement + "b");                                                     // never valid
  EXPECT_EQ(taskq::valid_text("\xC0\xAF"), replacement + replacement);                    // overlong '/'
  EXPECT_EQ(taskq::valid_text("\xED\xA0\x80"), replacement + replacement + replacement);  // surrogate
  EXPECT_EQ(taskq::valid_text("end\xE2\x82"), "end" + replacement + replacement);         // cut mid-sequence
  EXPECT_EQ(taskq::valid_text("\xF4\x90\x80\x80").substr(0, 3), replacement);             // above U+10FFFF
}

TEST(JobMessage, RefusesAMessageForAnotherQueue) {
  std::string error;
  EXPECT_FALSE(taskq::parse_job_message(kGoodBody, "sms", &error));
  EXPECT_NE(error.find("sms"), std::string::npos);
}

TEST(ExecMapping, ExitCodesToOutcomes) {
  taskq::ProcessResult r;
  r.started = true;
  r.exit_code = 0;
  r.stdout_data = "{\"size\": 3}\n";
  auto o = taskq::map_process_result(r);
  EXPECT_EQ(o.kind, Outcome::Kind::kCompleted);
  EXPECT_EQ(o.result["size"], 3);

  r.stdout_data = "plain text\n";
  EXPECT_EQ(taskq::map_process_result(r).result, "plain text");

  r.exit_code = 65;
  r.stderr_tail = "bad payload\n";
  o = taskq::map_process_result(r);
  EXPECT_EQ(o.kind, Outcome::Kind::kFailed);
  EXPECT_EQ(o.error, "bad payload");

  r.exit_code = 1;
  EXPECT_EQ(taskq::map_process_result(r).kind, Outcome::Kind::kRetry);
  r.exit_code = -1;
  r.signal = 9;
  EXPECT_EQ(taskq::map_process_result(r).kind, Outcome::Kind::kRetry);
  r.signal = 0;
  r.timed_out = true;
  EXPECT_NE(taskq::map_process_result(r).error.find("timed out"), std::string::npos);
}

TEST(ExecHandler, RunsTheCommandWithPayloadAndEnvironment) {
  taskq::Job job;
  job.id = "01a20626-0a56-722c-bb81-e72fb4aa505b";
  job.queue = "q";
  job.attempt = 3;
  job.max_attempts = 5;
  job.payload = {{"n", 41}};
  taskq::CancellationToken token;
  auto handler = taskq::make_exec_handler(
      R"(read p; echo "{\"stdin\": $p, \"attempt\": $TASKQ_ATTEMPT, \"job\": \"$TASKQ_JOB_ID\"}")", 10s);
  const Outcome o = handler(job, token);
  ASSERT_EQ(o.kind, Outcome::Kind::kCompleted) << o.error;
  EXPECT_EQ(o.result["stdin"]["n"], 41);
  EXPECT_EQ(o.result["attempt"], 3);
  EXPECT_EQ(o.result["job"], job.id);
}

TEST(ExecHandler, TimeoutKillsTheWholeProcessGroup) {
  taskq::CancellationToken token;
  const auto start = std::chrono::steady_clock::now();
  // The grandchild (sleep) holds stdout open; only killing the group ends it.
  const auto r = taskq::run_process("sleep 30 & sleep 30; echo never", "", {}, 300ms, token);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(taskq::map_process_result(r).kind, Outcome::Kind::kRetry);
}

TEST(ExecHandler, CancellationStopsTheCommand) {
  taskq::CancellationToken token;
  token.cancel("test");
  const auto r = taskq::run_process("sleep 30", "", {}, 0ms, token);
  EXPECT_TRUE(r.cancelled);
  // The outcome says why, whoever stopped it (a cancel, a lost lease, shutdown).
  const auto o = taskq::map_process_result(r);
  EXPECT_EQ(o.kind, Outcome::Kind::kRetry);
  EXPECT_EQ(o.error, "stopped: test");
}

TEST(ExecHandler, StdoutIsBoundedAndStderrKeepsItsTail) {
  taskq::CancellationToken token;
  const auto r =
      taskq::run_process("head -c 3000000 /dev/zero | tr '\\0' a; seq 1 50000 >&2; exit 3", "", {}, 20s, token);
  EXPECT_EQ(r.stdout_data.size(), taskq::kMaxStdout);
  EXPECT_LE(r.stderr_tail.size(), taskq::kMaxStderr);
  EXPECT_NE(r.stderr_tail.find("50000"), std::string::npos);
  EXPECT_EQ(r.exit_code, 3);
}

TEST(HttpMapping, StatusClassesToOutcomes) {
  EXPECT_EQ(taskq::map_http_result(200, R"({"ok":1})", "").result["ok"], 1);
  EXPECT_EQ(taskq::map_http_result(204, "", "").kind, Outcome::Kind::kCompleted);
  EXPECT_EQ(taskq::map_http_result(400, "bad", "").kind, Outcome::Kind::kFailed);
  EXPECT_EQ(taskq::map_http_result(404, "", "").kind, Outcome::Kind::kFailed);
  EXPECT_EQ(taskq::map_http_result(408, "", "").kind, Outcome::Kind::kRetry);
  EXPECT_EQ(taskq::map_http_result(429, "", "").kind, Outcome::Kind::kRetry);
  EXPECT_EQ(taskq::map_http_result(500, "", "").kind, Outcome::Kind::kRetry);
  EXPECT_EQ(taskq::map_http_result(302, "", "").kind, Outcome::Kind::kRetry);
  EXPECT_EQ(taskq::map_http_result(0, "", "timeout").kind, Outcome::Kind::kRetry);
}

int parse(std::vector<std::string> args, taskq::CliOptions* out, std::string* message) {
  args.insert(args.begin(), "taskq-worker");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return taskq::parse_cli(static_cast<int>(argv.size()), argv.data(), out, message);
}

TEST(Cli, ParsesFlagsAndHandlers) {
  taskq::CliOptions o;
  std::string m;
  EXPECT_EQ(parse({"--database", "dbname=app", "--broker", "amqp://h/", "--handler", "a=exec:true", "--handler",
                   "b=http://127.0.0.1:9/x", "--concurrency", "8", "--prefetch", "32", "--shutdown-timeout", "5"},
                  &o, &m),
            -1)
      << m;
  EXPECT_EQ(o.worker.concurrency, 8);
  EXPECT_EQ(o.worker.prefetch, 32);
  EXPECT_EQ(o.worker.shutdown_timeout, std::chrono::seconds(5));
  ASSERT_EQ(o.handler_specs.size(), 2u);
  EXPECT_EQ(o.handler_specs[1].second, "http://127.0.0.1:9/x");
}

TEST(Cli, EnvironmentStandsInForFlags) {
  setenv("TASKQ_DATABASE_URL", "dbname=fromenv", 1);
  setenv("TASKQ_BROKER_URL", "amqp://env/", 1);
  taskq::CliOptions o;
  std::string m;
  EXPECT_EQ(parse({"--handler", "a=exec:true"}, &o, &m), -1) << m;
  EXPECT_EQ(o.worker.database, "dbname=fromenv");
  EXPECT_EQ(o.worker.broker, "amqp://env/");
  unsetenv("TASKQ_DATABASE_URL");
  unsetenv("TASKQ_BROKER_URL");
}

TEST(Cli, BadInputIsOneLineAndExitTwo) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--bogus"},
        {"--database", "x", "--broker", "amqp://h/"},
        {"--database", "x", "--broker", "amqp://h/", "--handler", "noequals"},
        {"--database", "x", "--broker", "amqp://h/", "--handler", "q=ftp://x"},
        {"--database", "x", "--broker", "amqp://h/", "--handler", "q=exec:true", "--concurrency", "0"},
        {"--broker", "amqp://h/", "--handler", "q=exec:true"}}) {
    taskq::CliOptions o;
    std::string m;
    EXPECT_EQ(parse(args, &o, &m), 2) << args[0];
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_EQ(m.rfind("taskq-worker: ", 0), 0u) << m;
  }
}

TEST(Cli, HelpExitsZero) {
  taskq::CliOptions o;
  std::string m;
  EXPECT_EQ(parse({"--help"}, &o, &m), 0);
  EXPECT_NE(m.find("exec:COMMAND"), std::string::npos);
}

TEST(DbFailures, AreClassifiedForRetry) {
  using taskq::DbFailure;
  EXPECT_EQ(taskq::classify_db_failure("40001", true, false), DbFailure::kTransient);
  EXPECT_EQ(taskq::classify_db_failure("40P01", true, false), DbFailure::kTransient);
  EXPECT_EQ(taskq::classify_db_failure("57P01", true, false), DbFailure::kTransient);
  EXPECT_EQ(taskq::classify_db_failure("", false, false), DbFailure::kTransient);
  EXPECT_EQ(taskq::classify_db_failure("", false, true), DbFailure::kOutcomeUnknown);
  EXPECT_EQ(taskq::classify_db_failure("22023", true, false), DbFailure::kPermanent);
  EXPECT_EQ(taskq::classify_db_failure("42704", true, false), DbFailure::kPermanent);
}

}  // namespace
