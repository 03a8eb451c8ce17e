// The chaos harness: real PostgreSQL, real RabbitMQ, three real
// taskq-worker processes and a callback receiver; jobs flow while faults
// are injected alone and mixed at random; then everything is drained and
// the promise is checked from the database and from the handlers' own
// record of what ran.
//
// `make test` runs the short form (SOAK_MINUTES unset: 2 minutes of
// faults); `make soak` the long one (SOAK_MINUTES, default 20). The report
// (jobs, faults per kind, re-runs, longest stuck job, RSS) goes to stdout.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "frozen_broker.hpp"
#include "http_receiver.hpp"
#include "worker_process.hpp"

using namespace std::chrono_literals;
using taskq::DbError;
using taskq::PgConnection;
using namespace taskq::test;
using Clock = std::chrono::steady_clock;

namespace {

// The test's own sessions are named, so that terminating the workers'
// sessions (application_name taskq-worker) spares them.
PgConnection chaos_db() { return PgConnection(env("TASKQ_TEST_DATABASE_URL") + " application_name=taskq-chaos"); }

// Runs fn on a connection that survives the database going away: it is
// made again whenever a call fails, until `timeout`.
class Db {
 public:
  template <typename Fn>
  auto with(Fn fn, std::chrono::milliseconds timeout = 120s) -> decltype(fn(std::declval<PgConnection&>())) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      try {
        if (!conn_) conn_.emplace(chaos_db());
        return fn(*conn_);
      } catch (const DbError& e) {
        // Only a lost or refused connection is worth another try.
        if (e.kind() == taskq::DbFailure::kPermanent && conn_ && conn_->ok()) throw;
        conn_.reset();
        if (Clock::now() > deadline) throw;
        std::this_thread::sleep_for(200ms);
      }
    }
  }
  std::string value(const std::string& sql, const std::vector<std::string>& params = {}) {
    return with([&](PgConnection& c) {
      std::vector<const char*> p;
      for (const auto& s : params) p.push_back(s.c_str());
      return c.value(sql, p);
    });
  }

 private:
  std::optional<PgConnection> conn_;
};

// A field of /proc/PID/status in kB, -1 if not there.
long status_kb(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return -1;
}
long rss_kb(pid_t pid) { return status_kb(pid, "VmRSS"); }
// A backend's VmRSS counts every page of shared buffers it has touched, so
// it grows with the data it reads; its own (anonymous) memory is RssAnon.
long private_kb(pid_t pid) { return status_kb(pid, "RssAnon"); }

// What the callback receiver saw, and how it answers now.
struct CallbackLog {
  std::mutex mu;
  std::map<std::string, std::set<std::string>> deliveries;  // job id + event -> delivery ids
  std::set<std::string> acknowledged;                       // job id + event answered 2xx
  std::atomic<int> mode{0};                                 // 0 healthy, 1 down (503), 2 hanging
  std::atomic<long> requests{0};
};

