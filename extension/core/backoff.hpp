// Capped exponential backoff with jitter, used wherever taskq retries against
// a remote party: broker and database reconnects, callback deliveries.
// (Job retries are computed in SQL by taskq.fail(), with the same formula.)
#pragma once

#include "no_postgres.hpp"

#include <chrono>
#include <cstdint>

namespace taskq {

struct BackoffPolicy {
  std::chrono::milliseconds base{100};
  std::chrono::milliseconds max{30'000};
  // Share of the delay that is randomised: 0.5 means the delay is drawn
  // uniformly from [d/2, d] ("equal jitter"), which spreads a herd of
  // reconnecting clients while keeping a lower bound.
  double jitter = 0.5;
};

// Delay before retry number `attempt` (1 = first retry): base * 2^(attempt-1)
// capped at max, then jittered. `unit_random` is a value in [0, 1).
std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, std::uint32_t attempt, double unit_random);

// Stateful helper for reconnect loops: next() grows the delay, reset() after
// a success starts over.
class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {});
  std::chrono::milliseconds next();
  void reset() { attempt_ = 0; }
  std::uint32_t attempts() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  std::uint32_t attempt_ = 0;
  // Seeded at the first next(): a Backoff is made for every database call
  // that might need retrying, and reading std::random_device costs a system
  // call or more, which showed in profiles of the worker's hot path.
  bool seeded_ = false;
  std::uint64_t rng_state_ = 0;
};

}  // namespace taskq
