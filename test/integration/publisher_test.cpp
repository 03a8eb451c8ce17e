// The outbox publisher against a real PostgreSQL and RabbitMQ: what it
// publishes, what it must never publish, and that no committed job is lost
// when the broker or the publisher itself fails.
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "frozen_broker.hpp"
#include "test_env.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using taskq::AmqpConnection;
using taskq::BrokerUrl;
using taskq::PgConnection;
using namespace taskq::test;

namespace {

class Publisher : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    conn_.emplace(db());
    broker_.emplace();
    queue_ = unique_name("pub");
    conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
  }

  PgConnection& conn() { return *conn_; }
  BrokerClient& broker() { return *broker_; }
  std::string rabbit_queue() const { return "taskq." + queue_; }

  std::string enqueue(const std::string& payload = "{}", const std::string& extra = "") {
    return conn().value("SELECT taskq.enqueue($1, $2::jsonb" + extra + ")", {queue_.c_str(), payload.c_str()});
  }
  long outbox_rows() {
    return std::stol(
        conn().value("SELECT count(*) FROM taskq.outbox o JOIN taskq.jobs j ON j.id = o.job_id WHERE j.queue_name = $1",
                     {queue_.c_str()}));
  }
  bool outbox_drained() { return outbox_rows() == 0; }
  std::set<std::string> ids(const std::vector<Delivery>& ds) {
    std::set<std::string> out;
    for (const auto& d : ds) out.insert(d.message_id);
    return out;
  }
  std::set<std::string> enqueue_n(int n) {
    std::set<std::string> out;
    for (int i = 0; i < n; ++i) out.insert(enqueue());
    return out;
  }
  std::string status(const std::string& column) { return conn().value("SELECT " + column + " FROM taskq.publisher"); }

  std::optional<PgConnection> conn_;
  std::optional<BrokerClient> broker_;
  std::string queue_;
};

TEST_F(Publisher, CommittedJobArrivesWithTheContractsPropertiesAndBody) {
  const std::string id =
      enqueue(R"({"to": "a@b.c"})", ", task => 'welcome', priority => 7, headers => '{\"tenant\": \"acme\"}'");
  const auto got = collect(broker(), rabbit_queue(), 1, 10s);
  ASSERT_EQ(got.size(), 1u);
  const Delivery& d = got[0];
  EXPECT_EQ(d.message_id, id);
  EXPECT_EQ(d.type, "welcome");
  EXPECT_EQ(d.content_type, "application/json");
  EXPECT_EQ(d.delivery_mode, 2);
  EXPECT_EQ(d.priority, 7);
  EXPECT_GT(d.timestamp, 1'700'000'000u);
  EXPECT_EQ(d.headers.at("x-taskq-attempt"), "1");
  EXPECT_EQ(d.headers.at("tenant"), "acme");
  const json body = json::parse(d.body);
  EXPECT_EQ(body["id"], id);
  EXPECT_EQ(body["queue"], queue_);
  EXPECT_EQ(body["task"], "welcome");
  EXPECT_EQ(body["payload"], json::parse(R"({"to": "a@b.c"})"));
  EXPECT_EQ(body["attempt"], 1);
  EXPECT_EQ(body["max_attempts"], 5);
  EXPECT_TRUE(body["enqueued_at"].is_string());
  EXPECT_EQ(body["headers"], json::parse(R"({"tenant": "acme"})"));
  EXPECT_TRUE(wait_until([&] { return outbox_drained(); }, 5s)) << "confirmed rows are deleted";
  EXPECT_EQ(conn().value("SELECT published_at IS NOT NULL FROM taskq.jobs WHERE id = $1", {id.c_str()}), "t");
}

TEST_F(Publisher, RolledBackJobsAreNeverPublished) {
  conn().exec("BEGIN");
  enqueue(R"({"rolled": "back"})");
  conn().exec("ROLLBACK");
  conn().exec("BEGIN");
  conn().exec("SAVEPOINT s");
  enqueue(R"({"savepoint": "rolled back"})");
  conn().exec("ROLLBACK TO SAVEPOINT s");
  const std::string kept = enqueue(R"({"kept": true})");
  conn().exec("COMMIT");
  const auto got = collect(broker(), rabbit_queue(), 1, 10s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message_id, kept);
  // Anything else would have been published in the same pass or the next.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(broker().count(rabbit_queue()), 0);
}

TEST_F(Publisher, ALongTransactionThatCommitsLaterIsNotSkipped) {
  PgConnection slow = db();
  slow.exec("BEGIN");
  const std::string late = slow.value("SELECT taskq.enqueue($1, '{\"late\": true}')", {queue_.c_str()});
  std::set<std::string> early;
  for (int i = 0; i < 5; ++i) early.insert(enqueue());
  auto got = collect(broker(), rabbit_queue(), 5, 10s);
  ASSERT_EQ(ids(got), early);
  slow.exec("COMMIT");
  got = collect(broker(), rabbit_queue(), 1, 10s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message_id, late);
}

TEST_F(Publisher, DelayedJobsArriveWhenDueAndNotBefore) {
  const std::string id = enqueue("{}", ", delay => '2 seconds'");
  const auto start = std::chrono::steady_clock::now();
  auto got = collect(broker(), rabbit_queue(), 1, 8s);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message_id, id);
  EXPECT_GE(waited, 1900ms) << "published before it was due";
  EXPECT_LE(waited, 4000ms) << "published late: the publisher did not wake when it became due";
}

