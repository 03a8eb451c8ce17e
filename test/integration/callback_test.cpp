// The callback dispatcher against the real PostgreSQL of scripts/test-env and
// a loopback HTTP receiver: what it POSTs (headers, body, signature), retries
// and giving up, exactly-once on the happy path with dispatchers racing,
// recovery of a dead dispatcher's lease, redirects, timeouts, the SSRF guard,
// LISTEN wake-ups and database restarts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "callbacks/callback_dispatcher.hpp"
#include "http_receiver.hpp"
#include "operations/metrics.hpp"
#include "test_env.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using taskq::CallbackDispatcher;
using taskq::CallbackOptions;
using taskq::PgConnection;
using namespace taskq::test;

namespace {

// Computed here with OpenSSL directly rather than with the code under test.
std::string hmac_hex(const std::string& key, const std::string& message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), digest, &length);
  std::string hex;
  char byte[3];
  for (unsigned int i = 0; i < length; ++i) {
    std::snprintf(byte, sizeof byte, "%02x", digest[i]);
    hex += byte;
  }
  return hex;
}

// A dispatcher on its own thread, stopped and joined on destruction.
class RunningDispatcher {
 public:
  RunningDispatcher(const CallbackOptions& options, const std::string& name, taskq::Metrics* metrics = nullptr)
      : dispatcher_(env("TASKQ_TEST_DATABASE_URL"), name, options, metrics),
        thread_([this] { dispatcher_.run(stop_); }) {}
  ~RunningDispatcher() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  CallbackDispatcher& get() { return dispatcher_; }

 private:
  std::atomic<bool> stop_{false};
  CallbackDispatcher dispatcher_;
  std::thread thread_;
};

// A "receiver" on loopback that accepts each connection, reads a little of
// the request and resets the connection (SO_LINGER 0: an RST, no answer),
// as a crashing proxy or a receiver killed mid-request does.
class ResettingListener {
 public:
  ResettingListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("ResettingListener: cannot listen on loopback");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ResettingListener() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  ResettingListener(const ResettingListener&) = delete;
  ResettingListener& operator=(const ResettingListener&) = delete;
  int port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      accepted_++;
      char buffer[512];
      pollfd in{c, POLLIN, 0};
      if (::poll(&in, 1, 2000) > 0) (void)::read(c, buffer, sizeof buffer);
      const linger reset{1, 0};
      ::setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      ::close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

struct CallbackRowState {
  std::string state, delivery_id, last_status, last_error, leased_by;
  int attempts = 0;
  bool delivered_at = false;
};

class Callbacks : public ::testing::Test {
 protected:
  void SetUp() override {
    TASKQ_REQUIRE_TEST_ENV();
    conn_.emplace(db());
    queue_ = unique_name("cb");
    conn().exec("SELECT taskq.create_queue($1)", {queue_.c_str()});
    // Pending callbacks left by other tests would be delivered (to receivers
    // long gone) by the dispatchers here and blur what each test counts.
    conn().exec(
        "UPDATE taskq.callbacks SET state = 'dead', last_error = 'left over by an earlier test', "
        "lease_expires_at = NULL, leased_by = NULL WHERE state = 'pending'");
  }

  PgConnection& conn() { return *conn_; }

  CallbackOptions options() {
    CallbackOptions o;
    o.secret = "test-secret";
    o.timeout = 5000ms;
    o.retry_base = 100ms;
    o.retry_max = 400ms;
    o.max_attempts = 5;
    o.max_in_flight = 4;
    return o;
  }

