// See metrics_server.hpp. cpp-httplib does the HTTP; this file decides what
// it binds to and answers, and owns its listening thread.
#include "operations/metrics_server.hpp"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "operations/host_port.hpp"
#include "operations/log.hpp"
#include "taskq/worker.hpp"

namespace taskq {
namespace {

constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// httplib's default sets SO_REUSEPORT, which lets a second process bind
// the same port and silently split the scrapes between two workers. Only
// SO_REUSEADDR (rebinding while old connections linger in TIME_WAIT).
void socket_options(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

// Resolves up front only to say clearly when a name does not resolve;
// httplib resolves again when it binds.
void check_resolves(const HostPort& where) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(where.host.c_str(), std::to_string(where.port).c_str(), &hints, &found);
  if (rc != 0)
    throw StartupError("metrics endpoint: cannot resolve " + where.host + " (--metrics-addr): " + gai_strerror(rc));
  freeaddrinfo(found);
}

}  // namespace

std::pair<int, std::string> health_response(const Metrics& metrics) {
  const bool broker = metrics.connected("broker");
  const bool database = metrics.connected("database");
  const bool healthy = broker && database;
  nlohmann::ordered_json body = {{"status", healthy ? "ok" : "unavailable"},
                                 {"broker", broker ? "up" : "down"},
                                 {"database", database ? "up" : "down"}};
  return {healthy ? 200 : 503, body.dump() + "\n"};
}

struct MetricsServer::Impl {
  httplib::Server server;
  std::thread thread;
  HostPort bound;
  std::atomic<bool> finished{false};  // listen_after_bind returned
};

MetricsServer::MetricsServer(const std::string& host_port, const Metrics& metrics) : impl_(std::make_unique<Impl>()) {
  HostPort where;
  try {
    where = parse_host_port(host_port);
  } catch (const std::invalid_argument& e) {
    throw StartupError(std::string("--metrics-addr ") + e.what());
  }
  check_resolves(where);

  httplib::Server& server = impl_->server;
  // Two threads: a scrape and a health probe at once is the expected load.
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  server.set_socket_options(socket_options);
  // Bounds how long the destructor waits for an idle keep-alive connection.
  server.set_keep_alive_timeout(1);
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(), kPrometheusContentType);
  });
  server.Get("/healthz", [&metrics](const httplib::Request&, httplib::Response& res) {
    auto [status, body] = health_response(metrics);
    res.status = status;
    res.set_content(body, "application/json");
  });
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) res.set_content("not found: try /metrics or /healthz\n", "text/plain");
  });

  errno = 0;
  const int port = where.port == 0 ? server.bind_to_any_port(where.host)
                                   : (server.bind_to_port(where.host, where.port) ? where.port : -1);
  if (port <= 0) {
    const int err = errno;
    throw StartupError("metrics endpoint: cannot listen on " + where.to_string() +
                       " (--metrics-addr): " + (err != 0 ? std::strerror(err) : "bind failed"));
  }
  impl_->bound = {where.host, port};
  // The socket already listens: connections made before the accept loop
  // runs wait in the backlog, so there is no need to wait for it here.
  impl_->thread = std::thread([impl = impl_.get()] {
    impl->server.listen_after_bind();
    impl->finished.store(true);
  });
  log::info("serving /metrics and /healthz on http://{}", impl_->bound.to_string());
}

MetricsServer::~MetricsServer() {
  // httplib's stop() does nothing before the accept loop has started (and
  // must not be called twice), so wait for the loop, then stop it once.
  while (!impl_->finished.load() && !impl_->server.is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!impl_->finished.load()) impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int MetricsServer::port() const { return impl_->bound.port; }

std::string MetricsServer::address() const { return impl_->bound.to_string(); }

}  // namespace taskq
