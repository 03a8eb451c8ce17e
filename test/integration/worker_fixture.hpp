// The GoogleTest fixture shared by the taskq-worker integration tests: a
// database connection, a scratch folder for handler scripts, per-test queues
// and the SQL the tests use to check what happened to their jobs. Global
// settings a test changes are put back in TearDown.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "db/pg_connection.hpp"
#include "test_env.hpp"
#include "worker_process.hpp"

namespace taskq::test {

// What tests read back about a job (taskq.jobs columns from the contract).
struct JobRow {
  std::string status;
  int attempts = 0;
  int max_attempts = 0;
  std::optional<std::string> result;  // jsonb as text
  std::optional<std::string> last_error;
};

// A handler body that appends "$TASKQ_JOB_ID $TASKQ_ATTEMPT" to $DIR/runs,
// the record of which attempt of which job ran.
extern const char* const kRecordRun;

class WorkerFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  PgConnection& conn() { return *conn_; }
  ScratchDir& scratch() { return *scratch_; }

  // taskq.create_queue(<unique name>, <options>): options is SQL such as
  // "lease => '3 seconds', backoff_base => '100 ms'". Returns the name.
  std::string create_queue(const std::string& prefix, const std::string& options = "");
  // One job per payload {"n": i}, i = 1..n; extra: more enqueue_many
  // arguments (", max_attempts => 2"). Ids in enqueue order.
  std::vector<std::string> enqueue_many(const std::string& queue, int n, const std::string& extra = "");
  std::string enqueue(const std::string& queue, const std::string& payload = "{}", const std::string& extra = "");

  JobRow job(const std::string& id);
  long count_jobs(const std::string& queue, const std::string& status);
  // Waits until `n` jobs of the queue have reached `status`.
  bool wait_status_count(const std::string& queue, const std::string& status, long n,
                         std::chrono::milliseconds timeout);
  bool wait_job_status(const std::string& id, const std::string& status, std::chrono::milliseconds timeout);

  // Flags for a worker serving `handlers` (queue -> exec:... or URL), plus
  // `extra` flags.
  std::vector<std::string> worker_args(const std::map<std::string, std::string>& handlers,
                                       const std::vector<std::string>& extra = {});
  // Waits until the RabbitMQ queue of a taskq queue has a consumer.
  bool wait_consumer(const std::string& queue, std::chrono::milliseconds timeout);

  // $DIR/<file> as written by kRecordRun: job id -> attempts that ran.
  std::map<std::string, std::vector<int>> runs(const std::string& file = "runs");
  // Expects every id to have run exactly once (attempt 1 unless told
  // otherwise) and nothing else to have run.
  void expect_each_ran_once(const std::vector<std::string>& ids, const std::string& file = "runs");

  // taskq.maintenance_interval = 1s (lease rescue within about a second);
  // reset in TearDown.
  void use_fast_maintenance();

  std::optional<PgConnection> conn_;
  std::optional<ScratchDir> scratch_;
  std::set<std::string> settings_to_reset_;
};

}  // namespace taskq::test
