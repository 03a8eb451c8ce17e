// taskq-worker end to end: the real binary consumes what the in-server
// publisher sends to the real RabbitMQ, runs exec and http handlers and
// records outcomes in the real PostgreSQL. These tests hold the worker to
// docs/worker.md: exactly one run per job, results from stdout or
// the response body, exit 65 / 4xx failing for good, everything else
// retried, timeouts, graceful shutdown and cancellation.
#include <nlohmann/json.hpp>

#include <atomic>
#include <fstream>
#include <thread>

#include "http_receiver.hpp"
#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using namespace taskq::test;

namespace {

class Worker : public WorkerFixture {};

// Exit status as WorkerProcess reports it, for readable failures.
std::string describe(const std::optional<int>& status) {
  return status ? "exit status " + std::to_string(*status) : "still running";
}

TEST_F(Worker, ExecHandlerRunsManyJobsExactlyOnce) {
  const std::string queue = create_queue("wexec");
  // The result echoes what the handler was given: payload on stdin, the
  // job's facts in the environment.
  const std::string handler = scratch().script("echo.sh", std::string(kRecordRun) + R"(
payload=$(cat)
printf '{"payload": %s, "queue": "%s", "task": "%s", "attempt": %s, "max_attempts": %s}\n' \
  "$payload" "$TASKQ_QUEUE" "$TASKQ_TASK" "$TASKQ_ATTEMPT" "$TASKQ_MAX_ATTEMPTS")");
  const auto ids = enqueue_many(queue, 300, ", task => 'resize', max_attempts => 4");
  ASSERT_EQ(ids.size(), 300u);

  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "8"}));
  EXPECT_TRUE(wait_status_count(queue, "completed", 300, 150s))
      << count_jobs(queue, "completed") << " of 300 completed";
  worker.terminate();
  const auto status = worker.wait_exit(60s);
  EXPECT_EQ(status, 0) << describe(status);

  expect_each_ran_once(ids);
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status = 'completed'"
                         " AND attempts = 1 AND result = jsonb_build_object('payload', payload, 'queue', queue_name,"
                         " 'task', 'resize', 'attempt', 1, 'max_attempts', 4)",
                         {queue.c_str()}),
            "300")
      << "every result is the handler's stdout, made from its stdin and environment";
}

TEST_F(Worker, OneProcessServesSeveralQueuesEachWithItsHandler) {
  const std::string by_exec = create_queue("wmulti_exec");
  const std::string by_http = create_queue("wmulti_http");
  const std::string handler =
      scratch().script("tag.sh", std::string(kRecordRun) + "\ncat >/dev/null\necho '{\"by\": \"exec\"}'");
  HttpReceiver receiver;
  receiver.respond([](const ReceivedRequest&, std::size_t) { return Response{200, R"({"by": "http"})"}; });
  const auto exec_ids = enqueue_many(by_exec, 50);
  const auto http_ids = enqueue_many(by_http, 50);

  WorkerProcess worker(
      worker_args({{by_exec, "exec:" + handler}, {by_http, receiver.url("/jobs")}}, {"--concurrency", "4"}));
  EXPECT_TRUE(wait_status_count(by_exec, "completed", 50, 120s)) << count_jobs(by_exec, "completed") << " of 50";
  EXPECT_TRUE(wait_status_count(by_http, "completed", 50, 120s)) << count_jobs(by_http, "completed") << " of 50";
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);

  expect_each_ran_once(exec_ids);
  EXPECT_EQ(receiver.requests_to("/jobs").size(), 50u) << "each http job POSTed once";
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND result->>'by' = 'exec'",
                         {by_exec.c_str()}),
            "50");
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND result->>'by' = 'http'",
                         {by_http.c_str()}),
            "50");
}