TEST_F(Publisher, PausedQueuesHoldTheirJobsUntilResumed) {
  conn().exec("SELECT taskq.pause_queue($1)", {queue_.c_str()});
  const std::string id = enqueue();
  EXPECT_FALSE(wait_until([&] { return broker().count(rabbit_queue()) > 0; }, 1500ms)) << "paused queue published";
  EXPECT_EQ(outbox_rows(), 1);
  conn().exec("SELECT taskq.resume_queue($1)", {queue_.c_str()});
  const auto got = collect(broker(), rabbit_queue(), 1, 10s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message_id, id);
}

TEST_F(Publisher, CommitWakesThePublisherAtOnce) {
  // With a long poll interval only the commit-time wake-up can make this fast.
  set_setting(conn(), "taskq.poll_interval", "30s");
  std::this_thread::sleep_for(300ms);
  enqueue();
  const auto start = std::chrono::steady_clock::now();
  std::optional<Delivery> got;
  wait_until([&] { return (got = broker().get(rabbit_queue())).has_value(); }, 10s, 1ms);
  const auto took = std::chrono::steady_clock::now() - start;
  set_setting(conn(), "taskq.poll_interval", "");
  ASSERT_TRUE(got.has_value());
  EXPECT_LT(took, 2s);
}

TEST_F(Publisher, EveryJobArrivesOnceAfterTheBrokerWasDown) {
  env_action("broker-stop");
  std::set<std::string> enqueued;
  for (int i = 0; i < 50; ++i) enqueued.insert(enqueue());  // enqueue does not need the broker
  EXPECT_EQ(outbox_rows(), 50);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(outbox_rows(), 50) << "rows must be kept while the broker is down";
  EXPECT_EQ(conn().value("SELECT connected FROM taskq.publisher"), "f");
  env_action("broker-start");
  BrokerClient fresh;
  EXPECT_TRUE(wait_until([&] { return outbox_drained(); }, 60s));
  const auto got = collect(fresh, rabbit_queue(), 50, 10s);
  EXPECT_EQ(got.size(), 50u) << "exactly once: no loss, and no duplicate from a clean reconnect";
  EXPECT_EQ(ids(got), enqueued);
  broker_.reset();
}

TEST_F(Publisher, ConnectionsClosedMidStreamLoseNothing) {
  std::set<std::string> enqueued;
  std::thread closer([&] {
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(150ms);
      rabbitmqctl("close_all_connections 'test: closed mid-stream'");
    }
  });
  for (int i = 0; i < 20; ++i) {
    auto r = conn().exec("SELECT taskq.enqueue_many($1, (SELECT jsonb_agg(g) FROM generate_series(1, 50) g))",
                         {queue_.c_str()});
    for (int k = 0; k < PQntuples(r.get()); ++k) enqueued.insert(PQgetvalue(r.get(), k, 0));
    std::this_thread::sleep_for(20ms);
  }
  closer.join();
  ASSERT_EQ(enqueued.size(), 1000u);
  EXPECT_TRUE(wait_until([&] { return outbox_drained(); }, 60s));
  BrokerClient fresh;
  const auto got = collect(fresh, rabbit_queue(), 1000, 20s);
  EXPECT_EQ(ids(got), enqueued) << "every committed job reached RabbitMQ (duplicates are allowed, loss is not)";
  broker_.reset();
}

