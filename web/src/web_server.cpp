// See web_server.hpp. cpp-httplib parses HTTP; everything about answers is
// decided here.
#include "web_server.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "api_error.hpp"
#include "operations/log.hpp"
#include "static_assets.hpp"
#include "web_options.hpp"
#include "taskq/worker.hpp"

namespace taskq::web {
namespace {

using Clock = std::chrono::steady_clock;

// Set when a request's headers are read (pre-routing), read when its
// answer has been written (logger): both run on the request's thread.
thread_local Clock::time_point request_start;
thread_local std::string request_route;

void set_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  if (e.status() == 401) res.set_header("WWW-Authenticate", "Bearer");
  res.set_content(error_body(e.code(), e.what(), e.hint()), "application/json");
}

// Errors cpp-httplib answers by itself (413, malformed requests) get the
// API's error shape too.
void fill_error_body(httplib::Response& res) {
  if (!res.body.empty()) return;
  switch (res.status) {
    case 413:
      set_error(res, ApiError(413, "payload_too_large",
                              "the body is larger than " + std::to_string(kMaxBodyBytes) + " bytes"));
      break;
    case 400:
      set_error(res, ApiError(400, "bad_request", "malformed HTTP request"));
      break;
    default:
      set_error(res, ApiError(res.status, "http_" + std::to_string(res.status), "the request cannot be served"));
  }
}

// Without SO_REUSEPORT (httplib's default): a second taskq-web on the same
// port must fail to start, not share the port silently.
void socket_options(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

WebServer::WebServer(const ServerOptions& options, const RouteTable& routes, WebMetrics& metrics)
    : options_(options), routes_(routes), metrics_(metrics) {
  const int threads = options_.threads;
  server_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  server_.set_socket_options(socket_options);
  // Answers go out at once: with Nagle's algorithm a keep-alive client
  // that writes headers and body separately waits for a delayed ACK
  // (40 ms per request).
  server_.set_tcp_nodelay(true);
  server_.set_payload_max_length(kMaxBodyBytes);
  server_.set_keep_alive_timeout(5);
  server_.set_read_timeout(10, 0);
  server_.set_write_timeout(10, 0);
  server_.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                               {"Cache-Control", "no-store"},
                               {"Referrer-Policy", "no-referrer"},
                               {"X-Frame-Options", "DENY"},
                               {"Content-Security-Policy", kContentSecurityPolicy}});

  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = Clock::now();
    const auto m = routes_.match(req.method, req.path);
    request_route = m.route ? route_label(*m.route) : "unmatched";
    // A request with neither Content-Length nor Transfer-Encoding has no
    // body (RFC 9112 6.3), but httplib would read a POST's body until the
    // connection closes (`curl -X POST URL` would hang): answer it here,
    // before any body is read.
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      dispatch(req, res);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto handler = [this](const httplib::Request& req, httplib::Response& res) { dispatch(req, res); };
  for (const char* pattern : {".*"}) {
    server_.Get(pattern, handler);
    server_.Post(pattern, handler);
    server_.Put(pattern, handler);
    server_.Patch(pattern, handler);
    server_.Delete(pattern, handler);
    server_.Options(pattern, handler);
  }
  server_.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    fill_error_body(res);
    return httplib::Server::HandlerResponse::Handled;
  }));
  server_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    set_error(res, ApiError(500, "internal", "internal error"));
  });
  server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const double seconds = std::chrono::duration<double>(Clock::now() - request_start).count();
    metrics_.request_done(request_route, res.status, seconds);
    // Never the headers: they may carry a token.
    log::debug({{"method", req.method}, {"route", request_route}, {"status", res.status}, {"seconds", seconds}},
               "request");
  });

  const HostPort& where = options_.listen;
  errno = 0;
  port_ = where.port == 0 ? server_.bind_to_any_port(where.host)
                          : (server_.bind_to_port(where.host, where.port) ? where.port : -1);
  if (port_ <= 0) {
    const int err = errno;
    throw StartupError("cannot listen on " + where.to_string() +
                       " (--listen): " + (err != 0 ? std::strerror(err) : "bind failed"));
  }
}

void WebServer::run() {
  if (!stop_requested_.load()) server_.listen_after_bind();
  finished_.store(true);
}

void WebServer::stop() {
  stop_requested_.store(true);
  // httplib's stop() does nothing before its accept loop runs: wait for the
  // loop (or for run() to have given up on starting it), then stop it.
  while (!finished_.load() && !server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!finished_.load()) server_.stop();
}

