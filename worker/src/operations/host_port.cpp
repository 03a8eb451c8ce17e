// See host_port.hpp. The host is checked syntactically only (literals with
// inet_pton, names against RFC 1123): whether a name resolves is for the
// bind to find out, with its own message.
#include "operations/host_port.hpp"

#include <arpa/inet.h>

#include <cctype>
#include <stdexcept>

namespace taskq {
namespace {

const char* const kExpected = "expected HOST:PORT such as 127.0.0.1:9464, [::1]:9464 or localhost:9464";

[[noreturn]] void refuse(const std::string& text, const std::string& why) {
  throw std::invalid_argument("\"" + text + "\": " + why + " (" + kExpected + ")");
}

bool is_ipv4(const std::string& host) {
  in_addr addr{};
  return inet_pton(AF_INET, host.c_str(), &addr) == 1;
}

// An IPv6 literal, optionally with a zone (fe80::1%eth0) for link-local use.
bool is_ipv6(const std::string& host) {
  const auto percent = host.find('%');
  if (percent != std::string::npos && percent + 1 == host.size()) return false;
  const std::string address = host.substr(0, percent);
  in6_addr addr{};
  return inet_pton(AF_INET6, address.c_str(), &addr) == 1;
}

// RFC 1123 host name: dot-separated labels of letters, digits and hyphens,
// no label starting or ending with a hyphen; one trailing dot allowed.
bool is_hostname(std::string host) {
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty() || host.size() > 253) return false;
  std::size_t start = 0;
  while (start <= host.size()) {
    auto end = host.find('.', start);
    if (end == std::string::npos) end = host.size();
    const std::size_t len = end - start;
    if (len == 0 || len > 63 || host[start] == '-' || host[end - 1] == '-') return false;
    for (std::size_t i = start; i < end; ++i) {
      const unsigned char c = static_cast<unsigned char>(host[i]);
      if (!std::isalnum(c) && c != '-') return false;
    }
    start = end + 1;
  }
  return true;
}

bool all_digits_and_dots(const std::string& s) {
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.') return false;
  return true;
}

}  // namespace

std::string HostPort::to_string() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

HostPort parse_host_port(const std::string& text) {
  HostPort out;
  std::string port;
  if (text.find("://") != std::string::npos) refuse(text, "a URL; give only HOST:PORT");
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos) refuse(text, "missing ] after the IPv6 address");
    out.host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') refuse(text, "missing :PORT after ]");
    port = text.substr(close + 2);
    if (!is_ipv6(out.host)) refuse(text, "\"" + out.host + "\" is not an IPv6 address");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) refuse(text, "missing :PORT");
    out.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) refuse(text, "an IPv6 address needs brackets");
    // No default interface: listening on all of them exposes the endpoint,
    // so that has to be asked for (0.0.0.0 or [::]).
    if (out.host.empty()) refuse(text, "missing host (0.0.0.0 or [::] for every interface)");
    if (all_digits_and_dots(out.host)) {
      if (!is_ipv4(out.host)) refuse(text, "\"" + out.host + "\" is not an IPv4 address");
    } else if (!is_hostname(out.host)) {
      refuse(text, "\"" + out.host + "\" is not a valid host name");
    }
  }
  if (port.empty()) refuse(text, "missing port");
  if (port.size() > 5) refuse(text, "port out of range 0-65535");
  for (char c : port)
    if (!std::isdigit(static_cast<unsigned char>(c))) refuse(text, "port \"" + port + "\" is not a number");
  out.port = std::stoi(port);
  if (out.port > 65535) refuse(text, "port out of range 0-65535");
  return out;
}

}  // namespace taskq
