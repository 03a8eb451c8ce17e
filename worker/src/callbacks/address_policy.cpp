// Address classification for the SSRF guard; see address_policy.hpp.
#include "callbacks/address_policy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstring>

namespace taskq {
namespace {

AddressClass classify_v4(std::uint32_t a) {  // host byte order
  const auto in = [a](std::uint32_t net, int bits) {
    const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
    return (a & mask) == net;
  };
  if (in(0x00000000, 8)) return AddressClass::kUnspecified;
  if (in(0x7f000000, 8)) return AddressClass::kLoopback;
  if (in(0x0a000000, 8) || in(0xac100000, 12) || in(0xc0a80000, 16)) return AddressClass::kPrivate;
  if (in(0xa9fe0000, 16)) return AddressClass::kLinkLocal;
  if (in(0x64400000, 10)) return AddressClass::kSharedCgnat;
  if (in(0xe0000000, 4)) return AddressClass::kMulticast;
  if (in(0xf0000000, 4)) return AddressClass::kReserved;
  return AddressClass::kPublic;
}

std::uint32_t v4_at(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

AddressClass classify_v6(const unsigned char* b) {
  static const unsigned char kZero[16] = {};
  const bool first_80_zero = std::memcmp(b, kZero, 10) == 0;
  if (std::memcmp(b, kZero, 16) == 0) return AddressClass::kUnspecified;
  if (std::memcmp(b, kZero, 15) == 0 && b[15] == 1) return AddressClass::kLoopback;
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated but still
  // routable by some stacks): the IPv4 address decides.
  if (first_80_zero && b[10] == 0xff && b[11] == 0xff) return classify_v4(v4_at(b + 12));
  if (first_80_zero && b[10] == 0 && b[11] == 0) return classify_v4(v4_at(b + 12));
  // NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address.
  static const unsigned char kNat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b, kNat64, 12) == 0) return classify_v4(v4_at(b + 12));
  // 6to4 2002:AABB:CCDD::/48 embeds the IPv4 address AA.BB.CC.DD.
  if (b[0] == 0x20 && b[1] == 0x02) {
    const AddressClass embedded = classify_v4(v4_at(b + 2));
    if (embedded != AddressClass::kPublic) return embedded;
  }
  if ((b[0] & 0xfe) == 0xfc) return AddressClass::kPrivate;                    // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressClass::kLinkLocal;  // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return AddressClass::kPrivate;    // fec0::/10 site-local
  if (b[0] == 0xff) return AddressClass::kMulticast;                           // ff00::/8
  return AddressClass::kPublic;
}

}  // namespace

const char* describe(AddressClass c) {
  switch (c) {
    case AddressClass::kPublic:
      return "a public address";
    case AddressClass::kUnspecified:
      return "an unspecified address";
    case AddressClass::kLoopback:
      return "a loopback address";
    case AddressClass::kPrivate:
      return "a private address";
    case AddressClass::kLinkLocal:
      return "a link-local address";
    case AddressClass::kSharedCgnat:
      return "a shared (CGNAT) address";
    case AddressClass::kMulticast:
      return "a multicast address";
    case AddressClass::kReserved:
      return "a reserved address";
    case AddressClass::kUnsupported:
      return "not an IP address";
  }
  return "an unknown address";
}

AddressClass classify_address(const sockaddr* address) {
  if (address == nullptr) return AddressClass::kUnsupported;
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    return classify_v4(ntohl(v4->sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    return classify_v6(v6->sin6_addr.s6_addr);
  }
  return AddressClass::kUnsupported;
}

std::optional<AddressClass> classify_address(const std::string& numeric) {
  sockaddr_in v4{};
  if (inet_pton(AF_INET, numeric.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    return classify_address(reinterpret_cast<const sockaddr*>(&v4));
  }
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET6, numeric.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    return classify_address(reinterpret_cast<const sockaddr*>(&v6));
  }
  return std::nullopt;
}

std::string address_text(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address != nullptr && address->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  else if (address != nullptr && address->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text, sizeof text);
  return text;
}

}  // namespace taskq
