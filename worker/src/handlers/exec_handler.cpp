// exec:COMMAND handler; see exec_handler.hpp.
#include "handlers/exec_handler.hpp"

#include "handlers/child_process.hpp"
#include "handlers/handler_result.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <sstream>
#include <string_view>
#include <system_error>
#include <vector>

extern char** environ;

namespace taskq {
namespace {

using Clock = std::chrono::steady_clock;

// SIGTERM first, SIGKILL this long after: time for a handler to clean up,
// well inside the shutdown's grace for recording outcomes (kShutdownGrace).
constexpr auto kKillGrace = std::chrono::seconds(5);
// How often the token is looked at: it has no descriptor to poll.
constexpr auto kTick = std::chrono::milliseconds(100);
// Without a pidfd, how often exit is looked for once no pipe can wake us.
constexpr auto kExitTick = std::chrono::milliseconds(10);
// Reads per wake-up: a chatty child cannot keep us from the clock.
constexpr int kReadsPerWake = 16;

std::string trim_trailing_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Reads what `fd` holds now, up to `max_reads` chunks, into the result's
// bounded stdout or stderr tail; closes `fd` at end of file or on error.
void read_available(OwnedFd& fd, bool is_stdout, ProcessResult& result, int max_reads) {
  char buffer[65536];
  for (int n = 0; n < max_reads && fd.is_open(); ++n) {
    const ssize_t r = ::read(fd.get(), buffer, sizeof(buffer));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return;
    if (r <= 0) {
      fd.reset();
      return;
    }
    if (is_stdout) {
      const std::size_t room = kMaxStdout - std::min(kMaxStdout, result.stdout_data.size());
      result.stdout_data.append(buffer, std::min(room, static_cast<std::size_t>(r)));
    } else {
      result.stderr_tail.append(buffer, static_cast<std::size_t>(r));
      if (result.stderr_tail.size() > kMaxStderr) result.stderr_tail.erase(0, result.stderr_tail.size() - kMaxStderr);
    }
  }
}

// Writes what the child's stdin pipe takes now; closes it when all of
// `input` is written or the child closed its end.
void write_available(OwnedFd& fd, const std::string& input, std::size_t& written) {
  const ssize_t w = ::write(fd.get(), input.data() + written, input.size() - written);
  if (w > 0) written += static_cast<std::size_t>(w);
  if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) fd.reset();
}

std::string seconds_text(std::chrono::milliseconds d) {
  std::ostringstream out;
  out << std::chrono::duration<double>(d).count();
  return out.str();
}

}  // namespace

