// The SSRF guard's address classes: IPv4, IPv6, and IPv6 forms that reach an
// IPv4 address.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "callbacks/address_policy.hpp"

namespace {

using taskq::AddressClass;

AddressClass classify(const std::string& text) {
  const auto c = taskq::classify_address(text);
  EXPECT_TRUE(c.has_value()) << text;
  return c.value_or(AddressClass::kUnsupported);
}

TEST(AddressPolicy, Ipv4Ranges) {
  EXPECT_EQ(classify("0.0.0.0"), AddressClass::kUnspecified);
  EXPECT_EQ(classify("0.1.2.3"), AddressClass::kUnspecified);
  EXPECT_EQ(classify("127.0.0.1"), AddressClass::kLoopback);
  EXPECT_EQ(classify("127.255.255.254"), AddressClass::kLoopback);
  EXPECT_EQ(classify("10.0.0.1"), AddressClass::kPrivate);
  EXPECT_EQ(classify("172.16.0.1"), AddressClass::kPrivate);
  EXPECT_EQ(classify("172.31.255.255"), AddressClass::kPrivate);
  EXPECT_EQ(classify("192.168.1.1"), AddressClass::kPrivate);
  EXPECT_EQ(classify("169.254.169.254"), AddressClass::kLinkLocal);  // cloud metadata endpoints
  EXPECT_EQ(classify("100.64.0.1"), AddressClass::kSharedCgnat);
  EXPECT_EQ(classify("100.127.255.255"), AddressClass::kSharedCgnat);
  EXPECT_EQ(classify("224.0.0.1"), AddressClass::kMulticast);
  EXPECT_EQ(classify("239.255.255.250"), AddressClass::kMulticast);
  EXPECT_EQ(classify("240.0.0.1"), AddressClass::kReserved);
  EXPECT_EQ(classify("255.255.255.255"), AddressClass::kReserved);
}

TEST(AddressPolicy, Ipv4BoundariesArePublic) {
  for (const char* a : {"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "126.255.255.255", "128.0.0.0",
                        "172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0", "169.253.255.255",
                        "100.63.255.255", "100.128.0.0", "223.255.255.255"})
    EXPECT_EQ(classify(a), AddressClass::kPublic) << a;
}

TEST(AddressPolicy, Ipv6Ranges) {
  EXPECT_EQ(classify("::"), AddressClass::kUnspecified);
  EXPECT_EQ(classify("::1"), AddressClass::kLoopback);
  EXPECT_EQ(classify("fc00::1"), AddressClass::kPrivate);
  EXPECT_EQ(classify("fd12:3456:789a::1"), AddressClass::kPrivate);
  EXPECT_EQ(classify("fec0::1"), AddressClass::kPrivate);
  EXPECT_EQ(classify("fe80::1"), AddressClass::kLinkLocal);
  EXPECT_EQ(classify("febf::1"), AddressClass::kLinkLocal);
  EXPECT_EQ(classify("ff02::1"), AddressClass::kMulticast);
  EXPECT_EQ(classify("2001:4860:4860::8888"), AddressClass::kPublic);
  EXPECT_EQ(classify("2606:4700::1111"), AddressClass::kPublic);
  EXPECT_EQ(classify("fbff::1"), AddressClass::kPublic);
}

TEST(AddressPolicy, Ipv6FormsOfIpv4AreJudgedByTheIpv4Address) {
  EXPECT_EQ(classify("::ffff:127.0.0.1"), AddressClass::kLoopback);
  EXPECT_EQ(classify("::ffff:7f00:1"), AddressClass::kLoopback);
  EXPECT_EQ(classify("::ffff:10.1.2.3"), AddressClass::kPrivate);
  EXPECT_EQ(classify("::ffff:169.254.169.254"), AddressClass::kLinkLocal);
  EXPECT_EQ(classify("::ffff:100.64.1.1"), AddressClass::kSharedCgnat);
  EXPECT_EQ(classify("::ffff:0.0.0.0"), AddressClass::kUnspecified);
  EXPECT_EQ(classify("::ffff:8.8.8.8"), AddressClass::kPublic);
  EXPECT_EQ(classify("::127.0.0.1"), AddressClass::kLoopback);    // IPv4-compatible
  EXPECT_EQ(classify("64:ff9b::a00:1"), AddressClass::kPrivate);  // NAT64 of 10.0.0.1
  EXPECT_EQ(classify("64:ff9b::808:808"), AddressClass::kPublic);
  EXPECT_EQ(classify("2002:c0a8:0101::1"), AddressClass::kPrivate);  // 6to4 of 192.168.1.1
  EXPECT_EQ(classify("2002:0808:0808::1"), AddressClass::kPublic);
}

TEST(AddressPolicy, SocketAddressesAndText) {
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:192.168.0.10", &v6.sin6_addr), 1);
  EXPECT_EQ(taskq::classify_address(reinterpret_cast<const sockaddr*>(&v6)), AddressClass::kPrivate);
  EXPECT_EQ(taskq::address_text(reinterpret_cast<const sockaddr*>(&v6)), "::ffff:192.168.0.10");

  sockaddr unix_like{};
  unix_like.sa_family = AF_UNIX;
  EXPECT_EQ(taskq::classify_address(&unix_like), AddressClass::kUnsupported);
  EXPECT_EQ(taskq::classify_address(nullptr), AddressClass::kUnsupported);
  EXPECT_FALSE(taskq::classify_address(std::string("localhost")).has_value());
  EXPECT_STREQ(taskq::describe(AddressClass::kLoopback), "a loopback address");
}

}  // namespace
