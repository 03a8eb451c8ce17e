// taskq-worker under faults: garbage and duplicate messages, a worker
// killed mid-job, broker connections closed, the broker and the database
// restarted, a job outliving RabbitMQ's consumer_timeout, the RabbitMQ queue
// deleted under the worker, and services that are unreachable at start.
// Whatever happens, every job runs exactly once and nothing is lost or left
// looping in RabbitMQ.
#include <nlohmann/json.hpp>

#include <thread>

#include "core/amqp_connection.hpp"
#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using namespace taskq::test;

namespace {

std::string describe(const std::optional<int>& status) {
  return status ? "exit status " + std::to_string(*status) : "still running";
}

// The RabbitMQ queue holds nothing, ready or unacknowledged, and keeps it
// that way for a few checks in a row (a redelivery loop would not).
bool rabbit_queue_settles_empty(const std::string& queue, std::chrono::milliseconds timeout) {
  int empty_in_a_row = 0;
  return wait_until(
      [&] {
        empty_in_a_row = rabbit_queue_total_messages("taskq." + queue) == 0 ? empty_in_a_row + 1 : 0;
        return empty_in_a_row >= 3;
      },
      timeout, 300ms);
}

class WorkerFaults : public WorkerFixture {
 protected:
  // A handler that takes a moment, so jobs are in flight when faults hit.
  std::string steady_handler() {
    return scratch().script("steady.sh", std::string(kRecordRun) + "\nsleep 0.05\necho '\"ok\"'");
  }
  // Waits until `n` jobs completed, then runs `fault`; then waits for all.
  void strike_mid_stream(const std::string& queue, const std::vector<std::string>& ids, long n_before,
                         const std::function<void()>& fault, std::chrono::milliseconds deadline) {
    ASSERT_TRUE(wait_status_count(queue, "completed", n_before, 120s)) << "jobs did not start flowing";
    const long done_before = count_jobs(queue, "completed");
    EXPECT_LT(done_before, static_cast<long>(ids.size())) << "all jobs were done before the fault";
    fault();
    EXPECT_TRUE(wait_until(
        [&] {
          try {
            return count_jobs(queue, "completed") == static_cast<long>(ids.size());
          } catch (const std::exception&) {
            // The test's own connection did not survive a database restart.
            try {
              conn_.emplace(db());
            } catch (const std::exception&) {
            }
            return false;
          }
        },
        deadline, 200ms))
        << count_jobs(queue, "completed") << " of " << ids.size() << " completed";
  }
};

// A message body in the contract's shape; a null attempt leaves it out.
std::string message(const std::string& id, const json& queue, const json& attempt) {
  json body = {{"id", id},
               {"queue", queue},
               {"task", nullptr},
               {"payload", json::object()},
               {"max_attempts", 5},
               {"enqueued_at", "2024-01-01T00:00:00Z"},
               {"headers", json::object()}};
  if (!attempt.is_null()) body["attempt"] = attempt;
  return body.dump();
}

TEST_F(WorkerFaults, GarbageMessagesAreAckedAndDroppedAndRealJobsStillRun) {
  const std::string queue = create_queue("fgarbage");
  const std::string handler = scratch().script("ok.sh", std::string(kRecordRun) + "\necho '\"ok\"'");
  // The real job stays unpublished while the garbage goes through, so any
  // start of it can only have come from a garbage message.
  conn().exec("SELECT taskq.pause_queue($1)", {queue.c_str()});
  const std::string real = enqueue(queue);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_consumer(queue, 60s)) << "the worker did not start consuming";

