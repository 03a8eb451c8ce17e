// A W3C trace context set by the producer (SET LOCAL taskq.traceparent in
// the enqueueing transaction, or the job's headers) arrives unchanged at an
// exec handler (TRACEPARENT / TRACESTATE), an http handler (traceparent /
// tracestate request headers), an in-process handler (Job) and the callback
// receiver, on the first attempt and after a retry; the worker's log lines
// of the job carry its trace id.
#include <atomic>
#include <mutex>
#include <thread>

#include "http_receiver.hpp"
#include "taskq/worker.hpp"
#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using namespace taskq::test;

namespace {

const std::string kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const std::string kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
const std::string kState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

class TraceContext : public WorkerFixture {
 protected:
  // Enqueues one job the way a traced application does: the context set
  // for the producing transaction only.
  std::string enqueue_traced(const std::string& queue, const std::string& extra = "") {
    conn().exec("BEGIN");
    conn().exec("SELECT set_config('taskq.traceparent', $1, true), set_config('taskq.tracestate', $2, true)",
                {kParent.c_str(), kState.c_str()});
    const std::string id = enqueue(queue, "{}", extra);
    conn().exec("COMMIT");
    return id;
  }

  // The callback of a finished job, as the receiver got it.
  void expect_traced_callback(const std::string& path) {
    ASSERT_TRUE(callbacks_.wait_for(1, 30s, path)) << "no callback arrived";
    const auto got = callbacks_.requests_to(path);
    EXPECT_EQ(got[0].header("traceparent"), kParent);
    EXPECT_EQ(got[0].header("tracestate"), kState);
  }

  HttpReceiver callbacks_;
};

TEST_F(TraceContext, ReachesAnExecHandlerAndTheCallbackAlsoAfterARetry) {
  const std::string queue = create_queue("trace_exec", "backoff_base => '100 ms'");
  // Attempt 1 fails, attempt 2 completes; each records what it was given.
  const std::string handler =
      scratch().script("h.sh",
                       "echo \"$TASKQ_ATTEMPT ${TRACEPARENT-unset} ${TRACESTATE-unset}\" >> \"$DIR/seen\"\n"
                       "[ \"$TASKQ_ATTEMPT\" -ge 2 ] || exit 1\necho '{}'\n");
  // The worker's own environment has another context: a job must not
  // inherit it.
  WorkerProcess worker(
      worker_args({{queue, "exec:" + handler}}, {"--concurrency", "2"}),
      {{"TRACEPARENT", "00-11111111111111111111111111111111-2222222222222222-01"}, {"TRACESTATE", "worker=own"}});
  const std::string id = enqueue_traced(queue, ", callback_url => '" + callbacks_.url("/exec") + "'");
  const std::string untraced = enqueue(queue);
  ASSERT_TRUE(wait_job_status(id, "completed", 60s)) << worker.log();
  ASSERT_TRUE(wait_job_status(untraced, "completed", 60s)) << worker.log();
  const auto seen = scratch().lines("seen");
  ASSERT_EQ(seen.size(), 4u);
  int traced = 0;
  for (const auto& line : seen) {
    if (line.find(kParent) == std::string::npos) {
      EXPECT_TRUE(line.rfind(" unset unset") == line.size() - 12) << "a job without a context got one: " << line;
      continue;
    }
    EXPECT_EQ(line, std::to_string(++traced) + " " + kParent + " " + kState);
  }
  EXPECT_EQ(traced, 2) << "both attempts of the traced job saw its context";
  expect_traced_callback("/exec");
  // Its log lines name the trace; the untraced job's do not.
  EXPECT_NE(worker.log().find("job=" + id + " queue=" + queue + " attempt=2 trace=" + kTraceId + " completed"),
            std::string::npos)
      << worker.log();
  EXPECT_NE(worker.log().find("job=" + untraced + " queue=" + queue + " attempt=1 started"), std::string::npos);
}

TEST_F(TraceContext, ReachesAnHttpHandlerAndTheCallbackAlsoAfterARetry) {
  const std::string queue = create_queue("trace_http", "backoff_base => '100 ms'");
  HttpReceiver endpoint;
  endpoint.respond([](const ReceivedRequest&, std::size_t nth) {
    return nth == 0 ? Response{503, "busy"} : Response{200, "{\"ok\": true}"};
  });
  WorkerProcess worker(worker_args({{queue, endpoint.url("/run")}}, {"--log-format", "json"}));
  // The explicit form this time: the job's headers.
  const std::string headers = R"({"traceparent": ")" + kParent + R"(", "tracestate": ")" + kState + R"("})";
  const std::string id =
      enqueue(queue, "{}", ", headers => '" + headers + "', callback_url => '" + callbacks_.url("/http") + "'");
  ASSERT_TRUE(wait_job_status(id, "completed", 60s)) << worker.log();
  const auto requests = endpoint.requests_to("/run");
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& r : requests) {
    EXPECT_EQ(r.header("traceparent"), kParent);
    EXPECT_EQ(r.header("tracestate"), kState);
  }
  expect_traced_callback("/http");
  EXPECT_NE(worker.log().find("\"trace_id\":\"" + kTraceId + "\""), std::string::npos) << worker.log();
}

