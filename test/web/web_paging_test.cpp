// Keyset pages of GET /v1/jobs: walking every page while other jobs are
// being enqueued sees each job that existed at the start exactly once, in
// strictly newest-first order, with no gap.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

class WebPaging : public ::testing::Test {
 protected:
  void SetUp() override { TASKQ_REQUIRE_TEST_ENV(); }
};

TEST_F(WebPaging, NoDuplicatesOrGapsWhileJobsArrive) {
  PgConnection db = taskq::test::db();
  const std::string queue = make_queue(db);
  // 230 jobs made in one statement, so the test does not wait on HTTP.
  db.exec(
      "SELECT taskq.enqueue_many($1, (SELECT jsonb_agg(jsonb_build_object('n', g)) FROM generate_series(1, 230) g))",
      {queue.c_str()});
  std::vector<std::string> existing;
  {
    PgResult r = db.exec("SELECT id::text FROM taskq.jobs WHERE queue_name = $1 ORDER BY id DESC", {queue.c_str()});
    for (int i = 0; i < PQntuples(r.get()); ++i) existing.push_back(PQgetvalue(r.get(), i, 0));
  }
  ASSERT_EQ(existing.size(), 230u);

  WebProcess web;
  std::atomic<bool> stop{false};
  std::atomic<int> added{0};
  std::thread producer([&] {
    while (!stop.load()) {
      if (web.post("/v1/queues/" + queue + "/jobs").status == 201) ++added;
    }
  });

  std::vector<std::string> seen;
  std::string after;
  for (int page = 0; page < 100; ++page) {
    const HttpAnswer a = web.get("/v1/jobs?queue=" + queue + "&limit=25" + (after.empty() ? "" : "&after=" + after));
    ASSERT_EQ(a.status, 200) << a.body;
    const nlohmann::json j = a.json();
    for (const auto& job : j["jobs"]) seen.push_back(job["id"]);
    if (j["next_after"].is_null()) break;
    after = j["next_after"];
    EXPECT_EQ(after, seen.back());
  }
  stop.store(true);
  producer.join();
  EXPECT_GT(added.load(), 0) << "no job arrived while paging: the test proved nothing";

  const std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size()) << "a job appeared twice";
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i - 1], seen[i]) << "not newest first at " << i;
  for (const auto& id : existing) EXPECT_EQ(unique.count(id), 1u) << "job " << id << " fell into a gap";
  // The last page ends with the oldest job.
  EXPECT_EQ(seen.back(), existing.back());
}

}  // namespace
}  // namespace taskq::test