TEST_F(Publisher, NackedMessagesStayInTheOutboxUntilTheBrokerTakesThem) {
  // A max-length-1 reject-publish policy makes the broker nack everything
  // beyond the first message.
  ASSERT_EQ(rabbitmqctl("set_policy --apply-to queues reject_" + queue_ + " '^" + rabbit_queue() +
                        "$' '{\"max-length\": 1, \"overflow\": \"reject-publish\"}'"),
            0);
  std::set<std::string> enqueued;
  for (int i = 0; i < 4; ++i) enqueued.insert(enqueue());
  EXPECT_TRUE(wait_until(
      [&] {
        return conn().value(
                   "SELECT count(*) FROM taskq.outbox o JOIN taskq.jobs j ON j.id = o.job_id "
                   "WHERE j.queue_name = $1 AND o.publish_attempts > 0 AND o.last_error LIKE '%nack%'",
                   {queue_.c_str()}) == "3";
      },
      15s))
      << "three nacked rows kept with their error";
  ASSERT_EQ(rabbitmqctl("clear_policy reject_" + queue_), 0);
  std::vector<Delivery> got;
  EXPECT_TRUE(wait_until(
      [&] {
        while (auto d = broker().get(rabbit_queue())) got.push_back(*d);
        return ids(got) == enqueued;
      },
      30s))
      << "all four arrive once the policy is gone (got " << got.size() << ")";
}

TEST_F(Publisher, AQueueDeletedUnderThePublisherIsDeclaredAgainAndItsJobsRepublished) {
  const std::string first = enqueue();
  ASSERT_EQ(collect(broker(), rabbit_queue(), 1, 10s).size(), 1u);
  // It ran (a consumer started and completed it), so it is not "lost".
  ASSERT_EQ(conn().value("SELECT count(*) FROM taskq.start($1, 1, 'test')", {first.c_str()}), "1");
  ASSERT_EQ(conn().value("SELECT taskq.complete($1, 1)", {first.c_str()}), "t");
  // A second job sits in RabbitMQ; then the queue disappears with it.
  const std::string lost = enqueue();
  ASSERT_TRUE(wait_until([&] { return broker().count(rabbit_queue()) == 1; }, 10s));
  broker().delete_queue(rabbit_queue());
  set_setting(conn(), "taskq.reconcile_after", "1s");
  set_setting(conn(), "taskq.maintenance_interval", "1s");
  // A new job is returned as unroutable, then published after re-declaring.
  const std::string fresh = enqueue();
  std::vector<Delivery> got;
  const bool ok = wait_until(
      [&] {
        while (auto d = broker().get(rabbit_queue())) got.push_back(*d);
        return ids(got).count(lost) == 1 && ids(got).count(fresh) == 1;
      },
      30s);
  set_setting(conn(), "taskq.reconcile_after", "");
  set_setting(conn(), "taskq.maintenance_interval", "");
  EXPECT_TRUE(ok) << "the lost job (reconciler) and the new one (re-declare) arrive";
  EXPECT_EQ(ids(got).count(first), 0u) << "a job that ran is not published again";
}

TEST_F(Publisher, RestartsAfterBeingTerminated) {
  const std::string pid = conn().value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskq publisher'");
  ASSERT_FALSE(pid.empty());
  conn().exec("SELECT pg_terminate_backend($1::int)", {pid.c_str()});
  EXPECT_TRUE(wait_until(
      [&] {
        const std::string now = conn().value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskq publisher'");
        return !now.empty() && now != pid;
      },
      15s));
  const std::string id = enqueue();
  const auto got = collect(broker(), rabbit_queue(), 1, 15s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message_id, id);
}