TEST_F(Worker, HttpHandlerRunsManyJobsExactlyOnce) {
  const std::string queue = create_queue("whttp");
  HttpReceiver receiver;
  receiver.respond([](const ReceivedRequest& r, std::size_t) {
    const json body = json::parse(r.body, nullptr, false);
    if (body.is_discarded()) return Response{400, R"({"error": "not JSON"})"};
    return Response{200, json{{"n", body["payload"]["n"]}, {"attempt", body["attempt"]}}.dump()};
  });
  const auto ids = enqueue_many(queue, 300);
  ASSERT_EQ(ids.size(), 300u);

  WorkerProcess worker(worker_args({{queue, receiver.url("/jobs")}}, {"--concurrency", "8"}));
  EXPECT_TRUE(wait_status_count(queue, "completed", 300, 150s))
      << count_jobs(queue, "completed") << " of 300 completed";
  worker.terminate();
  const auto status = worker.wait_exit(60s);
  EXPECT_EQ(status, 0) << describe(status);

  // Each job was POSTed once, as the message body of the contract.
  std::map<std::string, int> posted;
  for (const auto& r : receiver.requests_to("/jobs")) {
    EXPECT_EQ(r.method, "POST");
    const json body = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(body.is_discarded()) << r.body;
    EXPECT_EQ(body["queue"], queue);
    EXPECT_EQ(body["attempt"], 1);
    ++posted[body["id"].get<std::string>()];
  }
  std::size_t wrong = 0;
  for (const auto& id : ids) wrong += posted[id] == 1 ? 0 : 1;
  EXPECT_EQ(wrong, 0u) << "jobs not POSTed exactly once";
  EXPECT_EQ(posted.size(), ids.size());
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status = 'completed'"
                         " AND attempts = 1 AND result = jsonb_build_object('n', payload->'n', 'attempt', 1)",
                         {queue.c_str()}),
            "300")
      << "every result is the response body";
}

TEST_F(Worker, ResultIsStdoutAsJsonOrElseAsAJsonString) {
  const std::string queue = create_queue("wresult");
  const std::string handler = scratch().script("print.sh", R"(
case "$TASKQ_TASK" in
  object) printf '{"a": [1, 2], "b": "x"}\n' ;;
  number) echo 42 ;;
  text) echo 'hello "world" {not json' ;;
esac)");
  const std::string object = enqueue(queue, "{}", ", task => 'object'");
  const std::string number = enqueue(queue, "{}", ", task => 'number'");
  const std::string text = enqueue(queue, "{}", ", task => 'text'");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_status_count(queue, "completed", 3, 60s));

  auto result_is = [&](const std::string& id, const std::string& expected) {
    return conn().value("SELECT result = $2::jsonb FROM taskq.jobs WHERE id = $1", {id.c_str(), expected.c_str()});
  };
  EXPECT_EQ(result_is(object, R"({"a": [1, 2], "b": "x"})"), "t") << job(object).result.value_or("NULL");
  EXPECT_EQ(result_is(number, "42"), "t") << job(number).result.value_or("NULL");
  // Text that is not JSON is kept, as a JSON string (a trailing newline may
  // be trimmed).
  EXPECT_EQ(conn().value("SELECT jsonb_typeof(result) = 'string'"
                         " AND rtrim(result #>> '{}', E'\\n') = 'hello \"world\" {not json'"
                         " FROM taskq.jobs WHERE id = $1",
                         {text.c_str()}),
            "t")
      << job(text).result.value_or("NULL");
}

TEST_F(Worker, Exit65FailsTheJobForGoodWithStderrAsTheError) {
  const std::string queue = create_queue("wexit65", "backoff_base => '100 ms'");
  const std::string handler = scratch().script("reject.sh", std::string(kRecordRun) + R"(
echo "progress output that is not the error"
echo "invalid payload: no recipient" >&2
exit 65)");
  const std::string id = enqueue(queue, "{}", ", max_attempts => 5");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_job_status(id, "failed", 60s)) << "status " << job(id).status;
  // A later run would need another delivery; give one a moment to show up.
  const std::string done = enqueue(queue, "{}", ", max_attempts => 1");
  ASSERT_TRUE(wait_job_status(done, "failed", 60s));

  const JobRow row = job(id);
  EXPECT_EQ(row.attempts, 1) << "exit 65 must not be retried";
  ASSERT_TRUE(row.last_error.has_value());
  EXPECT_NE(row.last_error->find("invalid payload: no recipient"), std::string::npos) << *row.last_error;
  EXPECT_EQ(runs()[id], std::vector<int>({1}));
}

