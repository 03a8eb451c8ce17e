// ChildProcess: one `/bin/sh -c COMMAND` the exec handler runs, owned from
// spawn to reaping. It starts as the leader of its own process group, with
// every signal at its default disposition and none blocked (the worker
// ignores SIGPIPE and blocks SIGTERM; a handler must inherit neither), its
// stdin, stdout and stderr pipes to us. Its exit is watched apart from its
// pipes, which a process it left behind may keep open, or which it may have
// closed long before it exits. Destroying an unreaped ChildProcess kills its
// whole group and reaps it: nothing the handler started outlives it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace taskq {

// An owned file descriptor (-1: none).
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() { reset(); }
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.release()) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept;
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;

  int get() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  int release();
  void reset();

 private:
  int fd_ = -1;
};

class ChildProcess {
 public:
  // Starts /bin/sh -c `command` with exactly `environment` ("NAME=value").
  // Throws std::system_error when it cannot.
  ChildProcess(const std::string& command, const std::vector<std::string>& environment);
  // Unreaped: SIGKILLs the whole group, then reaps.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Our ends of its pipes, non-blocking; close them (reset) when done.
  OwnedFd& stdin_pipe() { return stdin_; }
  OwnedFd& stdout_pipe() { return stdout_; }
  OwnedFd& stderr_pipe() { return stderr_; }

  // Readable (POLLIN) once the child has exited; -1 where the kernel offers
  // no pidfd, and callers must poll exited() on a short tick instead.
  int exit_fd() const { return pidfd_.get(); }
  // Whether the child has exited. It is not reaped yet, so its pid and its
  // process group id cannot be reused: signal_group() stays safe.
  bool exited();
  // Sends `signal` to every process of the child's group (which outlives
  // the child while a process it started is still in it). No-op once reaped.
  void signal_group(int signal);
  // Waits for the child to exit and reaps it; its wait status, or nullopt
  // if something else in this process reaped it first. Call once.
  std::optional<int> reap();

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  OwnedFd pidfd_, stdin_, stdout_, stderr_;
};

}  // namespace taskq
