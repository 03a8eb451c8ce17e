// The publisher when its own work goes wrong: a database error in a pass
// is retried in the same process over the same broker connection, the
// broker is never asked with a transaction open, and a publish the broker
// refused is tried again when its backoff ends.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "frozen_broker.hpp"
#include "test_env.hpp"
#include "worker_process.hpp"

using namespace std::chrono_literals;
using taskq::PgConnection;
using namespace taskq::test;

namespace {

using Clock = std::chrono::steady_clock;

long long ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

class PublisherErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    conn_.emplace(db());
    queue_ = unique_name("puberr");
    conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
  }

  PgConnection& conn() { return *conn_; }
  std::string rabbit_queue() const { return "taskq." + queue_; }
  std::string enqueue(const std::string& extra = "") {
    return conn().value("SELECT taskq.enqueue($1, '{}'::jsonb" + extra + ")", {queue_.c_str()});
  }
  std::string status(const std::string& column) { return conn().value("SELECT " + column + " FROM taskq.publisher"); }
  std::string backend_pid() {
    return conn().value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskq publisher'");
  }
  long outbox_rows() {
    return std::stol(conn().value("SELECT count(*) FROM taskq.outbox WHERE queue_name = $1", {queue_.c_str()}));
  }

  std::optional<PgConnection> conn_;
  std::string queue_;
};

// The publisher's connections as RabbitMQ lists them, one "peer port,
// connected at" per connection: a reconnect shows as a different entry.
std::vector<std::string> publisher_connections() {
  std::istringstream lines(
      rabbitmqctl_output("list_connections --no-table-headers peer_port connected_at client_properties").value_or(""));
  std::vector<std::string> out;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("taskq publisher (") == std::string::npos) continue;
    std::istringstream fields(line);
    std::string port, connected_at;
    fields >> port >> connected_at;
    out.push_back(port + " " + connected_at);
  }
  return out;
}

int server_log_lines_with(const std::string& needle) {
  std::ifstream log(env("TASKQ_TEST_PG_LOG"));
  int n = 0;
  for (std::string line; std::getline(log, line);)
    if (line.find(needle) != std::string::npos) ++n;
  return n;
}

// A database error in every pass that touches the queue's rows: a trigger
// refuses to delete them, so publishing works and recording the confirms
// fails. Switched off by clear() or the destructor.
class OutboxDeleteFault {
 public:
  OutboxDeleteFault(PgConnection& conn, const std::string& queue) : conn_(conn), name_("fault_" + queue) {
    conn_.exec("CREATE FUNCTION public." + name_ +
               "() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'injected fault for %', "
               "OLD.queue_name; END$$");
    conn_.exec("CREATE TRIGGER " + name_ + " BEFORE DELETE ON taskq.outbox FOR EACH ROW WHEN (OLD.queue_name = '" +
               queue + "') EXECUTE FUNCTION public." + name_ + "()");
  }
  ~OutboxDeleteFault() {
    try {
      clear();
    } catch (const std::exception& e) {
      std::cerr << "cannot remove the injected fault: " << e.what() << "\n";
    }
  }
  OutboxDeleteFault(const OutboxDeleteFault&) = delete;
  OutboxDeleteFault& operator=(const OutboxDeleteFault&) = delete;

  void clear() {
    if (cleared_) return;
    conn_.exec("DROP TRIGGER IF EXISTS " + name_ + " ON taskq.outbox");
    conn_.exec("DROP FUNCTION IF EXISTS public." + name_ + "()");
    cleared_ = true;
  }

 private:
  PgConnection& conn_;
  std::string name_;
  bool cleared_ = false;
};

// ALTER SYSTEM settings of one test, reset however the test ends.
class TestSettings {
 public:
  explicit TestSettings(PgConnection& conn) : conn_(conn) {}
  ~TestSettings() {
    for (const auto& name : names_) {
      try {
        set_setting(conn_, name, "");
      } catch (const std::exception& e) {
        std::cerr << "cannot reset " << name << ": " << e.what() << "\n";
      }
    }
  }
  TestSettings(const TestSettings&) = delete;
  TestSettings& operator=(const TestSettings&) = delete;

  void set(const std::string& name, const std::string& value) {
    names_.insert(name);
    set_setting(conn_, name, value);
  }

 private:
  PgConnection& conn_;
  std::set<std::string> names_;
};