TEST_F(Publisher, SighupSwitchesTheBrokerUrl) {
  // Connected first: a publisher still in its start-up backoff could
  // connect to the old URL just before the reload.
  ASSERT_TRUE(wait_until([&] { return status("connected") == "t"; }, 60s));
  set_setting(conn(), "taskq.broker_url", "amqp://guest:guest@127.0.0.1:1/");
  EXPECT_TRUE(wait_until([&] { return conn().value("SELECT connected FROM taskq.publisher") == "f"; }, 10s));
  const std::string id = enqueue();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(outbox_rows(), 1) << "kept while the broker is unreachable";
  const std::string error = conn().value("SELECT last_error FROM taskq.publisher");
  EXPECT_EQ(error.find("guest:guest"), std::string::npos) << "the password must not leak: " << error;
  set_setting(conn(), "taskq.broker_url", "");  // back to postgresql.conf's URL
  const auto got = collect(broker(), rabbit_queue(), 1, 20s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message_id, id);
}

// How many times each message id arrived.
std::map<std::string, int> arrivals(const std::vector<Delivery>& ds) {
  std::map<std::string, int> out;
  for (const auto& d : ds) ++out[d.message_id];
  return out;
}

// Everything in `queue` that arrives until `expected` distinct ids are
// there, and then anything more within a short grace period (duplicates).
std::vector<Delivery> collect_all(const std::string& queue, const std::set<std::string>& expected,
                                  std::chrono::milliseconds timeout) {
  BrokerClient client;
  std::vector<Delivery> got;
  auto all_there = [&] {
    const auto seen = arrivals(got);
    for (const auto& id : expected)
      if (seen.count(id) == 0) return false;
    return true;
  };
  wait_until(
      [&] {
        while (auto d = client.get(queue)) got.push_back(std::move(*d));
        return all_there();
      },
      timeout);
  std::this_thread::sleep_for(1s);
  while (auto d = client.get(queue)) got.push_back(std::move(*d));
  return got;
}

TEST_F(Publisher, AFrozenBrokerIsNoticedWithinTheTimeoutsAndNoJobIsLost) {
  // Declare the queue on the publisher's connection first: later publishes
  // go straight into the frozen socket and their confirms never come.
  enqueue();
  ASSERT_EQ(collect(broker(), rabbit_queue(), 1, 10s).size(), 1u);
  broker_.reset();  // its connection would time out while frozen

  FrozenBroker freeze;
  ASSERT_TRUE(freeze.frozen()) << "cannot SIGSTOP the RabbitMQ node";
  const auto frozen_at = std::chrono::steady_clock::now();
  const std::set<std::string> in_flight = enqueue_n(20);
  // Budget: the confirm timeout (10 s) or, idle, two heartbeats (20 s).
  EXPECT_TRUE(wait_until([&] { return status("connected") == "f"; }, 30s, 100ms))
      << "the publisher still believes in a frozen broker";
  const auto noticed_after = std::chrono::steady_clock::now() - frozen_at;
  EXPECT_FALSE(status("last_error").empty());
  EXPECT_EQ(outbox_rows(), 20) << "unconfirmed rows are kept";

  // Enqueued while the broker is known to be unreachable.
  const std::set<std::string> held = enqueue_n(20);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(outbox_rows(), 40);
  EXPECT_EQ(status("connected"), "f");
  freeze.thaw();

  EXPECT_TRUE(wait_until([&] { return outbox_drained(); }, 90s));
  std::set<std::string> all = in_flight;
  all.insert(held.begin(), held.end());
  const auto got = arrivals(collect_all(rabbit_queue(), all, 30s));
  int duplicates = 0;
  for (const auto& id : all) {
    const int n = got.count(id) ? got.at(id) : 0;
    EXPECT_GE(n, 1) << "job " << id << " was lost";
    if (held.count(id)) {
      EXPECT_EQ(n, 1) << "job " << id << " was never sent before the thaw, so it arrives once";
    }
    if (n > 1) duplicates += n - 1;
  }
  EXPECT_EQ(got.size(), all.size()) << "no message other than the test's";
  // Messages sent into the frozen socket are read by the broker after the
  // thaw although their confirms were lost: those may come twice.
  std::cout << "[ info ] noticed after " << std::chrono::duration_cast<std::chrono::milliseconds>(noticed_after).count()
            << " ms; duplicates of in-flight jobs: " << duplicates << " of " << in_flight.size() << "\n";
  RecordProperty("duplicates", duplicates);
}

