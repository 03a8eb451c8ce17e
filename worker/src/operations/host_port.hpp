// HOST:PORT as --metrics-addr takes it: an IPv4 literal, a bracketed IPv6
// literal or a hostname, then a decimal port (0 lets the kernel pick one).
// Validated up front so a typo is one clear line at start, not a bind error.
#pragma once

#include <string>

namespace taskq {

struct HostPort {
  std::string host;  // as given, without IPv6 brackets
  int port = 0;

  // Back to HOST:PORT, bracketing IPv6 literals again.
  std::string to_string() const;
};

// Throws std::invalid_argument with a message saying what is wrong and what
// is expected ("127.0.0.1:9464", "[::1]:9464", "metrics.local:9464").
HostPort parse_host_port(const std::string& text);

}  // namespace taskq
