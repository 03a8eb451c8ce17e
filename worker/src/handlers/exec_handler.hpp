// handlers/: the handlers taskq-worker's --handler flag builds: exec:
// (this file) and http(s):// (http_handler); curl_handles owns libcurl's
// handles for them and for the callbacks' sender.
//
// The exec:COMMAND handler (docs/worker.md): runs the command with
// /bin/sh -c in its own process group, the payload JSON on stdin and the
// TASKQ_* variables in the environment; maps its exit to an outcome.
#pragma once

#include <chrono>
#include <string>

#include "taskq/worker.hpp"

namespace taskq {

struct ProcessResult {
  bool started = false;  // false: could not fork/exec (error says why)
  int exit_code = -1;    // when it exited
  int signal = 0;        // when a signal ended it
  bool timed_out = false;
  bool cancelled = false;
  std::string cancel_reason;  // the token's, when cancelled
  std::string stdout_data;    // first kMaxStdout bytes
  std::string stderr_tail;    // last kMaxStderr bytes
  std::string error;
};

constexpr std::size_t kMaxStdout = 1 << 20;  // the result is at most 1 MiB (taskq.complete's limit)
constexpr std::size_t kMaxStderr = 64 << 10;

// Runs `command`, feeding `input` on stdin; kills the whole process group on
// timeout (0: none) or when `token` is cancelled.
ProcessResult run_process(const std::string& command, const std::string& input,
                          const std::vector<std::pair<std::string, std::string>>& extra_env,
                          std::chrono::milliseconds timeout, const CancellationToken& token);

// Exit 0: completed with stdout (JSON if it parses, else a JSON string);
// 65: failed for good; anything else, a signal, a timeout: retryable.
Outcome map_process_result(const ProcessResult& result);

Handler make_exec_handler(std::string command, std::chrono::milliseconds timeout);

}  // namespace taskq