TEST_F(Worker, OtherFailuresAreRetriedUntilMaxAttemptsThenFailedWithStderr) {
  const std::string queue = create_queue("wretry", "backoff_base => '100 ms', backoff_max => '500 ms'");
  const std::string handler = scratch().script("flaky.sh", std::string(kRecordRun) + R"(
case "$TASKQ_TASK" in
  always) echo "boom on attempt $TASKQ_ATTEMPT" >&2; exit 3 ;;
  once) [ "$TASKQ_ATTEMPT" -ge 2 ] && { echo '"second time lucky"'; exit 0; }
        echo "transient trouble" >&2; exit 1 ;;
  signal) [ "$TASKQ_ATTEMPT" -ge 2 ] && exit 0
          kill -KILL $$ ;;
esac)");
  const std::string always = enqueue(queue, "{}", ", task => 'always', max_attempts => 3");
  const std::string once = enqueue(queue, "{}", ", task => 'once', max_attempts => 3");
  const std::string signal = enqueue(queue, "{}", ", task => 'signal', max_attempts => 3");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));

  ASSERT_TRUE(wait_job_status(always, "failed", 90s)) << "status " << job(always).status;
  const JobRow failed = job(always);
  EXPECT_EQ(failed.attempts, 3);
  ASSERT_TRUE(failed.last_error.has_value());
  EXPECT_NE(failed.last_error->find("boom on attempt 3"), std::string::npos)
      << "the last attempt's stderr is the error: " << *failed.last_error;

  ASSERT_TRUE(wait_job_status(once, "completed", 60s)) << "status " << job(once).status;
  EXPECT_EQ(job(once).attempts, 2);
  EXPECT_EQ(job(once).result.value_or(""), "\"second time lucky\"");
  ASSERT_TRUE(wait_job_status(signal, "completed", 60s)) << "a handler killed by a signal is retried";
  EXPECT_EQ(job(signal).attempts, 2);

  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  auto ran = runs();
  EXPECT_EQ(ran[always], std::vector<int>({1, 2, 3}));
  EXPECT_EQ(ran[once], std::vector<int>({1, 2}));
  EXPECT_EQ(ran[signal], std::vector<int>({1, 2}));
}

TEST_F(Worker, HttpStatusesDecideBetweenCompletedRetriedAndFailed) {
  const std::string queue = create_queue("whttpstatus", "backoff_base => '100 ms', backoff_max => '500 ms'");
  HttpReceiver receiver;
  // The payload scripts the answers: statuses[attempt - 1] (the last one
  // repeats).
  receiver.respond([](const ReceivedRequest& r, std::size_t) {
    const json body = json::parse(r.body);
    const auto& statuses = body["payload"]["statuses"];
    const std::size_t i = std::min<std::size_t>(body["attempt"].get<std::size_t>() - 1, statuses.size() - 1);
    const int status = statuses[i].get<int>();
    if (status < 300) return Response{status, R"({"ok": true})"};
    return Response{status, "status " + std::to_string(status), "text/plain"};
  });
  struct Case {
    std::string statuses;
    std::string status;
    int attempts;
  };
  const std::vector<Case> cases = {
      {"[400]", "failed", 1},           {"[404]", "failed", 1},         {"[422]", "failed", 1},
      {"[408, 200]", "completed", 2},   {"[429, 200]", "completed", 2}, {"[500, 503, 200]", "completed", 3},
      {"[502, 502, 502]", "failed", 3},
  };
  std::vector<std::string> ids;
  for (const auto& c : cases)
    ids.push_back(enqueue(queue, R"({"statuses": )" + c.statuses + "}", ", max_attempts => 3"));
  WorkerProcess worker(worker_args({{queue, receiver.url("/hook")}}));

  ASSERT_TRUE(wait_until(
      [&] {
        return conn().value(
                   "SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status IN ('completed', 'failed')",
                   {queue.c_str()}) == std::to_string(cases.size());
      },
      90s));
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const JobRow row = job(ids[i]);
    EXPECT_EQ(row.status, cases[i].status) << "answers " << cases[i].statuses;
    EXPECT_EQ(row.attempts, cases[i].attempts) << "answers " << cases[i].statuses;
    if (row.status == "failed") {
      ASSERT_TRUE(row.last_error.has_value()) << "answers " << cases[i].statuses;
      const std::string last = cases[i].statuses.substr(cases[i].statuses.size() - 4, 3);
      EXPECT_NE(row.last_error->find(last), std::string::npos) << "the error names the status: " << *row.last_error;
    } else {
      EXPECT_EQ(row.result.value_or(""), R"({"ok": true})");
    }
  }
  // One request per attempt, no more.
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  std::map<std::string, int> requests;
  for (const auto& r : receiver.requests_to("/hook")) ++requests[json::parse(r.body)["id"].get<std::string>()];
  for (std::size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(requests[ids[i]], cases[i].attempts) << "answers " << cases[i].statuses;
}

