// See child_process.hpp.
#include "handlers/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace taskq {

OwnedFd& OwnedFd::operator=(OwnedFd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

int OwnedFd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void OwnedFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

namespace {

[[noreturn]] void throw_errno(int error, const char* what) {
  throw std::system_error(error, std::generic_category(), what);
}

// Both ends close-on-exec: a child another thread spawns at the same
// moment must not inherit them, or our reads would not see end-of-file.
void make_pipe(OwnedFd& read_end, OwnedFd& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe");
  read_end = OwnedFd(fds[0]);
  write_end = OwnedFd(fds[1]);
}

void set_nonblocking(const OwnedFd& fd) {
  const int flags = fcntl(fd.get(), F_GETFL);
  if (flags < 0 || fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) throw_errno(errno, "fcntl");
}

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnAttributes {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnAttributes() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnAttributes() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
};

}  // namespace

ChildProcess::ChildProcess(const std::string& command, const std::vector<std::string>& environment) {
  OwnedFd child_stdin, child_stdout, child_stderr;
  make_pipe(child_stdin, stdin_);
  make_pipe(stdout_, child_stdout);
  make_pipe(stderr_, child_stderr);

  std::vector<std::string> env_storage = environment;
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  // posix_spawn does the work between fork and exec itself, with only
  // async-signal-safe calls: the worker has threads.
  SpawnAttributes spawn;
  posix_spawn_file_actions_adddup2(&spawn.actions, child_stdin.get(), 0);
  posix_spawn_file_actions_adddup2(&spawn.actions, child_stdout.get(), 1);
  posix_spawn_file_actions_adddup2(&spawn.actions, child_stderr.get(), 2);
  // Its own process group (id = its pid), so one kill reaches everything it
  // starts, and a terminal's Ctrl-C aimed at the worker does not reach it.
  posix_spawnattr_setpgroup(&spawn.attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&spawn.attr, &none);
  posix_spawnattr_setsigdefault(&spawn.attr, &all);
  posix_spawnattr_setflags(&spawn.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  const int rc =
      posix_spawn(&pid_, "/bin/sh", &spawn.actions, &spawn.attr, const_cast<char* const*>(argv), envp.data());
  if (rc != 0) throw_errno(rc, "cannot start /bin/sh");

  // Until we reap it the pid cannot be reused, so opening the pidfd after
  // the spawn is race-free. Without one, exited() is polled instead.
  // (The raw system call: glibc 2.36's <sys/pidfd.h> is not usable from C++.)
  pidfd_ = OwnedFd(static_cast<int>(syscall(SYS_pidfd_open, pid_, 0)));
  try {
    set_nonblocking(stdin_);
    set_nonblocking(stdout_);
    set_nonblocking(stderr_);
  } catch (...) {
    signal_group(SIGKILL);
    reap();
    throw;
  }
}

ChildProcess::~ChildProcess() {
  if (reaped_) return;
  signal_group(SIGKILL);
  reap();
}

bool ChildProcess::exited() {
  if (reaped_) return true;
  siginfo_t info{};
  // WNOWAIT: look without reaping, so the group id stays reserved.
  if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != ECHILD) return false;
    reaped_ = true;  // reaped by someone else (SIGCHLD ignored by the embedding program)
    return true;
  }
  return info.si_pid == pid_;
}

void ChildProcess::signal_group(int signal) {
  if (!reaped_) ::kill(-pid_, signal);
}

std::optional<int> ChildProcess::reap() {
  if (reaped_) return std::nullopt;
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  pidfd_.reset();
  if (r != pid_) return std::nullopt;
  return status;
}

}  // namespace taskq