  std::string enqueue(const std::string& url) {
    return conn().value("SELECT taskq.enqueue($1, '{\"k\": 1}', task => 'notify', callback_url => $2)",
                        {queue_.c_str(), url.c_str()});
  }
  void start(const std::string& id) {
    ASSERT_EQ(conn().value("SELECT count(*) FROM taskq.start($1, 1, 'test-runner')", {id.c_str()}), "1");
  }
  std::string completed_job(const std::string& url, const std::string& result = R"({"sent": true})") {
    const std::string id = enqueue(url);
    start(id);
    EXPECT_EQ(conn().value("SELECT taskq.complete($1, 1, $2::jsonb)", {id.c_str(), result.c_str()}), "t");
    return id;
  }
  std::string failed_job(const std::string& url) {
    const std::string id = enqueue(url);
    start(id);
    EXPECT_EQ(conn().value("SELECT taskq.fail($1, 1, 'smtp said no', permanent => true)", {id.c_str()}), "failed");
    return id;
  }
  std::string cancelled_job(const std::string& url) {
    const std::string id = enqueue(url);
    conn().exec("SELECT taskq.cancel($1)", {id.c_str()});
    return id;
  }
  // n jobs completed in one statement each way, quickly.
  std::vector<std::string> completed_jobs(const std::string& url, int n) {
    std::vector<std::string> ids;
    const std::string count = std::to_string(n);
    PgConnection c = db();
    taskq::PgResult r = c.exec("SELECT taskq.enqueue($1, '{}', callback_url => $2) FROM generate_series(1, $3::int)",
                               {queue_.c_str(), url.c_str(), count.c_str()});
    for (int i = 0; i < PQntuples(r.get()); ++i) ids.emplace_back(PQgetvalue(r.get(), i, 0));
    for (const auto& id : ids) {
      c.exec("SELECT taskq.start($1, 1, 'test-runner')", {id.c_str()});
      c.exec("SELECT taskq.complete($1, 1)", {id.c_str()});
    }
    return ids;
  }

  CallbackRowState row(const std::string& job_id) {
    taskq::PgResult r = conn().exec(
        "SELECT state, delivery_id, coalesce(last_status::text, ''), coalesce(last_error, ''), "
        "coalesce(leased_by, ''), attempts, delivered_at IS NOT NULL FROM taskq.callbacks WHERE job_id = $1",
        {job_id.c_str()});
    CallbackRowState s;
    if (PQntuples(r.get()) != 1) return s;
    s.state = PQgetvalue(r.get(), 0, 0);
    s.delivery_id = PQgetvalue(r.get(), 0, 1);
    s.last_status = PQgetvalue(r.get(), 0, 2);
    s.last_error = PQgetvalue(r.get(), 0, 3);
    s.leased_by = PQgetvalue(r.get(), 0, 4);
    s.attempts = std::stoi(PQgetvalue(r.get(), 0, 5));
    s.delivered_at = PQgetvalue(r.get(), 0, 6)[0] == 't';
    return s;
  }
  bool in_state(const std::string& job_id, const std::string& state, std::chrono::milliseconds timeout) {
    return wait_until([&] { return row(job_id).state == state; }, timeout, 50ms);
  }
  long pending_of_queue() {
    return std::stol(
        conn().value("SELECT count(*) FROM taskq.callbacks c JOIN taskq.jobs j ON j.id = c.job_id "
                     "WHERE j.queue_name = $1 AND c.state = 'pending'",
                     {queue_.c_str()}));
  }

  std::optional<PgConnection> conn_;
  std::string queue_;
  HttpReceiver receiver_;
};

TEST_F(Callbacks, EachEndedJobIsPostedOnceSignedWithTheContractsHeadersAndBody) {
  const std::string url = receiver_.url("/hook");
  const std::string done = completed_job(url, R"({"sent": 3})");
  const std::string failed = failed_job(url);
  const std::string cancelled = cancelled_job(url);
  const std::map<std::string, std::string> events = {
      {done, "job.completed"}, {failed, "job.failed"}, {cancelled, "job.cancelled"}};

  RunningDispatcher d(options(), "cb-test");
  ASSERT_TRUE(receiver_.wait_for(3, 20s, "/hook"));
  for (const auto& [id, event] : events) ASSERT_TRUE(in_state(id, "delivered", 10s)) << event;
  // Anything sent twice would have arrived by the time all three are recorded.
  const auto requests = receiver_.requests_to("/hook");
  ASSERT_EQ(requests.size(), 3u);

  std::set<std::string> seen;
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.header("Content-Type"), "application/json");
    const std::string job_id = r.header("X-Taskq-Job-Id");
    ASSERT_EQ(events.count(job_id), 1u) << job_id;
    seen.insert(job_id);
    EXPECT_EQ(r.header("X-Taskq-Event"), events.at(job_id));
    const CallbackRowState s = row(job_id);
    EXPECT_EQ(r.header("X-Taskq-Delivery"), s.delivery_id);
    EXPECT_EQ(s.attempts, 1);
    EXPECT_EQ(s.last_status, "200");
    EXPECT_TRUE(s.delivered_at);
    EXPECT_EQ(s.leased_by, "");

