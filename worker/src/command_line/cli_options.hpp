// command_line/: the taskq-worker program's flags (this file) and its
// --help text (cli_help).
//
// taskq-worker's command line (docs/worker.md): flags, the
// TASKQ_* environment fallbacks and handler specs, parsed with CLI11.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "taskq/worker.hpp"

namespace taskq {

struct CliOptions {
  WorkerOptions worker;                                   // worker.callbacks: the callback dispatcher's options
  std::vector<std::pair<std::string, Handler>> handlers;  // queue -> handler
  std::vector<std::pair<std::string, std::string>> handler_specs;  // queue -> "exec:..." / "http://..."
  std::string metrics_addr;
  std::string log_format = "text";
  int job_timeout_s = 0;
};

// Returns -1 to go on; otherwise the exit code (0 for --help/--version, 2 for
// a bad command line) with the text to print in *message (one line for
// errors).
int parse_cli(int argc, char** argv, CliOptions* out, std::string* message);

// "QUEUE=exec:COMMAND" or "QUEUE=http(s)://URL"; throws std::invalid_argument.
std::pair<std::string, std::string> split_handler_spec(const std::string& spec);

}  // namespace taskq
