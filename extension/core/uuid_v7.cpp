// UUIDv7 generation; see uuid_v7.hpp for the ordering guarantee.
#include "uuid_v7.hpp"

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace taskq {
namespace {

std::uint64_t system_clock_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

void kernel_random(std::uint8_t* out, std::size_t len) {
  while (len > 0) {
    ssize_t n = getrandom(out, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    out += n;
    len -= static_cast<std::size_t>(n);
  }
}

constexpr std::uint32_t kCounterMax = 0xFFF;
// A fresh millisecond starts the counter in the lower half, so at least 2048
// ids fit before the timestamp has to borrow from the future.
constexpr std::uint32_t kCounterSeedMask = 0x7FF;

}  // namespace

UuidV7Generator::UuidV7Generator() : UuidV7Generator(system_clock_ms, kernel_random) {}

UuidV7Generator::UuidV7Generator(Clock clock, RandomSource random)
    : clock_(std::move(clock)), random_(std::move(random)) {}

std::uint64_t UuidV7Generator::random_u64() {
  if (pool_pos_ + 8 > pool_.size()) {
    random_(pool_.data(), pool_.size());
    pool_pos_ = 0;
  }
  std::uint64_t v;
  std::memcpy(&v, pool_.data() + pool_pos_, 8);
  pool_pos_ += 8;
  return v;
}

Uuid UuidV7Generator::next() {
  std::uint64_t now = clock_();
  if (now > last_ms_) {
    last_ms_ = now;
    counter_ = static_cast<std::uint32_t>(random_u64()) & kCounterSeedMask;
  } else if (counter_ < kCounterMax) {
    // Same millisecond, or the clock stepped back: stay on the last
    // timestamp so ids keep increasing.
    ++counter_;
  } else {
    ++last_ms_;
    counter_ = static_cast<std::uint32_t>(random_u64()) & kCounterSeedMask;
  }

  const std::uint64_t rand_b = random_u64();
  Uuid id{};
  for (int i = 0; i < 6; ++i) id[i] = static_cast<std::uint8_t>(last_ms_ >> (40 - 8 * i));
  id[6] = static_cast<std::uint8_t>(0x70 | (counter_ >> 8));
  id[7] = static_cast<std::uint8_t>(counter_ & 0xFF);
  id[8] = static_cast<std::uint8_t>(0x80 | ((rand_b >> 56) & 0x3F));
  for (int i = 9; i < 16; ++i) id[i] = static_cast<std::uint8_t>(rand_b >> (8 * (15 - i)));
  return id;
}

std::string to_string(const Uuid& id) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(hex[id[i] >> 4]);
    s.push_back(hex[id[i] & 0xF]);
  }
  return s;
}

}  // namespace taskq
