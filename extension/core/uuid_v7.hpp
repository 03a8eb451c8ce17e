// Time-ordered job ids (UUIDv7, RFC 9562 section 5.7).
//
// Ids from one generator are strictly increasing, even for many ids inside
// one millisecond: the 12-bit rand_a field is a counter (RFC 9562 6.2,
// method 1) that starts at a random value with headroom, and when it runs out
// the timestamp borrows the next millisecond. Strictly increasing ids keep the
// jobs primary key append-mostly and make ids sort in enqueue order.
#pragma once

#include "no_postgres.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <string>

namespace taskq {

using Uuid = std::array<std::uint8_t, 16>;

class UuidV7Generator {
 public:
  using Clock = std::function<std::uint64_t()>;  // unix time in milliseconds
  using RandomSource = std::function<void(std::uint8_t*, std::size_t)>;

  // Real clock and the kernel's CSPRNG (buffered: one getrandom per ~500 ids).
  UuidV7Generator();
  // For tests: a fake clock and random source.
  UuidV7Generator(Clock clock, RandomSource random);

  Uuid next();

 private:
  std::uint64_t random_u64();

  Clock clock_;
  RandomSource random_;
  std::uint64_t last_ms_ = 0;
  std::uint32_t counter_ = 0;  // 12 bits used
  std::array<std::uint8_t, 4096> pool_{};
  std::size_t pool_pos_ = sizeof(pool_);
};

// Canonical 8-4-4-4-12 lower-case hex form.
std::string to_string(const Uuid& id);

}  // namespace taskq
