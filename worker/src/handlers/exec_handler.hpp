// handlers/: the handlers taskq-worker's --handler flag builds: exec:
// (this file, over child_process) and http(s):// (http_handler);
// curl_handles owns libcurl's handles for them and for the callbacks' sender.
//
// The exec:COMMAND handler (docs/worker.md, "exec:COMMAND"): runs the
// command with /bin/sh -c in its own process group (child_process.hpp), the
// payload JSON on stdin and the TASKQ_* variables in the environment; maps
// its exit to an outcome. A timeout or a cancel ends the whole group and is
// never a completion, whatever the command exits with afterwards.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "taskq/worker.hpp"

namespace taskq {

struct ProcessResult {
  bool started = false;  // false: could not fork/exec (error says why)
  int exit_code = -1;    // when it exited
  int signal = 0;        // when a signal ended it
  bool timed_out = false;
  std::chrono::milliseconds timeout{0};  // the limit it ran under (0: none)
  bool cancelled = false;
  std::string cancel_reason;  // the token's, when cancelled
  std::string stdout_data;    // first kMaxStdout bytes
  std::string stderr_tail;    // last kMaxStderr bytes
  std::string error;          // why it could not start, or its exit status is unknown
};

constexpr std::size_t kMaxStdout = 1 << 20;  // the result is at most 1 MiB (taskq.complete's limit)
constexpr std::size_t kMaxStderr = 64 << 10;

// Runs `command`, feeding `input` on stdin, until it exits. On timeout (0:
// none) or when `token` is cancelled: SIGTERM to its whole process group,
// SIGKILL 5 s later. When it exits, whatever it left in its group is killed
// and the output already written is kept; nobody waits for a leftover
// process that still holds the pipes. The child's environment is the
// worker's with `extra_env` set (replacing inherited variables of those
// names) and the variables named in `unset_env` removed.
ProcessResult run_process(const std::string& command, const std::string& input,
                          const std::vector<std::pair<std::string, std::string>>& extra_env,
                          std::chrono::milliseconds timeout, const CancellationToken& token,
                          const std::vector<std::string>& unset_env = {});

// Exit 0: completed with stdout (JSON if it parses, else a JSON string);
// 65: failed for good; anything else, a signal, a timeout: retryable.
Outcome map_process_result(const ProcessResult& result);

Handler make_exec_handler(std::string command, std::chrono::milliseconds timeout);

}  // namespace taskq
