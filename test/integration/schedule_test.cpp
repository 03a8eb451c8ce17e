// Periodic jobs fired by the real publisher: one job per tick, on time,
// and the missed-tick rules when PostgreSQL was down (one job for the
// latest tick, or one per missed tick with catch_up).
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "test_env.hpp"

using namespace std::chrono_literals;
using taskq::PgConnection;
using namespace taskq::test;

namespace {

class Schedules : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    conn_.emplace(db());
    queue_ = unique_name("sched");
    conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
  }
  void TearDown() override {
    if (!conn_) return;
    for (const auto& name : schedules_) conn().exec("SELECT taskq.unschedule($1)", {name.c_str()});
  }

  PgConnection& conn() { return *conn_; }

  std::string schedule(const std::string& cron, bool catch_up = false) {
    const std::string name = unique_name("tick");
    schedules_.push_back(name);
    conn().exec("SELECT taskq.schedule($1, $2, $3, catch_up => $4::boolean)",
                {name.c_str(), cron.c_str(), queue_.c_str(), catch_up ? "true" : "false"});
    return name;
  }

  long jobs_of(const std::string& name) {
    return std::stol(
        conn().value("SELECT count(*) FROM taskq.jobs WHERE headers->>'x-taskq-schedule' = $1", {name.c_str()}));
  }

  // Per job of the schedule, in tick order: the tick (Unix seconds), how
  // long after it the job was made (ms), and the transaction that made it.
  struct Fired {
    long tick;
    long lag_ms;
    std::string made_at;
  };
  std::vector<Fired> fired(const std::string& name) {
    const std::string rows = conn().value(
        "SELECT string_agg(format('%s %s %s', extract(epoch FROM t)::bigint,"
        "                         (extract(epoch FROM created_at - t) * 1000)::bigint,"
        "                         (extract(epoch FROM created_at) * 1000000)::bigint), ' ' ORDER BY t)"
        " FROM (SELECT (headers->>'x-taskq-scheduled-for')::timestamptz AS t, created_at FROM taskq.jobs"
        "       WHERE headers->>'x-taskq-schedule' = $1) j",
        {name.c_str()});
    std::vector<Fired> out;
    std::istringstream in(rows);
    Fired f;
    while (in >> f.tick >> f.lag_ms >> f.made_at) out.push_back(f);
    return out;
  }

  void stop_postgres_for(std::chrono::seconds downtime) {
    conn_.reset();
    env_action("pg-stop");
    std::this_thread::sleep_for(downtime);  // the downtime is what is tested
    env_action("pg-start");
    conn_.emplace(db());
  }

  std::optional<PgConnection> conn_;
  std::string queue_;
  std::vector<std::string> schedules_;
};

TEST_F(Schedules, EverySecondMakesOneJobPerSecondEachWithinOneSecondOfItsTick) {
  const std::string name = schedule("@every 1 second");
  ASSERT_TRUE(wait_until([&] { return jobs_of(name) >= 10; }, 15s)) << "got " << jobs_of(name) << " jobs";
  const std::vector<Fired> jobs = fired(name);
  ASSERT_GE(jobs.size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) {
    if (i > 0) {
      EXPECT_EQ(jobs[i].tick - jobs[i - 1].tick, 1) << "ticks " << i - 1 << " and " << i << " are not 1 s apart";
    }
    EXPECT_GE(jobs[i].lag_ms, 0) << "tick " << i << " fired early";
    EXPECT_LT(jobs[i].lag_ms, 1000) << "tick " << i << " fired " << jobs[i].lag_ms << " ms late";
  }

  // The messages carry the schedule's headers.
  BrokerClient broker;
  const auto got = collect(broker, "taskq." + queue_, 1, 10s);
  ASSERT_GE(got.size(), 1u);
  EXPECT_EQ(got[0].headers.at("x-taskq-schedule"), name);
  EXPECT_EQ(got[0].headers.at("x-taskq-scheduled-for").back(), 'Z');
}

TEST_F(Schedules, ANewScheduleWakesThePublisherThatSleepsUntilALaterTick) {
  schedule("@every 1 hour");
  // Setup, not a wait for a result: the publisher takes in the first
  // schedule and sleeps until its tick an hour away (or its poll interval).
  std::this_thread::sleep_for(1500ms);
  const std::string soon = schedule("@every 2 seconds");
  ASSERT_TRUE(wait_until([&] { return jobs_of(soon) >= 1; }, 4s)) << "the earlier tick was not fired on time";
  const std::vector<Fired> jobs = fired(soon);
  EXPECT_LT(jobs.at(0).lag_ms, 1000);
}

TEST_F(Schedules, AfterPostgresWasDownOneJobForTheLatestMissedTickOrOnePerTickWithCatchUp) {
  const std::string latest = schedule("@every 1 second");
  const std::string every = schedule("@every 1 second", true);
  ASSERT_TRUE(wait_until([&] { return jobs_of(latest) >= 2 && jobs_of(every) >= 2; }, 5s));

  stop_postgres_for(5s);
  const std::string restarted_at = conn().value("SELECT now()");
  // The first firing after the restart makes up for the downtime; wait for
  // a few regular ticks after it.
  const auto made_since_restart = [&](const std::string& name) {
    return std::stol(
        conn().value("SELECT count(*) FROM taskq.jobs WHERE headers->>'x-taskq-schedule' = $1"
                     " AND created_at >= $2::timestamptz",
                     {name.c_str(), restarted_at.c_str()}));
  };
  ASSERT_TRUE(wait_until([&] { return made_since_restart(latest) >= 3 && made_since_restart(every) >= 8; }, 30s));

  // Without catch_up: one gap of the downtime, and no transaction made more than one job.
  const std::vector<Fired> one = fired(latest);
  std::set<std::string> transactions;
  long longest_gap = 0;
  for (std::size_t i = 0; i < one.size(); ++i) {
    EXPECT_TRUE(transactions.insert(one[i].made_at).second) << "several jobs in one firing at tick " << i;
    if (i > 0) {
      EXPECT_GT(one[i].tick, one[i - 1].tick) << "tick fired twice";
      longest_gap = std::max(longest_gap, one[i].tick - one[i - 1].tick);
    }
  }
  EXPECT_GE(longest_gap, 5) << "the missed ticks were fired although catch_up is false";

  // With catch_up: every tick exactly once, the missed ones in one firing.
  const std::vector<Fired> all = fired(every);
  std::map<std::string, int> per_transaction;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i > 0) {
      EXPECT_EQ(all[i].tick - all[i - 1].tick, 1) << "tick " << i << " missing or doubled";
    }
    ++per_transaction[all[i].made_at];
  }
  int largest_firing = 0;
  for (const auto& [made_at, n] : per_transaction) largest_firing = std::max(largest_firing, n);
  EXPECT_GE(largest_firing, 5) << "the ticks missed while PostgreSQL was down were not fired together";
}

}  // namespace
