// W3C Trace Context checks (core/trace_context.hpp), shared by
// taskq.enqueue (through taskq._traceparent_problem) and taskq-worker:
// valid values, versions, all-zero ids, lengths, case, and tracestate lists.
#include "core/trace_context.hpp"

#include <gtest/gtest.h>

#include <string>

using taskq::parse_traceparent;
using taskq::traceparent_problem;
using taskq::tracestate_problem;

namespace {

// The specification's own example.
const std::string kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

bool valid(const std::string& v) { return traceparent_problem(v) == nullptr; }
std::string problem(const std::string& v) {
  const char* p = traceparent_problem(v);
  return p == nullptr ? "" : p;
}

}  // namespace

TEST(Traceparent, AcceptsAVersion00ValueAndSplitsItsFields) {
  const auto parsed = parse_traceparent(kValid);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->version, "00");
  EXPECT_EQ(parsed->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(parsed->parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(parsed->flags, "01");
  EXPECT_TRUE(valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));  // not sampled
  EXPECT_TRUE(valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff"));  // unknown flags pass
}

TEST(Traceparent, RefusesVersionFfAndVersionsThatAreNotTwoLowercaseHexDigits) {
  EXPECT_EQ(problem("ff" + kValid.substr(2)), "version ff is invalid");
  EXPECT_NE(problem("0g" + kValid.substr(2)), "");
  EXPECT_NE(problem("0A" + kValid.substr(2)), "");
  EXPECT_NE(problem("-0" + kValid.substr(2)), "");
  EXPECT_FALSE(parse_traceparent("ff" + kValid.substr(2)));
}

TEST(Traceparent, ALaterVersionMayAppendFieldsButVersion00MayNot) {
  EXPECT_TRUE(valid("01" + kValid.substr(2)));
  EXPECT_TRUE(valid("cc" + kValid.substr(2) + "-what-the-future-holds"));
  EXPECT_EQ(problem(kValid + "-extra"), "version 00 is exactly 55 characters");
  EXPECT_NE(problem("01" + kValid.substr(2) + "x"), "");                          // no '-' after the flags
  EXPECT_NE(problem("01" + kValid.substr(2) + "-a b"), "");                       // a space
  EXPECT_NE(problem("01" + kValid.substr(2) + "-a\r\nX-Evil: 1"), "");            // header injection
  EXPECT_NE(problem("01" + kValid.substr(2) + "-" + std::string(300, 'a')), "");  // too long
}

TEST(Traceparent, RefusesAllZeroIds) {
  EXPECT_EQ(problem("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), "the trace-id is all zeros");
  EXPECT_EQ(problem("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"), "the parent-id is all zeros");
  EXPECT_TRUE(valid("00-00000000000000000000000000000001-0000000000000001-01"));
}

TEST(Traceparent, RefusesWrongLengths) {
  EXPECT_NE(problem(""), "");
  EXPECT_NE(problem(kValid.substr(0, 54)), "");                                       // a flag digit short
  EXPECT_NE(problem("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"), "");   // trace-id of 31
  EXPECT_NE(problem("00-4bf92f3577b34da6a3ce929d0e0e47366-0f067aa0ba902b7-01"), "");  // 33 and 15
  EXPECT_NE(problem("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701"), "");  // parent-id of 15
  EXPECT_NE(problem("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"), "");   // one flag digit
  EXPECT_NE(problem(kValid + "0"), "");
  EXPECT_NE(problem(" " + kValid), "");
  EXPECT_NE(problem(kValid + " "), "");
}

TEST(Traceparent, RefusesUppercaseHex) {
  EXPECT_EQ(problem("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            "the trace-id is not 32 lowercase hex digits");
  EXPECT_EQ(problem("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"),
            "the parent-id is not 16 lowercase hex digits");
  EXPECT_EQ(problem("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A"),
            "the flags are not two lowercase hex digits");
}

TEST(Traceparent, RefusesOtherSeparatorsAndNonHexDigits) {
  EXPECT_NE(problem("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"), "");
  EXPECT_NE(problem("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"), "");
  EXPECT_NE(problem(std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\0", 55)), "");
}

TEST(Tracestate, AcceptsListsOfKeyValueMembers) {
  EXPECT_EQ(tracestate_problem(""), nullptr);
  EXPECT_EQ(tracestate_problem("congo=t61rcWkgMzE"), nullptr);
  EXPECT_EQ(tracestate_problem("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"), nullptr);
  EXPECT_EQ(tracestate_problem("rojo=1 , \tcongo=2"), nullptr);  // optional white space around commas
  EXPECT_EQ(tracestate_problem("a=1,,b=2, ,"), nullptr);         // empty members are allowed
  EXPECT_EQ(tracestate_problem("tenant1@vendor=x,0t@v_*-/=y z"), nullptr);
  EXPECT_EQ(tracestate_problem("k=" + std::string(256, 'v')), nullptr);
}

TEST(Tracestate, RefusesMalformedMembers) {
  int member = -1;
  EXPECT_NE(tracestate_problem("a=1,novalue", &member), nullptr);
  EXPECT_EQ(member, 2);
  EXPECT_NE(tracestate_problem("Upper=1"), nullptr);
  EXPECT_NE(tracestate_problem("1key=1"), nullptr);
  EXPECT_NE(tracestate_problem("=1"), nullptr);
  EXPECT_NE(tracestate_problem("a="), nullptr);
  EXPECT_NE(tracestate_problem("a=b=c"), nullptr);
  EXPECT_NE(tracestate_problem("a=x\ny"), nullptr);
  EXPECT_NE(tracestate_problem("a=\x7f"), nullptr);
  EXPECT_NE(tracestate_problem("t@=1"), nullptr);
  EXPECT_NE(tracestate_problem("t@Vendor=1"), nullptr);
  EXPECT_NE(tracestate_problem("t@" + std::string(15, 'v') + "=1"), nullptr);
  EXPECT_NE(tracestate_problem(std::string(257, 'k') + "=1"), nullptr);
  EXPECT_NE(tracestate_problem("k=" + std::string(257, 'v')), nullptr);
  EXPECT_NE(tracestate_problem("a=1,a=2"), nullptr);  // one key once
}

TEST(Tracestate, HoldsAtMost32Members) {
  std::string list;
  for (int i = 0; i < 32; ++i) list += (i ? ",k" : "k") + std::to_string(i) + "=v";
  EXPECT_EQ(tracestate_problem(list), nullptr);
  int member = 0;
  EXPECT_STREQ(tracestate_problem(list + ",k32=v", &member), "more than 32 list members");
  EXPECT_EQ(member, 33);
}
