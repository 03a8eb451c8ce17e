// See http_receiver.hpp.
#include "http_receiver.hpp"

#include <strings.h>

#include <stdexcept>

namespace taskq::test {

std::string ReceivedRequest::header(const std::string& name) const {
  for (const auto& [key, value] : headers)
    if (strcasecmp(key.c_str(), name.c_str()) == 0) return value;
  return "";
}

HttpReceiver::HttpReceiver() {
  responder_ = [](const ReceivedRequest&, std::size_t) { return Response{200, "{}"}; };
  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    ReceivedRequest r{req.method, req.path, {}, req.body, std::chrono::steady_clock::now()};
    for (const auto& [key, value] : req.headers) r.headers.emplace(key, value);
    Responder responder;
    std::size_t nth = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& earlier : requests_) nth += earlier.path == r.path ? 1 : 0;
      responder = responder_;
    }
    const Response answer = responder(r, nth);
    if (answer.delay.count() > 0) {
      // Cut short when the receiver closes, so that a test whose client gave
      // up does not wait out the delay in the destructor.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, answer.delay, [this] { return closing_; });
    }
    res.status = answer.status;
    res.set_content(answer.body, answer.content_type.c_str());
    for (const auto& [key, value] : answer.headers) res.set_header(key.c_str(), value);
    // Recorded once answered, so a test that saw N requests may rely on
    // N answers having been sent.
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(std::move(r));
    cv_.notify_all();
  };
  server_.Post(".*", handle);
  server_.Put(".*", handle);
  server_.Get(".*", handle);
  // Clients (libcurl) keep connections open; stopping the server waits for
  // idle ones to time out, 5 s by default.
  server_.set_keep_alive_timeout(1);
  port_ = server_.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("http receiver: cannot bind a port on 127.0.0.1");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  // listen_after_bind sets is_running() once it accepts. Until then stop()
  // would do nothing and the destructor's join would hang: wait for it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!server_.is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      server_.stop();
      thread_.detach();  // cannot be joined safely; the process is failing anyway
      throw std::runtime_error("http receiver: the server did not start within 30 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

HttpReceiver::~HttpReceiver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

void HttpReceiver::respond(Responder responder) {
  std::lock_guard<std::mutex> lock(mu_);
  responder_ = std::move(responder);
}

std::string HttpReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::vector<ReceivedRequest> HttpReceiver::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::vector<ReceivedRequest> HttpReceiver::requests_to(const std::string& path) const {
  std::vector<ReceivedRequest> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& r : requests_)
    if (r.path == path) out.push_back(r);
  return out;
}

bool HttpReceiver::wait_for(std::size_t n, std::chrono::milliseconds timeout, const std::string& path) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    std::size_t count = 0;
    for (const auto& r : requests_) count += (path.empty() || r.path == path) ? 1 : 0;
    return count >= n;
  });
}

}  // namespace taskq::test
