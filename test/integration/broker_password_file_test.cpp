// taskq.broker_password_file against a real PostgreSQL and RabbitMQ: the
// publisher logs in with the password from the file, follows its rotation,
// says clearly what is wrong with a bad file, and the password appears
// nowhere PostgreSQL writes or a non-superuser can read.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include "test_env.hpp"

using namespace std::chrono_literals;
using taskq::BrokerUrl;
using taskq::DbError;
using taskq::PgConnection;
using namespace taskq::test;

namespace {

// A password nobody else uses, so that finding it anywhere is a leak.
std::string unique_password(const std::string& prefix) {
  std::random_device random;
  std::ostringstream out;
  out << prefix << "-" << std::hex << random() << random() << random();
  return out.str();
}

std::string server_log() {
  std::ifstream log(env("TASKQ_TEST_PG_LOG"));
  std::stringstream all;
  all << log.rdbuf();
  return all.str();
}

class BrokerPasswordFile : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    conn_.emplace(db());
    broker_.emplace();
    queue_ = unique_name("pwfile");
    conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
    user_ = unique_name("taskq_pwfile");
    password_ = unique_password("good");
    wrong_password_ = unique_password("wrong");
    ASSERT_EQ(rabbitmqctl("add_user '" + user_ + "' '" + password_ + "'"), 0);
    ASSERT_EQ(rabbitmqctl("set_permissions -p / '" + user_ + "' '.*' '.*' '.*'"), 0);
    dir_ = env("TASKQ_TEST_STATE") + "/" + unique_name("secrets");
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0);
    file_ = dir_ + "/broker-password";
    const BrokerUrl test_broker = BrokerUrl::parse(env("TASKQ_TEST_BROKER_URL"));
    file_url_ = "amqp://" + user_ + "@127.0.0.1:" + std::to_string(test_broker.port) + "/";
    original_broker_ = test_broker.redacted();
  }

  void TearDown() override {
    if (!conn_) return;
    // Other tests use the same server: back to postgresql.conf's broker.
    set_setting(conn(), "taskq.broker_url", "");
    set_setting(conn(), "taskq.broker_password_file", "");
    EXPECT_TRUE(wait_until([&] { return connected_to(original_broker_); }, 60s)) << status("state, last_error");
    rabbitmqctl("delete_user '" + user_ + "'");
    std::remove(file_.c_str());
    rmdir(dir_.c_str());
  }

  PgConnection& conn() { return *conn_; }
  std::string status(const std::string& columns) {
    return conn().value("SELECT concat_ws(' | ', " + columns + ") FROM taskq.publisher");
  }
  bool connected_to(const std::string& redacted) { return status("connected, broker") == "t | " + redacted; }
  // Waits for an error containing `needle` recorded after `since` (a
  // timestamptz from the server), so an older error cannot satisfy it.
  bool error_after(const std::string& since, const std::string& needle) {
    return wait_until(
        [&] {
          return conn().value(
                     "SELECT last_error FROM taskq.publisher WHERE last_error_at >= $1::timestamptz AND "
                     "strpos(last_error, $2) > 0",
                     {since.c_str(), needle.c_str()}) != "";
        },
        20s);
  }
  std::string now() { return conn().value("SELECT now()::text"); }
  std::string enqueue() { return conn().value("SELECT taskq.enqueue($1, '{}')", {queue_.c_str()}); }

  // The password file as PostgreSQL's OS user would keep it.
  void write_password_file(const std::string& password, mode_t mode = 0600) {
    {
      std::ofstream out(file_, std::ios::trunc);
      out << password << "\n";
    }
    ASSERT_EQ(chmod(file_.c_str(), mode), 0);
    if (geteuid() == 0) {  // test-env runs the cluster as postgres then
      const passwd* pg = getpwnam("postgres");
      ASSERT_NE(pg, nullptr);
      ASSERT_EQ(chown(file_.c_str(), pg->pw_uid, pg->pw_gid), 0);
    }
  }

  void expect_published_through_the_file_user() {
    const std::string id = enqueue();
    const auto got = collect(*broker_, "taskq." + queue_, 1, 20s);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].message_id, id);
    // Only the publisher logs in as this user.
    const std::string ctl = "'" + env("TASKQ_TEST_RABBITMQCTL") + "' -q list_connections user";
    EXPECT_EQ(run(ctl + " | grep -qxF '" + user_ + "'"), 0) << "the publisher's connection is logged in as " << user_;
  }

  void expect_no_password_in(const std::string& where, const std::string& text) {
    EXPECT_EQ(text.find(password_), std::string::npos) << "the password reached " << where;
    EXPECT_EQ(text.find(wrong_password_), std::string::npos) << "the wrong password reached " << where;
  }

  // Everything about taskq a role without privileges can read.
  std::string what_a_non_superuser_reads() {
    const std::string role = unique_name("pwfile_reader");
    conn().exec("CREATE ROLE " + role + " LOGIN");
    conn().exec("GRANT taskq_producer TO " + role);
    std::string seen;
    {
      PgConnection reader(env("TASKQ_TEST_DATABASE_URL") + " user=" + role);
      auto names = conn().exec("SELECT name FROM pg_settings WHERE name LIKE 'taskq.%' ORDER BY name");
      for (int i = 0; i < PQntuples(names.get()); ++i) {
        const std::string name = PQgetvalue(names.get(), i, 0);
        for (const std::string& query : {"SHOW " + name, "SELECT current_setting('" + name + "')"}) {
          try {
            seen += query + " = " + reader.value(query) + "\n";
          } catch (const DbError& e) {
            if (name == "taskq.broker_url" || name == "taskq.broker_password_file") {
              EXPECT_EQ(e.sqlstate(), "42501") << name << " must stay superuser-only";
            }
            seen += query + ": " + e.what() + "\n";
          }
        }
      }
      seen += reader.value("SELECT string_agg(s::text, E'\\n') FROM pg_settings s") + "\n";
      seen += reader.value("SELECT string_agg(p::text, E'\\n') FROM taskq.publisher p") + "\n";
      seen += reader.value("SELECT string_agg(a::text, E'\\n') FROM pg_stat_activity a") + "\n";
      EXPECT_EQ(reader.value("SELECT count(*) FROM pg_settings WHERE name = 'taskq.broker_password_file'"), "0");
    }
    conn().exec("DROP ROLE " + role);
    return seen;
  }

  std::optional<PgConnection> conn_;
  std::optional<BrokerClient> broker_;
  std::string queue_, user_, password_, wrong_password_, dir_, file_, file_url_, original_broker_;
};

