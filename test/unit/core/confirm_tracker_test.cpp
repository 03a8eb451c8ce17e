// ConfirmTracker: single and multiple acks/nacks, returns, and losing the
// channel with messages outstanding.
#include "core/confirm_tracker.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using taskq::ConfirmOutcome;
using taskq::ConfirmTracker;

namespace {

std::vector<std::int64_t> ids_where(const std::vector<ConfirmOutcome>& outcomes, bool confirmed) {
  std::vector<std::int64_t> ids;
  for (const auto& o : outcomes)
    if (o.confirmed == confirmed) ids.push_back(o.outbox_id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

ConfirmTracker with_five() {
  ConfirmTracker t;
  for (int tag = 1; tag <= 5; ++tag) t.published(tag, 100 + tag, "job-" + std::to_string(tag));
  return t;
}

}  // namespace

TEST(ConfirmTracker, SingleAckResolvesOnlyThatTag) {
  auto t = with_five();
  t.ack(3, false);
  EXPECT_EQ(ids_where(t.take_resolved(), true), std::vector<std::int64_t>{103});
  EXPECT_EQ(t.outstanding(), 4u);
}

TEST(ConfirmTracker, MultipleAckResolvesEveryTagUpToIt) {
  auto t = with_five();
  t.ack(2, false);
  t.ack(4, true);  // 1, 3, 4 (2 already resolved)
  const auto resolved = t.take_resolved();
  EXPECT_EQ(ids_where(resolved, true), (std::vector<std::int64_t>{101, 102, 103, 104}));
  EXPECT_EQ(t.outstanding(), 1u);
}

TEST(ConfirmTracker, MultipleNackFailsThePrefix) {
  auto t = with_five();
  t.nack(2, true);
  t.ack(5, true);
  const auto resolved = t.take_resolved();
  EXPECT_EQ(ids_where(resolved, false), (std::vector<std::int64_t>{101, 102}));
  EXPECT_EQ(ids_where(resolved, true), (std::vector<std::int64_t>{103, 104, 105}));
  for (const auto& o : resolved) {
    if (!o.confirmed) {
      EXPECT_FALSE(o.reason.empty());
    }
  }
  EXPECT_EQ(t.outstanding(), 0u);
}

TEST(ConfirmTracker, ReturnedThenAckedCountsAsFailure) {
  auto t = with_five();
  t.returned("job-2", "unroutable");
  t.ack(3, true);
  const auto resolved = t.take_resolved();
  EXPECT_EQ(ids_where(resolved, false), std::vector<std::int64_t>{102});
  EXPECT_EQ(ids_where(resolved, true), (std::vector<std::int64_t>{101, 103}));
}

TEST(ConfirmTracker, UnknownAndRepeatedTagsAreIgnored) {
  auto t = with_five();
  t.ack(1, false);
  t.ack(1, false);   // duplicate
  t.ack(99, false);  // never published
  EXPECT_EQ(t.take_resolved().size(), 1u);
  EXPECT_EQ(t.outstanding(), 4u);
}

TEST(ConfirmTracker, FailAllResolvesEverythingOutstandingAsFailed) {
  auto t = with_five();
  t.ack(2, true);
  t.fail_all("connection closed");
  const auto resolved = t.take_resolved();
  EXPECT_EQ(ids_where(resolved, true), (std::vector<std::int64_t>{101, 102}));
  EXPECT_EQ(ids_where(resolved, false), (std::vector<std::int64_t>{103, 104, 105}));
  EXPECT_EQ(t.outstanding(), 0u);
  t.ack(5, true);  // late confirm after the channel died: nothing to resolve
  EXPECT_TRUE(t.take_resolved().empty());
}

TEST(ConfirmTracker, CountsNacksSinceTheLastAck) {
  auto t = with_five();
  EXPECT_EQ(t.nacks_in_a_row(), 0u);
  t.nack(2, true);  // 1, 2
  EXPECT_EQ(t.nacks_in_a_row(), 2u);
  t.ack(3, false);
  EXPECT_EQ(t.nacks_in_a_row(), 0u);
  t.returned("job-4", "NO_ROUTE");
  t.ack(4, false);  // returned, then acked: a failure, but not a nack
  EXPECT_EQ(t.nacks_in_a_row(), 0u);
  t.nack(5, false);
  EXPECT_EQ(t.nacks_in_a_row(), 1u);
}

// A packed message (several jobs per message) carries several outbox rows:
// each gets the message's outcome, and outstanding() counts rows.
TEST(ConfirmTracker, APackedMessageResolvesAllItsRows) {
  ConfirmTracker t;
  t.published(1, std::vector<std::int64_t>{11, 12, 13}, "job-a");
  t.published(2, std::vector<std::int64_t>{21, 22}, "job-b");
  EXPECT_EQ(t.outstanding(), 5u);
  t.nack(2, false);
  t.ack(1, false);
  const auto outcomes = t.take_resolved();
  EXPECT_EQ(ids_where(outcomes, true), (std::vector<std::int64_t>{11, 12, 13}));
  EXPECT_EQ(ids_where(outcomes, false), (std::vector<std::int64_t>{21, 22}));
  EXPECT_EQ(t.outstanding(), 0u);
}

TEST(ConfirmTracker, AReturnedPackedMessageFailsAllItsRowsAndLosingTheChannelFailsTheRest) {
  ConfirmTracker t;
  t.published(1, std::vector<std::int64_t>{1, 2}, "job-1");
  t.published(2, std::vector<std::int64_t>{3, 4, 5}, "job-3");
  t.returned("job-1", "NO_ROUTE");
  t.ack(1, false);
  auto first = t.take_resolved();
  ASSERT_EQ(first.size(), 2u);
  for (const auto& o : first) {
    EXPECT_FALSE(o.confirmed);
    EXPECT_NE(o.reason.find("returned"), std::string::npos);
  }
  t.fail_all("connection lost");
  EXPECT_EQ(ids_where(t.take_resolved(), false), (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_EQ(t.outstanding(), 0u);
}
