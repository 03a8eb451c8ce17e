// --metrics-addr: HOST:PORT parsing, and the real endpoint on a loopback
// port scraped with libcurl: /metrics, /healthz going from 503 to 200 as
// both connections come up, 404 elsewhere, a clear error for a port in use,
// and a prompt shutdown.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "operations/host_port.hpp"
#include "operations/metrics_server.hpp"
#include "taskq/worker.hpp"

namespace {

TEST(HostPort, AcceptsLiteralsAndNames) {
  struct Case {
    const char* text;
    const char* host;
    int port;
  };
  for (const Case& c :
       {Case{"127.0.0.1:9464", "127.0.0.1", 9464}, Case{"0.0.0.0:0", "0.0.0.0", 0}, Case{"[::1]:9464", "::1", 9464},
        Case{"[::]:80", "::", 80}, Case{"[fe80::1%eth0]:9464", "fe80::1%eth0", 9464},
        Case{"localhost:65535", "localhost", 65535}, Case{"metrics-1.example.com:9464", "metrics-1.example.com", 9464},
        Case{"example.com.:1", "example.com.", 1}}) {
    taskq::HostPort hp;
    ASSERT_NO_THROW(hp = taskq::parse_host_port(c.text)) << c.text;
    EXPECT_EQ(hp.host, c.host) << c.text;
    EXPECT_EQ(hp.port, c.port) << c.text;
    EXPECT_EQ(hp.to_string(), c.text);
  }
}

TEST(HostPort, RefusesWithAReason) {
  struct Case {
    const char* text;
    const char* reason;  // part of the message
  };
  for (const Case& c : {
           Case{"", "missing :PORT"},
           Case{"9464", "missing :PORT"},
           Case{"localhost", "missing :PORT"},
           Case{":9464", "missing host"},
           Case{"localhost:", "missing port"},
           Case{"localhost:http", "not a number"},
           Case{"localhost:-1", "not a number"},
           Case{"localhost:65536", "out of range"},
           Case{"localhost:1234567", "out of range"},
           Case{"localhost:94 64", "not a number"},
           Case{"::1:9464", "needs brackets"},
           Case{"[::1]9464", "missing :PORT after ]"},
           Case{"[::1:9464", "missing ]"},
           Case{"[127.0.0.1]:9464", "not an IPv6 address"},
           Case{"[fe80::1%]:9464", "not an IPv6 address"},
           Case{"256.1.1.1:9464", "not an IPv4 address"},
           Case{"1.2.3:9464", "not an IPv4 address"},
           Case{"bad_host:9464", "not a valid host name"},
           Case{"-bad.example:9464", "not a valid host name"},
           Case{"a..b:9464", "not a valid host name"},
           Case{"http://localhost:9464", "give only HOST:PORT"},
       }) {
    try {
      taskq::parse_host_port(c.text);
      ADD_FAILURE() << "accepted \"" << c.text << "\"";
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(c.reason), std::string::npos) << c.text << " -> " << message;
      EXPECT_NE(message.find("expected HOST:PORT"), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
}

// --- a libcurl client for the tests (RAII over the handle) ------------------

struct HttpAnswer {
  long status = 0;
  std::string content_type;
  std::string body;
};

class Scraper {
 public:
  Scraper() : curl_(curl_easy_init()) {
    if (!curl_) throw std::runtime_error("curl_easy_init failed");
  }

  HttpAnswer get(const std::string& url) {
    HttpAnswer out;
    curl_easy_reset(curl_.get());  // keeps the connection for keep-alive
    curl_easy_setopt(curl_.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_.get(), CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl_.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_.get(), CURLOPT_WRITEFUNCTION, &Scraper::collect);
    curl_easy_setopt(curl_.get(), CURLOPT_WRITEDATA, &out.body);
    const CURLcode rc = curl_easy_perform(curl_.get());
    if (rc != CURLE_OK) throw std::runtime_error(std::string("GET ") + url + ": " + curl_easy_strerror(rc));
    curl_easy_getinfo(curl_.get(), CURLINFO_RESPONSE_CODE, &out.status);
    const char* type = nullptr;
    curl_easy_getinfo(curl_.get(), CURLINFO_CONTENT_TYPE, &type);
    if (type != nullptr) out.content_type = type;
    return out;
  }

 private:
  static std::size_t collect(char* data, std::size_t size, std::size_t n, void* user) {
    static_cast<std::string*>(user)->append(data, size * n);
    return size * n;
  }
  struct Cleanup {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
  };
  std::unique_ptr<CURL, Cleanup> curl_;
};

std::string url(const taskq::MetricsServer& server, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(server.port()) + path;
}

TEST(MetricsServer, ServesMetricsAndHealth) {
  taskq::Metrics metrics;
  taskq::MetricsServer server("127.0.0.1:0", metrics);
  ASSERT_GT(server.port(), 0);
  EXPECT_EQ(server.address(), "127.0.0.1:" + std::to_string(server.port()));
  Scraper scraper;

  metrics.job_started("emails");
  HttpAnswer m = scraper.get(url(server, "/metrics"));
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.content_type.rfind("text/plain; version=0.0.4", 0), 0u) << m.content_type;
  EXPECT_EQ(m.body, metrics.render());
  EXPECT_NE(m.body.find("taskq_worker_jobs_started_total{queue=\"emails\"} 1\n"), std::string::npos) << m.body;

  // Unhealthy until both connections are up; the body says which is down.
  HttpAnswer h = scraper.get(url(server, "/healthz"));
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.content_type, "application/json");
  auto body = nlohmann::json::parse(h.body);
  EXPECT_EQ(body["broker"], "down");
  EXPECT_EQ(body["database"], "down");

  metrics.set_connected("broker", true);
  h = scraper.get(url(server, "/healthz"));
  EXPECT_EQ(h.status, 503);
  body = nlohmann::json::parse(h.body);
  EXPECT_EQ(body["broker"], "up");
  EXPECT_EQ(body["database"], "down");

  metrics.set_connected("database", true);
  h = scraper.get(url(server, "/healthz"));
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(nlohmann::json::parse(h.body)["status"], "ok");

  metrics.set_connected("broker", false);
  h = scraper.get(url(server, "/healthz"));
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(nlohmann::json::parse(h.body)["broker"], "down");

  EXPECT_EQ(scraper.get(url(server, "/")).status, 404);
  EXPECT_EQ(scraper.get(url(server, "/metrics/extra")).status, 404);
}

TEST(MetricsServer, APortInUseIsAClearOneLineError) {
  taskq::Metrics metrics;
  taskq::MetricsServer first("127.0.0.1:0", metrics);
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  try {
    taskq::MetricsServer second(taken, metrics);
    ADD_FAILURE() << "a second server bound " << taken;
  } catch (const taskq::StartupError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(taken), std::string::npos) << message;
    EXPECT_NE(message.find("in use"), std::string::npos) << message;
    EXPECT_NE(message.find("--metrics-addr"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  // The first one is unharmed.
  Scraper scraper;
  EXPECT_EQ(scraper.get(url(first, "/metrics")).status, 200);
}

TEST(MetricsServer, BadAddressesAreStartupErrors) {
  taskq::Metrics metrics;
  EXPECT_THROW(taskq::MetricsServer("localhost", metrics), taskq::StartupError);
  // 192.0.2.0/24 is TEST-NET-1: no interface here has it.
  try {
    taskq::MetricsServer server("192.0.2.1:0", metrics);
    ADD_FAILURE() << "bound an address this host does not have";
  } catch (const taskq::StartupError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 192.0.2.1:0"), std::string::npos) << e.what();
  }
}

TEST(MetricsServer, ListensOnIpv6Loopback) {
  taskq::Metrics metrics;
  std::optional<taskq::MetricsServer> server;
  try {
    server.emplace("[::1]:0", metrics);
  } catch (const taskq::StartupError& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  Scraper scraper;
  EXPECT_EQ(scraper.get("http://[::1]:" + std::to_string(server->port()) + "/metrics").status, 200);
  EXPECT_EQ(server->address(), "[::1]:" + std::to_string(server->port()));
}

TEST(MetricsServer, Ipv6WildcardAlsoServesIpv4) {
  taskq::Metrics metrics;
  std::optional<taskq::MetricsServer> server;
  try {
    server.emplace("[::]:0", metrics);
  } catch (const taskq::StartupError& e) {
    GTEST_SKIP() << "no IPv6 here: " << e.what();
  }
  Scraper scraper;
  EXPECT_EQ(scraper.get(url(*server, "/healthz")).status, 503);
}

TEST(MetricsServer, StopsPromptlyWithAnIdleKeepAliveConnection) {
  taskq::Metrics metrics;
  Scraper scraper;  // outlives the server: its connection stays open
  auto server = std::make_unique<taskq::MetricsServer>("127.0.0.1:0", metrics);
  EXPECT_EQ(scraper.get(url(*server, "/metrics")).status, 200);
  const auto start = std::chrono::steady_clock::now();
  server.reset();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(4));
}

TEST(MetricsServer, StartedAndStoppedAtOnce) {
  // The destructor must not hang when it runs before the accept loop is up.
  taskq::Metrics metrics;
  for (int i = 0; i < 20; ++i) taskq::MetricsServer server("127.0.0.1:0", metrics);
}

}  // namespace
