// The command line's operability flags: --metrics-addr validated at parse
// time (one line, exit 2) and handed to the worker, --log-format, and a
// --help that names every group, value and environment fallback.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "command_line/cli_options.hpp"

namespace {

int parse(std::vector<std::string> args, taskq::CliOptions* out, std::string* message) {
  const std::vector<std::string> required = {"--database", "dbname=app", "--broker",
                                             "amqp://h/",  "--handler",  "q=exec:true"};
  args.insert(args.begin(), required.begin(), required.end());
  args.insert(args.begin(), "taskq-worker");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return taskq::parse_cli(static_cast<int>(argv.size()), argv.data(), out, message);
}

TEST(CliOperability, MetricsAddrReachesTheWorkerOptions) {
  for (const char* addr : {"127.0.0.1:9464", "[::]:9464", "localhost:0"}) {
    taskq::CliOptions o;
    std::string m;
    EXPECT_EQ(parse({"--metrics-addr", addr}, &o, &m), -1) << m;
    EXPECT_EQ(o.worker.metrics_addr, addr);
  }
  taskq::CliOptions o;
  std::string m;
  EXPECT_EQ(parse({}, &o, &m), -1) << m;
  EXPECT_EQ(o.worker.metrics_addr, "");
}

TEST(CliOperability, BadMetricsAddrIsOneLineAndExitTwo) {
  for (const char* addr : {"9464", ":9464", "localhost:99999", "::1:9464", "http://localhost:9464", ""}) {
    taskq::CliOptions o;
    std::string m;
    EXPECT_EQ(parse({"--metrics-addr", addr}, &o, &m), std::string(addr).empty() ? -1 : 2) << addr;
    if (std::string(addr).empty()) continue;
    EXPECT_EQ(m.rfind("taskq-worker: --metrics-addr ", 0), 0u) << m;
    EXPECT_NE(m.find(addr), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(CliOperability, LogFormat) {
  taskq::CliOptions o;
  std::string m;
  EXPECT_EQ(parse({}, &o, &m), -1) << m;
  EXPECT_EQ(o.log_format, "text");
  EXPECT_EQ(parse({"--log-format", "json"}, &o, &m), -1) << m;
  EXPECT_EQ(o.log_format, "json");
  taskq::CliOptions bad;
  EXPECT_EQ(parse({"--log-format", "xml"}, &bad, &m), 2);
  EXPECT_EQ(m.rfind("taskq-worker: ", 0), 0u) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST(CliOperability, HelpExplainsEveryFlagInGroups) {
  taskq::CliOptions o;
  std::string help;
  ASSERT_EQ(parse({"--help"}, &o, &help), 0);
  for (const char* expected :
       {"Connections:", "Handlers:", "Running jobs:", "Monitoring:", "--database CONNINFO", "--broker AMQP_URL",
        "--handler QUEUE=TARGET", "--concurrency N", "--metrics-addr HOST:PORT", "--log-format text|json",
        "TASKQ_DATABASE_URL", "TASKQ_BROKER_URL", "TASKQ_CALLBACK_SECRET", "exec:COMMAND", "Exit 2", "SIGTERM",
        "Example:"})
    EXPECT_NE(help.find(expected), std::string::npos) << expected << "\n" << help;
  // Validator noise such as "INT:INT in [1 - 1024]" is replaced by words.
  EXPECT_EQ(help.find("INT:INT"), std::string::npos) << help;
  EXPECT_EQ(help.find(" TEXT"), std::string::npos) << help;
  // Every flag has a description: no option line ends right after its name.
  ASSERT_NE(help.find("\n  --"), std::string::npos);
  std::size_t pos = 0;
  while ((pos = help.find("\n  --", pos)) != std::string::npos) {
    const auto end = help.find('\n', pos + 1);
    const std::string line = help.substr(pos + 1, end - pos - 1);
    const bool described_here =
        line.find("  ", 4) != std::string::npos && line.find_first_not_of(' ', line.find("  ", 4)) != std::string::npos;
    const bool described_below = help.compare(end + 1, 10, std::string(10, ' ')) == 0;
    EXPECT_TRUE(described_here || described_below) << line;
    pos = end;
  }
}

}  // namespace
