// What to do after a callback delivery attempt: delivered, retry later (capped
// exponential backoff, extension/core/backoff.hpp) or give up (dead).
#pragma once

#include <chrono>
#include <string>

#include "core/backoff.hpp"

namespace taskq {

// How one POST ended, as the transport saw it.
struct DeliveryAttempt {
  long status = 0;         // HTTP status; 0 when no response arrived
  std::string error;       // why it failed ("" when delivered)
  bool permanent = false;  // retrying cannot help (malformed or non-http(s) URL)
};

struct CallbackDecision {
  enum class Kind { kDelivered, kRetry, kDead };
  Kind kind = Kind::kDelivered;
  std::chrono::milliseconds retry_in{0};  // kRetry
};

// Only a 2xx answer delivers (a 3xx is a failure: redirects are not followed).
inline bool is_delivered_status(long status) { return status >= 200 && status < 300; }

// `attempts` counts this one (the claim counted it). `unit_random` in [0, 1)
// jitters the delay.
CallbackDecision decide_callback(const DeliveryAttempt& attempt, int attempts, int max_attempts,
                                 const BackoffPolicy& policy, double unit_random);

}  // namespace taskq