class Chaos : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    const char* minutes = std::getenv("SOAK_MINUTES");
    duration_ = minutes != nullptr && *minutes != '\0' ? std::chrono::seconds(std::stol(minutes) * 60) : 120s;
    const char* seed = std::getenv("CHAOS_SEED");
    seed_ = seed != nullptr && *seed != '\0' ? static_cast<unsigned>(std::stoul(seed)) : std::random_device{}();
    std::cout << "chaos: CHAOS_SEED=" << seed_ << " SOAK_MINUTES=" << duration_.count() / 60.0 << "\n";
    scratch_.emplace();
    queue_ = unique_name("chaos");
    db_.with([&](PgConnection& c) {
      c.exec("CREATE EXTENSION IF NOT EXISTS taskq");
      // Lost messages (purged or deleted queues) are republished after 3 s
      // instead of 5 minutes, and leases rescued within a second.
      for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
               {"taskq.reconcile_after", "3s"}, {"taskq.maintenance_interval", "1s"}})
        set_setting(c, name, value);
      c.exec(
          "SELECT taskq.create_queue($1, max_attempts => 3, lease => '4 seconds', backoff_base => '100 ms', "
          "backoff_max => '1 second')",
          {queue_.c_str()});
      // Every status change of this queue's jobs, to count completions.
      c.exec("CREATE TABLE IF NOT EXISTS public.chaos_transitions (job_id uuid, status text, at timestamptz)");
      c.exec(
          "CREATE OR REPLACE FUNCTION public.chaos_record() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
          "INSERT INTO public.chaos_transitions VALUES (NEW.id, NEW.status::text, clock_timestamp()); RETURN NULL; "
          "END $$");
      c.exec(
          "CREATE OR REPLACE TRIGGER chaos_transitions AFTER UPDATE OF status ON taskq.jobs FOR EACH ROW "
          "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION public.chaos_record()");
      return 0;
    });
    receiver_.respond([this](const ReceivedRequest& r, std::size_t) {
      callbacks_.requests++;
      const std::string key = r.header("X-Taskq-Job-Id") + " " + r.header("X-Taskq-Event");
      {
        std::lock_guard<std::mutex> lock(callbacks_.mu);
        callbacks_.deliveries[key].insert(r.header("X-Taskq-Delivery"));
      }
      const int mode = callbacks_.mode;
      if (mode == 1) return Response{503, "{}"};
      if (mode == 2) return Response{200, "{}", "application/json", 15s};  // longer than the callback timeout
      if (std::hash<std::string>{}(r.header("X-Taskq-Delivery")) % 10 == 0 && callbacks_.requests % 3 == 0)
        return Response{500, "{}"};  // some fail once in a while
      std::lock_guard<std::mutex> lock(callbacks_.mu);
      callbacks_.acknowledged.insert(key);
      return Response{200, "{}"};
    });
    handler_ = scratch_->script("handler.sh", std::string("echo \"$TASKQ_JOB_ID $TASKQ_ATTEMPT\" >> \"$DIR/runs\"\n") +
                                                  "case \"$TASKQ_TASK\" in\n"
                                                  "  poison) echo 'poisoned by design' >&2; exit 1 ;;\n"
                                                  "  slow) sleep 6 ;;\n"
                                                  "  *) sleep 0.02 ;;\n"
                                                  "esac\n"
                                                  "echo '\"ok\"'");
    for (int w = 0; w < 3; w++) start_worker(w);
  }

  void TearDown() override {
    stop_faults_ = true;
    callbacks_.mode = 0;
    for (auto& w : workers_)
      if (w) w->kill();
    if (scratch_) scratch_->kill_handlers();
    try {
      db_.with([&](PgConnection& c) {
        c.exec("DROP TRIGGER IF EXISTS chaos_transitions ON taskq.jobs");
        c.exec("DROP FUNCTION IF EXISTS public.chaos_record()");
        c.exec("DROP TABLE IF EXISTS public.chaos_transitions");
        set_setting(c, "taskq.reconcile_after", "");
        set_setting(c, "taskq.maintenance_interval", "");
        return 0;
      });
    } catch (const std::exception& e) {
      std::cerr << "chaos: cleaning up: " << e.what() << "\n";
    }
    rabbitmqctl("clear_policy chaos_reject >/dev/null 2>&1");
  }

  void start_worker(int w) {
    workers_[w] = std::make_unique<WorkerProcess>(
        std::vector<std::string>{"--database", env("TASKQ_TEST_DATABASE_URL"), "--broker", env("TASKQ_TEST_BROKER_URL"),
                                 "--handler", queue_ + "=exec:" + handler_, "--concurrency", "8", "--name",
                                 "chaos-" + std::to_string(w), "--callback-timeout", "2", "--callback-max-attempts",
                                 "1000", "--callback-retry-max", "2", "--shutdown-timeout", "5"});
  }

  // --- the producer: jobs, some of them in transactions that roll back ---
  void produce() {
    Db db;  // a connection of its own: a PGconn serves one thread
    std::mt19937 rng(42);
    long n = 0;
    long rounds = 0;
    while (!stop_producing_) {
      // A bounded backlog: the run measures faults, not a queue that grows
      // for as long as the soak lasts. Production (about 150 jobs a second)
      // is close to what three workers of exec handlers drain on two cores
      // under faults; over 20 minutes a small deficit became 30,000 jobs
      // that the drain could not finish in its 5 minutes.
      if (rounds++ % 20 == 0) {
        long unfinished = 0;
        try {
          unfinished = db.with(
              [&](PgConnection& c) {
                return std::stol(c.value(
                    "SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status IN ('pending', 'running')",
                    {queue_.c_str()}));
              },
              5s);
        } catch (const std::exception&) {
        }
        if (unfinished > kMaxBacklog) {
          backlog_pauses_++;
          std::this_thread::sleep_for(1s);
          continue;
        }
      }
      try {
        db.with(
            [&](PgConnection& c) {
              c.exec("BEGIN");
              const bool rollback = rng() % 20 == 0;
              const int batch = 1 + static_cast<int>(rng() % 20);
              std::vector<std::string> ids;
              for (int i = 0; i < batch; i++, n++) {
                const char* task = n % 97 == 0 ? "poison" : n % 151 == 0 ? "slow" : "work";
                const std::string url = receiver_.url("/cb");
                ids.push_back(
                    c.value("SELECT taskq.enqueue($1, jsonb_build_object('n', $2::int), task => $3, "
                            "callback_url => $4)",
                            {queue_.c_str(), std::to_string(n).c_str(), task, url.c_str()}));
              }
              c.exec(rollback ? "ROLLBACK" : "COMMIT");
              std::lock_guard<std::mutex> lock(mu_);
              for (const auto& id : ids) (rollback ? rolled_back_ : committed_).insert(id);
              return 0;
            },
            5s);
      } catch (const std::exception&) {
        // The database went away mid-transaction: whether it committed is
        // unknown, so those ids are simply not counted either way. The
        // check below reads committed jobs from the database itself.
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 60));
    }
  }

  // --- the faults ---------------------------------------------------------
  void fault(const std::string& kind, std::mt19937& rng) {
    Db db;  // this thread's own connection
    {
      std::lock_guard<std::mutex> lock(mu_);
      faults_[kind]++;
    }
    // Two faults at once hit different parts: faults on one part take turns.
    std::mutex& part = kind.rfind("worker", 0) == 0                                                    ? workers_mu_
                       : kind.rfind("callback", 0) == 0                                                ? callbacks_mu_
                       : kind.find("postgres") != std::string::npos || kind.rfind("terminate", 0) == 0 ? postgres_mu_
                                                                                                       : broker_mu_;
    std::lock_guard<std::mutex> one_at_a_time(part);
    const int w = 1 + static_cast<int>(rng() % 2);  // worker 0 is never killed: its RSS is the memory check
    if (kind == "worker kill -9") {
      workers_[w]->kill();
      scratch_->kill_handlers();  // what its handlers were doing dies with it, as in a container
      std::this_thread::sleep_for(1s);
      start_worker(w);
    } else if (kind == "worker SIGTERM") {
      workers_[w]->terminate();
      workers_[w]->wait_exit(30s);
      start_worker(w);
    } else if (kind == "close broker connections") {
      rabbitmqctl("close_all_connections chaos >/dev/null 2>&1");
    } else if (kind == "broker restart") {
      env_action("broker-restart");
    } else if (kind == "broker kill -9") {
      env_action("broker-kill");
      std::this_thread::sleep_for(2s);
      env_action("broker-start");
    } else if (kind == "frozen broker") {
      FrozenBroker frozen;
      std::this_thread::sleep_for(std::chrono::seconds(3 + rng() % 8));
    } else if (kind == "postgres crash") {
      env_action("pg-crash");
      std::this_thread::sleep_for(2s);
      env_action("pg-start");
    } else if (kind == "terminate publisher") {
      db.value("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'taskq publisher'");
    } else if (kind == "terminate worker sessions") {
      db.value("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'taskq-worker'");
    } else if (kind == "delete queue") {
      rabbitmqctl("delete_queue taskq." + queue_ + " >/dev/null 2>&1");
    } else if (kind == "purge queue") {
      rabbitmqctl("purge_queue taskq." + queue_ + " >/dev/null 2>&1");
    } else if (kind == "reject publishes") {
      rabbitmqctl("set_policy --apply-to queues chaos_reject '^taskq\\." + queue_ +
                  "$' '{\"max-length\": 0, \"overflow\": \"reject-publish\"}' >/dev/null 2>&1");
      std::this_thread::sleep_for(5s);
      rabbitmqctl("clear_policy chaos_reject >/dev/null 2>&1");
    } else if (kind == "callback receiver down") {
      callbacks_.mode = 1;
      std::this_thread::sleep_for(8s);
      callbacks_.mode = 0;
    } else if (kind == "callback receiver hangs") {
      callbacks_.mode = 2;
      std::this_thread::sleep_for(8s);
      callbacks_.mode = 0;
    }
  }

  void inject_faults() {
    static const std::vector<std::string> kinds = {"worker kill -9",
                                                   "worker SIGTERM",
                                                   "close broker connections",
                                                   "broker restart",
                                                   "broker kill -9",
                                                   "frozen broker",
                                                   "postgres crash",
                                                   "terminate publisher",
                                                   "terminate worker sessions",
                                                   "delete queue",
                                                   "purge queue",
                                                   "reject publishes",
                                                   "callback receiver down",
                                                   "callback receiver hangs"};
    // Every kind once per round, in a random order, so that even the short
    // form meets each of them; CHAOS_SEED repeats a run's order.
    std::mt19937 rng(seed_);
    std::vector<std::string> round;
    while (!stop_faults_) {
      if (round.empty()) {
        round = kinds;
        std::shuffle(round.begin(), round.end(), rng);
      }
      std::this_thread::sleep_for(std::chrono::seconds(2 + rng() % 4));
      if (stop_faults_) break;
      const std::string a = round.back();
      round.pop_back();
      // Mostly one fault, sometimes two at once.
      if (rng() % 4 == 0 && !round.empty()) {
        const std::string b = round.back();
        round.pop_back();
        std::mt19937 rng_b(rng());
        std::thread other([&] { fault(b, rng_b); });
        fault(a, rng);
        other.join();
      } else {
        fault(a, rng);
      }
    }
  }

  Db db_;
  unsigned seed_ = 0;
  std::chrono::seconds duration_{120};
  std::optional<ScratchDir> scratch_;
  std::string queue_, handler_;
  HttpReceiver receiver_;
  CallbackLog callbacks_;
  std::unique_ptr<WorkerProcess> workers_[3];
  std::atomic<bool> stop_producing_{false}, stop_faults_{false};
  // Unfinished jobs above which the producer waits (see produce()).
  static constexpr long kMaxBacklog = 2000;
  std::atomic<long> backlog_pauses_{0};
  std::mutex mu_;
  std::mutex workers_mu_, callbacks_mu_, postgres_mu_, broker_mu_;
  std::set<std::string> committed_, rolled_back_;
  std::map<std::string, int> faults_;
};