TEST_F(PublisherErrors, ADatabaseErrorInEveryPassIsRetriedInTheSameProcessOverTheSameConnection) {
  ASSERT_TRUE(wait_until([&] { return status("connected") == "t"; }, 60s));
  const std::string pid = backend_pid();
  ASSERT_FALSE(pid.empty());
  const auto connections = publisher_connections();
  ASSERT_EQ(connections.size(), 1u) << "one broker connection of the publisher";
  const std::string fault_message = "injected fault for " + queue_;
  const std::string recovered_message = "taskq publisher: passes succeed again";
  const int recovered_before = server_log_lines_with(recovered_message);

  std::set<std::string> waiting;
  Clock::time_point cleared_at;
  {
    OutboxDeleteFault fault(conn(), queue_);
    waiting.insert(enqueue());
    EXPECT_TRUE(wait_until([&] { return status("last_error").find(fault_message) != std::string::npos; }, 10s))
        << "taskq.publisher.last_error: " << status("last_error");
    EXPECT_EQ(status("state"), "failing");
    // Several times the 2 s restart delay: a publisher that died of the
    // error would have a new pid and a new broker connection by now.
    std::this_thread::sleep_for(7s);
    waiting.insert(enqueue());
    EXPECT_EQ(backend_pid(), pid) << "the publisher restarted";
    EXPECT_EQ(status("pid"), pid);
    EXPECT_EQ(publisher_connections(), connections) << "the publisher connected to RabbitMQ again";
    EXPECT_EQ(status("connected"), "t");
    EXPECT_EQ(server_log_lines_with(fault_message), 1) << "logged once, not per retry";
    EXPECT_EQ(outbox_rows(), 2) << "rows whose pass failed stay in the outbox";
    fault.clear();
    cleared_at = Clock::now();
  }

  // The retry delay is capped at 10 s.
  EXPECT_TRUE(wait_until([&] { return outbox_rows() == 0; }, 15s)) << "still waiting after the fault was cleared";
  std::cout << "[ info ] published " << ms_since(cleared_at) << " ms after the fault was cleared\n";
  EXPECT_TRUE(wait_until([&] { return status("state") == "connected"; }, 5s)) << status("state");
  EXPECT_TRUE(wait_until([&] { return server_log_lines_with(recovered_message) == recovered_before + 1; }, 5s))
      << "no log line says the publisher works again";
  EXPECT_EQ(backend_pid(), pid);
  EXPECT_EQ(publisher_connections(), connections);

  // Every failed pass had published the first job before it failed:
  // at-least-once, the attempt in the message fences the duplicates.
  BrokerClient broker;
  std::map<std::string, int> arrived;
  EXPECT_TRUE(wait_until(
      [&] {
        while (auto d = broker.get(rabbit_queue())) ++arrived[d->message_id];
        return std::all_of(waiting.begin(), waiting.end(), [&](const std::string& id) { return arrived.count(id); });
      },
      10s))
      << "a job whose pass failed never arrived";
  std::cout << "[ info ] the first job arrived " << arrived[*waiting.begin()] << " time(s)\n";
}