    // X-Taskq-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    const std::string sig = r.header("X-Taskq-Signature");
    ASSERT_EQ(sig.rfind("t=", 0), 0u) << sig;
    const auto comma = sig.find(",v1=");
    ASSERT_NE(comma, std::string::npos) << sig;
    const std::string t = sig.substr(2, comma - 2);
    EXPECT_LE(std::llabs(std::stoll(t) - static_cast<long long>(std::time(nullptr))), 300) << sig;
    EXPECT_EQ(sig.substr(comma + 4), hmac_hex("test-secret", t + "." + r.body));
    EXPECT_NE(sig.substr(comma + 4), hmac_hex("other-secret", t + "." + r.body));

    const json body = json::parse(r.body);
    std::set<std::string> keys;
    for (const auto& item : body.items()) keys.insert(item.key());
    EXPECT_EQ(keys, (std::set<std::string>{"id", "queue", "task", "status", "result", "error", "attempts", "created_at",
                                           "started_at", "finished_at"}));
    EXPECT_EQ(body["id"], job_id);
    EXPECT_EQ(body["queue"], queue_);
    EXPECT_EQ(body["task"], "notify");
    EXPECT_EQ("job." + body["status"].get<std::string>(), events.at(job_id));
    EXPECT_FALSE(body["finished_at"].is_null());
  }
  EXPECT_EQ(seen.size(), 3u);
  for (const auto& r : requests) {
    const json b = json::parse(r.body);
    if (b["id"] == done) {
      EXPECT_EQ(b["result"], json({{"sent", 3}}));
      EXPECT_EQ(b["attempts"], 1);
    }
    if (b["id"] == failed) {
      EXPECT_EQ(b["error"], "smtp said no");
    }
    if (b["id"] == cancelled) {
      EXPECT_TRUE(b["started_at"].is_null());
    }
  }
  d.stop();  // counters are final once it returned
  EXPECT_EQ(d.get().stats().delivered, 3u);
}

TEST_F(Callbacks, UnsignedWithoutASecret) {
  CallbackOptions o = options();
  o.secret.clear();
  const std::string id = completed_job(receiver_.url("/plain"));
  RunningDispatcher d(o, "cb-test");
  ASSERT_TRUE(in_state(id, "delivered", 20s));
  ASSERT_EQ(receiver_.requests_to("/plain").size(), 1u);
  EXPECT_EQ(receiver_.requests_to("/plain")[0].header("X-Taskq-Signature"), "");
  EXPECT_EQ(receiver_.requests_to("/plain")[0].header("X-Taskq-Job-Id"), id);
}

TEST_F(Callbacks, ServerErrorsAreRetriedWithBackoffThenDelivered) {
  receiver_.respond([](const ReceivedRequest&, std::size_t nth) {
    return nth < 2 ? Response{503, "busy"} : Response{204, ""};
  });
  taskq::Metrics metrics;
  const std::string id = completed_job(receiver_.url("/flaky"));
  RunningDispatcher d(options(), "cb-test", &metrics);
  ASSERT_TRUE(in_state(id, "delivered", 30s)) << row(id).last_error;
  const auto requests = receiver_.requests_to("/flaky");
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& r : requests) EXPECT_EQ(r.header("X-Taskq-Delivery"), row(id).delivery_id);
  // retry_base 100 ms with equal jitter: at least 50 ms, then at least 100 ms.
  EXPECT_GE(requests[1].at - requests[0].at, 50ms);
  EXPECT_GE(requests[2].at - requests[1].at, 100ms);
  const CallbackRowState s = row(id);
  EXPECT_EQ(s.attempts, 3);
  EXPECT_EQ(s.last_status, "204");
  EXPECT_EQ(s.last_error, "");
  d.stop();  // counters are final once it returned
  EXPECT_EQ(d.get().stats().retried, 2u);
  EXPECT_EQ(d.get().stats().delivered, 1u);
  const std::string rendered = metrics.render();
  EXPECT_NE(rendered.find("taskq_worker_callbacks_total{result=\"retried\"} 2"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("taskq_worker_callbacks_total{result=\"delivered\"} 1"), std::string::npos) << rendered;
}