TEST_F(BrokerPasswordFile, PublishesWithThePasswordFromTheFileAndNeverShowsIt) {
  write_password_file(password_);
  // The file first: with the URL first the publisher would try the new
  // user without a password for a moment.
  set_setting(conn(), "taskq.broker_password_file", file_);
  set_setting(conn(), "taskq.broker_url", file_url_);
  const std::string redacted = BrokerUrl::parse(file_url_).redacted();
  ASSERT_TRUE(wait_until([&] { return connected_to(redacted); }, 30s)) << status("state, last_error");
  expect_published_through_the_file_user();

  // A rotation on the RabbitMQ side only: the file now holds a password the
  // broker refuses. The reload re-reads the file and reconnects.
  std::string since = now();
  write_password_file(wrong_password_);
  conn().exec("SELECT pg_reload_conf()");
  ASSERT_TRUE(error_after(since, "ACCESS_REFUSED")) << status("state, last_error");
  EXPECT_EQ(status("connected"), "f");
  const std::string refused = status("last_error");
  EXPECT_NE(refused.find("ACCESS_REFUSED"), std::string::npos) << refused;
  EXPECT_NE(refused.find(redacted), std::string::npos) << "names the broker: " << refused;
  expect_no_password_in("taskq.publisher.last_error", refused);

  // The file fixed, no reload: the next attempt reads it again.
  write_password_file(password_);
  ASSERT_TRUE(wait_until([&] { return connected_to(redacted); }, 45s)) << status("state, last_error");

  // A missing file.
  const std::string missing = dir_ + "/no-such-file";
  since = now();
  set_setting(conn(), "taskq.broker_password_file", missing);
  ASSERT_TRUE(error_after(since, missing)) << status("state, last_error");
  EXPECT_NE(status("last_error").find("No such file or directory"), std::string::npos) << status("last_error");
  EXPECT_EQ(status("connected"), "f");

  // A group-readable file is refused, like libpq's .pgpass.
  since = now();
  ASSERT_EQ(chmod(file_.c_str(), 0640), 0);
  set_setting(conn(), "taskq.broker_password_file", file_);
  ASSERT_TRUE(error_after(since, "group or world access")) << status("state, last_error");
  EXPECT_NE(status("last_error").find(file_), std::string::npos) << status("last_error");

  ASSERT_EQ(chmod(file_.c_str(), 0600), 0);
  ASSERT_TRUE(wait_until([&] { return connected_to(redacted); }, 45s)) << status("state, last_error");
  expect_published_through_the_file_user();

  const std::string log = server_log();
  EXPECT_NE(log.find("taskq publisher: cannot connect to " + redacted), std::string::npos)
      << "the refused login is logged";
  EXPECT_NE(log.find("group or world access"), std::string::npos) << "the refused file is logged";
  expect_no_password_in("the server log", log);
  expect_no_password_in("what a non-superuser can read", what_a_non_superuser_reads());
  expect_no_password_in("taskq.publisher", conn().value("SELECT string_agg(p::text, E'\\n') FROM taskq.publisher p"));
  expect_no_password_in("pg_stat_activity", conn().value("SELECT string_agg(a::text, E'\\n') FROM pg_stat_activity a"));
}

}  // namespace
