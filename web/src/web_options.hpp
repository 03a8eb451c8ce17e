// taskq-web's command line (docs/web.md "Running it"), parsed with CLI11:
//   taskq-web --database CONNINFO --listen HOST:PORT [--token-file FILE]
// plus --pool-size and --log-format. TASKQ_DATABASE_URL stands in for
// --database.
#pragma once

#include <string>

#include "operations/host_port.hpp"

namespace taskq::web {

struct WebOptions {
  std::string database;
  std::string listen;
  HostPort listen_at;
  std::string token_file;
  int pool_size = 4;
  std::string log_format = "text";
};

// Returns -1 to go on; otherwise the exit code (0 for --help/--version, 2
// for a bad command line) with the text to print in *message (one line for
// errors).
int parse_web_cli(int argc, char** argv, WebOptions* out, std::string* message);

// Whether taskq-web may listen on `host` without a token file: 127.0.0.0/8,
// ::1 and localhost, nothing that other machines can reach.
bool is_loopback_host(const std::string& host);

}  // namespace taskq::web