TEST_F(Callbacks, MarkedDeadAfterTheAttemptLimitWithStatusAndError) {
  receiver_.respond([](const ReceivedRequest&, std::size_t) { return Response{500, "receiver exploded"}; });
  CallbackOptions o = options();
  o.max_attempts = 3;
  taskq::Metrics metrics;
  const std::string id = completed_job(receiver_.url("/down"));
  RunningDispatcher d(o, "cb-test", &metrics);
  ASSERT_TRUE(in_state(id, "dead", 30s)) << row(id).last_error;
  const CallbackRowState s = row(id);
  EXPECT_EQ(s.attempts, 3);
  EXPECT_EQ(s.last_status, "500");
  EXPECT_NE(s.last_error.find("HTTP 500"), std::string::npos) << s.last_error;
  EXPECT_NE(s.last_error.find("receiver exploded"), std::string::npos) << s.last_error;
  EXPECT_FALSE(s.delivered_at);
  // Dead rows are not claimed again.
  std::this_thread::sleep_for(700ms);
  EXPECT_EQ(receiver_.requests_to("/down").size(), 3u);
  d.stop();
  EXPECT_EQ(d.get().stats().dead, 1u);
  EXPECT_NE(metrics.render().find("taskq_worker_callbacks_total{result=\"dead\"} 1"), std::string::npos);
}

TEST_F(Callbacks, NeverSentTwiceWithSeveralDispatchersRacing) {
  receiver_.respond([](const ReceivedRequest&, std::size_t) { return Response{200, "{}", "application/json", 5ms}; });
  CallbackOptions o = options();
  // The receiver serves 8 connections at once; stay below so that no POST
  // waits in its queue long enough to time out (and be retried).
  o.max_in_flight = 2;
  o.timeout = 20'000ms;
  o.poll_interval = 200ms;
  constexpr int kJobs = 120;
  std::vector<std::unique_ptr<RunningDispatcher>> dispatchers;
  for (int i = 0; i < 3; ++i) dispatchers.push_back(std::make_unique<RunningDispatcher>(o, "racer"));
  const auto ids = completed_jobs(receiver_.url("/race"), kJobs);
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kJobs));
  ASSERT_TRUE(wait_until([&] { return pending_of_queue() == 0; }, 90s, 100ms)) << pending_of_queue() << " pending";

  // Stopped (and joined): anything still in flight has arrived, and the
  // counters are final.
  for (auto& d : dispatchers) d->stop();
  std::map<std::string, int> per_delivery;
  for (const auto& r : receiver_.requests_to("/race")) ++per_delivery[r.header("X-Taskq-Delivery")];
  EXPECT_EQ(per_delivery.size(), static_cast<std::size_t>(kJobs));
  for (const auto& [delivery, n] : per_delivery) EXPECT_EQ(n, 1) << delivery;
  std::uint64_t delivered = 0;
  int dispatchers_that_worked = 0;
  for (auto& d : dispatchers) {
    delivered += d->get().stats().delivered;
    dispatchers_that_worked += d->get().stats().delivered > 0 ? 1 : 0;
  }
  EXPECT_EQ(delivered, static_cast<std::uint64_t>(kJobs));
  EXPECT_GE(dispatchers_that_worked, 2) << "the race did not happen";
  EXPECT_EQ(conn().value("SELECT count(*) FROM taskq.callbacks c JOIN taskq.jobs j ON j.id = c.job_id "
                         "WHERE j.queue_name = $1 AND c.state = 'delivered' AND c.attempts = 1",
                         {queue_.c_str()}),
            std::to_string(kJobs));
}

TEST_F(Callbacks, ConnectionsAreReusedAcrossDeliveries) {
  CallbackOptions o = options();
  o.max_in_flight = 2;
  constexpr int kJobs = 30;
  const auto ids = completed_jobs(receiver_.url("/reuse"), kJobs);
  RunningDispatcher d(o, "cb-test");
  ASSERT_TRUE(wait_until([&] { return pending_of_queue() == 0; }, 60s, 100ms));
  EXPECT_EQ(receiver_.requests_to("/reuse").size(), static_cast<std::size_t>(kJobs));
  // The receiver closes a connection after 5 requests (cpp-httplib's
  // keep-alive limit), so reuse shows as about kJobs / 5 connections.
  d.stop();
  const auto opened = d.get().stats().connections_opened;
  EXPECT_GE(opened, 1u);
  EXPECT_LE(opened, static_cast<std::uint64_t>(kJobs / 5 + o.max_in_flight)) << opened << " connections";
}

TEST_F(Callbacks, ALeaseOfADeadDispatcherRunsOutAndAnotherDelivers) {
  const std::string id = completed_job(receiver_.url("/orphan"));
  // A dispatcher that claimed the row and died before sending it.
  const auto claimed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(conn().value("SELECT count(*) FROM taskq._callbacks_claim('crashed-dispatcher', 1000, '2 seconds')"), "1");
  EXPECT_EQ(row(id).leased_by, "crashed-dispatcher");
  const std::string delivery_id = row(id).delivery_id;

  CallbackOptions o = options();
  o.poll_interval = 60s;  // only the lease's expiry can bring it back in time
  RunningDispatcher d(o, "cb-test");
  ASSERT_TRUE(in_state(id, "delivered", 20s));
  const auto requests = receiver_.requests_to("/orphan");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_GE(requests[0].at - claimed_at, 1500ms) << "sent while the lease was live";
  EXPECT_EQ(requests[0].header("X-Taskq-Delivery"), delivery_id);
  EXPECT_EQ(row(id).attempts, 2);  // the dead dispatcher's try counts
  EXPECT_EQ(row(id).leased_by, "");
}

