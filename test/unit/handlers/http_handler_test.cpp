// The http handler's mapping of HTTP status classes to outcomes.
#include <gtest/gtest.h>

#include "handlers/http_handler.hpp"

using taskq::Outcome;

namespace {

TEST(HttpMapping, StatusClassesToOutcomes) {
  EXPECT_EQ(taskq::map_http_result(200, R"({"ok":1})", "").result["ok"], 1);
  EXPECT_EQ(taskq::map_http_result(204, "", "").kind, Outcome::Kind::kCompleted);
  EXPECT_EQ(taskq::map_http_result(400, "bad", "").kind, Outcome::Kind::kFailed);
  EXPECT_EQ(taskq::map_http_result(404, "", "").kind, Outcome::Kind::kFailed);
  EXPECT_EQ(taskq::map_http_result(408, "", "").kind, Outcome::Kind::kRetry);
  EXPECT_EQ(taskq::map_http_result(429, "", "").kind, Outcome::Kind::kRetry);
  EXPECT_EQ(taskq::map_http_result(500, "", "").kind, Outcome::Kind::kRetry);
  EXPECT_EQ(taskq::map_http_result(302, "", "").kind, Outcome::Kind::kRetry);
  EXPECT_EQ(taskq::map_http_result(0, "", "timeout").kind, Outcome::Kind::kRetry);
}

}  // namespace