  const std::string unknown = conn().value("SELECT taskq._uuid_v7()::text");
  const std::vector<std::pair<std::string, std::string>> garbage = {
      {"not JSON", "this is not JSON {"},
      {"empty body", ""},
      {"a JSON array", "[1, 2, 3]"},
      {"a JSON string", "\"" + real + "\""},
      {"the wrong queue field", message(real, "some_other_queue", 1)},
      {"no queue field", message(real, nullptr, 1)},
      {"an unknown job id", message(unknown, queue, 1)},
      {"a wrong attempt", message(real, queue, 2)},
      {"attempt zero", message(real, queue, 0)},
      {"a huge attempt", message(real, queue, 2147483647)},
      {"attempt as a string", message(real, queue, "1")},
      {"no attempt", message(real, queue, nullptr)},
  };
  // The way the publisher sends (so only the content is wrong), and a few
  // straight into the RabbitMQ queue as a stray producer might.
  for (const auto& [what, body] : garbage) publish_as_taskq(queue, body);
  for (const auto& [what, body] : {garbage[0], garbage[4], garbage[8]}) publish_raw("", "taskq." + queue, body);

  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 60s))
      << "garbage must be acked and dropped, not left unacked or requeued (messages now: "
      << rabbit_queue_total_messages("taskq." + queue) << ")";
  EXPECT_TRUE(worker.running()) << "garbage stopped the worker";
  const JobRow untouched = job(real);
  EXPECT_EQ(untouched.status, "pending") << "a garbage message started the real job";
  EXPECT_EQ(untouched.attempts, 0);
  EXPECT_TRUE(runs().empty()) << "a handler ran for garbage";

  // Real jobs still go through, once.
  conn().exec("SELECT taskq.resume_queue($1)", {queue.c_str()});
  const auto more = enqueue_many(queue, 5);
  EXPECT_TRUE(wait_status_count(queue, "completed", 6, 60s)) << count_jobs(queue, "completed") << " of 6 completed";
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 30s));
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  auto all = more;
  all.push_back(real);
  expect_each_ran_once(all);
  EXPECT_EQ(job(real).attempts, 1);
}

// Huge bodies (8 MiB: far over the 1 MiB a payload may have), one not JSON
// and one well formed for an unknown job: acked and dropped like any
// garbage, and the worker goes on.
TEST_F(WorkerFaults, HugeGarbageMessagesAreAckedAndDropped) {
  const std::string queue = create_queue("fhuge");
  const std::string handler = scratch().script("ok.sh", std::string(kRecordRun) + "\necho '\"ok\"'");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_consumer(queue, 60s)) << "the worker did not start consuming";
  const std::string unknown = conn().value("SELECT taskq._uuid_v7()::text");
  json big = json::parse(message(unknown, queue, 1));
  big["payload"] = {{"pad", std::string(8 << 20, 'x')}};
  publish_as_taskq(queue, std::string(8 << 20, '{'));
  publish_as_taskq(queue, big.dump());
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 60s))
      << "messages left: " << rabbit_queue_total_messages("taskq." + queue);
  EXPECT_TRUE(worker.running()) << "a huge message stopped the worker";
  EXPECT_TRUE(runs().empty()) << "a handler ran for garbage";
  const auto real = enqueue_many(queue, 3);
  EXPECT_TRUE(wait_status_count(queue, "completed", 3, 60s)) << count_jobs(queue, "completed") << " of 3 completed";
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once(real);
}

// An "id" of 36 characters that is no uuid must be refused by the message
// check: reaching SQL, it would fail the uuid cast of a whole start batch,
// and a message that is never acked holds a prefetch slot and comes back
// after every reconnect (a poison message).
TEST_F(WorkerFaults, AMessageWhoseIdIsNoUuidIsAckedAndDropped) {
  const std::string queue = create_queue("fbaduuid");
  const std::string handler = scratch().script("ok.sh", std::string(kRecordRun) + "\necho '\"ok\"'");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_consumer(queue, 60s)) << "the worker did not start consuming";
  publish_as_taskq(queue, message("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", queue, 1));
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 10s))
      << "left in RabbitMQ (ready or unacked): " << rabbit_queue_total_messages("taskq." + queue);
  const std::string real = enqueue(queue);
  EXPECT_TRUE(wait_job_status(real, "completed", 60s)) << "status " << job(real).status;
  EXPECT_TRUE(worker.running());
}

TEST_F(WorkerFaults, ADuplicatedDeliveryRunsTheJobOnce) {
  const std::string queue = create_queue("fdup");
  const std::string handler = scratch().script("slowish.sh", std::string(kRecordRun) + "\nsleep 1\necho '\"ok\"'");
  const std::string id = enqueue(queue, R"({"dup": true})");
  // Take the publisher's message and put it in the queue twice.
  BrokerClient broker;
  const auto got = collect(broker, "taskq." + queue, 1, 30s);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0].message_id, id);
  publish_as_taskq(queue, got[0].body);
  publish_as_taskq(queue, got[0].body);

  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "4"}));
  ASSERT_TRUE(wait_job_status(id, "completed", 60s)) << "status " << job(id).status;
  // And once more after it completed.
  publish_as_taskq(queue, got[0].body);
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 60s));
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  EXPECT_EQ(job(id).attempts, 1);
  EXPECT_EQ(runs()[id], std::vector<int>({1}));
}