TEST_F(Publisher, AnIdlePublisherNoticesAFrozenBrokerByHeartbeats) {
  ASSERT_EQ(status("connected"), "t");
  FrozenBroker freeze;
  ASSERT_TRUE(freeze.frozen()) << "cannot SIGSTOP the RabbitMQ node";
  // Nothing to publish: only missing heartbeats (10 s, two missed) can tell.
  EXPECT_TRUE(wait_until([&] { return status("connected") == "f"; }, 40s, 200ms)) << "a silent broker went unnoticed";
  const std::string held = enqueue();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(outbox_rows(), 1);
  freeze.thaw();
  broker_.reset();
  const auto got = arrivals(collect_all(rabbit_queue(), {held}, 60s));
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(got.count(held) ? got.at(held) : 0, 1) << "exactly once";
}

// Restores the memory watermark even when the test fails.
struct MemoryAlarm {
  MemoryAlarm() { raised = rabbitmqctl("set_vm_memory_high_watermark 0.000001") == 0; }
  ~MemoryAlarm() { rabbitmqctl("set_vm_memory_high_watermark 0.4"); }
  bool raised;
};

TEST_F(Publisher, AMemoryAlarmHoldsJobsInTheOutboxUntilItClears) {
  std::set<std::string> enqueued;
  {
    MemoryAlarm alarm;
    ASSERT_TRUE(alarm.raised);
    enqueued = enqueue_n(10);
    // RabbitMQ announces the block (connection.blocked) at the first publish.
    EXPECT_TRUE(wait_until([&] { return status("blocked") == "t"; }, 20s, 100ms))
        << "taskq.publisher.blocked not set: " << status("state") << " " << status("last_error");
    EXPECT_EQ(status("connected"), "t") << "a blocked broker is alive: no reconnect";
    enqueued.merge(enqueue_n(10));
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(outbox_rows(), 20) << "every row stays in the outbox while the broker blocks publishing";
  }
  EXPECT_TRUE(wait_until([&] { return status("blocked") == "f" && outbox_drained(); }, 30s));
  const auto got = arrivals(collect_all(rabbit_queue(), enqueued, 30s));
  EXPECT_EQ(got.size(), enqueued.size());
  for (const auto& id : enqueued) EXPECT_EQ(got.count(id) ? got.at(id) : 0, 1) << "job " << id << " exactly once";
}

TEST_F(Publisher, ABrokerRestartMidStreamLosesNoJob) {
  std::mutex mutex;
  std::set<std::string> enqueued;
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    PgConnection app = db();
    while (!stop) {
      const std::string id = app.value("SELECT taskq.enqueue($1, '{}')", {queue_.c_str()});
      {
        std::lock_guard<std::mutex> lock(mutex);
        enqueued.insert(id);
      }
      std::this_thread::sleep_for(10ms);
    }
  });
  std::this_thread::sleep_for(1s);
  env_action("broker-restart");  // graceful stop, then start: ~10-20 s
  std::this_thread::sleep_for(2s);
  stop = true;
  producer.join();
  broker_.reset();
  ASSERT_GT(enqueued.size(), 100u);
  EXPECT_TRUE(wait_until([&] { return outbox_drained(); }, 90s));
  const auto got = arrivals(collect_all(rabbit_queue(), enqueued, 60s));
  int duplicates = 0;
  for (const auto& id : enqueued) {
    const int n = got.count(id) ? got.at(id) : 0;
    EXPECT_GE(n, 1) << "job " << id << " was lost";
    if (n > 1) duplicates += n - 1;
  }
  // Duplicates only come from publishes whose confirms the restart swallowed.
  std::cout << "[ info ] " << enqueued.size() << " jobs, duplicates: " << duplicates << "\n";
  RecordProperty("duplicates", duplicates);
}

