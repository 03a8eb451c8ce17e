// taskq.database as a list: one publisher per database, each showing its
// own state in its own database's taskq.publisher and publishing only its
// own database's jobs. Changing the number of publishers needs a server
// restart, which this test does (and undoes).
#include <thread>

#include "test_env.hpp"

using namespace std::chrono_literals;
using taskq::PgConnection;
using namespace taskq::test;

namespace {

PgConnection connect_to(const std::string& database) {
  return PgConnection(env("TASKQ_TEST_DATABASE_URL") + " dbname=" + database);
}

// Runs `fn` on a fresh connection to `database` until it stops failing
// (the server may be restarting).
template <typename Fn>
bool with_retry(const std::string& database, Fn fn, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        try {
          PgConnection c = connect_to(database);
          return fn(c);
        } catch (const std::exception&) {
          return false;
        }
      },
      timeout, 200ms);
}

class PublisherDatabases : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    PgConnection c = db();
    second_ = unique_name("taskq_second");
    c.exec("CREATE DATABASE " + second_);
    PgConnection s = connect_to(second_);
    s.exec("CREATE EXTENSION taskq");
  }
  void TearDown() override {
    if (second_.empty()) return;
    with_retry(
        "taskq",
        [&](PgConnection& c) {
          c.exec("ALTER SYSTEM RESET taskq.database");
          return true;
        },
        60s);
    env_action("pg-restart");
    with_retry(
        "taskq",
        [&](PgConnection& c) {
          c.exec("DROP DATABASE IF EXISTS " + second_ + " WITH (FORCE)");
          return true;
        },
        60s);
  }
  std::string second_;
};

std::string publisher_row(PgConnection& c) {
  return c.value("SELECT state || ' ' || connected || ' ' || coalesce(pid::text, '-') FROM taskq.publisher");
}

TEST_F(PublisherDatabases, OnePublisherPerDatabaseEachWithItsOwnStatusAndJobs) {
  {
    PgConnection c = db();
    c.exec("ALTER SYSTEM SET taskq.database = 'taskq, " + second_ + "'");
  }
  env_action("pg-restart");

  std::string first_pid, second_pid;
  ASSERT_TRUE(with_retry(
      "taskq",
      [&](PgConnection& c) {
        first_pid = c.value("SELECT pid FROM taskq.publisher WHERE connected");
        return !first_pid.empty();
      },
      60s))
      << "the first database's publisher did not connect";
  ASSERT_TRUE(with_retry(
      second_,
      [&](PgConnection& c) {
        second_pid = c.value("SELECT pid FROM taskq.publisher WHERE connected");
        return !second_pid.empty();
      },
      60s))
      << "the second database's publisher did not connect";
  EXPECT_NE(first_pid, second_pid) << "one publisher shows in both databases";
  {
    PgConnection c = db();
    EXPECT_EQ(c.value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'taskq publisher'"), "2");
  }

  // A job in each database reaches RabbitMQ, each published by its own
  // database's publisher.
  const std::string q1 = unique_name("db_one"), q2 = unique_name("db_two");
  PgConnection one = db();
  PgConnection two = connect_to(second_);
  one.exec("SELECT taskq.create_queue($1)", {q1.c_str()});
  two.exec("SELECT taskq.create_queue($1)", {q2.c_str()});
  const std::string id1 = one.value("SELECT taskq.enqueue($1)", {q1.c_str()});
  const std::string id2 = two.value("SELECT taskq.enqueue($1)", {q2.c_str()});
  BrokerClient broker;
  const auto got1 = collect(broker, "taskq." + q1, 1, 30s);
  const auto got2 = collect(broker, "taskq." + q2, 1, 30s);
  ASSERT_EQ(got1.size(), 1u);
  ASSERT_EQ(got2.size(), 1u);
  EXPECT_EQ(got1[0].message_id, id1);
  EXPECT_EQ(got2[0].message_id, id2);
  EXPECT_TRUE(wait_until([&] { return two.value("SELECT confirmed FROM taskq.publisher") == "1"; }, 10s))
      << "the second database's publisher counts what it published: " << publisher_row(two);

  // A database outside the list says so.
  PgConnection postgres = connect_to("postgres");
  postgres.exec("CREATE EXTENSION IF NOT EXISTS taskq");
  EXPECT_NE(postgres.value("SELECT state FROM taskq.publisher").find("not running"), std::string::npos);
  postgres.exec("DROP EXTENSION taskq");
}

TEST(PublisherDatabaseSetting, MalformedListsAreRefused) {
  TASKQ_REQUIRE_TEST_ENV();
  PgConnection c = db();
  const std::vector<std::string> bads = {"taskq,,other", "taskq,", " , ", std::string(70, 'd'),
                                         "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"};
  for (const std::string& bad : bads) {
    try {
      c.exec("ALTER SYSTEM SET taskq.database = '" + bad + "'");
      ADD_FAILURE() << "accepted taskq.database = '" << bad << "'";
    } catch (const taskq::DbError& e) {
      EXPECT_EQ(e.sqlstate(), "22023") << bad << ": " << e.what();
    }
  }
  EXPECT_EQ(c.value("SELECT setting FROM pg_settings WHERE name = 'taskq.database'"), "taskq");
}

}  // namespace
