// Helpers for the taskq-web tests: the real taskq-web binary started on a
// free port against the PostgreSQL of scripts/test-env, and an HTTP client
// (cpp-httplib) that returns status, error code and parsed JSON.
#pragma once

#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "test_env.hpp"
#include "worker_process.hpp"

namespace taskq::test {

std::string web_binary();

// Tokens for tests: one per role.
inline const std::string kReadToken = "read-token-0123456789";
inline const std::string kOperateToken = "operate-token-0123456789";
inline const std::string kAdminToken = "admin-token-0123456789";

struct HttpAnswer {
  int status = 0;  // 0: no answer at all
  std::string body;
  std::string content_type;
  httplib::Headers headers;
  nlohmann::json json() const;     // parsed body (null if it is not JSON)
  std::string error_code() const;  // error.code of an error body, "" otherwise
};

class WebProcess {
 public:
  // Starts taskq-web --database <test db> --listen 127.0.0.1:<free port>,
  // with `extra` flags, and waits until /healthz answers 200. With
  // `with_tokens`, a token file holding the three test tokens is passed.
  explicit WebProcess(bool with_tokens = false, std::vector<std::string> extra = {});

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  WorkerProcess& process() { return *process_; }

  HttpAnswer request(const std::string& method, const std::string& path, const std::string& body = "",
                     const std::string& token = "", const httplib::Headers& extra = {}) const;
  HttpAnswer get(const std::string& path, const std::string& token = "") const {
    return request("GET", path, "", token);
  }
  HttpAnswer post(const std::string& path, const std::string& body = "", const std::string& token = "") const {
    return request("POST", path, body, token);
  }

 private:
  ScratchDir scratch_;
  int port_ = 0;
  std::unique_ptr<WorkerProcess> process_;
};

// Percent-encodes everything but unreserved characters (for query values).
std::string url_encode(const std::string& text);

// A queue made for one test through SQL (not through the API under test).
std::string make_queue(PgConnection& db, const std::string& prefix = "web");

}  // namespace taskq::test