TEST_F(PublisherErrors, TheReconcilerAsksAFrozenBrokerWithNoTransactionOpen) {
  // A pending job published a while ago, whose message is gone: the
  // reconciler asks RabbitMQ how many messages its queue holds.
  const std::string id = enqueue();
  {
    BrokerClient broker;  // closed before the freeze: it would time out
    ASSERT_EQ(collect(broker, rabbit_queue(), 1, 10s).size(), 1u);
  }
  ASSERT_TRUE(wait_until(
      [&] {
        return conn().value("SELECT published_at IS NOT NULL FROM taskq.jobs WHERE id = $1", {id.c_str()}) == "t";
      },
      5s));
  std::this_thread::sleep_for(1100ms);  // older than reconcile_after below

  std::vector<std::string> held;  // enqueued while frozen: not due, so not published into the frozen socket
  double longest_transaction_s = 0;
  long long slowest_enqueue_ms = 0;
  bool asked = false;
  {
    TestSettings settings(conn());
    FrozenBroker freeze;
    ASSERT_TRUE(freeze.frozen()) << "cannot SIGSTOP the RabbitMQ node";
    settings.set("taskq.reconcile_after", "1s");
    settings.set("taskq.maintenance_interval", "1s");
    // Within the broker's 10 s method timeout and before missing heartbeats
    // (20 s) end the connection.
    const auto until = Clock::now() + 8s;
    auto next_enqueue = Clock::now();
    while (Clock::now() < until) {
      auto r = conn().exec(
          "SELECT coalesce(extract(epoch FROM clock_timestamp() - xact_start), 0)::float8, coalesce(query, '')"
          " FROM pg_stat_activity WHERE backend_type = 'taskq publisher'");
      if (PQntuples(r.get()) == 1) {
        longest_transaction_s = std::max(longest_transaction_s, std::stod(PQgetvalue(r.get(), 0, 0)));
        if (std::string(PQgetvalue(r.get(), 0, 1)).find("asking RabbitMQ") != std::string::npos) asked = true;
      }
      if (Clock::now() >= next_enqueue) {
        const auto start = Clock::now();
        held.push_back(enqueue(", delay => '1 hour'"));
        slowest_enqueue_ms = std::max(slowest_enqueue_ms, ms_since(start));
        next_enqueue = Clock::now() + 500ms;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  EXPECT_LT(longest_transaction_s, 2.0) << "a publisher transaction stayed open while it waited for the broker";
  EXPECT_LT(slowest_enqueue_ms, 2000) << "an enqueue waited for the publisher";
  EXPECT_TRUE(asked) << "the reconciler did not ask the frozen broker: the test proved nothing";
  for (const auto& job : held) conn().exec("SELECT taskq.cancel($1)", {job.c_str()});
  // Healthy again for the tests that follow.
  EXPECT_TRUE(wait_until([&] { return status("connected") == "t"; }, 60s)) << status("last_error");
}

// A max-length 0 reject-publish policy makes the broker nack every publish
// to the queue, until it is cleared (also when the test fails).
class RejectingQueue {
 public:
  explicit RejectingQueue(const std::string& queue) : name_("reject_" + queue) {
    set = rabbitmqctl("set_policy --apply-to queues " + name_ + " '^taskq\\." + queue +
                      "$' '{\"max-length\": 0, \"overflow\": \"reject-publish\"}'") == 0;
  }
  ~RejectingQueue() { clear(); }
  RejectingQueue(const RejectingQueue&) = delete;
  RejectingQueue& operator=(const RejectingQueue&) = delete;
  void clear() {
    if (set) rabbitmqctl("clear_policy " + name_);
    set = false;
  }
  bool set;

 private:
  std::string name_;
};

TEST_F(PublisherErrors, ANackedPublishIsRetriedWhenItsBackoffEnds) {
  TestSettings settings(conn());
  // Only the row's own due time can wake the publisher this early.
  settings.set("taskq.poll_interval", "30s");
  RejectingQueue rejecting(queue_);
  ASSERT_TRUE(rejecting.set);
  const std::string id = enqueue();
  auto attempts = [&] {
    return conn().value("SELECT coalesce(max(publish_attempts), -1) FROM taskq.outbox WHERE job_id = $1", {id.c_str()});
  };
  ASSERT_TRUE(wait_until([&] { return attempts() == "1"; }, 15s, 5ms)) << "never nacked";
  const auto first_nack = Clock::now();
  EXPECT_EQ(conn().value("SELECT last_error LIKE '%nack%' FROM taskq.outbox WHERE job_id = $1", {id.c_str()}), "t");
  // The first retry is due 1 s after the nack.
  ASSERT_TRUE(wait_until([&] { return attempts() == "2"; }, 10s, 5ms)) << "never retried";
  const long long retried_after = ms_since(first_nack);
  EXPECT_LT(retried_after, 2000) << "retried late: the publisher slept past the row's due time";

  // Accepted from the next retry on (due 2 s after the second nack, or
  // later if clearing the policy took longer).
  rejecting.clear();
  std::string due_at;
  BrokerClient broker;
  std::optional<Delivery> got;
  ASSERT_TRUE(wait_until(
      [&] {
        const std::string due = conn().value("SELECT due_at FROM taskq.outbox WHERE job_id = $1", {id.c_str()});
        if (!due.empty()) due_at = due;
        return (got = broker.get(rabbit_queue())).has_value();
      },
      15s, 5ms))
      << "never published after the policy was cleared";
  EXPECT_EQ(got->message_id, id);
  const double late_s = std::stod(
      conn().value("SELECT extract(epoch FROM clock_timestamp() - $1::timestamptz)::float8", {due_at.c_str()}));
  std::cout << "[ info ] first retry " << retried_after << " ms after the nack; published " << late_s
            << " s after the last retry was due\n";
  EXPECT_LT(late_s, 1.5) << "published late: the publisher did not wake when the retry was due";
}

// A long run of nacks makes the publisher open a fresh connection (a
// quorum queue whose leader moved keeps nacking the old channel, see
// ConfirmTracker::nacks_in_a_row), and the nacked rows are published once
// the broker takes them again.
TEST_F(PublisherErrors, ALongRunOfNacksOpensAFreshConnection) {
  RejectingQueue rejecting(queue_);
  ASSERT_TRUE(rejecting.set);
  const long reconnects_before = std::stol(status("reconnects"));
  conn().exec("SELECT taskq.enqueue_many($1, (SELECT jsonb_agg(i) FROM generate_series(1, 40) i))", {queue_.c_str()});
  EXPECT_TRUE(wait_until([&] { return std::stol(status("reconnects")) > reconnects_before; }, 20s))
      << "no fresh connection after 40 nacks; last_error: " << status("last_error");
  EXPECT_NE(status("last_error").find("nacked the last"), std::string::npos) << status("last_error");
  rejecting.clear();
  BrokerClient broker;
  EXPECT_EQ(collect(broker, rabbit_queue(), 40, 60s).size(), 40u) << "nacked jobs were not published later";
  EXPECT_TRUE(wait_until([&] { return outbox_rows() == 0; }, 10s));
  EXPECT_EQ(status("connected"), "t");
}

}  // namespace
