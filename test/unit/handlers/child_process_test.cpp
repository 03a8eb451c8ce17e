// ChildProcess: a real /bin/sh child in its own process group, with default
// signal dispositions, whose exit is seen apart from its pipes, and which
// never outlives its owner.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "handlers/child_process.hpp"

using namespace std::chrono_literals;
using taskq::ChildProcess;
using taskq::OwnedFd;
using Clock = std::chrono::steady_clock;

namespace {

// Field `n` (1-based, n >= 3) of /proc/PID/stat; "" once the process is gone.
std::string stat_field(pid_t pid, int n) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return "";
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= n && fields >> field; ++i) {
  }
  return field;
}

// Running, not a zombie: a reparented grandchild may stay a zombie where
// the container's init does not reap.
bool running(pid_t pid) {
  const std::string state = stat_field(pid, 3);
  return !state.empty() && state != "Z";
}

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Reads the child's stdout until `lines` newlines arrived or end of file.
std::string read_lines(OwnedFd& fd, int lines, std::chrono::milliseconds timeout) {
  std::string text;
  const auto deadline = Clock::now() + timeout;
  while (fd.is_open() && std::count(text.begin(), text.end(), '\n') < lines && Clock::now() < deadline) {
    pollfd p{fd.get(), POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buffer[4096];
    const ssize_t r = read(fd.get(), buffer, sizeof(buffer));
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r <= 0) break;
    text.append(buffer, static_cast<std::size_t>(r));
  }
  return text;
}

TEST(ChildProcess, RunsInItsOwnProcessGroupAndReportsItsExitStatus) {
  ChildProcess child("cut -d' ' -f5 /proc/$$/stat; exit 3", {});
  EXPECT_EQ(read_lines(child.stdout_pipe(), 1, 10s), std::to_string(child.pid()) + "\n");
  const auto status = child.reap();
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 3);
}

TEST(ChildProcess, ItsExitIsSeenWhileALeftoverHoldsItsPipes) {
  ChildProcess child("sleep 30 & echo $!; exit 0", {});
  const pid_t leftover = std::stoi(read_lines(child.stdout_pipe(), 1, 10s));
  ASSERT_TRUE(running(leftover));
  if (child.exit_fd() >= 0) {
    pollfd p{child.exit_fd(), POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 10000), 1) << "the pidfd did not report the exit";
  }
  EXPECT_TRUE(wait_for([&] { return child.exited(); }, 10s));
  // Seen without reaping: the group can still be signalled safely.
  EXPECT_TRUE(child.exited());
  child.signal_group(SIGKILL);
  EXPECT_TRUE(wait_for([&] { return !running(leftover); }, 10s)) << "the leftover survived its group's SIGKILL";
  EXPECT_TRUE(child.reap());
}

TEST(ChildProcess, SignallingTheGroupReachesItsChildren) {
  ChildProcess child("sleep 30 & echo $!; wait", {});
  const pid_t grandchild = std::stoi(read_lines(child.stdout_pipe(), 1, 10s));
  child.signal_group(SIGTERM);
  const auto status = child.reap();
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGTERM);
  EXPECT_TRUE(wait_for([&] { return !running(grandchild); }, 10s));
}

TEST(ChildProcess, DestroyingItKillsTheGroupAndReapsTheChild) {
  pid_t pid, grandchild;
  {
    ChildProcess child("sleep 30 & echo $!; sleep 30", {});
    pid = child.pid();
    grandchild = std::stoi(read_lines(child.stdout_pipe(), 1, 10s));
  }
  // Reaped: no zombie left, and not our child any more.
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_TRUE(wait_for([&] { return !running(grandchild); }, 10s));
}

// The worker ignores SIGPIPE and blocks the signals it waits for; neither
// may reach the handler.
TEST(ChildProcess, StartsWithDefaultSignalDispositionsAndAnEmptyMask) {
  struct sigaction ignore {
  }, old_pipe{}, old_hup{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old_pipe);
  sigaction(SIGHUP, &ignore, &old_hup);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  std::string text;
  {
    ChildProcess child("grep -E '^Sig(Blk|Ign):' /proc/self/status", {});
    text = read_lines(child.stdout_pipe(), 2, 10s);
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  sigaction(SIGHUP, &old_hup, nullptr);

  std::istringstream fields(text);
  std::string blk_label, blk, ign_label, ign;
  ASSERT_TRUE(fields >> blk_label >> blk >> ign_label >> ign) << text;
  EXPECT_EQ(std::stoull(blk, nullptr, 16), 0u) << text;
  // Signals 32 and 33 are the C library's own; posix_spawn leaves them
  // ignored in every child, and no program uses them.
  EXPECT_EQ(std::stoull(ign, nullptr, 16) & ((1ULL << 31) - 1), 0u) << text;
}

TEST(ChildProcess, TheEnvironmentIsExactlyWhatItIsGiven) {
  ChildProcess child("echo \"$ONLY:${HOME:-unset}\"", {"ONLY=this"});
  EXPECT_EQ(read_lines(child.stdout_pipe(), 1, 10s), "this:unset\n");
  EXPECT_TRUE(child.reap());
}

}  // namespace
