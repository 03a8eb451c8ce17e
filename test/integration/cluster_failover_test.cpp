// Scale-out on a real 3-node RabbitMQ cluster (scripts/test-env
// cluster-start): the publisher and three taskq-workers, each worker on
// another node first, move a quorum queue's jobs while the node leading the
// queue is killed with kill -9. Every job completes, flow resumes, and the
// killed node rejoins when it is started again.
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdio>
#include <set>
#include <sstream>
#include <thread>

#include "worker_fixture.hpp"

using namespace std::chrono_literals;
using namespace taskq::test;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep))
    if (!part.empty()) out.push_back(part);
  return out;
}

std::string shell_output(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

// The cluster of one test: started in a scratch folder, stopped (every node)
// when the test ends however it ends.
class Cluster {
 public:
  explicit Cluster(const std::string& dir) : dir_(dir) {
    const std::string script = env("TASKQ_TEST_ENV_SCRIPT");
    started_ = run(script + " cluster-start " + dir_ + " >" + dir_ + ".log 2>&1") == 0;
    if (!started_) return;
    for (const auto& line : split(shell_output("cat " + dir_ + "/env"), '\n')) {
      const auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string key = line.substr(line.find(' ') + 1, eq - line.find(' ') - 1);
      std::string value = line.substr(eq + 1);
      if (!value.empty() && value.front() == '\'') value = value.substr(1, value.size() - 2);
      if (key == "TASKQ_TEST_CLUSTER_URLS") urls_ = split(value, ',');
      if (key == "TASKQ_TEST_CLUSTER_NODES") nodes_ = split(value, ' ');
    }
  }
  ~Cluster() { run(env("TASKQ_TEST_ENV_SCRIPT") + " cluster-stop " + dir_ + " >/dev/null 2>&1"); }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  bool started() const { return started_ && urls_.size() == 3 && nodes_.size() == 3; }
  // The nodes' URLs as a list starting at node `first` (0-based).
  std::string urls_from(std::size_t first) const {
    std::string out;
    for (std::size_t i = 0; i < urls_.size(); i++) out += (i ? "," : "") + urls_[(first + i) % urls_.size()];
    return out;
  }
  std::string ctl(int node, const std::string& args) const {
    return shell_output(dir_ + "/ctl " + std::to_string(node) + " " + args + " 2>/dev/null");
  }
  // 1-based number of the node leading a quorum queue, 0 if unknown.
  int leader_of(const std::string& rabbit_queue) const {
    for (int n = 1; n <= 3; n++) {
      const std::string out = ctl(n, "list_queues --no-table-headers name leader");
      for (const auto& line : split(out, '\n')) {
        const auto fields = split(line, '\t');
        if (fields.size() == 2 && fields[0] == rabbit_queue)
          for (int i = 0; i < 3; i++)
            if (fields[1] == nodes_[i]) return i + 1;
      }
    }
    return 0;
  }
  int running_nodes(int ask) const {
    const std::string out = ctl(ask, "eval 'length(rabbit_nodes:all_running()).'");
    try {
      return std::stoi(out);
    } catch (const std::exception&) {
      return 0;
    }
  }
  bool kill(int node) const {
    return run(env("TASKQ_TEST_ENV_SCRIPT") + " cluster-kill " + dir_ + " " + std::to_string(node)) == 0;
  }
  bool start(int node) const {
    return run(env("TASKQ_TEST_ENV_SCRIPT") + " cluster-node-start " + dir_ + " " + std::to_string(node) + " >>" +
               dir_ + ".log 2>&1") == 0;
  }

 private:
  std::string dir_;
  bool started_ = false;
  std::vector<std::string> urls_;
  std::vector<std::string> nodes_;
};

class ClusterFailover : public WorkerFixture {};

TEST_F(ClusterFailover, KillingTheQuorumLeaderLosesNoJobAndFlowResumes) {
  Cluster cluster(scratch().file("cluster"));
  ASSERT_TRUE(cluster.started()) << "the 3-node cluster did not start (see " << scratch().file("cluster.log") << ")";

  // The publisher moves to the cluster: a list whose first node is 1.
  set_setting(conn(), "taskq.broker_url", cluster.urls_from(0));
  settings_to_reset_.insert("taskq.broker_url");
  const std::string queue = create_queue("cluster", "queue_type => 'quorum'");
  ASSERT_TRUE(wait_until(
      [&] {
        const std::string single_node = ":" + env("TASKQ_TEST_RABBIT_PORT") + "/";
        return conn().value("SELECT connected AND strpos(broker, $1) = 0 FROM taskq.publisher",
                            {single_node.c_str()}) == "t";
      },
      60s, 200ms))
      << "the publisher did not connect to the cluster";

  // Three workers, each on another node first.
  const std::string handler = scratch().script("run.sh", std::string(kRecordRun) + "\necho '\"ok\"'");
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  for (std::size_t w = 0; w < 3; w++)
    workers.push_back(std::make_unique<WorkerProcess>(std::vector<std::string>{
        "--database", env("TASKQ_TEST_DATABASE_URL"), "--broker", cluster.urls_from(w), "--handler",
        queue + "=exec:" + handler, "--concurrency", "8", "--name", "cluster-worker-" + std::to_string(w)}));

  // Jobs enqueued while the others run, 50 per transaction, about 500 a
  // second, until 2,500 more have been enqueued after the kill: so the kill
  // falls in the middle of the flow however long the cluster took to get
  // going (the first jobs may wait for the quorum queue and then go fast).
  constexpr int kBatch = 50;
  constexpr int kAfterKill = 2500;
  std::atomic<int> enqueued{0};
  std::atomic<int> enqueued_at_kill{-1};
  std::thread producer([&] {
    taskq::PgConnection p = db();
    for (;;) {
      const int at_kill = enqueued_at_kill.load();
      if (at_kill >= 0 && enqueued >= at_kill + kAfterKill) break;
      p.exec("SELECT taskq.enqueue_many($1, (SELECT jsonb_agg(i) FROM generate_series(1, 50) i))", {queue.c_str()});
      enqueued += kBatch;
      std::this_thread::sleep_for(100ms);
    }
  });
  struct Join {
    std::thread& t;
    std::atomic<int>& at_kill;
    ~Join() {
      if (at_kill < 0) at_kill = 0;  // a failed assertion before the kill: let the producer end
      if (t.joinable()) t.join();
    }
  } join{producer, enqueued_at_kill};

  ASSERT_TRUE(wait_status_count(queue, "completed", 300, 180s)) << "jobs did not flow through the cluster";
  const int leader = cluster.leader_of("taskq." + queue);
  ASSERT_NE(leader, 0) << "no leader found for taskq." << queue;
  const std::string killed_at = conn().value("SELECT clock_timestamp()::text", {});
  const long done_before_kill = count_jobs(queue, "completed");
  enqueued_at_kill = enqueued.load();
  ASSERT_TRUE(cluster.kill(leader));

  producer.join();
  const int jobs = enqueued;
  ASSERT_GE(jobs - done_before_kill, kAfterKill) << "too few jobs after the kill: the test would prove nothing";
  EXPECT_TRUE(wait_status_count(queue, "completed", jobs, 240s))
      << count_jobs(queue, "completed") << " of " << jobs << " completed after node " << leader << " was killed";

  // Flow resumed within 15 s: no gap that long between completions after
  // the kill.
  const std::string longest_gap = conn().value(
      "SELECT coalesce(extract(epoch FROM max(gap)), 0)::text FROM ("
      "  SELECT at - lag(at) OVER (ORDER BY at) AS gap FROM ("
      "    SELECT finished_at AS at FROM taskq.jobs WHERE queue_name = $1 AND finished_at >= $2::timestamptz"
      "    UNION ALL SELECT $2::timestamptz) t) g",
      {queue.c_str(), killed_at.c_str()});
  EXPECT_LT(std::stod(longest_gap), 15.0) << "completions stalled for " << longest_gap << " s after the kill";

  // Every worker took jobs after the kill: the one whose node died found
  // another node (its --broker list), the others kept going.
  for (std::size_t w = 0; w < workers.size(); w++) {
    const std::string name = "cluster-worker-" + std::to_string(w);
    EXPECT_NE(conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND worker = $2"
                           " AND started_at > $3::timestamptz",
                           {queue.c_str(), name.c_str(), killed_at.c_str()}),
              "0")
        << name << " ran no job after node " << leader << " was killed";
  }

  // Every job ran at least once (re-runs are allowed: at-least-once), and
  // none is left anywhere.
  const auto ran = runs();
  EXPECT_EQ(ran.size(), static_cast<std::size_t>(jobs));
  EXPECT_EQ(
      conn().value("SELECT count(*) FROM taskq.jobs WHERE queue_name = $1 AND status <> 'completed'", {queue.c_str()}),
      "0");
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.outbox WHERE queue_name = $1", {queue.c_str()}), "0");
  int reruns = 0;
  for (const auto& [id, attempts] : ran) reruns += static_cast<int>(attempts.size()) - 1;
  std::printf("cluster failover: node %d (leader) killed after %ld of %d jobs; %d re-runs; longest gap %s s\n", leader,
              done_before_kill, jobs, reruns, longest_gap.c_str());

  // The killed node comes back and rejoins.
  ASSERT_TRUE(cluster.start(leader));
  const int ask = leader % 3 + 1;
  EXPECT_TRUE(wait_until([&] { return cluster.running_nodes(ask) == 3; }, 120s, 500ms))
      << "node " << leader << " did not rejoin";
  for (auto& w : workers) w->terminate();
  for (auto& w : workers) EXPECT_EQ(w->wait_exit(60s), std::optional<int>(0));
}

}  // namespace