// The child's exit, not its pipes, ends the loop: a child may close them
// long before it exits (`exec >/dev/null`), and a process it leaves behind
// may hold them long after. Until it exits, the clock and the token apply.
ProcessResult run_process(const std::string& command, const std::string& input,
                          const std::vector<std::pair<std::string, std::string>>& extra_env,
                          std::chrono::milliseconds timeout, const CancellationToken& token,
                          const std::vector<std::string>& unset_env) {
  ProcessResult result;
  result.timeout = timeout;
  // Inherited variables that the job sets or unsets are left out: a child
  // must see its job's values, not the worker's (getenv() would find the
  // first of two).
  const auto overridden = [&](const char* entry) {
    const char* eq = std::strchr(entry, '=');
    const std::string_view name(entry, eq == nullptr ? std::strlen(entry) : static_cast<std::size_t>(eq - entry));
    for (const auto& [extra, value] : extra_env)
      if (name == extra) return true;
    for (const auto& removed : unset_env)
      if (name == removed) return true;
    return false;
  };
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (!overridden(*e)) env.emplace_back(*e);
  for (const auto& [name, value] : extra_env) env.push_back(name + "=" + value);

  std::optional<ChildProcess> child;
  try {
    child.emplace(command, env);
  } catch (const std::system_error& e) {
    result.error = e.what();
    return result;
  }
  result.started = true;
  OwnedFd& in = child->stdin_pipe();
  OwnedFd& out = child->stdout_pipe();
  OwnedFd& err = child->stderr_pipe();
  if (input.empty()) in.reset();

  const auto start = Clock::now();
  std::size_t written = 0;
  bool stopping = false;
  auto kill_at = Clock::time_point::max();

  while (!child->exited()) {
    const auto now = Clock::now();
    if (!stopping) {
      if (timeout.count() > 0 && now - start >= timeout) result.timed_out = true;
      if (token.cancelled()) {
        result.cancelled = true;
        result.cancel_reason = token.reason();
      }
      if (result.timed_out || result.cancelled) {
        stopping = true;
        child->signal_group(SIGTERM);
        kill_at = now + kKillGrace;
      }
    } else if (now >= kill_at) {
      child->signal_group(SIGKILL);
      kill_at = Clock::time_point::max();
    }

    pollfd fds[4];
    int n = 0;
    if (out.is_open()) fds[n++] = {out.get(), POLLIN, 0};
    if (err.is_open()) fds[n++] = {err.get(), POLLIN, 0};
    if (in.is_open()) fds[n++] = {in.get(), POLLOUT, 0};
    if (child->exit_fd() >= 0) fds[n++] = {child->exit_fd(), POLLIN, 0};
    const bool nothing_wakes_us = child->exit_fd() < 0 && !out.is_open() && !err.is_open();
    const auto tick = nothing_wakes_us ? kExitTick : kTick;
    if (poll(fds, static_cast<nfds_t>(n), static_cast<int>(tick.count())) < 0 && errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "poll");
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in.get())
        write_available(in, input, written);
      else if (fds[i].fd == out.get())
        read_available(out, true, result, kReadsPerWake);
      else if (fds[i].fd == err.get())
        read_available(err, false, result, kReadsPerWake);
    }
  }

  // It exited, unreaped, so its group id is still ours to signal: end what
  // it left running, then keep what it wrote (all of it is in the pipes by
  // now) without waiting for writers that are gone or going.
  child->signal_group(SIGKILL);
  in.reset();
  read_available(out, true, result, 1 << 10);
  read_available(err, false, result, 1 << 10);
  out.reset();
  err.reset();
  const std::optional<int> status = child->reap();
  if (!status) {
    result.error = "its exit status was lost (reaped by someone else)";
  } else if (WIFEXITED(*status)) {
    result.exit_code = WEXITSTATUS(*status);
  } else if (WIFSIGNALED(*status)) {
    result.signal = WTERMSIG(*status);
  }
  return result;
}

Outcome map_process_result(const ProcessResult& r) {
  const std::string stderr_text = trim_trailing_newlines(r.stderr_tail);
  if (!r.started) return Outcome::retry(r.error);
  if (r.cancelled) return Outcome::retry("stopped: " + r.cancel_reason);
  if (r.timed_out)
    return Outcome::retry("timed out after " + seconds_text(r.timeout) + " s" +
                          (stderr_text.empty() ? "" : ": " + stderr_text));
  if (!r.error.empty()) return Outcome::retry(r.error);
  if (r.signal != 0)
    return Outcome::retry("killed by signal " + std::to_string(r.signal) +
                          (stderr_text.empty() ? "" : ": " + stderr_text));
  if (r.exit_code == 0) return completed_from_output(trim_trailing_newlines(r.stdout_data));
  const std::string error = stderr_text.empty() ? "exited with status " + std::to_string(r.exit_code) : stderr_text;
  if (r.exit_code == 65) return Outcome::failed(error);  // EX_DATAERR: failed for good
  return Outcome::retry(error);
}

Handler make_exec_handler(std::string command, std::chrono::milliseconds timeout) {
  return [command = std::move(command), timeout](const Job& job, const CancellationToken& token) {
    std::vector<std::pair<std::string, std::string>> env = {{"TASKQ_JOB_ID", job.id},
                                                            {"TASKQ_QUEUE", job.queue},
                                                            {"TASKQ_TASK", job.task},
                                                            {"TASKQ_ATTEMPT", std::to_string(job.attempt)},
                                                            {"TASKQ_MAX_ATTEMPTS", std::to_string(job.max_attempts)}};
    // The producer's trace context, as OpenTelemetry's environment carrier
    // names it; a job without one does not inherit the worker's.
    std::vector<std::string> unset;
    for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"TRACEPARENT", &job.traceparent},
                                      std::pair<const char*, const std::string*>{"TRACESTATE", &job.tracestate}}) {
      if (value->empty()) {
        unset.emplace_back(name);
      } else {
        env.emplace_back(name, *value);
      }
    }
    return map_process_result(run_process(command, job.payload.dump(), env, timeout, token, unset));
  };
}

}  // namespace taskq