TEST_F(Chaos, NoJobIsLostOrFinishedTwiceWhateverFails) {
  ASSERT_TRUE(
      wait_until([&] { return db_.value("SELECT count(*) FROM taskq.publisher WHERE connected") == "1"; }, 60s));
  const auto started = Clock::now();
  std::thread producer([&] { produce(); });
  // Warm-up without faults, then the memory baseline of the worker that
  // is never killed.
  std::this_thread::sleep_for(10s);
  const long worker_rss_start = rss_kb(workers_[0]->pid());
  const std::string publisher_rss_pid =
      db_.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskq publisher'");
  const long publisher_rss_start = publisher_rss_pid.empty() ? -1 : private_kb(std::stoi(publisher_rss_pid));
  std::thread injector([&] { inject_faults(); });
  std::this_thread::sleep_for(duration_);
  stop_faults_ = true;
  injector.join();
  stop_producing_ = true;
  producer.join();
  const double fault_seconds = std::chrono::duration<double>(Clock::now() - started).count();

  // Everything up again, then drain.
  for (int w = 0; w < 3; w++)
    if (!workers_[w]->running()) start_worker(w);
  const auto unfinished = [&] {
    return db_.value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status IN ('pending', 'running')",
                     {queue_}) +
           " unfinished, " + db_.value("SELECT count(*) FROM taskq.outbox WHERE queue_name = $1", {queue_}) +
           " in the outbox, " +
           db_.value(
               "SELECT count(*) FROM taskq.callbacks c JOIN taskq.jobs j ON j.id = c.job_id "
               "WHERE j.queue_name = $1 AND c.state <> 'delivered'",
               {queue_}) +
           " callbacks undelivered";
  };
  const std::string drained = "0 unfinished, 0 in the outbox, 0 callbacks undelivered";
  ASSERT_TRUE(wait_until([&] { return unfinished() == drained; }, 300s, 500ms)) << "not drained: " << unfinished();

  // --- the promise ---------------------------------------------------------
  std::set<std::string> committed, rolled_back;
  {
    std::lock_guard<std::mutex> lock(mu_);
    committed = committed_;
    rolled_back = rolled_back_;
  }
  // Jobs the database has (the truth: commits whose answer was lost count
  // too), and how each ended.
  std::map<std::string, std::string> in_db;  // id -> status|task|last_error
  db_.with([&](PgConnection& c) {
    auto r = c.exec("SELECT id, status::text, task, coalesce(last_error, '') FROM taskq.jobs WHERE queue_name = $1",
                    {queue_.c_str()});
    for (int i = 0; i < PQntuples(r.get()); i++)
      in_db[PQgetvalue(r.get(), i, 0)] =
          std::string(PQgetvalue(r.get(), i, 1)) + "|" + PQgetvalue(r.get(), i, 2) + "|" + PQgetvalue(r.get(), i, 3);
    return 0;
  });
  for (const auto& id : committed) EXPECT_EQ(in_db.count(id), 1u) << "committed job " << id << " is gone";
  for (const auto& id : rolled_back) EXPECT_EQ(in_db.count(id), 0u) << "rolled-back job " << id << " exists";
  long poisoned = 0;
  for (const auto& [id, row] : in_db) {
    const bool poison = row.find("|poison|") != std::string::npos;
    if (poison) {
      poisoned++;
      EXPECT_EQ(row.substr(0, row.find('|')), "failed") << id << ": " << row;
      EXPECT_NE(row.find("poisoned by design"), std::string::npos) << id << " failed without its handler's reason";
    } else {
      EXPECT_EQ(row.substr(0, row.find('|')), "completed") << id << ": " << row;
    }
  }
  // At most one completion per job.
  EXPECT_EQ(db_.value("SELECT count(*) FROM (SELECT job_id FROM public.chaos_transitions WHERE status = 'completed' "
                      "GROUP BY job_id HAVING count(*) > 1) twice"),
            "0")
      << "a job was completed twice";
  // Executions: every job ran at least once; nothing rolled back ran.
  std::map<std::string, int> runs;
  for (const auto& line : scratch_->lines("runs")) runs[line.substr(0, line.find(' '))]++;
  long executions = 0, reruns = 0;
  for (const auto& [id, row] : in_db) {
    EXPECT_GE(runs[id], 1) << id << " finished without running";
    executions += runs[id];
  }
  for (const auto& id : rolled_back) EXPECT_EQ(runs.count(id), 0u) << "rolled-back job " << id << " ran";
  for (const auto& [id, n] : runs)
    if (in_db.count(id) != 0) reruns += n - 1;
  // Callbacks: every job's end delivered at least once, always with the
  // same delivery id.
  {
    std::lock_guard<std::mutex> lock(callbacks_.mu);
    for (const auto& [id, row] : in_db) {
      const std::string key = id + " job." + row.substr(0, row.find('|'));
      EXPECT_EQ(callbacks_.acknowledged.count(key), 1u) << "callback of " << key << " never acknowledged";
      EXPECT_EQ(callbacks_.deliveries[key].size(), 1u) << "two delivery ids for " << key;
    }
  }
  EXPECT_TRUE(wait_until([&] { return rabbit_queue_total_messages("taskq." + queue_) == 0; }, 30s))
      << "messages left in RabbitMQ";

  // --- the report -------------------------------------------------------------
  const long worker_rss_end = rss_kb(workers_[0]->pid());
  const std::string publisher_pid_end =
      db_.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskq publisher'");
  const long publisher_rss_end = publisher_pid_end.empty() ? -1 : private_kb(std::stoi(publisher_pid_end));
  const std::string longest_stuck = db_.value(
      "SELECT round(extract(epoch FROM max(finished_at - created_at))::numeric, 1) FROM taskq.jobs "
      "WHERE queue_name = $1 AND task <> 'slow'",
      {queue_});
  long fault_count = 0;
  std::cout << "chaos: " << fault_seconds << " s, " << in_db.size() << " jobs (" << poisoned << " poison), "
            << executions << " executions, " << reruns << " re-runs, longest job from enqueue to end " << longest_stuck
            << " s\n";
  for (const auto& [kind, n] : faults_) {
    std::cout << "chaos:   " << n << " x " << kind << "\n";
    fault_count += n;
  }
  std::cout << "chaos: " << fault_count << " faults; worker RSS " << worker_rss_start << " -> " << worker_rss_end
            << " kB; publisher private memory (RssAnon) " << publisher_rss_start << " kB (pid " << publisher_rss_pid
            << ") -> " << publisher_rss_end << " kB (pid " << publisher_pid_end << "); " << callbacks_.requests
            << " callback requests; producer paused " << backlog_pauses_ << " s for a backlog over " << kMaxBacklog
            << "\n";
  // A fault waits for what it broke to come back, so a slow machine meets
  // fewer of them; the short form still needs a handful of kinds.
  EXPECT_GE(fault_count, 5) << "too few faults to prove anything";
  EXPECT_GE(faults_.size(), 4u) << "too few kinds of fault to prove anything";
  EXPECT_GT(in_db.size(), 100u) << "too few jobs to prove anything";
  // Flat memory: the worker that was never killed grew by less than 16 MB
  // over the whole run (a leak per job or per reconnect would not).
  EXPECT_LT(worker_rss_end - worker_rss_start, 16 * 1024) << "worker RSS grew";
}

}  // namespace
