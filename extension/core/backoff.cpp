// Capped exponential backoff; see backoff.hpp.
#include "backoff.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace taskq {

std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, std::uint32_t attempt, double unit_random) {
  const double base = static_cast<double>(std::max<std::int64_t>(policy.base.count(), 0));
  const double cap = static_cast<double>(std::max<std::int64_t>(policy.max.count(), 0));
  const std::uint32_t exponent = attempt == 0 ? 0 : std::min<std::uint32_t>(attempt - 1, 62);
  const double full = std::min(cap, base * std::ldexp(1.0, static_cast<int>(exponent)));
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double r = std::clamp(unit_random, 0.0, 1.0);
  const double delay = full * (1.0 - jitter) + full * jitter * r;
  return std::chrono::milliseconds(static_cast<std::int64_t>(delay));
}

Backoff::Backoff(BackoffPolicy policy) : policy_(policy) {}

std::chrono::milliseconds Backoff::next() {
  if (!seeded_) {
    rng_state_ = std::random_device{}();
    seeded_ = true;
  }
  // splitmix64: plenty for jitter, and no shared state between threads.
  rng_state_ += 0x9E3779B97F4A7C15ULL;
  std::uint64_t z = rng_state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  const double unit = static_cast<double>(z >> 11) / static_cast<double>(1ULL << 53);
  if (attempt_ < UINT32_MAX) ++attempt_;
  return backoff_delay(policy_, attempt_, unit);
}

}  // namespace taskq
