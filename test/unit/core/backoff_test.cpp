// Backoff: doubling from the base, the cap, and the jitter bounds.
#include "core/backoff.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using taskq::backoff_delay;
using taskq::BackoffPolicy;

TEST(Backoff, DoublesFromTheBaseWithoutJitter) {
  BackoffPolicy p{100ms, 10'000ms, 0.0};
  EXPECT_EQ(backoff_delay(p, 1, 0.7), 100ms);
  EXPECT_EQ(backoff_delay(p, 2, 0.7), 200ms);
  EXPECT_EQ(backoff_delay(p, 3, 0.7), 400ms);
  EXPECT_EQ(backoff_delay(p, 5, 0.7), 1600ms);
}

TEST(Backoff, IsCappedAndNeverOverflows) {
  BackoffPolicy p{100ms, 5'000ms, 0.0};
  EXPECT_EQ(backoff_delay(p, 7, 0.0), 5'000ms);
  EXPECT_EQ(backoff_delay(p, 1000, 0.0), 5'000ms);
  EXPECT_EQ(backoff_delay(p, UINT32_MAX, 0.0), 5'000ms);
}

TEST(Backoff, JitterStaysWithinItsShare) {
  BackoffPolicy p{1'000ms, 60'000ms, 0.5};
  EXPECT_EQ(backoff_delay(p, 1, 0.0), 500ms);    // lower bound: half
  EXPECT_EQ(backoff_delay(p, 1, 0.999), 999ms);  // upper bound: full delay
  EXPECT_EQ(backoff_delay(p, 2, 0.5), 1'500ms);
}

TEST(Backoff, StatefulHelperGrowsAndResets) {
  taskq::Backoff b(BackoffPolicy{100ms, 1'000ms, 0.5});
  auto first = b.next();
  EXPECT_GE(first, 50ms);
  EXPECT_LE(first, 100ms);
  for (int i = 0; i < 20; ++i) {
    auto d = b.next();
    EXPECT_LE(d, 1'000ms);
  }
  EXPECT_GE(b.next(), 500ms);  // saturated at the cap: within [cap/2, cap]
  b.reset();
  EXPECT_LE(b.next(), 100ms);
}
