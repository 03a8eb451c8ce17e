// taskq-web's HTTP server: binds, then serves the route table with
// authorization, the error shape, security headers, a body size limit and
// metrics for every answer, until stop().
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstddef>
#include <string>

#include "access_tokens.hpp"
#include "sessions.hpp"
#include "operations/host_port.hpp"
#include "route_table.hpp"
#include "web_metrics.hpp"

namespace taskq::web {

// Largest request body accepted (413 beyond): room for a 1 MiB payload
// written as JSON text with escapes.
constexpr std::size_t kMaxBodyBytes = 2 * 1024 * 1024;

struct ServerOptions {
  HostPort listen;
  const AccessTokens* tokens = nullptr;  // null: no authorization (loopback only)
  SessionStore* sessions = nullptr;      // the dashboard's sign-ins (required)
  int threads = 8;
};

// The Content-Security-Policy of every answer: scripts, styles and
// everything else only from taskq-web itself, no inline script or style,
// no framing.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

class WebServer {
 public:
  // Binds (throws taskq::StartupError with one line when it cannot).
  WebServer(const ServerOptions& options, const RouteTable& routes, WebMetrics& metrics);
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  int port() const { return port_; }

  // Serves until stop(); returns once requests in progress are answered.
  void run();
  // Thread-safe, also before run() has started serving.
  void stop();

 private:
  void dispatch(const httplib::Request& req, httplib::Response& res);
  // Who is asking and whether they may (throws ApiError 401/403).
  Caller identify(const Route& route, const httplib::Request& req);
  // Requests that change something must come from this server's own page
  // or from outside a browser; without a token file, every request must
  // name a loopback host (against DNS rebinding). Throws ApiError 403.
  void check_request_origin(const httplib::Request& req);

  ServerOptions options_;
  const RouteTable& routes_;
  WebMetrics& metrics_;
  httplib::Server server_;
  int port_ = 0;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> finished_{false};
};

}  // namespace taskq::web
