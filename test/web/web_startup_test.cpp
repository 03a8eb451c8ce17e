// taskq-web's process contract: a bad command line, a database it cannot
// reach, a non-loopback address without tokens or a bad token file are one
// line on stderr and exit status 2; SIGTERM ends it with 0.
#include <gtest/gtest.h>

#include <fstream>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

using namespace std::chrono_literals;

class WebStartup : public ::testing::Test {
 protected:
  void SetUp() override { TASKQ_REQUIRE_TEST_ENV(); }

  // Runs taskq-web with `args`; expects exit 2 and one line containing
  // `needle`.
  void expect_refused(std::vector<std::string> args, const std::string& needle, WorkerProcess::EnvChanges env = {}) {
    WorkerProcess p(web_binary(), std::move(args), std::move(env));
    const auto code = p.wait_exit(20s);
    ASSERT_TRUE(code.has_value()) << "taskq-web did not exit";
    EXPECT_EQ(*code, 2);
    const std::string err = p.log();
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_NE(err.find(needle), std::string::npos) << err;
    EXPECT_EQ(err.rfind("taskq-web: ", 0), 0u) << err;
  }
};

TEST_F(WebStartup, BadCommandLinesAreOneLineAndExit2) {
  const std::string db = env("TASKQ_TEST_DATABASE_URL");
  const std::string listen = "127.0.0.1:" + std::to_string(free_tcp_port());
  expect_refused({"--database", db, "--listen", listen, "--colour", "red"}, "--colour");
  expect_refused({"--database", db}, "--listen");
  expect_refused({"--listen", listen}, "--database");
  expect_refused({"--database", db, "--listen", "nowhere"}, "--listen");
  expect_refused({"--database", db, "--listen", listen, "--pool-size", "0"}, "--pool-size");
  expect_refused({"--database", db, "--listen", "0.0.0.0:" + std::to_string(free_tcp_port())}, "loopback");
  expect_refused({"--database", db, "--listen", "[::]:" + std::to_string(free_tcp_port())}, "loopback");
  expect_refused({"--database", db, "--listen", listen, "--token-file", "/nonexistent/tokens"}, "--token-file");
}

TEST_F(WebStartup, MalformedTokenFilesAreRefused) {
  ScratchDir dir;
  const std::string db = env("TASKQ_TEST_DATABASE_URL");
  const std::string listen = "127.0.0.1:" + std::to_string(free_tcp_port());
  std::ofstream(dir.file("badrole")) << "a-long-enough-token-1234 superuser\n";
  expect_refused({"--database", db, "--listen", listen, "--token-file", dir.file("badrole")}, "line 1");
  std::ofstream(dir.file("short")) << "# fine\n\nshort read\n";
  expect_refused({"--database", db, "--listen", listen, "--token-file", dir.file("short")}, "line 3");
  // The message names the line, never the token.
  WorkerProcess p(web_binary(), {"--database", db, "--listen", listen, "--token-file", dir.file("badrole")});
  p.wait_exit(20s);
  EXPECT_EQ(p.log().find("a-long-enough-token-1234"), std::string::npos);
}

TEST_F(WebStartup, UnreachableDatabaseIsOneLineAndExit2) {
  const std::string listen = "127.0.0.1:" + std::to_string(free_tcp_port());
  const std::string nowhere = "host=127.0.0.1 port=" + std::to_string(free_tcp_port()) + " dbname=x user=x";
  expect_refused({"--database", nowhere, "--listen", listen}, "PostgreSQL");
  // TASKQ_DATABASE_URL stands in for --database.
  expect_refused({"--listen", listen}, "PostgreSQL", {{"TASKQ_DATABASE_URL", nowhere}});
}

TEST_F(WebStartup, DatabaseFromTheEnvironmentAndNonLoopbackWithTokens) {
  ScratchDir dir;
  std::ofstream(dir.file("tokens")) << kReadToken << " read\n";
  const int port = free_tcp_port();
  WorkerProcess p(web_binary(), {"--listen", "0.0.0.0:" + std::to_string(port), "--token-file", dir.file("tokens")},
                  {{"TASKQ_DATABASE_URL", env("TASKQ_TEST_DATABASE_URL")}});
  httplib::Client client("127.0.0.1", port);
  EXPECT_TRUE(wait_until(
      [&] {
        auto r = client.Get("/healthz");
        return r && r->status == 200;
      },
      15s))
      << p.log();
  p.terminate();
  EXPECT_EQ(p.wait_exit(20s), std::optional<int>(0)) << p.log();
}

TEST_F(WebStartup, SigtermExitsZero) {
  WebProcess web;
  ASSERT_EQ(web.get("/healthz").status, 200);
  web.process().terminate();
  EXPECT_EQ(web.process().wait_exit(20s), std::optional<int>(0)) << web.process().log();
}

TEST_F(WebStartup, HealthzSays503WhenTheDatabaseIsDown) {
  // A database that exists at start, then refuses: a second cluster would
  // be heavy, so take away the connection instead by terminating it and
  // blocking new ones for this database.
  PgConnection admin = taskq::test::db();
  const std::string dbname = unique_name("webdown");
  admin.exec("CREATE DATABASE " + dbname);
  {
    PgConnection conn(env("TASKQ_TEST_DATABASE_URL") + " dbname=" + dbname);
    conn.exec("CREATE EXTENSION taskq");
  }
  WorkerProcess::EnvChanges none;
  const int port = free_tcp_port();
  WorkerProcess p(web_binary(), {"--database", env("TASKQ_TEST_DATABASE_URL") + " dbname=" + dbname, "--listen",
                                 "127.0.0.1:" + std::to_string(port), "--pool-size", "1"});
  httplib::Client client("127.0.0.1", port);
  auto health = [&] {
    auto r = client.Get("/healthz");
    return r ? r->status : 0;
  };
  ASSERT_TRUE(wait_until([&] { return health() == 200; }, 15s)) << p.log();
  admin.exec("ALTER DATABASE " + dbname + " ALLOW_CONNECTIONS false");
  admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", {dbname.c_str()});
  EXPECT_TRUE(wait_until([&] { return health() == 503; }, 15s));
  admin.exec("ALTER DATABASE " + dbname + " ALLOW_CONNECTIONS true");
  EXPECT_TRUE(wait_until([&] { return health() == 200; }, 15s)) << "no reconnect: " << p.log();
  p.terminate();
  EXPECT_EQ(p.wait_exit(20s), std::optional<int>(0));
  admin.exec("DROP DATABASE " + dbname + " WITH (FORCE)");
}

}  // namespace
}  // namespace taskq::test
