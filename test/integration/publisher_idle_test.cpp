// The publisher where it must do nothing: in a database without the
// extension, and on a standby. It idles there (no errors, no restarts, no
// broker connection) and starts publishing once the extension is created or
// the standby is promoted.
#include <unistd.h>

#include <fstream>
#include <thread>

#include "test_env.hpp"

using namespace std::chrono_literals;
using taskq::PgConnection;
using namespace taskq::test;

namespace {

std::string publisher_pid(PgConnection& c) {
  return c.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskq publisher'");
}

// Server log lines of one process (log_line_prefix '%m [%p] ...') at ERROR or worse.
int error_lines_of(const std::string& pid) {
  std::ifstream log(env("TASKQ_TEST_PG_LOG"));
  int n = 0;
  for (std::string line; std::getline(log, line);)
    if (line.find("[" + pid + "]") != std::string::npos &&
        (line.find("ERROR:") != std::string::npos || line.find("FATAL:") != std::string::npos))
      ++n;
  return n;
}

TEST(PublisherIdle, WithoutTheExtensionItIdlesThenPublishesOnceItIsCreated) {
  TASKQ_REQUIRE_TEST_ENV();
  PgConnection c = db();
  ASSERT_TRUE(wait_until([&] { return !publisher_pid(c).empty(); }, 30s));
  const std::string pid = publisher_pid(c);
  const int errors_before = error_lines_of(pid);

  c.exec("DROP EXTENSION taskq CASCADE");
  // Several of its passes (poll interval 1 s) see no extension.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(publisher_pid(c), pid) << "the publisher restarted (it died) without the extension";
  EXPECT_EQ(error_lines_of(pid), errors_before) << "the publisher logged errors without the extension";

  c.exec("CREATE EXTENSION taskq");
  const std::string queue = unique_name("idle");
  c.exec("SELECT taskq.create_queue($1)", {queue.c_str()});
  const std::string id = c.value("SELECT taskq.enqueue($1)", {queue.c_str()});
  BrokerClient broker;
  const auto got = collect(broker, "taskq." + queue, 1, 30s);
  ASSERT_EQ(got.size(), 1u) << "published once the extension exists again";
  EXPECT_EQ(got[0].message_id, id);
  EXPECT_EQ(publisher_pid(c), pid);
}

// A physical standby of the test cluster, removed again at the end.
class Standby {
 public:
  Standby() {
    const std::string bin = env("TASKQ_TEST_PG_BIN").empty() ? "/usr/lib/postgresql/15/bin" : env("TASKQ_TEST_PG_BIN");
    as_pg_ = getuid() == 0 ? "runuser -u postgres -- " : "";
    dir_ = env("TASKQ_TEST_STATE") + "/pg/standby";
    pg_ctl_ = as_pg_ + bin + "/pg_ctl -D '" + dir_ + "' -l '" + dir_ + ".log' -w -t 60 ";
    port_ = free_tcp_port();
    run("rm -rf '" + dir_ + "'");
    // -R writes standby.signal and primary_conninfo; postgresql.conf (with
    // shared_preload_libraries = 'taskq') comes along with the data folder.
    ok_ = run(as_pg_ + bin + "/pg_basebackup -h 127.0.0.1 -p " + env("PGPORT") + " -U postgres -D '" + dir_ +
              "' -R -X stream >/dev/null 2>&1") == 0 &&
          run(pg_ctl_ + "-o '-p " + std::to_string(port_) + "' start >/dev/null") == 0;
  }
  ~Standby() {
    run(pg_ctl_ + "-m immediate stop >/dev/null 2>&1");
    run("rm -rf '" + dir_ + "' '" + dir_ + ".log'");
  }
  bool ok() const { return ok_; }
  bool promote() { return run(pg_ctl_ + "promote >/dev/null") == 0; }
  PgConnection connect() const {
    return PgConnection("host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=taskq");
  }

 private:
  std::string as_pg_, dir_, pg_ctl_;
  int port_ = 0;
  bool ok_ = false;
};

TEST(PublisherIdle, OnAStandbyItWaitsInRecoveryAndStartsWhenPromoted) {
  TASKQ_REQUIRE_TEST_ENV();
  PgConnection primary = db();
  const std::string queue = unique_name("standby");
  primary.exec("SELECT taskq.create_queue($1)", {queue.c_str()});
  Standby standby;
  ASSERT_TRUE(standby.ok()) << "could not set up a standby of the test cluster";
  PgConnection replica = standby.connect();
  auto state = [&] { return replica.value("SELECT state FROM taskq.publisher"); };
  ASSERT_TRUE(wait_until([&] { return state() == "in recovery"; }, 30s)) << "state: " << state();
  EXPECT_EQ(replica.value("SELECT connected FROM taskq.publisher"), "f");

  // A job enqueued on the primary reaches the standby's tables; the
  // standby's publisher keeps away from it (the primary publishes it).
  const std::string id = primary.value("SELECT taskq.enqueue($1)", {queue.c_str()});
  ASSERT_TRUE(wait_until(
      [&] { return replica.value("SELECT count(*) FROM taskq.jobs WHERE id = $1", {id.c_str()}) == "1"; }, 30s));
  EXPECT_EQ(state(), "in recovery");
  EXPECT_EQ(replica.value("SELECT published FROM taskq.publisher"), "0");

  // Promoted, it is a primary: its publisher connects and publishes.
  ASSERT_TRUE(standby.promote());
  EXPECT_TRUE(wait_until([&] { return state() == "connected"; }, 60s)) << "state: " << state();
  const std::string after = replica.value("SELECT taskq.enqueue($1)", {queue.c_str()});
  BrokerClient broker;
  bool seen = false;
  wait_until(
      [&] {
        while (auto d = broker.get("taskq." + queue)) seen = seen || d->message_id == after;
        return seen;
      },
      30s);
  EXPECT_TRUE(seen) << "the promoted server published its job";
}

}  // namespace
