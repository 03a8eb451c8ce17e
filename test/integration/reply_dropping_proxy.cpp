// See reply_dropping_proxy.hpp.
#include "reply_dropping_proxy.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace taskq::test {
namespace {

// Where a marker split across two reads is still found: the last bytes the
// client sent, kept ahead of its next read.
constexpr std::size_t kTailBytes = 256;

struct Link {
  int client = -1;
  int server = -1;
  std::string tail;
  bool lose_next_reply = false;
};

bool send_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t sent = ::send(fd, data, n, MSG_NOSIGNAL);
    if (sent <= 0) return false;
    data += sent;
    n -= static_cast<std::size_t>(sent);
  }
  return true;
}

void close_link(Link& link) {
  if (link.client >= 0) ::close(link.client);
  if (link.server >= 0) ::close(link.server);
  link.client = link.server = -1;
}

int connect_to(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return -1;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(found);
  return fd;
}

}  // namespace

ReplyDroppingProxy::ReplyDroppingProxy(std::string target_host, int target_port)
    : target_host_(std::move(target_host)), target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  wake_fd_ = ::eventfd(0, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || wake_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 64) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    throw std::runtime_error("reply-dropping proxy: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

ReplyDroppingProxy::~ReplyDroppingProxy() {
  stopping_ = true;
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void ReplyDroppingProxy::drop_reply_to(const std::string& marker) {
  std::lock_guard<std::mutex> lock(mu_);
  marker_ = marker;
}

int ReplyDroppingProxy::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

bool ReplyDroppingProxy::wait_dropped(int n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return dropped_ >= n; });
}

void ReplyDroppingProxy::run() {
  std::vector<Link> links;
  std::vector<char> buffer(64 * 1024);
  while (!stopping_) {
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    for (const Link& l : links) {
      fds.push_back({l.client, POLLIN, 0});
      fds.push_back({l.server, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR
    if (fds[1].revents != 0) break;

    for (std::size_t i = 0; i < links.size(); ++i) {
      Link& link = links[i];
      const short from_client = fds[2 + 2 * i].revents;
      const short from_server = fds[3 + 2 * i].revents;
      if (from_client != 0) {
        const ssize_t n = ::recv(link.client, buffer.data(), buffer.size(), 0);
        if (n <= 0) {
          close_link(link);
          continue;
        }
        link.tail.append(buffer.data(), static_cast<std::size_t>(n));
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (!marker_.empty() && link.tail.find(marker_) != std::string::npos) {
            link.lose_next_reply = true;
            marker_.clear();
          }
        }
        if (link.tail.size() > kTailBytes) link.tail.erase(0, link.tail.size() - kTailBytes);
        if (!send_all(link.server, buffer.data(), static_cast<std::size_t>(n))) {
          close_link(link);
          continue;
        }
      }
      if (from_server != 0) {
        const ssize_t n = ::recv(link.server, buffer.data(), buffer.size(), 0);
        if (n <= 0 || link.lose_next_reply || !send_all(link.client, buffer.data(), static_cast<std::size_t>(n))) {
          if (n > 0 && link.lose_next_reply) {
            std::lock_guard<std::mutex> lock(mu_);
            ++dropped_;
            cv_.notify_all();
          }
          close_link(link);
        }
      }
    }
    links.erase(std::remove_if(links.begin(), links.end(), [](const Link& l) { return l.client < 0; }), links.end());

    if (fds[0].revents != 0) {
      const int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client >= 0) {
        const int server = connect_to(target_host_, target_port_);
        if (server < 0) {
          ::close(client);
        } else {
          links.push_back({client, server, {}, false});
        }
      }
    }
  }
  for (Link& l : links) close_link(l);
}

}  // namespace taskq::test
