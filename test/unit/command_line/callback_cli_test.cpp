// taskq-worker's callback flags: defaults, values, env fallback for the
// secret, and one-line errors for bad values.
#include <gtest/gtest.h>

#include <cstdlib>

#include "command_line/cli_options.hpp"

namespace {

using namespace std::chrono_literals;

int parse(std::vector<std::string> args, taskq::CliOptions* out, std::string* message) {
  std::vector<std::string> full = {"taskq-worker", "--database", "dbname=x",   "--broker",
                                   "amqp://h/",    "--handler",  "q=exec:true"};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  return taskq::parse_cli(static_cast<int>(argv.size()), argv.data(), out, message);
}

TEST(CallbackCli, DefaultsDeliverUnsignedWithTheLibraryDefaults) {
  unsetenv("TASKQ_CALLBACK_SECRET");
  taskq::CliOptions o;
  std::string m;
  ASSERT_EQ(parse({}, &o, &m), -1) << m;
  const taskq::CallbackOptions defaults;
  EXPECT_TRUE(o.worker.callbacks.enabled);
  EXPECT_EQ(o.worker.callbacks.secret, "");
  EXPECT_FALSE(o.worker.callbacks.refuse_private_addresses);
  EXPECT_EQ(o.worker.callbacks.max_attempts, defaults.max_attempts);
  EXPECT_EQ(o.worker.callbacks.max_in_flight, defaults.max_in_flight);
  EXPECT_EQ(o.worker.callbacks.timeout, defaults.timeout);
}

TEST(CallbackCli, FlagsFillTheCallbackOptions) {
  taskq::CliOptions o;
  std::string m;
  ASSERT_EQ(parse({"--callback-secret", "s3cret", "--callback-max-attempts", "3", "--callback-concurrency", "64",
                   "--callback-timeout", "7", "--callback-refuse-private"},
                  &o, &m),
            -1)
      << m;
  EXPECT_EQ(o.worker.callbacks.secret, "s3cret");
  EXPECT_EQ(o.worker.callbacks.max_attempts, 3);
  EXPECT_EQ(o.worker.callbacks.max_in_flight, 64);
  EXPECT_EQ(o.worker.callbacks.timeout, 7000ms);
  EXPECT_TRUE(o.worker.callbacks.refuse_private_addresses);
  EXPECT_TRUE(o.worker.callbacks.enabled);
}

TEST(CallbackCli, RetryMaxCapsTheBackoffAndTheFirstRetry) {
  taskq::CliOptions o;
  std::string m;
  ASSERT_EQ(parse({"--callback-retry-max", "2"}, &o, &m), -1) << m;
  EXPECT_EQ(o.worker.callbacks.retry_max, 2000ms);
  EXPECT_EQ(o.worker.callbacks.retry_base, 2000ms);
  taskq::CliOptions d;
  ASSERT_EQ(parse({}, &d, &m), -1) << m;
  EXPECT_EQ(d.worker.callbacks.retry_max, taskq::CallbackOptions{}.retry_max);
  EXPECT_EQ(d.worker.callbacks.retry_base, taskq::CallbackOptions{}.retry_base);
}

TEST(CallbackCli, SecretFromTheEnvironmentAndNoCallbacks) {
  setenv("TASKQ_CALLBACK_SECRET", "from-env", 1);
  taskq::CliOptions o;
  std::string m;
  ASSERT_EQ(parse({"--no-callbacks"}, &o, &m), -1) << m;
  unsetenv("TASKQ_CALLBACK_SECRET");
  EXPECT_EQ(o.worker.callbacks.secret, "from-env");
  EXPECT_FALSE(o.worker.callbacks.enabled);
}

TEST(CallbackCli, BadValuesAreOneLineErrorsWithExitTwo) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--callback-max-attempts", "0"},
                                               {"--callback-max-attempts", "many"},
                                               {"--callback-concurrency", "0"},
                                               {"--callback-concurrency", "5000"},
                                               {"--callback-timeout", "0"},
                                               {"--callback-timeout", "-3"},
                                               {"--callback-retry-max", "0"},
                                               {"--callback-retry-max", "100000"},
                                               {"--callback-refuse-private=maybe"},
                                               {"--no-callbacks=yes please"}}) {
    taskq::CliOptions o;
    std::string m;
    EXPECT_EQ(parse(args, &o, &m), 2) << args[0];
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_EQ(m.rfind("taskq-worker: ", 0), 0u) << m;
  }
}

}  // namespace
