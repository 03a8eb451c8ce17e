// Several jobs per message (jobs_per_message, docs/message-format.md#several-
// jobs-per-message): what the publisher sends, that taskq-worker runs every
// job of a packed message once, and that a worker killed with a packed
// message half done, or a broker restart, loses nothing and runs nothing
// twice.
#include <nlohmann/json.hpp>

#include <set>
#include <thread>

#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using namespace taskq::test;

namespace {

class PackedMessages : public WorkerFixture {
 protected:
  std::string steady_handler() {
    return scratch().script("steady.sh", std::string(kRecordRun) + "\nsleep 0.02\necho '\"ok\"'");
  }
};

// The jobs of each message: its body's array (or its one job), checked
// against the properties.
std::vector<json> jobs_of(const Delivery& d) {
  const json body = json::parse(d.body);
  if (!body.is_array()) {
    EXPECT_EQ(d.headers.count("x-taskq-jobs"), 0u);
    EXPECT_EQ(d.headers.at("x-taskq-attempt"), "1");
    return {body};
  }
  EXPECT_EQ(d.headers.at("x-taskq-jobs"), std::to_string(body.size()));
  EXPECT_EQ(d.headers.count("x-taskq-attempt"), 0u) << "a packed message's attempts are per job, in its body";
  EXPECT_EQ(d.message_id, body.at(0).at("id").get<std::string>());
  EXPECT_EQ(d.delivery_mode, 2);
  EXPECT_EQ(d.content_type, "application/json");
  return {body.begin(), body.end()};
}

}  // namespace

TEST_F(PackedMessages, AQueueWithJobsPerMessagePacksItsJobsAndOnlyThoseOfOnePriority) {
  const std::string queue = create_queue("packed", "jobs_per_message => 10");
  // One transaction: the publisher sees all of them in one claim.
  conn().exec("BEGIN");
  std::vector<std::string> ids = enqueue_many(queue, 23);
  const auto urgent = enqueue_many(queue, 4, ", priority => 5");
  conn().exec("COMMIT");
  ids.insert(ids.end(), urgent.begin(), urgent.end());

  BrokerClient broker;
  std::vector<Delivery> got;
  std::set<std::string> seen;
  ASSERT_TRUE(wait_until(
      [&] {
        while (auto d = broker.get("taskq." + queue)) {
          got.push_back(*d);
          for (const auto& j : jobs_of(*d)) seen.insert(j.at("id").get<std::string>());
        }
        return seen.size() == ids.size();
      },
      30s))
      << seen.size() << " of " << ids.size() << " jobs arrived";
  EXPECT_EQ(seen, std::set<std::string>(ids.begin(), ids.end()));
  // 23 at priority 0 in 10 + 10 + 3, and the 4 urgent ones apart.
  EXPECT_EQ(got.size(), 4u);
  std::size_t jobs_in_messages = 0;
  for (const auto& d : got) {
    const auto jobs = jobs_of(d);
    jobs_in_messages += jobs.size();
    EXPECT_LE(jobs.size(), 10u);
    for (const auto& j : jobs) {
      EXPECT_EQ(j.at("attempt"), 1);
      EXPECT_EQ(j.at("queue"), queue);
      EXPECT_EQ(j.at("payload").contains("n"), true);
    }
    // Only jobs of the message's priority go in it.
    std::set<long> priorities;
    for (const auto& j : jobs)
      priorities.insert(std::stol(
          conn().value("SELECT priority FROM taskq.jobs WHERE id = $1", {j.at("id").get<std::string>().c_str()})));
    EXPECT_EQ(priorities, std::set<long>{d.priority});
  }
  EXPECT_EQ(jobs_in_messages, ids.size()) << "a job went out twice";

  // Back to one message per job, within a second or so.
  conn().exec("SELECT taskq.alter_queue($1, jobs_per_message => 1)", {queue.c_str()});
  std::this_thread::sleep_for(1100ms);
  const auto later = enqueue_many(queue, 3);
  const auto single = collect(broker, "taskq." + queue, 3, 30s);
  ASSERT_EQ(single.size(), 3u);
  for (const auto& d : single) EXPECT_EQ(jobs_of(d).size(), 1u);
}

