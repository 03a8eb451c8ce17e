// Dependencies and workflows end to end, through real taskq-worker
// processes, the publisher and RabbitMQ: a job waiting for 10,000 others
// that complete concurrently on several workers is released exactly once,
// with no deadlock and no completion reading more than its own edge; a
// two-step workflow runs its steps in order; a failing step cancels what
// waits for it; exec and http handlers and the library's Outcome enqueue
// follow-up jobs (docs/worker.md, "Follow-up jobs"); the README's workflow
// example runs.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "http_receiver.hpp"
#include "taskq/worker.hpp"
#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using namespace taskq::test;

namespace {

class Dependencies : public WorkerFixture {
 protected:
  long stat(const std::string& sql) {
    conn().exec("SELECT pg_stat_clear_snapshot()");
    return std::stol(conn().value(sql));
  }
};

// Statistics of this database and of the edge table, as counters to compare.
const char* const kDeadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()";
// Both indexes of the edge table: what waits for a job, what a job waits for.
const char* const kEdgeIndexReads =
    "SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes"
    " WHERE schemaname = 'taskq' AND relname = 'job_dependencies'";
const char* const kEdgeSeqScans =
    "SELECT coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE schemaname = 'taskq' AND relname = 'job_dependencies'";

TEST_F(Dependencies, TenThousandConcurrentCompletionsReleaseTheirDependentOnce) {
  constexpr int kJobs = 10000;
  const std::string many = create_queue("dfanin");
  const std::string last = create_queue("dfanin_last");
  // The many jobs go to an http endpoint that answers at once (cheaper than
  // a process per job); the dependent records each of its runs.
  HttpReceiver receiver;
  const std::string record = scratch().script("record.sh", std::string(kRecordRun) + "\ncat >/dev/null");
  const auto ids = enqueue_many(many, kJobs);
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kJobs));
  const std::string dependent = conn().value(
      "SELECT taskq.enqueue($1, '{}', depends_on => ARRAY(SELECT id FROM taskq.jobs WHERE queue_name = $2))",
      {last.c_str(), many.c_str()});
  EXPECT_EQ(job(dependent).status, "waiting");
  EXPECT_EQ(conn().value("SELECT dependencies_left FROM taskq.jobs WHERE id = $1", {dependent.c_str()}),
            std::to_string(kJobs));

  const auto started = std::chrono::steady_clock::now();
  const long deadlocks_before = stat(kDeadlocks);
  const long index_reads_before = stat(kEdgeIndexReads);
  const long seq_scans_before = stat(kEdgeSeqScans);
  {
    // Several processes completing the many jobs at once, in batches.
    std::vector<std::unique_ptr<WorkerProcess>> workers;
    for (int w = 0; w < 3; ++w)
      workers.push_back(std::make_unique<WorkerProcess>(
          worker_args({{many, receiver.url("/run")}, {last, "exec:" + record}}, {"--concurrency", "16"})));
    EXPECT_TRUE(wait_status_count(many, "completed", kJobs, 600s))
        << count_jobs(many, "completed") << " of " << kJobs << " completed";
    EXPECT_TRUE(wait_job_status(dependent, "completed", 120s)) << "the dependent is " << job(dependent).status;
    for (auto& w : workers) w->terminate();
    for (auto& w : workers) EXPECT_EQ(w->wait_exit(60s), 0);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  // The workers have exited, so their statistics are flushed; give the
  // server a moment to show them.
  long index_reads = 0;
  EXPECT_TRUE(
      wait_until([&] { return (index_reads = stat(kEdgeIndexReads) - index_reads_before) >= kJobs; }, 30s, 200ms))
      << index_reads << " edge index reads";
  // One edge per completion, plus the dependent's message listing all of
  // them once; counting the dependent's edges at each completion would read
  // about 50 million.
  EXPECT_LT(index_reads, 3L * kJobs) << "each completion reads its own edge, not the dependent's 10,000";
  EXPECT_EQ(stat(kEdgeSeqScans) - seq_scans_before, 0) << "and never scans the edge table";
  EXPECT_EQ(stat(kDeadlocks) - deadlocks_before, 0) << "no deadlock among the concurrent completions";
  std::printf("fan-in: %d completions on 3 workers and the dependent's run took %.1f s; %ld edge index reads\n", kJobs,
              seconds, index_reads);

  const auto ran = runs();
  ASSERT_EQ(ran.count(dependent), 1u) << "the dependent ran";
  EXPECT_EQ(ran.at(dependent).size(), 1u) << "exactly once";
  EXPECT_EQ(job(dependent).attempts, 1) << "one attempt: it was published once";
  EXPECT_EQ(conn().value("SELECT dependencies_left FROM taskq.jobs WHERE id = $1", {dependent.c_str()}), "0");
  EXPECT_EQ(
      conn().value("SELECT count(*) FROM taskq.job_dependencies WHERE job_id = $1 AND satisfied", {dependent.c_str()}),
      std::to_string(kJobs))
      << "every edge counted";
}