// A valid message that reached taskq.<queue> through the default exchange
// (routing key "taskq.<queue>": a shovel, a re-publish by an operator) runs
// its job: the worker knows the queue from the consumer, not the routing key.
TEST_F(WorkerFaults, AValidMessagePublishedStraightToItsRabbitQueueRunsItsJob) {
  const std::string queue = create_queue("fstraight");
  const std::string handler = scratch().script("ok.sh", std::string(kRecordRun) + "\necho '\"ok\"'");
  const std::string id = enqueue(queue);
  BrokerClient broker;
  const auto got = collect(broker, "taskq." + queue, 1, 30s);
  ASSERT_EQ(got.size(), 1u);
  publish_raw("", "taskq." + queue, got[0].body);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_job_status(id, "completed", 15s)) << "status " << job(id).status;
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 30s));
  EXPECT_EQ(runs()[id], std::vector<int>({1}));
}

TEST_F(WorkerFaults, AJobOfAWorkerKilledMidJobCompletesOnceAfterItsLease) {
  use_fast_maintenance();
  const std::string queue = create_queue("fkill9", "lease => '3 seconds', backoff_base => '100 ms'");
  const std::string handler = scratch().script("kill9.sh", std::string(kRecordRun) + R"(
[ "$TASKQ_ATTEMPT" = 1 ] && sleep 300
echo '"done"')");
  const std::string id = enqueue(queue, "{}", ", max_attempts => 3");
  WorkerProcess first(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_until([&] { return runs().count(id) == 1; }, 60s)) << "the job never started";
  first.kill();
  // The host died with it: its handler goes too.
  scratch().kill_handlers();
  const auto killed = std::chrono::steady_clock::now();
  EXPECT_EQ(job(id).status, "running");

  WorkerProcess second(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_job_status(id, "completed", 90s)) << "status " << job(id).status;
  // The lease (3 s, renewed every second or so) had to run out first.
  EXPECT_GE(std::chrono::steady_clock::now() - killed, 1500ms) << "the job ran again while its lease was valid";
  const JobRow row = job(id);
  EXPECT_EQ(row.attempts, 2);
  EXPECT_EQ(row.result.value_or(""), "\"done\"");
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 30s));
  second.terminate();
  EXPECT_EQ(second.wait_exit(60s), 0);
  EXPECT_EQ(runs()[id], std::vector<int>({1, 2}));
}

TEST_F(WorkerFaults, BrokerConnectionsClosedMidStreamLoseNothingAndRunNothingTwice) {
  const std::string queue = create_queue("fclose");
  const std::string handler = steady_handler();
  const auto ids = enqueue_many(queue, 200);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "4"}));
  strike_mid_stream(
      queue, ids, 20,
      [&] {
        for (long at : {20L, 80L}) {
          wait_status_count(queue, "completed", at, 60s);
          EXPECT_EQ(rabbitmqctl("close_all_connections 'test: closed mid-stream'"), 0);
        }
      },
      150s);
  EXPECT_TRUE(worker.running()) << "a lost broker connection must not end the worker";
  // Checked while the worker runs: after a fault the publisher may send a
  // job again (at least once), and only a consumer drops such stale copies.
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 30s));
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once(ids);
  EXPECT_EQ(conn().value("SELECT max(attempts) FROM taskq.jobs WHERE queue_name = $1", {queue.c_str()}), "1");
}

TEST_F(WorkerFaults, ABrokerRestartMidStreamLosesNothingAndRunsNothingTwice) {
  const std::string queue = create_queue("frestart");
  const std::string handler = steady_handler();
  const auto ids = enqueue_many(queue, 150);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "4"}));
  strike_mid_stream(
      queue, ids, 20, [&] { env_action("broker-restart"); }, 150s);
  EXPECT_TRUE(worker.running()) << "a broker restart must not end the worker";
  // Checked while the worker runs: after a fault the publisher may send a
  // job again (at least once), and only a consumer drops such stale copies.
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 30s));
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once(ids);
  EXPECT_EQ(conn().value("SELECT max(attempts) FROM taskq.jobs WHERE queue_name = $1", {queue.c_str()}), "1");
}

