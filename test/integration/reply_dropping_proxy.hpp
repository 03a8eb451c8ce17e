// A loopback TCP proxy for integration tests that loses one answer of the
// database on purpose. It sits between a client (taskq-worker) and
// PostgreSQL and forwards bytes both ways; when armed, it lets the client's
// next request that contains a marker through, and as soon as the server's
// reply to it begins it closes both sides instead of forwarding it. The
// server has committed the call by then (an autocommit statement's reply goes
// out at its commit) and the client never hears of it: the "outcome unknown"
// case of a lost connection, made to happen on the call the test picks.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace taskq::test {

class ReplyDroppingProxy {
 public:
  // Listens on 127.0.0.1 on a free port and forwards each connection to
  // target_host:target_port. Throws std::runtime_error if it cannot listen.
  ReplyDroppingProxy(std::string target_host, int target_port);
  // Stops the thread and closes every socket.
  ~ReplyDroppingProxy();
  ReplyDroppingProxy(const ReplyDroppingProxy&) = delete;
  ReplyDroppingProxy& operator=(const ReplyDroppingProxy&) = delete;

  int port() const { return port_; }

  // Arms the proxy: the reply to the next request containing `marker` (on
  // any connection) is lost, with both sides of that connection closed.
  void drop_reply_to(const std::string& marker);
  // Replies lost so far.
  int dropped() const;
  // Waits until `n` replies have been lost; false after `timeout`.
  bool wait_dropped(int n, std::chrono::milliseconds timeout) const;

 private:
  void run();

  std::string target_host_;
  int target_port_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: the destructor asks the thread to stop
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string marker_;  // empty: not armed
  int dropped_ = 0;
  std::thread thread_;
};

}  // namespace taskq::test
