// See worker_fixture.hpp.
#include "worker_fixture.hpp"

#include <sstream>

#include "core/amqp_connection.hpp"

namespace taskq::test {

using namespace std::chrono_literals;

const char* const kRecordRun = "echo \"$TASKQ_JOB_ID $TASKQ_ATTEMPT\" >> \"$DIR/runs\"";

void WorkerFixture::SetUp() {
  TASKQ_REQUIRE_TEST_ENV();
  conn_.emplace(db());
  scratch_.emplace();
}

void WorkerFixture::TearDown() {
  if (settings_to_reset_.empty()) return;
  // A fresh connection: the test may have restarted the server under conn_.
  PgConnection c = db();
  for (const auto& name : settings_to_reset_) set_setting(c, name, "");
}

std::string WorkerFixture::create_queue(const std::string& prefix, const std::string& options) {
  const std::string name = unique_name(prefix);
  conn().exec("SELECT taskq.create_queue($1" + (options.empty() ? "" : ", " + options) + ")", {name.c_str()});
  return name;
}

std::vector<std::string> WorkerFixture::enqueue_many(const std::string& queue, int n, const std::string& extra) {
  const std::string count = std::to_string(n);
  auto r = conn().exec(
      "SELECT taskq.enqueue_many($1, (SELECT jsonb_agg(jsonb_build_object('n', i) ORDER BY i)"
      " FROM generate_series(1, $2::int) i)" +
          extra + ")",
      {queue.c_str(), count.c_str()});
  std::vector<std::string> ids;
  for (int i = 0; i < PQntuples(r.get()); ++i) ids.emplace_back(PQgetvalue(r.get(), i, 0));
  return ids;
}

std::string WorkerFixture::enqueue(const std::string& queue, const std::string& payload, const std::string& extra) {
  return conn().value("SELECT taskq.enqueue($1, $2::jsonb" + extra + ")", {queue.c_str(), payload.c_str()});
}

JobRow WorkerFixture::job(const std::string& id) {
  auto r = conn().exec("SELECT status, attempts, max_attempts, result::text, last_error FROM taskq.jobs WHERE id = $1",
                       {id.c_str()});
  JobRow row;
  if (PQntuples(r.get()) != 1) return row;
  row.status = PQgetvalue(r.get(), 0, 0);
  row.attempts = std::atoi(PQgetvalue(r.get(), 0, 1));
  row.max_attempts = std::atoi(PQgetvalue(r.get(), 0, 2));
  if (!PQgetisnull(r.get(), 0, 3)) row.result = PQgetvalue(r.get(), 0, 3);
  if (!PQgetisnull(r.get(), 0, 4)) row.last_error = PQgetvalue(r.get(), 0, 4);
  return row;
}

long WorkerFixture::count_jobs(const std::string& queue, const std::string& status) {
  return std::stol(conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status::text = $2",
                                {queue.c_str(), status.c_str()}));
}

bool WorkerFixture::wait_status_count(const std::string& queue, const std::string& status, long n,
                                      std::chrono::milliseconds timeout) {
  return wait_until([&] { return count_jobs(queue, status) >= n; }, timeout, 100ms);
}

bool WorkerFixture::wait_job_status(const std::string& id, const std::string& status,
                                    std::chrono::milliseconds timeout) {
  return wait_until([&] { return job(id).status == status; }, timeout, 100ms);
}

std::vector<std::string> WorkerFixture::worker_args(const std::map<std::string, std::string>& handlers,
                                                    const std::vector<std::string>& extra) {
  std::vector<std::string> args = connection_flags();
  for (const auto& [queue, target] : handlers) {
    args.push_back("--handler");
    args.push_back(queue + "=" + target);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

bool WorkerFixture::wait_consumer(const std::string& queue, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        try {
          ConnectOptions options;
          options.connection_name = "taskq integration test (inspector)";
          AmqpConnection c(BrokerUrl::parse(env("TASKQ_TEST_BROKER_URL")), options);
          const bool consumed = c.inspect_queue(rabbitmq_queue_name(queue)).consumers > 0;
          c.close();
          return consumed;
        } catch (const std::exception&) {
          return false;  // queue not declared yet, or the broker is restarting
        }
      },
      timeout, 200ms);
}

std::map<std::string, std::vector<int>> WorkerFixture::runs(const std::string& file) {
  std::map<std::string, std::vector<int>> out;
  for (const auto& line : scratch().lines(file)) {
    std::istringstream in(line);
    std::string id;
    int attempt = 0;
    in >> id >> attempt;
    out[id].push_back(attempt);
  }
  return out;
}

void WorkerFixture::expect_each_ran_once(const std::vector<std::string>& ids, const std::string& file) {
  const auto ran = runs(file);
  std::size_t wrong = 0;
  for (const auto& id : ids) {
    auto it = ran.find(id);
    if (it == ran.end() || it->second.size() != 1) {
      if (++wrong <= 5)
        ADD_FAILURE() << "job " << id << " ran " << (it == ran.end() ? 0 : it->second.size()) << " times";
    }
  }
  EXPECT_EQ(wrong, 0u) << "jobs that did not run exactly once";
  EXPECT_EQ(ran.size(), ids.size()) << "runs of jobs that were not enqueued by this test";
}

void WorkerFixture::use_fast_maintenance() {
  set_setting(conn(), "taskq.maintenance_interval", "1s");
  settings_to_reset_.insert("taskq.maintenance_interval");
}

}  // namespace taskq::test
