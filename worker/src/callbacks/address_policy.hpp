// The SSRF guard of the callback dispatcher (--callback-refuse-private):
// classifies the address a connection is about to be opened to. It is applied
// to the resolved address at socket-open time, not to the URL's host name,
// so a name that resolves (or re-resolves, DNS rebinding) to an internal
// address is still refused.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>

namespace taskq {

enum class AddressClass {
  kPublic,
  kUnspecified,  // 0.0.0.0/8, ::
  kLoopback,     // 127.0.0.0/8, ::1
  kPrivate,      // 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 (site-local)
  kLinkLocal,    // 169.254/16, fe80::/10
  kSharedCgnat,  // 100.64.0.0/10 (RFC 6598)
  kMulticast,    // 224/4, ff00::/8
  kReserved,     // 240/4 including 255.255.255.255
  kUnsupported,  // not IPv4 or IPv6 (e.g. a Unix socket)
};

const char* describe(AddressClass c);  // "a loopback address", ...

// IPv6 forms that carry an IPv4 address (mapped ::ffff:a.b.c.d, compatible
// ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that IPv4
// address: they reach it.
AddressClass classify_address(const sockaddr* address);
// The same for a numeric address text; nullopt when it does not parse.
std::optional<AddressClass> classify_address(const std::string& numeric);

// Numeric text of a socket address, for error messages.
std::string address_text(const sockaddr* address);

}  // namespace taskq
