// taskq::log: one line per event, JSON lines that parse and keep the message
// intact whatever it holds, text lines with the job fields, level
// filtering, whole lines under concurrency, and the spdlog bridge.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "operations/log.hpp"

namespace {

using taskq::log::Format;
using taskq::log::JobRef;
using taskq::log::Level;

const char* kJobId = "01a20626-0a56-722c-bb81-e72fb4aa505b";
constexpr long long kNoon = 1767355445678;  // 2026-01-02T12:04:05.678Z

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Captures what the module writes; restores the defaults afterwards so
// tests do not leak format or level into each other.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    taskq::log::set_sink([this](const std::string& line) { lines_.push_back(line); });
  }
  void TearDown() override {
    taskq::log::set_sink(nullptr);
    taskq::log::set_format(Format::kText);
    taskq::log::set_level(Level::kInfo);
  }
  std::vector<std::string> lines_;  // written under the module's lock
};

TEST(LogRender, JsonKeepsAnyMessageIntact) {
  static const char kControl[] = "control \x01\x1f and nul \0 inside";
  const std::string messages[] = {
      "plain",
      "quotes \" and 'single' and \\backslash\\",
      "two\nlines\r\nand a tab\t",
      "unicode: é ✓ 日本語 😀",
      std::string(kControl, sizeof(kControl) - 1),
      "looks like json: {\"msg\":\"x\"}",
      "",
  };
  for (const std::string& message : messages) {
    const JobRef job(kJobId, "emails", 3);
    const std::string line = taskq::log::render(Format::kJson, kNoon, Level::kWarn, &job, nullptr, message);
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    const auto parsed = nlohmann::json::parse(line);  // throws (fails the test) if invalid
    ASSERT_TRUE(parsed.is_object());
    EXPECT_EQ(parsed["msg"], message);
    EXPECT_EQ(parsed["level"], "warn");
    EXPECT_EQ(parsed["time"], "2026-01-02T12:04:05.678Z");
    EXPECT_EQ(parsed["job_id"], kJobId);
    EXPECT_EQ(parsed["queue"], "emails");
    EXPECT_EQ(parsed["attempt"], 3);
    EXPECT_EQ(parsed.size(), 6u) << line;
  }
}

TEST(LogRender, JsonReplacesInvalidUtf8InsteadOfFailing) {
  const std::string message = "raw bytes \xff\xfe from a handler";
  const std::string line = taskq::log::render(Format::kJson, kNoon, Level::kError, nullptr, nullptr, message);
  const auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["msg"], "raw bytes \xEF\xBF\xBD\xEF\xBF\xBD from a handler");  // U+FFFD twice
}

TEST(LogRender, JsonLeavesOutMissingJobPartsAndAddsFields) {
  const JobRef queue_only = JobRef::queue_only("sms");
  const taskq::log::Fields fields = {{"seconds", 1.5}, {"error", "boom \"x\""}, {"msg", "clash"}};
  const auto parsed =
      nlohmann::json::parse(taskq::log::render(Format::kJson, kNoon, Level::kInfo, &queue_only, &fields, "dropped"));
  EXPECT_EQ(parsed["queue"], "sms");
  EXPECT_FALSE(parsed.contains("job_id"));
  EXPECT_FALSE(parsed.contains("attempt"));
  EXPECT_EQ(parsed["seconds"], 1.5);
  EXPECT_EQ(parsed["error"], "boom \"x\"");
  EXPECT_EQ(parsed["msg"], "dropped");  // a field never hides a standard key
  EXPECT_EQ(parsed["field_msg"], "clash");

  const auto bare =
      nlohmann::json::parse(taskq::log::render(Format::kJson, kNoon, Level::kInfo, nullptr, nullptr, "x"));
  EXPECT_EQ(bare.size(), 3u);  // time, level, msg
}

TEST(LogRender, TextCarriesTheJobFieldsOnOneLine) {
  const JobRef job(kJobId, "emails", 2);
  EXPECT_EQ(taskq::log::render(Format::kText, kNoon, Level::kInfo, &job, nullptr, "started"),
            std::string("2026-01-02T12:04:05.678Z info job=") + kJobId + " queue=emails attempt=2 started");

  const taskq::log::Fields fields = {{"seconds", 0.25}, {"error", "exit 3: no such file"}, {"code", ""}};
  const std::string line =
      taskq::log::render(Format::kText, kNoon, Level::kWarn, &job, &fields, "retried\nstderr: line two");
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_NE(line.find(" warn job="), std::string::npos) << line;
  EXPECT_NE(line.find("retried\\nstderr: line two"), std::string::npos) << line;
  EXPECT_NE(line.find(" seconds=0.25"), std::string::npos) << line;
  EXPECT_NE(line.find(" error=\"exit 3: no such file\""), std::string::npos) << line;
  EXPECT_NE(line.find(" code=\"\""), std::string::npos) << line;

  EXPECT_EQ(taskq::log::render(Format::kText, kNoon, Level::kError, nullptr, nullptr, "broker: down"),
            "2026-01-02T12:04:05.678Z error broker: down");
}