TEST_F(WorkerFaults, ADatabaseRestartMidStreamLosesNothingAndRunsNothingTwice) {
  // A lease long enough to outlast the restart, short enough that a start
  // whose commit the worker never heard about is rescued within the test.
  use_fast_maintenance();
  const std::string queue = create_queue("fpgrestart", "lease => '30 seconds', backoff_base => '100 ms'");
  const std::string handler = steady_handler();
  const auto ids = enqueue_many(queue, 150);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "4"}));
  strike_mid_stream(
      queue, ids, 20, [&] { env_action("pg-restart"); }, 150s);
  EXPECT_TRUE(worker.running()) << "a database restart must not end the worker";
  // Checked while the worker runs: after a fault the publisher may send a
  // job again (at least once), and only a consumer drops such stale copies.
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 30s));
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once(ids);
}

// Proves the consumer_timeout is in force: a consumer that holds a delivery
// unacknowledged gets its channel closed (406) within `within`.
bool broker_enforces_consumer_timeout(std::chrono::milliseconds within) {
  const std::string probe = unique_name("taskq.probe");
  taskq::ConnectOptions options;
  options.connection_name = "taskq integration test (consumer_timeout probe)";
  taskq::AmqpConnection c(taskq::BrokerUrl::parse(env("TASKQ_TEST_BROKER_URL")), options);
  c.declare_queue(probe, "classic");
  publish_raw("", probe, "hold me");
  amqp_basic_consume(c.state(), taskq::AmqpConnection::kChannel, amqp_cstring_bytes(probe.c_str()), amqp_empty_bytes, 0,
                     0, 0, amqp_empty_table);
  taskq::check_rpc_reply(amqp_get_rpc_reply(c.state()), "consuming the probe");
  bool closed = false;
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    amqp_envelope_t envelope;
    timeval wait{0, 200'000};
    const amqp_rpc_reply_t r = amqp_consume_message(c.state(), &envelope, &wait, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
      amqp_destroy_envelope(&envelope);  // held, never acked
      continue;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      amqp_frame_t frame;
      if (amqp_simple_wait_frame(c.state(), &frame) != AMQP_STATUS_OK) break;
      closed = frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD;
      if (closed) {
        amqp_channel_close_ok_t ok{};
        amqp_send_method(c.state(), taskq::AmqpConnection::kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        c.reopen_channel();
      }
    } else if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION || r.library_error != AMQP_STATUS_TIMEOUT) {
      break;
    }
  }
  amqp_queue_delete(c.state(), taskq::AmqpConnection::kChannel, amqp_cstring_bytes(probe.c_str()), 0, 0);
  c.close();
  return closed;
}

// RabbitMQ closes the channel of a consumer that holds a delivery longer
// than consumer_timeout. A job may run longer than that and must still run
// exactly once. (WorkerOptions::early_ack_after is not a CLI flag yet, so
// this runs with the worker's default.)
TEST_F(WorkerFaults, AJobLongerThanTheBrokersConsumerTimeoutRunsExactlyOnce) {
  RabbitSettings rabbit;
  ASSERT_TRUE(rabbit.set("consumer_timeout", 5000));
  ASSERT_TRUE(rabbit.set("channel_tick_interval", 1000));
  const std::string queue = create_queue("fconsumertimeout");
  const std::string handler = scratch().script("long.sh", std::string(kRecordRun) + R"(
[ "$TASKQ_TASK" = long ] && sleep 10
echo '"done"')");
  const std::string long_job = enqueue(queue, "{}", ", task => 'long'");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "2"}));
  // Meanwhile, check the setting took: otherwise this test proves nothing.
  EXPECT_TRUE(broker_enforces_consumer_timeout(20s)) << "consumer_timeout is not in force";
  ASSERT_TRUE(wait_job_status(long_job, "completed", 90s)) << "status " << job(long_job).status;
  // The worker still consumes afterwards.
  const auto quick = enqueue_many(queue, 5, ", task => 'quick'");
  EXPECT_TRUE(wait_status_count(queue, "completed", 6, 60s));
  EXPECT_TRUE(rabbit_queue_settles_empty(queue, 30s));
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  EXPECT_EQ(job(long_job).attempts, 1);
  auto all = quick;
  all.push_back(long_job);
  expect_each_ran_once(all);
}

