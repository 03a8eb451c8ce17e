// UUIDv7 layout (RFC 9562) and the monotonicity taskq relies on for
// append-mostly primary keys and enqueue-ordered ids.
#include "core/uuid_v7.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

namespace {

struct FakeClock {
  std::uint64_t now = 1'700'000'000'000ULL;
  std::uint64_t operator()() const { return now; }
};

// Deterministic "random" bytes, all set to one value.
taskq::UuidV7Generator::RandomSource constant_random(std::uint8_t value) {
  return [value](std::uint8_t* out, std::size_t len) { std::memset(out, value, len); };
}

std::uint64_t timestamp_ms(const taskq::Uuid& id) {
  std::uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = (ms << 8) | id[i];
  return ms;
}

TEST(UuidV7, HasVersionSevenAndRfcVariant) {
  taskq::UuidV7Generator gen;
  for (int i = 0; i < 100; ++i) {
    const auto id = gen.next();
    EXPECT_EQ(id[6] >> 4, 7);
    EXPECT_EQ(id[8] >> 6, 0b10);
  }
}

TEST(UuidV7, EmbedsTheClockInMilliseconds) {
  auto clock = std::make_shared<FakeClock>();
  taskq::UuidV7Generator gen([clock] { return clock->now; }, constant_random(0x11));
  EXPECT_EQ(timestamp_ms(gen.next()), clock->now);
  clock->now += 5;
  EXPECT_EQ(timestamp_ms(gen.next()), clock->now);
}

TEST(UuidV7, StrictlyIncreasingWithinOneMillisecond) {
  auto clock = std::make_shared<FakeClock>();
  // 0xFF random bytes: the counter starts at its highest seed value (0x7FF),
  // the worst case for running out inside a millisecond.
  taskq::UuidV7Generator gen([clock] { return clock->now; }, constant_random(0xFF));
  taskq::Uuid prev = gen.next();
  for (int i = 0; i < 10'000; ++i) {
    const auto id = gen.next();
    ASSERT_LT(prev, id) << "at id " << i;
    prev = id;
  }
  // 10,000 ids in one frozen millisecond must have borrowed future
  // milliseconds (at most ~2,048 fit in one), never gone backwards.
  EXPECT_GT(timestamp_ms(prev), clock->now);
}

TEST(UuidV7, StaysMonotonicWhenTheClockStepsBack) {
  auto clock = std::make_shared<FakeClock>();
  taskq::UuidV7Generator gen([clock] { return clock->now; }, constant_random(0x00));
  const auto before = gen.next();
  clock->now -= 1000;  // NTP step backwards
  const auto after = gen.next();
  EXPECT_LT(before, after);
}

TEST(UuidV7, RealGeneratorProducesUniqueIds) {
  taskq::UuidV7Generator gen;
  std::set<taskq::Uuid> seen;
  for (int i = 0; i < 50'000; ++i) ASSERT_TRUE(seen.insert(gen.next()).second);
}

TEST(UuidV7, FormatsCanonically) {
  taskq::Uuid id{};
  for (int i = 0; i < 16; ++i) id[i] = static_cast<std::uint8_t>(i * 17);
  EXPECT_EQ(taskq::to_string(id), "00112233-4455-6677-8899-aabbccddeeff");
}

}  // namespace