TEST_F(Worker, JobTimeoutKillsTheHandlersWholeProcessGroupAndRetries) {
  const std::string queue = create_queue("wtimeout", "backoff_base => '100 ms'");
  // Attempt 1 hangs, with a grandchild that would outlive a plain kill of
  // the shell; attempt 2 succeeds.
  const std::string handler = scratch().script("hang.sh", std::string(kRecordRun) + R"(
if [ "$TASKQ_ATTEMPT" = 1 ]; then
  echo $$ >> "$DIR/pids"
  sleep 300 &
  echo $! >> "$DIR/pids"
  sleep 300
fi
echo '"done"')");
  const std::string id = enqueue(queue, "{}", ", max_attempts => 3");
  const auto started = std::chrono::steady_clock::now();
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--job-timeout", "2"}));
  ASSERT_TRUE(wait_job_status(id, "completed", 90s)) << "status " << job(id).status;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 60s);
  EXPECT_EQ(job(id).attempts, 2) << "a timeout is a retryable failure";
  EXPECT_EQ(runs()[id], std::vector<int>({1, 2}));

  const auto pids = scratch().lines("pids");
  ASSERT_EQ(pids.size(), 2u);
  for (const auto& pid : pids)
    EXPECT_TRUE(wait_until([&] { return !process_alive(std::stoi(pid)); }, 15s))
        << "process " << pid << " of the timed-out handler is still running";
}

TEST_F(Worker, SigtermLetsTheJobInFlightFinishThenExitsZero) {
  const std::string queue = create_queue("wdrain");
  // Runs until the test releases it (so it is surely in flight when SIGTERM
  // comes), then a little longer.
  const std::string handler = scratch().script("slow.sh", std::string(kRecordRun) + R"(
i=0
while [ ! -e "$DIR/release" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
sleep 2
echo '{"finished": true}')");
  const std::string first = enqueue(queue);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "1", "--shutdown-timeout", "60"}));
  ASSERT_TRUE(wait_until([&] { return runs().count(first) == 1; }, 60s)) << "the job never started";
  // Queued behind the running job: must not be started once SIGTERM came.
  // (published and handed to the worker: no longer ready in RabbitMQ).
  const std::string second = enqueue(queue);
  BrokerClient broker;
  ASSERT_TRUE(wait_until(
      [&] {
        return conn().value("SELECT count(*) FROM taskq.outbox WHERE job_id = $1", {second.c_str()}) == "0" &&
               broker.count("taskq." + queue) == 0;
      },
      30s));
  worker.terminate();
  std::ofstream(scratch().file("release")).put('\n');
  const auto status = worker.wait_exit(90s);
  EXPECT_EQ(status, 0) << describe(status);

  const JobRow row = job(first);
  EXPECT_EQ(row.status, "completed") << "the in-flight job finished before the worker exited";
  EXPECT_EQ(row.attempts, 1);
  EXPECT_EQ(row.result.value_or(""), R"({"finished": true})");
  EXPECT_EQ(runs().count(second), 0u) << "a job was started after SIGTERM";
  EXPECT_EQ(job(second).status, "pending");
  EXPECT_EQ(job(second).attempts, 0);

  // Not lost either: the next worker runs it.
  WorkerProcess next(worker_args({{queue, "exec:" + handler}}));
  EXPECT_TRUE(wait_job_status(second, "completed", 60s)) << "status " << job(second).status;
}