namespace {

bool changes_something(const std::string& method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

// The host name of a Host header value ("127.0.0.1:8080", "[::1]:8080").
std::string host_name(const std::string& value) {
  if (!value.empty() && value[0] == '[') return value.substr(1, value.find(']') - 1);
  return value.substr(0, value.find(':'));
}

// What browsers add and other clients do not: a request that has any of
// these may have been made by a page, so it needs the page's CSRF token.
bool from_a_browser(const httplib::Request& req) {
  return req.has_header("Origin") || req.has_header("Sec-Fetch-Site") || req.has_header("Cookie");
}

}  // namespace

void WebServer::check_request_origin(const httplib::Request& req) {
  if (options_.tokens == nullptr && req.has_header("Host") &&
      !is_loopback_host(host_name(req.get_header_value("Host")))) {
    metrics_.auth_failed("host");
    throw ApiError(403, "forbidden_host",
                   "without a token file taskq-web answers only requests addressed to a loopback host name");
  }
  if (!changes_something(req.method)) return;
  const std::string host = req.get_header_value("Host");
  bool foreign = false;
  if (req.has_header("Origin")) {
    const std::string origin = req.get_header_value("Origin");
    foreign = origin != "http://" + host && origin != "https://" + host;
  }
  if (req.has_header("Sec-Fetch-Site")) {
    const std::string site = req.get_header_value("Sec-Fetch-Site");
    foreign = foreign || (site != "same-origin" && site != "none");
  }
  if (foreign) {
    metrics_.auth_failed("cross_origin");
    throw ApiError(403, "cross_origin", "requests that change something are not taken from other sites' pages");
  }
}

Caller WebServer::identify(const Route& route, const httplib::Request& req) {
  check_request_origin(req);
  Caller caller;
  const std::string cookie = cookie_value(req.get_header_value("Cookie"), kSessionCookie);
  if (!cookie.empty() && options_.sessions) {
    caller.session = options_.sessions->find(cookie);
    if (caller.session) caller.session_id = cookie;
  }
  if (route.role == Role::kPublic) {
    caller.role = caller.session ? caller.session->role : (options_.tokens ? Role::kPublic : Role::kAdmin);
    return caller;
  }
  const std::string header = req.get_header_value("Authorization");
  constexpr const char* kScheme = "Bearer ";
  const bool bearer = header.size() > std::strlen(kScheme) && header.compare(0, std::strlen(kScheme), kScheme) == 0;
  auto require_csrf = [&] {
    if (!changes_something(req.method)) return;
    if (caller.session && SessionStore::csrf_matches(*caller.session, req.get_header_value("X-CSRF-Token"))) return;
    metrics_.auth_failed("csrf");
    throw ApiError(403, "csrf",
                   "a request from the dashboard needs its session's X-CSRF-Token header (reload the page)");
  };
  if (bearer && options_.tokens) {
    // A bearer token is never sent by a browser on its own, so it needs no
    // CSRF token.
    const auto role = options_.tokens->find(header.substr(std::strlen(kScheme)));
    if (!role) {
      metrics_.auth_failed("unknown_token");
      throw ApiError(401, "unauthorized", "unknown token");
    }
    caller.role = *role;
  } else if (caller.session) {
    caller.role = caller.session->role;
    require_csrf();
  } else if (options_.tokens == nullptr) {
    caller.role = Role::kAdmin;
    if (from_a_browser(req)) require_csrf();
  } else {
    metrics_.auth_failed("missing_token");
    throw ApiError(401, "unauthorized", "this request needs an Authorization: Bearer TOKEN header");
  }
  if (caller.role < route.role) {
    metrics_.auth_failed("forbidden");
    throw ApiError(403, "forbidden",
                   std::string("this request needs a token of role ") + to_string(route.role) + " (this one is " +
                       to_string(caller.role) + ")");
  }
  return caller;
}

void WebServer::dispatch(const httplib::Request& req, httplib::Response& res) {
  try {
    const auto m = routes_.match(req.method, req.path);
    if (!m.route) {
      const StaticAsset* asset = find_static_asset(req.path);
      if (asset && (req.method == "GET" || req.method == "HEAD")) {
        if (options_.tokens == nullptr) check_request_origin(req);
        // The dashboard's files change only with the program.
        res.set_header("Cache-Control", asset->cacheable ? "max-age=3600" : "no-cache");
        res.set_content(asset->body, asset->size, asset->content_type);
        return;
      }
      if (m.path_known) {
        std::string allow;
        for (const auto& method : m.allowed) allow += (allow.empty() ? "" : ", ") + method;
        res.set_header("Allow", allow);
        throw ApiError(405, "method_not_allowed", req.method + " is not served here (allowed: " + allow + ")");
      }
      throw ApiError(404, "not_found", "no such route: " + req.method + " " + req.path);
    }
    const Caller caller = identify(*m.route, req);
    for (const auto& [name, value] : m.params) check_text(name, value);
    const Reply reply = m.route->handler(RouteRequest{req, m.params, caller});
    res.status = reply.status;
    for (const auto& [name, value] : reply.headers) res.set_header(name, value);
    if (reply.status != 204) res.set_content(reply.body, reply.content_type);
  } catch (const ApiError& e) {
    set_error(res, e);
  } catch (const DbError& e) {
    set_error(res, from_db_error(e));
  } catch (const std::exception& e) {
    log::error("{} {}: {}", req.method, req.path, e.what());
    set_error(res, ApiError(500, "internal", "internal error (the server log has the details)"));
  }
}

}  // namespace taskq::web