TEST_F(TraceContext, ReachesAnInProcessHandlerAndTheCallbackAlsoAfterARetry) {
  const std::string queue = create_queue("trace_lib", "backoff_base => '100 ms'");
  std::mutex mu;
  std::vector<std::string> seen;  // "attempt traceparent tracestate trace_id"
  taskq::WorkerOptions options;
  options.database = env("TASKQ_TEST_DATABASE_URL");
  options.broker = env("TASKQ_TEST_BROKER_URL");
  options.shutdown_timeout = 5s;
  taskq::Worker worker(options);
  worker.handle_queue(queue, [&](const taskq::Job& job, const taskq::CancellationToken&) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(std::to_string(job.attempt) + " " + job.traceparent + " " + job.tracestate + " " +
                     std::string(job.trace_id()));
    }
    if (job.attempt == 1) return taskq::Outcome::retry("first attempt fails");
    return taskq::Outcome::completed();
  });
  std::thread runner([&] { worker.run(); });
  const std::string id = enqueue_traced(queue, ", callback_url => '" + callbacks_.url("/lib") + "'");
  const bool done = wait_job_status(id, "completed", 60s);
  worker.stop();
  runner.join();
  ASSERT_TRUE(done);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"1 " + kParent + " " + kState + " " + kTraceId,
                                            "2 " + kParent + " " + kState + " " + kTraceId}));
  expect_traced_callback("/lib");
}

TEST_F(TraceContext, AMessageWithAnInvalidTraceparentRunsWithoutOne) {
  // Only a producer other than taskq.enqueue can publish one (enqueue drops
  // invalid values): straight to the queue, as the publisher would.
  const std::string queue = create_queue("trace_bad");
  const std::string handler = scratch().script("h.sh", "echo \"${TRACEPARENT-unset}\" >> \"$DIR/seen\"\necho '{}'\n");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_consumer(queue, 30s)) << worker.log();
  // A real job row, then a message for it whose headers hold a broken value
  // (a line break would have reached the environment and HTTP headers).
  const std::string id = enqueue(queue, "{}", ", delay => '1 hour'");
  conn().exec("UPDATE taskq.jobs SET run_at = now() WHERE id = $1", {id.c_str()});
  publish_as_taskq(
      queue, R"({"id":")" + id + R"(","queue":")" + queue +
                 R"(","task":null,"payload":{},"attempt":1,"max_attempts":5,"enqueued_at":"2026-01-01T00:00:00Z",)"
                 R"("headers":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nX: y"}})");
  ASSERT_TRUE(wait_job_status(id, "completed", 30s)) << worker.log();
  EXPECT_EQ(scratch().lines("seen"), std::vector<std::string>{"unset"});
}

}  // namespace