TEST_F(Dependencies, TwoStepWorkflowRunsItsStepsInOrder) {
  const std::string queue = create_queue("dwf");
  const std::string handler = scratch().script(
      "step.sh", std::string(kRecordRun) + "\ncat >/dev/null\nsleep 0.5\necho \"{\\\"task\\\": \\\"$TASKQ_TASK\\\"}\"");
  const std::string specs =
      json::array({{{"name", "first"}, {"queue", queue}, {"task", "first"}},
                   {{"name", "second"}, {"queue", queue}, {"task", "second"}, {"depends_on", json::array({"first"})}}})
          .dump();
  auto r = conn().exec("SELECT name, job_id FROM taskq.enqueue_workflow($1::jsonb)", {specs.c_str()});
  ASSERT_EQ(PQntuples(r.get()), 2);
  const std::string first = PQgetvalue(r.get(), 0, 1);
  const std::string second = PQgetvalue(r.get(), 1, 1);
  EXPECT_EQ(job(second).status, "waiting");

  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "4"}));
  EXPECT_TRUE(wait_job_status(second, "completed", 60s)) << "second is " << job(second).status;
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once({first, second});
  EXPECT_EQ(conn().value("SELECT (SELECT started_at FROM taskq.jobs WHERE id = $2) >="
                         " (SELECT finished_at FROM taskq.jobs WHERE id = $1)",
                         {first.c_str(), second.c_str()}),
            "t")
      << "the second step started after the first finished";
}

TEST_F(Dependencies, AFailingStepCancelsWhatWaitsForIt) {
  const std::string queue = create_queue("dfail");
  const std::string handler =
      scratch().script("step.sh", std::string(kRecordRun) + "\ncat >/dev/null\necho 'bad input' >&2\nexit 65");
  const std::string failing = enqueue(queue);
  const std::string next = enqueue(queue, "{}", ", depends_on => ARRAY['" + failing + "']::uuid[]");
  const std::string after = enqueue(queue, "{}", ", depends_on => ARRAY['" + next + "']::uuid[]");

  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  EXPECT_TRUE(wait_job_status(after, "cancelled", 60s)) << "the last step is " << job(after).status;
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  EXPECT_EQ(job(failing).status, "failed");
  EXPECT_EQ(job(next).last_error.value_or(""), "dependency " + failing + " failed");
  EXPECT_EQ(job(after).last_error.value_or(""),
            "dependency " + next + " was cancelled (dependency " + failing + " failed)");
  expect_each_ran_once({failing});
}

TEST_F(Dependencies, ExecHandlerEnqueuesFollowUpJobs) {
  const std::string queue = create_queue("dexec");
  const std::string follow = create_queue("dexec_next");
  // The reserved member taskq_enqueue: follow-up job specs; the rest is the result.
  const std::string handler =
      scratch().script("step.sh", std::string(kRecordRun) +
                                      "\ncat >/dev/null\nprintf '{\"ok\": true, \"taskq_enqueue\": [{\"queue\": \"" +
                                      follow + "\", \"payload\": {\"from\": \"%s\"}}]}\\n' \"$TASKQ_JOB_ID\"");
  const std::string recorder =
      scratch().script("next.sh", "cat > \"$DIR/next.$TASKQ_JOB_ID\"\necho \"$TASKQ_JOB_ID\" >> \"$DIR/next\"");
  const auto ids = enqueue_many(queue, 5);

  WorkerProcess worker(worker_args({{queue, "exec:" + handler}, {follow, "exec:" + recorder}}));
  EXPECT_TRUE(wait_status_count(follow, "completed", 5, 60s)) << count_jobs(follow, "completed") << " of 5";
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once(ids);
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND result = '{\"ok\": true}'",
                         {queue.c_str()}),
            "5")
      << "the result is the output without taskq_enqueue";
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.jobs f JOIN taskq.jobs j ON j.id = (f.payload->>'from')::uuid"
                         " WHERE f.queue_name = $1 AND j.queue_name = $2",
                         {follow.c_str(), queue.c_str()}),
            "5")
      << "one follow-up per job, made from its output";
  EXPECT_EQ(scratch().lines("next").size(), 5u) << "and each follow-up ran once";
}

