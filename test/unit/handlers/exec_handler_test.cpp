// The exec handler: exit codes to outcomes, and running a real child
// process (payload, environment, timeout, cancellation, output bounds).
#include <gtest/gtest.h>

#include "handlers/exec_handler.hpp"

#include <thread>

using namespace std::chrono_literals;
using taskq::Outcome;

namespace {

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

// Two ways a command hides from a loop that only watches its pipes: a
// grandchild (sleep) holds stdout open, so only killing the group ends it;
// `exec >/dev/null` closes the pipes long before the command ends, so only
// the clock does.
TEST(ExecHandler, TimeoutKillsTheWholeProcessGroup) {
  for (const char* command : {"sleep 30 & sleep 30; echo never", "exec >/dev/null 2>&1; sleep 30"}) {
    taskq::CancellationToken token;
    const auto start = std::chrono::steady_clock::now();
    const auto r = taskq::run_process(command, "", {}, 300ms, token);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << command;
    EXPECT_TRUE(r.timed_out) << command;
    const auto o = taskq::map_process_result(r);
    EXPECT_EQ(o.kind, Outcome::Kind::kRetry) << command;
    EXPECT_EQ(o.error, "timed out after 0.3 s") << command;
  }
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

TEST(ExecHandler, ACancelAppliesAfterTheCommandClosedItsOutput) {
  taskq::CancellationToken token;
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);  // lets the command get to its sleep; no assertion rests on it
    token.cancel("test");
  });
  const auto start = std::chrono::steady_clock::now();
  const auto r = taskq::run_process("exec >/dev/null 2>&1; sleep 30", "", {}, 0ms, token);
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(taskq::map_process_result(r).error, "stopped: test");
}

// A command that catches the SIGTERM and exits 0 did not finish its job.
TEST(ExecHandler, ATimedOutCommandThatThenExitsZeroIsNotCompleted) {
  taskq::CancellationToken token;
  const auto r =
      taskq::run_process("trap 'exit 0' TERM; exec >/dev/null 2>&1; sleep 30 & wait; exit 0", "", {}, 300ms, token);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(taskq::map_process_result(r).kind, Outcome::Kind::kRetry);
}

// A process the command leaves behind keeps the pipes open for 30 s; the
// outcome is decided when the command itself exits.
TEST(ExecHandler, TheOutcomeIsDecidedWhenTheCommandExitsNotWhenItsPipesClose) {
  taskq::CancellationToken token;
  const auto start = std::chrono::steady_clock::now();
  const auto r = taskq::run_process("(sleep 30 &); echo '{\"ok\": 1}'; echo warned >&2", "", {}, 20s, token);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stderr_tail, "warned\n");
  const auto o = taskq::map_process_result(r);
  ASSERT_EQ(o.kind, Outcome::Kind::kCompleted) << o.error;
  EXPECT_EQ(o.result["ok"], 1);
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

}  // namespace