// RabbitMQ tells a consumer that its queue was deleted (basic.cancel) only
// if the client announced the consumer_cancel_notify capability; without it
// the worker would idle forever on a connection that delivers nothing.
TEST_F(WorkerFaults, AQueueDeletedInRabbitMQUnderTheWorkerIsConsumedAgain) {
  const std::string queue = create_queue("fdeleted");
  const std::string handler = scratch().script("ok.sh", std::string(kRecordRun) + "\necho '\"ok\"'");
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}));
  ASSERT_TRUE(wait_consumer(queue, 60s)) << "the worker did not start consuming";
  BrokerClient().delete_queue("taskq." + queue);
  // Nothing is published meanwhile, so only the worker can declare it again.
  ASSERT_TRUE(wait_consumer(queue, 15s)) << "the worker did not declare and consume the queue again";
  const auto ids = enqueue_many(queue, 20);
  EXPECT_TRUE(wait_status_count(queue, "completed", 20, 60s)) << count_jobs(queue, "completed") << " of 20 completed";
  EXPECT_TRUE(worker.running());
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once(ids);
}

// --- start-up errors: one line on stderr, exit status 2, quickly --------------

class WorkerStartup : public WorkerFixture {
 protected:
  void expect_startup_error(const std::vector<std::string>& args, const std::string& what,
                            const WorkerProcess::EnvChanges& env_changes = {}) {
    SCOPED_TRACE(what);
    WorkerProcess worker(args, env_changes);
    const auto status = worker.wait_exit(30s);
    EXPECT_EQ(status, 2) << describe(status);
    const std::string err = worker.log();
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "stderr: " << err;
    EXPECT_GT(err.size(), 10u) << "stderr: " << err;
    last_stderr_ = err;
  }
  std::string last_stderr_;
};

TEST_F(WorkerStartup, UnreachableDatabase) {
  const auto handler = "q=exec:true";
  expect_startup_error({"--database", "host=127.0.0.1 port=1 dbname=taskq user=postgres connect_timeout=5", "--broker",
                        env("TASKQ_TEST_BROKER_URL"), "--handler", handler},
                       "unreachable database");
}

TEST_F(WorkerStartup, UnreachableBroker) {
  const std::string queue = create_queue("sbroker");
  expect_startup_error({"--database", env("TASKQ_TEST_DATABASE_URL"), "--broker", "amqp://guest:guest@127.0.0.1:1/",
                        "--handler", queue + "=exec:true"},
                       "unreachable broker");
}

TEST_F(WorkerStartup, BrokerRefusesTheLoginWithoutShowingThePassword) {
  const std::string queue = create_queue("slogin");
  std::string url = env("TASKQ_TEST_BROKER_URL");
  url.replace(url.find("guest:guest"), 11, "guest:sekrit-pw");
  expect_startup_error(
      {"--database", env("TASKQ_TEST_DATABASE_URL"), "--broker", url, "--handler", queue + "=exec:true"},
      "wrong broker password");
  EXPECT_EQ(last_stderr_.find("sekrit-pw"), std::string::npos) << last_stderr_;
}

TEST_F(WorkerStartup, UnknownQueue) {
  const std::string queue = unique_name("never_created");
  expect_startup_error(worker_args({{queue, "exec:true"}}), "unknown queue");
  EXPECT_NE(last_stderr_.find(queue), std::string::npos) << "the message names the queue: " << last_stderr_;
}

TEST_F(WorkerStartup, BadFlags) {
  const std::string queue = create_queue("sflags");
  const std::string handler = queue + "=exec:true";
  expect_startup_error(worker_args({{queue, "exec:true"}}, {"--concurrency", "0"}), "--concurrency 0");
  expect_startup_error(worker_args({{queue, "exec:true"}}, {"--concurrency", "many"}), "--concurrency many");
  expect_startup_error(worker_args({{queue, "exec:true"}}, {"--no-such-flag"}), "unknown flag");
  expect_startup_error(worker_args({}, {"--handler", "no-equals-sign"}), "handler without =");
  expect_startup_error(worker_args({{queue, "ftp://example.com/"}}), "handler of an unknown kind");
  expect_startup_error(worker_args({}), "no handler");
  expect_startup_error({"--broker", env("TASKQ_TEST_BROKER_URL"), "--handler", handler}, "no database");
  expect_startup_error({"--database", env("TASKQ_TEST_DATABASE_URL"), "--handler", handler}, "no broker");
  expect_startup_error(
      {"--database", env("TASKQ_TEST_DATABASE_URL"), "--broker", "http://not-amqp/", "--handler", handler},
      "broker URL that is not amqp://");
  expect_startup_error(worker_args({{queue, "exec:true"}}, {"--shutdown-timeout", "-1"}), "negative shutdown timeout");
}

}  // namespace
