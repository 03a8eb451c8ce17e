// A loopback HTTP server for integration tests: it stands in for the
// endpoints taskq-worker talks to (http handlers, callback receivers), which
// are outside the system under test. It records every request and answers
// with whatever the test's responder says.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace taskq::test {

struct ReceivedRequest {
  std::string method;
  std::string path;
  std::multimap<std::string, std::string> headers;  // as httplib gives them (case-insensitive lookup below)
  std::string body;
  std::chrono::steady_clock::time_point at;

  // First value of a header, "" if absent; names compare case-insensitively.
  std::string header(const std::string& name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::chrono::milliseconds delay{0};               // answer this late (for timeout tests)
  std::multimap<std::string, std::string> headers;  // extra response headers (e.g. Location)
};

class HttpReceiver {
 public:
  // Called for every request, with the number of requests to that path
  // received before this one (0 for the first).
  using Responder = std::function<Response(const ReceivedRequest&, std::size_t nth_on_path)>;

  // Listens on 127.0.0.1 on a free port; answers 200 {} until told otherwise.
  HttpReceiver();
  ~HttpReceiver();
  HttpReceiver(const HttpReceiver&) = delete;
  HttpReceiver& operator=(const HttpReceiver&) = delete;

  void respond(Responder responder);
  int port() const { return port_; }
  std::string url(const std::string& path) const;

  std::vector<ReceivedRequest> requests() const;
  std::vector<ReceivedRequest> requests_to(const std::string& path) const;
  // Waits until at least n requests (to path, or to any path when empty)
  // arrived or the timeout passed; returns whether they did.
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout, const std::string& path = "") const;

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<ReceivedRequest> requests_;
  bool closing_ = false;  // the destructor runs: delayed answers go out at once
  Responder responder_;
};

}  // namespace taskq::test
