// Callback delivery decisions: what delivers, how long a retry waits, when a
// callback is given up.
#include <gtest/gtest.h>

#include "callbacks/callback_retry.hpp"

namespace {

using namespace std::chrono_literals;
using taskq::CallbackDecision;
using taskq::DeliveryAttempt;

const taskq::BackoffPolicy kPolicy{1000ms, 60'000ms, 0.5};

DeliveryAttempt answered(long status) { return {status, status >= 200 && status < 300 ? "" : "HTTP x", false}; }

TEST(CallbackRetry, OnlyTwoHundredsDeliver) {
  for (long s : {200L, 201L, 202L, 204L, 299L})
    EXPECT_EQ(taskq::decide_callback(answered(s), 1, 5, kPolicy, 0.5).kind, CallbackDecision::Kind::kDelivered) << s;
  for (long s : {100L, 199L, 301L, 302L, 304L, 307L, 400L, 404L, 410L, 429L, 500L, 503L})
    EXPECT_EQ(taskq::decide_callback(answered(s), 1, 5, kPolicy, 0.5).kind, CallbackDecision::Kind::kRetry) << s;
}

TEST(CallbackRetry, TransportErrorsAreRetried) {
  const DeliveryAttempt timeout{0, "timed out after 1000 ms", false};
  EXPECT_EQ(taskq::decide_callback(timeout, 1, 5, kPolicy, 0.5).kind, CallbackDecision::Kind::kRetry);
  // A 2xx status with an error (a cut-off body is not one; a broken write is)
  // does not count as delivered.
  const DeliveryAttempt broken{200, "send failed", false};
  EXPECT_EQ(taskq::decide_callback(broken, 1, 5, kPolicy, 0.5).kind, CallbackDecision::Kind::kRetry);
}

TEST(CallbackRetry, DelayDoublesFromBaseUpToTheCap) {
  // unit_random 1.0 gives the full (un-jittered) delay.
  EXPECT_EQ(taskq::decide_callback(answered(500), 1, 100, kPolicy, 1.0).retry_in, 1000ms);
  EXPECT_EQ(taskq::decide_callback(answered(500), 2, 100, kPolicy, 1.0).retry_in, 2000ms);
  EXPECT_EQ(taskq::decide_callback(answered(500), 3, 100, kPolicy, 1.0).retry_in, 4000ms);
  EXPECT_EQ(taskq::decide_callback(answered(500), 7, 100, kPolicy, 1.0).retry_in, 60'000ms);
  EXPECT_EQ(taskq::decide_callback(answered(500), 99, 100, kPolicy, 1.0).retry_in, 60'000ms);
  // Equal jitter: never below half the delay.
  EXPECT_EQ(taskq::decide_callback(answered(500), 3, 100, kPolicy, 0.0).retry_in, 2000ms);
}

TEST(CallbackRetry, GivesUpAtTheAttemptLimit) {
  EXPECT_EQ(taskq::decide_callback(answered(500), 4, 5, kPolicy, 0.5).kind, CallbackDecision::Kind::kRetry);
  EXPECT_EQ(taskq::decide_callback(answered(500), 5, 5, kPolicy, 0.5).kind, CallbackDecision::Kind::kDead);
  // A dispatcher that died mid-delivery still counted its attempt.
  EXPECT_EQ(taskq::decide_callback(answered(500), 7, 5, kPolicy, 0.5).kind, CallbackDecision::Kind::kDead);
  // ... but a delivery at any attempt is a delivery.
  EXPECT_EQ(taskq::decide_callback(answered(204), 7, 5, kPolicy, 0.5).kind, CallbackDecision::Kind::kDelivered);
  EXPECT_EQ(taskq::decide_callback(answered(500), 1, 1, kPolicy, 0.5).kind, CallbackDecision::Kind::kDead);
}

TEST(CallbackRetry, PermanentErrorsAreDeadAtOnce) {
  const DeliveryAttempt bad_url{0, "URL using bad/illegal format", true};
  EXPECT_EQ(taskq::decide_callback(bad_url, 1, 10, kPolicy, 0.5).kind, CallbackDecision::Kind::kDead);
}

}  // namespace