TEST_F(Dependencies, ABadFollowUpFailsTheJobForGood) {
  const std::string queue = create_queue("dbad");
  const std::string handler =
      scratch().script("step.sh", "cat >/dev/null\necho '{\"taskq_enqueue\": [{\"queue\": \"no-such-queue\"}]}'");
  const std::string id = enqueue(queue, "{}", ", max_attempts => 3");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  EXPECT_TRUE(wait_job_status(id, "failed", 60s)) << job(id).status;
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  EXPECT_EQ(job(id).attempts, 1) << "failed for good, not retried";
  EXPECT_NE(job(id).last_error.value_or("").find("queue \"no-such-queue\" does not exist"), std::string::npos)
      << job(id).last_error.value_or("");
}

TEST_F(Dependencies, HttpHandlerEnqueuesFollowUpJobs) {
  const std::string queue = create_queue("dhttp");
  const std::string follow = create_queue("dhttp_next");
  HttpReceiver receiver;
  receiver.respond([&](const ReceivedRequest& request, std::size_t) {
    const json body = json::parse(request.body);
    // The body carries depends_on ([] for a job without dependencies).
    const json result = {{"seen", body.at("depends_on")},
                         {"taskq_enqueue", json::array({{{"queue", follow}, {"payload", {{"from", body.at("id")}}}}})}};
    return Response{200, result.dump()};
  });
  const std::string id = enqueue(queue);
  WorkerProcess worker(worker_args({{queue, receiver.url("/run")}, {follow, receiver.url("/next")}}));
  EXPECT_TRUE(wait_status_count(follow, "completed", 1, 60s));
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  EXPECT_EQ(job(id).result.value_or(""), R"({"seen": []})");
  ASSERT_TRUE(receiver.wait_for(1, 10s, "/next"));
  const json next = json::parse(receiver.requests_to("/next").at(0).body);
  EXPECT_EQ(next.at("payload"), json({{"from", id}}));
}

TEST_F(Dependencies, LibraryOutcomeCarriesFollowUpJobsAndJobsSeeTheirDependencies) {
  const std::string queue = create_queue("dlib");
  const std::string follow = create_queue("dlib_next");
  const std::string first = enqueue(queue, R"({"n": 1})");
  std::mutex mu;
  std::vector<taskq::Job> seen;
  taskq::WorkerOptions options;
  options.database = env("TASKQ_TEST_DATABASE_URL");
  options.broker = env("TASKQ_TEST_BROKER_URL");
  options.callbacks.enabled = false;
  taskq::Worker worker(options);
  worker.handle_queue(queue, [&](const taskq::Job& job, const taskq::CancellationToken&) {
    return taskq::Outcome::completed({{"n", job.payload.at("n")}})
        .then_enqueue(follow, {{"payload", {{"after", job.id}}}, {"depends_on", json::array({job.id})}});
  });
  worker.handle_queue(follow, [&](const taskq::Job& job, const taskq::CancellationToken&) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(job);
    return taskq::Outcome::completed();
  });
  std::thread runner([&] { worker.run(); });
  const bool done = wait_status_count(follow, "completed", 1, 60s);
  worker.stop();
  runner.join();
  ASSERT_TRUE(done) << count_jobs(follow, "completed");
  EXPECT_EQ(job(first).result.value_or(""), R"({"n": 1})");
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].payload, json({{"after", first}}));
  EXPECT_EQ(seen[0].depends_on, std::vector<std::string>{first}) << "the follow-up depended on the completed job";
}

// The README's "Workflows" example, as printed there: its SQL block runs
// statement by statement and leaves the second step waiting for the first.
TEST_F(Dependencies, ReadmeWorkflowExampleRuns) {
  std::ifstream in(std::string(TASKQ_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(in) << "README.md";
  std::stringstream text;
  text << in.rdbuf();
  const std::string readme = text.str();
  const auto section = readme.find("\n### Workflows\n");
  ASSERT_NE(section, std::string::npos) << "README has a Workflows section";
  const auto start = readme.find("```sql\n", section);
  ASSERT_NE(start, std::string::npos);
  const auto end = readme.find("\n```\n", start);
  const std::string example = readme.substr(start + 7, end - start - 7);

  // It runs as written (queue "reports"), in a transaction rolled back
  // after the checks, so that it can run again.
  conn().exec("BEGIN");
  std::string statement;
  std::istringstream lines(example);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("--", 0) == 0) continue;
    statement += line + "\n";
    if (!line.empty() && line.back() == ';') {
      conn().exec(statement);
      statement.clear();
    }
  }
  EXPECT_TRUE(statement.find_first_not_of(" \n") == std::string::npos) << "a statement without ';': " << statement;
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = 'reports' AND status = 'waiting'"), "1")
      << "the example's second step waits for the first";
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = 'reports' AND status = 'pending'"), "1");
  conn().exec("ROLLBACK");
}

}  // namespace
