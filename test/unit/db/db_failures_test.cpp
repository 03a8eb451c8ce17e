// Which database failures the worker retries.
#include <gtest/gtest.h>

#include "db/pg_connection.hpp"

namespace {

TEST(DbFailures, AreClassifiedForRetry) {
  using taskq::DbFailure;
  EXPECT_EQ(taskq::classify_db_failure("40001", true, false), DbFailure::kTransient);
  EXPECT_EQ(taskq::classify_db_failure("40P01", true, false), DbFailure::kTransient);
  EXPECT_EQ(taskq::classify_db_failure("57P01", true, false), DbFailure::kTransient);
  EXPECT_EQ(taskq::classify_db_failure("", false, false), DbFailure::kTransient);
  EXPECT_EQ(taskq::classify_db_failure("", false, true), DbFailure::kOutcomeUnknown);
  EXPECT_EQ(taskq::classify_db_failure("22023", true, false), DbFailure::kPermanent);
  EXPECT_EQ(taskq::classify_db_failure("42704", true, false), DbFailure::kPermanent);
}

}  // namespace
