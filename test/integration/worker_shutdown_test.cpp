// A bounded shutdown at the process level: a program embedding the worker
// library (test/programs/stuck_handler_worker.cpp) whose handler never
// returns still exits 0 after SIGTERM, once the shutdown timeout and the
// grace period are over, and the job it abandoned is left to its lease:
// retried by the next worker and recorded once.
#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using namespace taskq::test;

namespace {

class WorkerShutdown : public WorkerFixture {};

TEST_F(WorkerShutdown, AProgramWithAStuckHandlerExitsZeroAfterTheTimeoutAndTheGrace) {
  use_fast_maintenance();
  const std::string queue = create_queue("wstuck", "lease => '2 seconds', backoff_base => '100 ms'");
  const std::string id = enqueue(queue, "{}", ", max_attempts => 3");
  WorkerProcess stuck(test_program("stuck_handler_worker"),
                      {env("TASKQ_TEST_DATABASE_URL"), env("TASKQ_TEST_BROKER_URL"), queue, "1"});
  ASSERT_TRUE(wait_until([&] { return stuck.stdout_text().find("running " + id) != std::string::npos; }, 60s))
      << "the job never started";
  ASSERT_TRUE(wait_job_status(id, "running", 10s));

  const auto signalled = std::chrono::steady_clock::now();
  stuck.terminate();
  // 1 s of shutdown timeout, 10 s of grace, then a margin.
  const auto status = stuck.wait_exit(1s + 10s + 5s);
  EXPECT_EQ(status, 0) << (status ? "exit status " + std::to_string(*status) : "still running");
  EXPECT_GE(std::chrono::steady_clock::now() - signalled, 1s + 10s - 100ms) << "the grace period was cut short";
  EXPECT_NE(stuck.stdout_text().find("run returned"), std::string::npos) << "run() did not return";
  if (status) {
    EXPECT_EQ(job(id).status, "running") << "left to its lease, not recorded";
  }

  // Its lease runs out; the next worker runs the job once more, and the
  // abandoned delivery that RabbitMQ redelivers comes back stale.
  const std::string handler = scratch().script("ok.sh", std::string(kRecordRun) + "\necho '\"done\"'");
  WorkerProcess next(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_job_status(id, "completed", 60s)) << "status " << job(id).status;
  EXPECT_EQ(job(id).attempts, 2);
  EXPECT_EQ(runs()[id], std::vector<int>({2}));
  EXPECT_TRUE(wait_until([&] { return rabbit_queue_total_messages("taskq." + queue) == 0; }, 10s))
      << "left in RabbitMQ";
}

}  // namespace
