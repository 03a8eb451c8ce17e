// The exec handler's supervision of its child, end to end with the real
// taskq-worker: --job-timeout and cancellation still apply to a handler that
// closed its stdout and stderr, end its whole process group and never count
// as a success; the outcome is decided when the handler exits, even if a
// process it left behind holds its output open; handlers start with default
// signal dispositions although the worker ignores SIGPIPE.
#include <nlohmann/json.hpp>

#include <csignal>
#include <sstream>

#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using namespace taskq::test;

namespace {

using Clock = std::chrono::steady_clock;

class WorkerExecSupervision : public WorkerFixture {
 protected:
  // Waits until the job's first attempt has started (kRecordRun ran).
  bool wait_started(const std::string& id) {
    return wait_until([&] { return runs().count(id) == 1; }, 60s);
  }

  // Waits until no process of any handler group this test started still
  // runs; lists the survivors otherwise.
  ::testing::AssertionResult handler_groups_end_within(std::chrono::milliseconds timeout) {
    const auto groups = scratch().handler_groups();
    if (groups.empty()) return ::testing::AssertionFailure() << "no handler recorded its process group";
    std::vector<pid_t> left;
    const bool ended = wait_until(
        [&] {
          left.clear();
          for (pid_t g : groups)
            for (pid_t p : live_group_members(g)) left.push_back(p);
          return left.empty();
        },
        timeout);
    if (ended) return ::testing::AssertionSuccess();
    std::ostringstream out;
    for (pid_t p : left) out << " " << p;
    return ::testing::AssertionFailure() << "processes of the handler's group still run:" << out.str();
  }
};

// A script that closes its output first, as daemon-style scripts do, then
// hangs. Run as "exec SCRIPT", so no shell between the worker and the script
// keeps the pipes open: the worker sees them close and must still watch the
// clock and the cancel.
const char* const kClosesOutputThenHangs = R"(
exec >/dev/null 2>&1
sleep 30
echo '"finished the sleep"')";

TEST_F(WorkerExecSupervision, ATimeoutStopsAHandlerThatClosedItsOutputAndIsRetryable) {
  // A long backoff keeps the retried job pending, where the test reads it.
  const std::string queue = create_queue("wexecclosed", "backoff_base => '1 hour'");
  const std::string handler = scratch().script("closed.sh", std::string(kRecordRun) + kClosesOutputThenHangs);
  const std::string id = enqueue(queue, "{}", ", max_attempts => 3");
  WorkerProcess worker(worker_args({{queue, "exec:exec " + handler}}, {"--job-timeout", "2"}));
  ASSERT_TRUE(wait_started(id)) << "the job never started";
  const auto started = Clock::now();

  JobRow row;
  EXPECT_TRUE(wait_until(
      [&] {
        row = job(id);
        return row.status != "running";
      },
      15s))
      << "the attempt is still running: the timeout did not apply";
  EXPECT_LT(Clock::now() - started, 15s);
  EXPECT_EQ(row.status, "pending") << "a timeout is a retryable failure, never a completion";
  EXPECT_EQ(row.attempts, 1);
  EXPECT_FALSE(row.result) << *row.result;
  ASSERT_TRUE(row.last_error);
  EXPECT_NE(row.last_error->find("timed out after 2 s"), std::string::npos) << *row.last_error;
  EXPECT_TRUE(handler_groups_end_within(10s));
}

TEST_F(WorkerExecSupervision, CancellingAHandlerThatClosedItsOutputEndsItCancelled) {
  const std::string queue = create_queue("wexecclosedcancel", "lease => '3 seconds'");
  const std::string handler = scratch().script("closed.sh", std::string(kRecordRun) + kClosesOutputThenHangs);
  const std::string id = enqueue(queue);
  WorkerProcess worker(worker_args({{queue, "exec:exec " + handler}}));
  ASSERT_TRUE(wait_started(id)) << "the job never started";
  ASSERT_EQ(conn().value("SELECT status FROM taskq.cancel($1)", {id.c_str()}), "running");

  EXPECT_TRUE(wait_job_status(id, "cancelled", 15s)) << "status " << job(id).status;
  EXPECT_EQ(job(id).attempts, 1);
  EXPECT_FALSE(job(id).result);
  EXPECT_TRUE(handler_groups_end_within(10s));
}

// The worker ignores SIGPIPE for itself; a handler must not inherit that
// (`producer | head -1` would then never see its reader go away) nor a
// blocked signal mask.
TEST_F(WorkerExecSupervision, HandlersStartWithDefaultSignalDispositionsAndNoBlockedSignals) {
  const std::string queue = create_queue("wexecsignals");
  const std::string handler =
      scratch().script("signals.sh", "grep -E '^Sig(Blk|Ign):' /proc/self/status | tr '\\t\\n' ' ' | sed 's/ *$//'");
  const std::string id = enqueue(queue);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_job_status(id, "completed", 60s)) << "status " << job(id).status;
  const auto result = job(id).result;
  ASSERT_TRUE(result);
  // "SigBlk: <hex> SigIgn: <hex>", as a JSON string (it is no JSON itself).
  std::istringstream fields(json::parse(*result).get<std::string>());
  std::string blk_label, blk, ign_label, ign;
  ASSERT_TRUE(fields >> blk_label >> blk >> ign_label >> ign) << *result;
  ASSERT_EQ(blk_label, "SigBlk:") << *result;
  ASSERT_EQ(ign_label, "SigIgn:") << *result;
  const unsigned long long blocked = std::stoull(blk, nullptr, 16);
  const unsigned long long ignored = std::stoull(ign, nullptr, 16);
  EXPECT_EQ(ignored & (1ULL << (SIGPIPE - 1)), 0u) << "SIGPIPE is ignored in the handler: " << *result;
  // Signals 32 and 33 belong to the C library, which leaves them ignored in
  // every process posix_spawn starts; no program uses them.
  EXPECT_EQ(ignored & ((1ULL << 31) - 1), 0u) << "a standard signal is ignored in the handler: " << *result;
  EXPECT_EQ(blocked, 0u) << *result;
}

// A handler that leaves a process behind holding its stdout and stderr: its
// job is done when the handler exits, and the leftover is ended with it.
TEST_F(WorkerExecSupervision, TheOutcomeIsDecidedWhenTheHandlerExitsEvenIfALeftoverHoldsItsOutput) {
  const std::string queue = create_queue("wexecleftover");
  const std::string handler = scratch().script("leftover.sh", "(sleep 30 &)\necho '{\"ok\": true}'");
  const std::string id = enqueue(queue);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_until([&] { return !scratch().handler_groups().empty(); }, 60s)) << "the job never started";
  const auto started = Clock::now();
  EXPECT_TRUE(wait_job_status(id, "completed", 15s)) << "status " << job(id).status;
  EXPECT_LT(Clock::now() - started, 15s);
  const auto result = job(id).result;
  ASSERT_TRUE(result);
  EXPECT_EQ(json::parse(*result), json({{"ok", true}}));
  EXPECT_TRUE(handler_groups_end_within(10s));
}

}  // namespace
