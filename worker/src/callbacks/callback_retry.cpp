// Callback retry decisions; see callback_retry.hpp.
#include "callbacks/callback_retry.hpp"

#include <algorithm>

namespace taskq {

CallbackDecision decide_callback(const DeliveryAttempt& attempt, int attempts, int max_attempts,
                                 const BackoffPolicy& policy, double unit_random) {
  if (attempt.error.empty() && is_delivered_status(attempt.status)) return {CallbackDecision::Kind::kDelivered, {}};
  if (attempt.permanent || attempts >= max_attempts) return {CallbackDecision::Kind::kDead, {}};
  // The first retry waits `base`, the next 2 x base, ... up to `max`.
  const auto retry = static_cast<std::uint32_t>(std::max(attempts, 1));
  return {CallbackDecision::Kind::kRetry, backoff_delay(policy, retry, unit_random)};
}

}  // namespace taskq