TEST_F(PackedMessages, TheWorkerRunsEveryJobOfAPackedMessageOnceAndPostsEachJobsOwnBody) {
  const std::string queue = create_queue("packedrun", "jobs_per_message => 7");
  // The handler records the body it got on stdin, which is the payload:
  // each job sees its own.
  const std::string handler =
      scratch().script("echo.sh", std::string(kRecordRun) + "\npayload=$(cat)\necho \"{\\\"got\\\": $payload}\"");
  const auto ids = enqueue_many(queue, 100);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "4"}));
  ASSERT_TRUE(wait_status_count(queue, "completed", 100, 120s)) << count_jobs(queue, "completed") << " completed";
  for (std::size_t i = 0; i < ids.size(); ++i)
    EXPECT_EQ(json::parse(job(ids[i]).result.value_or("null")), (json{{"got", {{"n", i + 1}}}})) << ids[i];
  // Every packed message was acked once all its jobs were done.
  EXPECT_TRUE(wait_until([&] { return rabbit_queue_total_messages("taskq." + queue) == 0; }, 30s));
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once(ids);
}

TEST_F(PackedMessages, AWorkerKilledWithPackedMessagesHalfDoneLosesNothingAndRunsNothingTwice) {
  // The killed worker's running jobs come back when their lease ends; the
  // rest of its unacked messages at once (their finished jobs then stale).
  use_fast_maintenance();
  const std::string queue = create_queue("packedkill", "jobs_per_message => 10, lease => '3 seconds'");
  const std::string handler = steady_handler();
  const auto ids = enqueue_many(queue, 300);
  {
    WorkerProcess first(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "4"}));
    ASSERT_TRUE(wait_status_count(queue, "completed", 40, 120s));
    first.kill();
    scratch().kill_handlers();
  }
  const long done_before = count_jobs(queue, "completed");
  EXPECT_LT(done_before, 300) << "all jobs were done before the kill";
  WorkerProcess second(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "4"}));
  EXPECT_TRUE(wait_status_count(queue, "completed", 300, 180s)) << count_jobs(queue, "completed") << " completed";
  EXPECT_TRUE(wait_until([&] { return rabbit_queue_total_messages("taskq." + queue) == 0; }, 30s));
  second.terminate();
  EXPECT_EQ(second.wait_exit(60s), 0);
  // A job running at the kill ran again (attempt 2); every other once.
  const auto ran = runs();
  EXPECT_EQ(ran.size(), ids.size());
  long twice = 0;
  for (const auto& id : ids) {
    const auto it = ran.find(id);
    ASSERT_NE(it, ran.end()) << id << " never ran";
    if (it->second.size() > 1) {
      ++twice;
      EXPECT_EQ(it->second, std::vector<int>({1, 2})) << id;
    }
  }
  EXPECT_LE(twice, 8) << "more jobs ran twice than were running at the kill";
  EXPECT_EQ(job(ids.back()).status, "completed");
}

TEST_F(PackedMessages, ABrokerRestartMidStreamLosesNothingAndRunsNothingTwice) {
  const std::string queue = create_queue("packedrestart", "jobs_per_message => 10");
  const std::string handler = steady_handler();
  const auto ids = enqueue_many(queue, 300);
  WorkerProcess worker(worker_args({{queue, "exec:" + handler}}, {"--concurrency", "4"}));
  ASSERT_TRUE(wait_status_count(queue, "completed", 40, 120s));
  EXPECT_LT(count_jobs(queue, "completed"), 300L) << "all jobs were done before the restart";
  env_action("broker-restart");
  EXPECT_TRUE(wait_status_count(queue, "completed", 300, 180s)) << count_jobs(queue, "completed") << " completed";
  EXPECT_TRUE(worker.running());
  EXPECT_TRUE(wait_until([&] { return rabbit_queue_total_messages("taskq." + queue) == 0; }, 60s));
  worker.terminate();
  EXPECT_EQ(worker.wait_exit(60s), 0);
  expect_each_ran_once(ids);
}