TEST_F(Worker, SigtermStopsAJobLongerThanTheShutdownTimeoutAndItIsRetriedLater) {
  use_fast_maintenance();
  const std::string queue = create_queue("wstopped", "lease => '3 seconds', backoff_base => '100 ms'");
  const std::string handler = scratch().script("long.sh", std::string(kRecordRun) + R"(
if [ "$TASKQ_ATTEMPT" = 1 ]; then
  echo $$ >> "$DIR/pids"
  sleep 300
fi
echo '"finished on a later attempt"')");
  const std::string id = enqueue(queue, "{}", ", max_attempts => 3");
  {
    WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--shutdown-timeout", "2"}));
    ASSERT_TRUE(wait_until([&] { return runs().count(id) == 1; }, 60s)) << "the job never started";
    const auto signalled = std::chrono::steady_clock::now();
    worker.terminate();
    const auto status = worker.wait_exit(60s);
    EXPECT_EQ(status, 0) << describe(status);
    EXPECT_LT(std::chrono::steady_clock::now() - signalled, 30s) << "the shutdown timeout was not applied";
    const auto pids = scratch().lines("pids");
    ASSERT_EQ(pids.size(), 1u);
    EXPECT_TRUE(wait_until([&] { return !process_alive(std::stoi(pids[0])); }, 15s))
        << "the stopped handler kept running after the worker exited";
    EXPECT_NE(job(id).status, "completed");
  }
  // Whether the stopped attempt was recorded as failed or its lease ran
  // out, the job runs again.
  WorkerProcess next(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_job_status(id, "completed", 90s)) << "status " << job(id).status;
  EXPECT_EQ(job(id).attempts, 2);
  EXPECT_EQ(runs()[id], std::vector<int>({1, 2}));
}

// A deploy must not use up a job's attempts: a job on its last attempt
// stopped by SIGTERM past the shutdown timeout is given back (pending, its
// budget extended by the stopped attempt) and runs again elsewhere.
TEST_F(Worker, AJobStoppedByShutdownOnItsLastAttemptIsNotFailed) {
  const std::string queue = create_queue("wgiveback");
  const std::string handler = scratch().script("long.sh", std::string(kRecordRun) + R"(
if [ "$TASKQ_ATTEMPT" = 1 ]; then
  sleep 300
fi
echo '"finished on a later attempt"')");
  const std::string id = enqueue(queue, "{}", ", max_attempts => 1");
  {
    WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--shutdown-timeout", "1"}));
    ASSERT_TRUE(wait_until([&] { return runs().count(id) == 1; }, 60s)) << "the job never started";
    worker.terminate();
    const auto status = worker.wait_exit(60s);
    EXPECT_EQ(status, 0) << describe(status);
  }
  const JobRow stopped = job(id);
  EXPECT_EQ(stopped.status, "pending") << "a shutdown failed the job: " << stopped.last_error.value_or("");
  EXPECT_EQ(stopped.attempts, 1);
  EXPECT_EQ(stopped.max_attempts, 2) << "the stopped attempt still counts";

  WorkerProcess next(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_job_status(id, "completed", 60s)) << "status " << job(id).status;
  EXPECT_EQ(runs()[id], std::vector<int>({1, 2}));
}

// SIGTERM while a start is on its way: the jobs it starts are still run
// before the worker exits, instead of sitting "running" until their lease
// with an attempt spent and no run. The test holds the job's row, so the
// worker's start waits for it.
TEST_F(Worker, SigtermWhileAStartIsUnderWayRunsTheJobsItStarts) {
  const std::string queue = create_queue("wstarting");
  const std::string handler = scratch().script("quick.sh", std::string(kRecordRun) + "\necho '\"ran\"'");
  const std::string id = enqueue(queue);
  ASSERT_TRUE(wait_until(
      [&] {
        return conn().value("SELECT published_at IS NOT NULL FROM taskq.jobs WHERE id = $1", {id.c_str()}) == "t";
      },
      60s))
      << "the job was never published";
  taskq::PgConnection holder = db();
  holder.exec("BEGIN");
  holder.exec("SELECT 1 FROM taskq.jobs WHERE id = $1 FOR UPDATE", {id.c_str()});

  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_until(
      [&] {
        return conn().value(
                   "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                   " AND query LIKE '%taskq._start_batch%'") == "1";
      },
      60s))
      << "the worker's start never waited for the row";
  worker.terminate();
  ASSERT_TRUE(worker.wait_for_log("stopping", 30s)) << "no shutdown under way";
  holder.exec("COMMIT");

  const auto status = worker.wait_exit(60s);
  EXPECT_EQ(status, 0) << describe(status);
  EXPECT_EQ(job(id).status, "completed");
  EXPECT_EQ(runs()[id], std::vector<int>({1}));
}

