// exec:COMMAND handler; see exec_handler.hpp.
#include "handlers/exec_handler.hpp"

#include "db/valid_text.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

extern char** environ;

namespace taskq {
namespace {

// Owns a pipe's file descriptors.
struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() {
    if (pipe2(fd, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  void close_read() {
    if (fd[0] >= 0) close(fd[0]);
    fd[0] = -1;
  }
  void close_write() {
    if (fd[1] >= 0) close(fd[1]);
    fd[1] = -1;
  }
};

std::string trim_trailing_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

ProcessResult run_process(const std::string& command, const std::string& input,
                          const std::vector<std::pair<std::string, std::string>>& extra_env,
                          std::chrono::milliseconds timeout, const CancellationToken& token) {
  ProcessResult result;
  Pipe in, out, err;

  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
  for (const auto& [name, value] : extra_env) env_storage.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so a timeout or cancel kills the whole tree.
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);  // the worker blocks SIGTERM; the child must not inherit that
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);

  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t pid;
  const int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, const_cast<char* const*>(argv), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    result.error = std::string("cannot start /bin/sh: ") + std::strerror(rc);
    return result;
  }
  result.started = true;
  in.close_read();
  out.close_write();
  err.close_write();
  fcntl(in.fd[1], F_SETFL, O_NONBLOCK);

  const auto start = std::chrono::steady_clock::now();
  std::size_t written = 0;
  if (input.empty()) in.close_write();
  bool out_open = true, err_open = true;
  auto kill_at = std::chrono::steady_clock::time_point::max();
  char buffer[65536];

  while (out_open || err_open) {
    const auto now = std::chrono::steady_clock::now();
    if (!result.timed_out && timeout.count() > 0 && now - start >= timeout) result.timed_out = true;
    if (!result.cancelled && token.cancelled()) {
      result.cancelled = true;
      result.cancel_reason = token.reason();
    }
    if ((result.timed_out || result.cancelled) && kill_at == std::chrono::steady_clock::time_point::max()) {
      kill(-pid, SIGTERM);
      kill_at = now + std::chrono::seconds(5);  // then SIGKILL
    }
    if (now >= kill_at) kill(-pid, SIGKILL);

    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out.fd[0], POLLIN, 0};
    if (err_open) fds[n++] = {err.fd[0], POLLIN, 0};
    if (in.fd[1] >= 0) fds[n++] = {in.fd[1], POLLOUT, 0};
    if (poll(fds, n, 100) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in.fd[1]) {
        const ssize_t w = write(in.fd[1], input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 && errno != EAGAIN) in.close_write();  // the child closed stdin: fine
        if (written == input.size()) in.close_write();
        continue;
      }
      const ssize_t r = read(fds[i].fd, buffer, sizeof(buffer));
      if (r <= 0) {
        if (fds[i].fd == out.fd[0])
          out_open = false;
        else
          err_open = false;
        continue;
      }
      if (fds[i].fd == out.fd[0]) {
        const std::size_t room = kMaxStdout - std::min(kMaxStdout, result.stdout_data.size());
        result.stdout_data.append(buffer, std::min(room, static_cast<std::size_t>(r)));
      } else {
        result.stderr_tail.append(buffer, static_cast<std::size_t>(r));
        if (result.stderr_tail.size() > kMaxStderr) result.stderr_tail.erase(0, result.stderr_tail.size() - kMaxStderr);
      }
    }
  }
  in.close_write();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  // Leftover grandchildren that kept no pipe open would outlive us: end them.
  kill(-pid, SIGKILL);
  return result;
}

Outcome map_process_result(const ProcessResult& r) {
  const std::string stderr_text = trim_trailing_newlines(r.stderr_tail);
  if (!r.started) return Outcome::retry(r.error);
  if (r.cancelled) return Outcome::retry("stopped: " + r.cancel_reason);
  if (r.timed_out) return Outcome::retry("timed out" + (stderr_text.empty() ? "" : ": " + stderr_text));
  if (r.signal != 0)
    return Outcome::retry("killed by signal " + std::to_string(r.signal) +
                          (stderr_text.empty() ? "" : ": " + stderr_text));
  if (r.exit_code == 0) {
    const std::string out = trim_trailing_newlines(r.stdout_data);
    if (out.empty()) return Outcome::completed(nullptr);
    auto parsed = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    return Outcome::completed(parsed.is_discarded() ? nlohmann::json(valid_text(out)) : parsed);
  }
  const std::string error = stderr_text.empty() ? "exited with status " + std::to_string(r.exit_code) : stderr_text;
  if (r.exit_code == 65) return Outcome::failed(error);  // EX_DATAERR: failed for good
  return Outcome::retry(error);
}

Handler make_exec_handler(std::string command, std::chrono::milliseconds timeout) {
  return [command = std::move(command), timeout](const Job& job, const CancellationToken& token) {
    const std::vector<std::pair<std::string, std::string>> env = {
        {"TASKQ_JOB_ID", job.id},
        {"TASKQ_QUEUE", job.queue},
        {"TASKQ_TASK", job.task},
        {"TASKQ_ATTEMPT", std::to_string(job.attempt)},
        {"TASKQ_MAX_ATTEMPTS", std::to_string(job.max_attempts)}};
    return map_process_result(run_process(command, job.payload.dump(), env, timeout, token));
  };
}

}  // namespace taskq