TEST_F(Publisher, AChannelErrorOnOneQueueDoesNotHoldUpTheOthers) {
  // The RabbitMQ queue exists with other arguments: declaring it fails with
  // 406 PRECONDITION_FAILED and the broker closes the channel.
  AmqpConnection admin(BrokerUrl::parse(env("TASKQ_TEST_BROKER_URL")), {});
  admin.declare_queue(rabbit_queue(), "quorum");
  const std::string other = unique_name("pub_ok");
  conn().exec("SELECT taskq.create_queue($1)", {other.c_str()});

  const std::string stuck = enqueue();
  const std::string fine = conn().value("SELECT taskq.enqueue($1, '{}')", {other.c_str()});
  const auto got = collect(broker(), "taskq." + other, 1, 15s);
  ASSERT_GE(got.size(), 1u);
  EXPECT_EQ(got[0].message_id, fine);
  EXPECT_TRUE(wait_until(
      [&] {
        return conn().value("SELECT count(*) FROM taskq.outbox WHERE job_id = $1 AND last_error LIKE '%406%'",
                            {stuck.c_str()}) == "1";
      },
      15s))
      << "the refused job stays in the outbox with the broker's error";
  EXPECT_EQ(status("connected"), "t") << "a channel error does not cost the connection";

  amqp_queue_delete(admin.state(), AmqpConnection::kChannel, amqp_cstring_bytes(rabbit_queue().c_str()), 0, 0);
  taskq::check_rpc_reply(amqp_get_rpc_reply(admin.state()), "deleting the conflicting queue");
  const auto later = collect(broker(), rabbit_queue(), 1, 30s);
  ASSERT_EQ(later.size(), 1u) << "published once the queue could be declared";
  EXPECT_EQ(later[0].message_id, stuck);
}

TEST_F(Publisher, ConnectFailuresAreLoggedOnceAndWithoutThePassword) {
  // Only the publisher's lines: PostgreSQL itself logs a reloaded setting's
  // new value ("parameter ... changed to ...").
  auto log_lines_with = [](const std::string& needle) {
    std::ifstream log(env("TASKQ_TEST_PG_LOG"));
    int n = 0;
    for (std::string line; std::getline(log, line);)
      if (line.find("taskq publisher") != std::string::npos && line.find(needle) != std::string::npos) ++n;
    return n;
  };
  // Port 1: refused at once, so the publisher retries many times (backoff
  // from 200 ms) during the test.
  const std::string line = "cannot connect to amqp://guest@127.0.0.1:1/";
  ASSERT_TRUE(wait_until([&] { return status("connected") == "t"; }, 60s));
  const int before = log_lines_with(line);
  const std::string secret = unique_name("pw");
  set_setting(conn(), "taskq.broker_url", "amqp://guest:" + secret + "@127.0.0.1:1/");
  EXPECT_TRUE(wait_until([&] { return log_lines_with(line) > before; }, 10s));
  std::this_thread::sleep_for(3s);  // several retries
  const int logged = log_lines_with(line) - before;
  const int leaked = log_lines_with(secret);
  set_setting(conn(), "taskq.broker_url", "");
  EXPECT_EQ(logged, 1) << "one line per change of state, not per retry";
  EXPECT_EQ(leaked, 0) << "the password reached the server log";
  EXPECT_TRUE(wait_until([&] { return status("connected") == "t"; }, 20s));
}

// A TCP listener that accepts connections and never says a word: a
// blackholed broker.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 16);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { close(fd_); }  // accepted-but-unanswered connections stay in the backlog
  int port() const { return port_; }

 private:
  int fd_;
  int port_;
};

TEST_F(Publisher, FastShutdownFinishesInSecondsWithTheBrokerBlackholed) {
  SilentListener blackhole;
  set_setting(conn(), "taskq.broker_url", "amqp://guest:guest@127.0.0.1:" + std::to_string(blackhole.port()) + "/");
  enqueue();
  std::this_thread::sleep_for(1500ms);  // the publisher is now stuck talking to the blackhole
  conn_.reset();
  const auto start = std::chrono::steady_clock::now();
  env_action("pg-stop");
  const auto took = std::chrono::steady_clock::now() - start;
  env_action("pg-start");
  PgConnection again = db();
  set_setting(again, "taskq.broker_url", "");
  EXPECT_LT(took, 10s) << "pg_ctl stop -m fast waited for the broker";
}

}  // namespace