TEST_F(Callbacks, ABinaryErrorAnswerIsRecordedReadably) {
  // A NUL, a cut UTF-8 sequence and a newline in the receiver's answer.
  receiver_.respond([](const ReceivedRequest&, std::size_t) {
    return Response{500, std::string("bad\0gate\xc3 way\nend", 17), "text/plain"};
  });
  CallbackOptions o = options();
  o.max_attempts = 1;
  const std::string id = completed_job(receiver_.url("/binary"));
  RunningDispatcher d(o, "cb-test");
  ASSERT_TRUE(in_state(id, "dead", 20s)) << row(id).state;
  const CallbackRowState s = row(id);
  EXPECT_EQ(s.last_status, "500");
  EXPECT_EQ(s.last_error, "HTTP 500: bad gate\xef\xbf\xbd way end");
  EXPECT_EQ(receiver_.requests_to("/binary").size(), 1u);
}

TEST_F(Callbacks, AHugeAnswerIsCutOffAndItsStatusStillCounts) {
  receiver_.respond([](const ReceivedRequest& r, std::size_t) {
    return Response{r.path == "/big-ok" ? 200 : 500, std::string(3 << 20, 'x'), "text/plain"};
  });
  CallbackOptions o = options();
  o.max_attempts = 1;
  const std::string ok = completed_job(receiver_.url("/big-ok"));
  const std::string bad = completed_job(receiver_.url("/big-bad"));
  RunningDispatcher d(o, "cb-test");
  ASSERT_TRUE(in_state(ok, "delivered", 20s)) << row(ok).last_error;
  ASSERT_TRUE(in_state(bad, "dead", 20s)) << row(bad).state;
  const CallbackRowState s = row(bad);
  EXPECT_EQ(s.last_status, "500");
  EXPECT_NE(s.last_error.find("(response cut off after 1 MiB)"), std::string::npos) << s.last_error.substr(0, 100);
  EXPECT_LT(s.last_error.size(), 1000u);
}

TEST_F(Callbacks, RedirectsAreNotFollowed) {
  const std::string target = receiver_.url("/target");
  receiver_.respond([target](const ReceivedRequest&, std::size_t) {
    Response r{302, ""};
    r.headers.emplace("Location", target);
    return r;
  });
  CallbackOptions o = options();
  o.max_attempts = 1;
  const std::string id = completed_job(receiver_.url("/moved"));
  RunningDispatcher d(o, "cb-test");
  ASSERT_TRUE(in_state(id, "dead", 20s));
  const CallbackRowState s = row(id);
  EXPECT_EQ(s.last_status, "302");
  EXPECT_NE(s.last_error.find("redirects are not followed"), std::string::npos) << s.last_error;
  EXPECT_NE(s.last_error.find(target), std::string::npos) << s.last_error;
  EXPECT_EQ(receiver_.requests_to("/moved").size(), 1u);
  EXPECT_EQ(receiver_.requests_to("/target").size(), 0u);
}

TEST_F(Callbacks, AReceiverThatResetsTheConnectionIsRetriedThenDeadAndTheDispatcherGoesOn) {
  ResettingListener resetter;
  CallbackOptions o = options();
  o.max_attempts = 3;
  const std::string id = completed_job("http://127.0.0.1:" + std::to_string(resetter.port()) + "/reset");
  RunningDispatcher d(o, "cb-test");
  ASSERT_TRUE(in_state(id, "dead", 30s)) << row(id).state << " " << row(id).last_error;
  const CallbackRowState s = row(id);
  EXPECT_EQ(s.attempts, 3);
  EXPECT_EQ(resetter.accepted(), 3) << "one connection per attempt";
  EXPECT_EQ(s.last_status, "") << "no HTTP answer came";
  EXPECT_FALSE(s.last_error.empty());
  EXPECT_LT(s.last_error.size(), 1000u) << s.last_error;
  // The same dispatcher delivers the next callback to a receiver that answers.
  const std::string next = completed_job(receiver_.url("/after-reset"));
  EXPECT_TRUE(in_state(next, "delivered", 20s)) << row(next).state << " " << row(next).last_error;
}

