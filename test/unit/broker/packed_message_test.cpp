// Splitting a packed message's body into its jobs' bodies, exactly as
// written (an HTTP handler POSTs each as a one-job body).
#include "broker/packed_message.hpp"

#include <gtest/gtest.h>

using taskq::is_packed_body;
using taskq::split_packed_body;

TEST(PackedMessage, OnlyAnArrayIsPacked) {
  EXPECT_TRUE(is_packed_body("[{}]"));
  EXPECT_TRUE(is_packed_body(" \n[ {} ]"));
  EXPECT_FALSE(is_packed_body(R"({"id":"x"})"));
  EXPECT_FALSE(is_packed_body(""));
  EXPECT_FALSE(is_packed_body("   "));
}

TEST(PackedMessage, SplitsIntoTheExactTextOfEachElement) {
  const std::string a = R"({"id":"a","payload":{"n":1.50,"big":123456789012345678901234567890,"u":"\u00e9"}})";
  const std::string b = R"({"id":"b","payload":{"s":"a \"],[\" b","nested":[[1,2],{"k":[3]}]}})";
  const std::string c = R"({"id":"c","payload":"\\"})";
  const auto parts = split_packed_body("[" + a + ", " + b + "\n,\t" + c + " ]");
  ASSERT_TRUE(parts.has_value());
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ((*parts)[0], a);  // numbers and escapes untouched: no reserialization
  EXPECT_EQ((*parts)[1], b);  // brackets and commas inside strings split nothing
  EXPECT_EQ((*parts)[2], c);  // an escaped backslash ends where it should
}

TEST(PackedMessage, ScalarsAndArraysAreElementsToo) {
  // Not jobs, but elements: the starter drops each as malformed.
  const auto parts = split_packed_body(R"([1, "x", [2,3], null])");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(*parts, (std::vector<std::string>{"1", R"("x")", "[2,3]", "null"}));
}

TEST(PackedMessage, RefusesWhatIsNoNonEmptyArray) {
  EXPECT_FALSE(split_packed_body("[]").has_value());
  EXPECT_FALSE(split_packed_body("[ ]").has_value());
  EXPECT_FALSE(split_packed_body(R"([{"id":"a"},])").has_value());
  EXPECT_FALSE(split_packed_body(R"([{"id":"a"})").has_value());
  EXPECT_FALSE(split_packed_body(R"({"id":"a"})").has_value());
  EXPECT_FALSE(split_packed_body("[\"unterminated]").has_value());
  EXPECT_FALSE(split_packed_body("").has_value());
}