TEST(LogRender, AJobsTraceIdIsAFieldOfItsOwn) {
  taskq::Job traced;
  traced.id = kJobId;
  traced.queue = "emails";
  traced.attempt = 1;
  traced.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const JobRef job(traced);
  EXPECT_EQ(taskq::log::render(Format::kText, kNoon, Level::kInfo, &job, nullptr, "started"),
            std::string("2026-01-02T12:04:05.678Z info job=") + kJobId +
                " queue=emails attempt=1 trace=4bf92f3577b34da6a3ce929d0e0e4736 started");
  const auto parsed =
      nlohmann::json::parse(taskq::log::render(Format::kJson, kNoon, Level::kInfo, &job, nullptr, "started"));
  EXPECT_EQ(parsed["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

  traced.traceparent.clear();
  const JobRef untraced(traced);
  EXPECT_EQ(taskq::log::render(Format::kText, kNoon, Level::kInfo, &untraced, nullptr, "started").find("trace"),
            std::string::npos);
  EXPECT_FALSE(nlohmann::json::parse(taskq::log::render(Format::kJson, kNoon, Level::kInfo, &untraced, nullptr, "x"))
                   .contains("trace_id"));
}

TEST(LogRender, ParseFormat) {
  EXPECT_EQ(taskq::log::parse_format("text"), Format::kText);
  EXPECT_EQ(taskq::log::parse_format("json"), Format::kJson);
  EXPECT_THROW(taskq::log::parse_format("JSON "), std::invalid_argument);
}

TEST_F(LogTest, ApiWritesJsonLinesWithJobFields) {
  taskq::log::set_format(Format::kJson);
  taskq::Job job;
  job.id = kJobId;
  job.queue = "emails";
  job.attempt = 4;
  taskq::log::info(job, "started");
  taskq::log::warn(job, {{"seconds", 2.5}}, "retried after {:.1f}s: {}", 2.5, "exit 1: \"oops\"\nmore");
  taskq::log::error("broker: {}", std::string("connection refused"));
  ASSERT_EQ(lines_.size(), 3u);
  const auto started = nlohmann::json::parse(lines_[0]);
  EXPECT_EQ(started["msg"], "started");
  EXPECT_EQ(started["job_id"], kJobId);
  EXPECT_EQ(started["attempt"], 4);
  EXPECT_TRUE(
      std::regex_match(started["time"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  const auto retried = nlohmann::json::parse(lines_[1]);
  EXPECT_EQ(retried["msg"], "retried after 2.5s: exit 1: \"oops\"\nmore");
  EXPECT_EQ(retried["seconds"], 2.5);
  EXPECT_EQ(nlohmann::json::parse(lines_[2])["level"], "error");
}

TEST_F(LogTest, LevelFilterSkipsDebugByDefault) {
  taskq::log::debug("hidden {}", 1);
  taskq::log::info("shown");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find(" info shown"), std::string::npos);
  taskq::log::set_level(Level::kDebug);
  taskq::log::debug("now shown");
  taskq::log::set_level(Level::kError);
  taskq::log::warn("hidden");
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_NE(lines_[1].find(" debug now shown"), std::string::npos);
}

TEST_F(LogTest, ABadFormatArgumentLogsTheRawTextInsteadOfThrowing) {
  // Missing argument: fmt throws at run time (C++17 has no compile-time check).
  EXPECT_NO_THROW(taskq::log::info(fmt::runtime("missing {} {}"), 1));
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find("missing {} {}"), std::string::npos) << lines_[0];
}

TEST_F(LogTest, SpdlogCallsComeOutInTheSameFormatAfterConfigure) {
  auto previous = spdlog::default_logger();
  taskq::log::configure(Format::kJson);
  spdlog::warn("from spdlog: \"{}\"", "quoted");
  spdlog::debug("below the module's level");
  spdlog::set_default_logger(previous);
  ASSERT_EQ(lines_.size(), 1u);
  const auto parsed = nlohmann::json::parse(lines_[0]);
  EXPECT_EQ(parsed["msg"], "from spdlog: \"quoted\"");
  EXPECT_EQ(parsed["level"], "warn");
}

// The default output (no set-up at all): stderr, whole lines even with many
// threads writing at once.
TEST(LogDefault, StderrLinesStayWholeUnderConcurrency) {
  taskq::log::set_format(Format::kJson);
  constexpr int kThreads = 8, kEach = 200;
  ::testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t] {
      const std::string queue = "q" + std::to_string(t);
      for (int i = 0; i < kEach; ++i)
        taskq::log::info(JobRef(kJobId, queue, i + 1), "event {} with a \"quote\" and a\nnewline", i);
    });
  for (auto& t : threads) t.join();
  const std::string captured = ::testing::internal::GetCapturedStderr();
  taskq::log::set_format(Format::kText);

  const auto lines = split_lines(captured);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kThreads * kEach));
  std::vector<int> per_thread(kThreads, 0);
  for (const auto& line : lines) {
    const auto parsed = nlohmann::json::parse(line);
    const int t = std::stoi(parsed["queue"].get<std::string>().substr(1));
    EXPECT_EQ(parsed["attempt"], ++per_thread[t]) << "lines of one thread keep their order";
  }
}

TEST(LogDefault, TextOnStderrWithoutAnySetUp) {
  ::testing::internal::CaptureStderr();
  taskq::log::info(JobRef(kJobId, "emails", 1), "started");
  const std::string captured = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(std::regex_match(
      captured,
      std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info job=[0-9a-f-]{36} queue=emails attempt=1 started\n)")))
      << captured;
}

}  // namespace