TEST_F(Callbacks, TimeoutIsEnforced) {
  receiver_.respond([](const ReceivedRequest&, std::size_t) { return Response{200, "{}", "application/json", 6s}; });
  CallbackOptions o = options();
  o.timeout = 500ms;
  o.max_attempts = 1;
  const std::string id = completed_job(receiver_.url("/slow"));
  const auto started = std::chrono::steady_clock::now();
  RunningDispatcher d(o, "cb-test");
  // Well before the receiver would have answered.
  ASSERT_TRUE(in_state(id, "dead", 4500ms)) << row(id).state << " " << row(id).last_error;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  const CallbackRowState s = row(id);
  EXPECT_NE(s.last_error.find("timed out after 500 ms"), std::string::npos) << s.last_error;
  EXPECT_EQ(s.last_status, "");
}

TEST_F(Callbacks, RefusePrivateAddressesRefusesTheLoopbackReceiverAndSaysWhy) {
  CallbackOptions o = options();
  o.refuse_private_addresses = true;
  o.max_attempts = 2;
  const std::string by_ip = completed_job(receiver_.url("/private"));
  // A name is judged by what it resolves to, not by how it looks.
  const std::string by_name = completed_job("http://localhost:" + std::to_string(receiver_.port()) + "/private");
  RunningDispatcher d(o, "cb-test");
  ASSERT_TRUE(in_state(by_ip, "dead", 20s)) << row(by_ip).last_error;
  ASSERT_TRUE(in_state(by_name, "dead", 20s)) << row(by_name).last_error;
  EXPECT_EQ(receiver_.requests().size(), 0u);
  const CallbackRowState s = row(by_ip);
  EXPECT_EQ(s.attempts, 2);
  EXPECT_EQ(s.last_status, "");
  EXPECT_NE(s.last_error.find("refused to connect to 127.0.0.1 (a loopback address)"), std::string::npos)
      << s.last_error;
  EXPECT_NE(row(by_name).last_error.find("a loopback address"), std::string::npos) << row(by_name).last_error;
}

TEST_F(Callbacks, NewCallbacksWakeTheDispatcherWithoutPolling) {
  CallbackOptions o = options();
  o.poll_interval = 60s;
  RunningDispatcher d(o, "cb-test");
  // Once the first one is recorded the dispatcher has nothing due for a
  // minute: only the notification can bring the second one in time.
  const std::string first = completed_job(receiver_.url("/wake"));
  ASSERT_TRUE(in_state(first, "delivered", 20s));
  const auto finished_at = std::chrono::steady_clock::now();
  const std::string second = completed_job(receiver_.url("/wake"));
  ASSERT_TRUE(in_state(second, "delivered", 15s));
  EXPECT_LT(std::chrono::steady_clock::now() - finished_at, 15s);
  EXPECT_EQ(receiver_.requests_to("/wake").size(), 2u);
}

TEST_F(Callbacks, AFailedRollbackWritesNoCallback) {
  RunningDispatcher d(options(), "cb-test");
  const std::string id = enqueue(receiver_.url("/rolled-back"));
  start(id);
  conn().exec("BEGIN");
  conn().exec("SELECT taskq.complete($1, 1)", {id.c_str()});
  conn().exec("ROLLBACK");
  // Proof that the dispatcher is live: a committed one arrives meanwhile.
  const std::string committed = completed_job(receiver_.url("/committed"));
  ASSERT_TRUE(in_state(committed, "delivered", 20s));
  EXPECT_EQ(receiver_.requests_to("/rolled-back").size(), 0u);
  EXPECT_EQ(row(id).state, "");
}

TEST_F(Callbacks, SurvivesADatabaseRestart) {
  CallbackOptions o = options();
  RunningDispatcher d(o, "cb-test");
  const std::string before = completed_job(receiver_.url("/restart"));
  ASSERT_TRUE(in_state(before, "delivered", 20s));
  conn_.reset();
  env_action("pg-restart");
  conn_.emplace(db());
  const std::string after = completed_job(receiver_.url("/restart"));
  ASSERT_TRUE(in_state(after, "delivered", 60s)) << row(after).state;
  EXPECT_EQ(receiver_.requests_to("/restart").size(), 2u);
  d.stop();
  EXPECT_GE(d.get().stats().reconnects, 1u);
}

}  // namespace