TEST_F(Worker, CancellingARunningJobStopsItsHandlerAndEndsItCancelled) {
  const std::string queue = create_queue("wcancel", "lease => '3 seconds'");
  const std::string handler = scratch().script("cancel.sh", std::string(kRecordRun) + R"(
if [ "$TASKQ_TASK" = long ]; then
  echo $$ >> "$DIR/pids"
  sleep 300 &
  echo $! >> "$DIR/pids"
  sleep 300
fi
echo '"quick"')");
  const std::string id = enqueue(queue, "{}", ", task => 'long'");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_until([&] { return runs().count(id) == 1; }, 60s)) << "the job never started";
  ASSERT_EQ(conn().value("SELECT status FROM taskq.cancel($1)", {id.c_str()}), "running");

  EXPECT_TRUE(wait_job_status(id, "cancelled", 30s)) << "status " << job(id).status;
  const auto pids = scratch().lines("pids");
  ASSERT_EQ(pids.size(), 2u);
  for (const auto& pid : pids)
    EXPECT_TRUE(wait_until([&] { return !process_alive(std::stoi(pid)); }, 15s))
        << "process " << pid << " of the cancelled handler is still running";
  EXPECT_EQ(job(id).attempts, 1);

  // The worker carries on with other jobs.
  const std::string next = enqueue(queue, "{}", ", task => 'quick'");
  EXPECT_TRUE(wait_job_status(next, "completed", 60s));
  EXPECT_EQ(runs()[id], std::vector<int>({1}));
}

// An http handler endpoint that answers 200 only after 25 s (the test's end
// cuts that short), counting the requests that arrived.
struct SlowEndpoint {
  SlowEndpoint() {
    receiver.respond([this](const ReceivedRequest&, std::size_t) {
      ++arrived;
      return Response{200, R"("too late")", "application/json", 25s};
    });
  }
  std::atomic<int> arrived{0};  // before receiver: outlives its server threads
  HttpReceiver receiver;
};

// The request is stopped by a cancel, not awaited (awaited, the job would end
// completed instead of cancelled).
TEST_F(Worker, CancellingARunningJobStopsItsHttpRequest) {
  const std::string queue = create_queue("whttpcancel", "lease => '3 seconds'");
  SlowEndpoint endpoint;
  const std::string id = enqueue(queue);
  WorkerProcess worker(worker_args({{queue, endpoint.receiver.url("/slow")}}));
  ASSERT_TRUE(wait_until([&] { return endpoint.arrived.load() == 1; }, 60s)) << "the request never arrived";
  const auto requested = std::chrono::steady_clock::now();
  ASSERT_EQ(conn().value("SELECT status FROM taskq.cancel($1)", {id.c_str()}), "running");
  EXPECT_TRUE(wait_job_status(id, "cancelled", 15s)) << "status " << job(id).status;
  EXPECT_LT(std::chrono::steady_clock::now() - requested, 15s);
  EXPECT_EQ(endpoint.arrived.load(), 1);
}

TEST_F(Worker, SigtermPastTheShutdownTimeoutStopsAHangingHttpRequest) {
  const std::string queue = create_queue("whttpstop");
  SlowEndpoint endpoint;
  const std::string id = enqueue(queue);
  WorkerProcess worker(worker_args({{queue, endpoint.receiver.url("/slow")}}, {"--shutdown-timeout", "1"}));
  ASSERT_TRUE(wait_until([&] { return endpoint.arrived.load() == 1; }, 60s)) << "the request never arrived";
  const auto signalled = std::chrono::steady_clock::now();
  worker.terminate();
  const auto status = worker.wait_exit(60s);
  EXPECT_EQ(status, 0) << describe(status);
  // 1 s of shutdown timeout, then about a second for libcurl to notice.
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 8s) << "the worker waited for the endpoint's answer";
  EXPECT_EQ(job(id).status, "pending") << "stopped by the shutdown: a retryable failure";
}

TEST_F(Worker, EnvironmentVariablesStandInForTheConnectionFlags) {
  const std::string queue = create_queue("wenv");
  const std::string handler = scratch().script("ok.sh", "echo '\"ok\"'");
  const std::string id = enqueue(queue);
  WorkerProcess worker(
      {"--handler", queue + "=exec:" + handler},
      {{"TASKQ_DATABASE_URL", env("TASKQ_TEST_DATABASE_URL")}, {"TASKQ_BROKER_URL", env("TASKQ_TEST_BROKER_URL")}});
  EXPECT_TRUE(wait_job_status(id, "completed", 60s)) << "status " << job(id).status;
}

}  // namespace
