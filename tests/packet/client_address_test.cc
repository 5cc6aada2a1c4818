// The client address behind trusted proxies: X-Forwarded-For elements, and the N-th
// from the right of the last line.
#include "dlb/packet/client_address.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <string>

namespace dlb::packet {
namespace {

std::string Text(const ClientAddress& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.ip_version == 4 ? AF_INET : AF_INET6, a.bytes, buf, sizeof buf);
  return buf;
}

std::string Element(std::string_view e) {
  ClientAddress a;
  return ParseForwardedAddress(e, a) ? Text(a) : "none";
}

TEST(ClientAddressTest, ElementForms) {
  EXPECT_EQ(Element("192.0.2.1"), "192.0.2.1");
  EXPECT_EQ(Element(" \t192.0.2.1 "), "192.0.2.1");
  EXPECT_EQ(Element("192.0.2.1:4711"), "192.0.2.1");
  EXPECT_EQ(Element("2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(Element("[2001:db8::1]"), "2001:db8::1");
  EXPECT_EQ(Element("[2001:db8::1]:443"), "2001:db8::1");
  EXPECT_EQ(Element("::ffff:10.0.0.1"), "10.0.0.1");
  for (const char* bad : {"", "unknown", "_hidden", "192.0.2", "192.0.2.1:x", "[2001:db8::1", "[::1]x",
                          "300.0.0.1", "2001:db8::1::2", "192.0.2.1 , 10.0.0.1"}) {
    EXPECT_EQ(Element(bad), "none") << bad;
  }
}

std::string Client(const std::string& headers, unsigned hops) {
  const std::string head = "GET / HTTP/1.1\r\n" + headers + "\r\n";
  ClientAddress a;
  return ForwardedClientAddress(reinterpret_cast<const uint8_t*>(head.data()), head.size(), hops, a) ? Text(a)
                                                                                                     : "none";
}

TEST(ClientAddressTest, NthFromTheRightOfTheLastLine) {
  const std::string one = "X-Forwarded-For: 6.6.6.6, 192.0.2.7\r\n";
  EXPECT_EQ(Client(one, 1), "192.0.2.7");
  EXPECT_EQ(Client(one, 2), "6.6.6.6");
  EXPECT_EQ(Client(one, 3), "none");
  // A proxy that adds its own line (HAProxy): the last line is the trusted one, and a
  // client's own earlier lines do not count.
  EXPECT_EQ(Client("x-forwarded-for: 6.6.6.6\r\nHost: a\r\nX-FORWARDED-FOR:192.0.2.8\r\n", 1), "192.0.2.8");
  EXPECT_EQ(Client("X-Forwarded-For: 192.0.2.9\n", 1), "192.0.2.9");
  EXPECT_EQ(Client("Host: a\r\n", 1), "none");
  EXPECT_EQ(Client("X-Forwarded-For-Not: 192.0.2.9\r\n", 1), "none");
  EXPECT_EQ(Client("X-Forwarded-For: 6.6.6.6, unknown\r\n", 1), "none");
  EXPECT_EQ(Client("X-Forwarded-For: 6.6.6.6,\r\n", 1), "none");
  EXPECT_EQ(Client("X-Forwarded-For:\r\n", 1), "none");
  EXPECT_EQ(Client(one, 0), "none");
}

}  // namespace
}  // namespace dlb::packet
