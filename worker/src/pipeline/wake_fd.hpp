// WakeFd: an eventfd that wakes the consumer thread out of poll() when acks
// are waiting or stop() was called. Owns the descriptor.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>

namespace taskq {

class WakeFd {
 public:
  WakeFd() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) throw std::runtime_error("eventfd failed");
  }
  ~WakeFd() { ::close(fd_); }
  WakeFd(const WakeFd&) = delete;
  WakeFd& operator=(const WakeFd&) = delete;

  int fd() const { return fd_; }
  void wake() const {
    const std::uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof(one));
  }
  void drain() const {
    std::uint64_t value;
    (void)!::read(fd_, &value, sizeof(value));
  }

 private:
  int fd_;
};

}  // namespace taskq
