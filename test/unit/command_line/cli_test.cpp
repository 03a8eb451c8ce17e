// The command line: flags and handlers, environment fallbacks, one-line
// errors with exit 2, --help.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "command_line/cli_options.hpp"

namespace {

int parse(std::vector<std::string> args, taskq::CliOptions* out, std::string* message) {
  args.insert(args.begin(), "taskq-worker");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return taskq::parse_cli(static_cast<int>(argv.size()), argv.data(), out, message);
}

TEST(Cli, ParsesFlagsAndHandlers) {
  taskq::CliOptions o;
  std::string m;
  EXPECT_EQ(parse({"--database", "dbname=app", "--broker", "amqp://h/", "--handler", "a=exec:true", "--handler",
                   "b=http://127.0.0.1:9/x", "--concurrency", "8", "--prefetch", "32", "--shutdown-timeout", "5"},
                  &o, &m),
            -1)
      << m;
  EXPECT_EQ(o.worker.concurrency, 8);
  EXPECT_EQ(o.worker.prefetch, 32);
  EXPECT_EQ(o.worker.shutdown_timeout, std::chrono::seconds(5));
  ASSERT_EQ(o.handler_specs.size(), 2u);
  EXPECT_EQ(o.handler_specs[1].second, "http://127.0.0.1:9/x");
}

TEST(Cli, EnvironmentStandsInForFlags) {
  setenv("TASKQ_DATABASE_URL", "dbname=fromenv", 1);
  setenv("TASKQ_BROKER_URL", "amqp://env/", 1);
  taskq::CliOptions o;
  std::string m;
  EXPECT_EQ(parse({"--handler", "a=exec:true"}, &o, &m), -1) << m;
  EXPECT_EQ(o.worker.database, "dbname=fromenv");
  EXPECT_EQ(o.worker.broker, "amqp://env/");
  unsetenv("TASKQ_DATABASE_URL");
  unsetenv("TASKQ_BROKER_URL");
}

TEST(Cli, BadInputIsOneLineAndExitTwo) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--bogus"},
        {"--database", "x", "--broker", "amqp://h/"},
        {"--database", "x", "--broker", "amqp://h/", "--handler", "noequals"},
        {"--database", "x", "--broker", "amqp://h/", "--handler", "q=ftp://x"},
        {"--database", "x", "--broker", "amqp://h/", "--handler", "q=exec:true", "--concurrency", "0"},
        {"--broker", "amqp://h/", "--handler", "q=exec:true"}}) {
    taskq::CliOptions o;
    std::string m;
    EXPECT_EQ(parse(args, &o, &m), 2) << args[0];
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_EQ(m.rfind("taskq-worker: ", 0), 0u) << m;
  }
}

TEST(Cli, HelpExitsZero) {
  taskq::CliOptions o;
  std::string m;
  EXPECT_EQ(parse({"--help"}, &o, &m), 0);
  EXPECT_NE(m.find("exec:COMMAND"), std::string::npos);
}

}  // namespace
