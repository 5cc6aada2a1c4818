// The PROXY protocol header (v1 text, v2 binary): what is a header, whose address it
// names, and every way it can be wrong.
#include "dlb/packet/proxy_protocol.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <string>
#include <vector>

namespace dlb::packet {
namespace {

std::string Text(const ClientAddress& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.ip_version == 4 ? AF_INET : AF_INET6, a.bytes, buf, sizeof buf);
  return buf;
}

ProxyResult Parse(const std::string& s, ProxyHeader& h, ProxyProtocol accept = ProxyProtocol::kAny,
                  size_t max_bytes = 8192) {
  return ParseProxyHeader(reinterpret_cast<const uint8_t*>(s.data()), s.size(), accept, max_bytes, h);
}

// "ok <address>" / "local" for a header followed by a request, else the result.
std::string Client(const std::string& header, ProxyProtocol accept = ProxyProtocol::kAny) {
  ProxyHeader h;
  const std::string stream = header + "GET / HTTP/1.1\r\n\r\n";
  switch (Parse(stream, h, accept)) {
    case ProxyResult::kOk:
      if (h.bytes != header.size()) return "wrong length " + std::to_string(h.bytes);
      return h.local ? "local" : "ok " + Text(h.source);
    case ProxyResult::kIncomplete: return "incomplete";
    case ProxyResult::kMissing: return "missing";
    case ProxyResult::kMalformed: return "malformed";
    case ProxyResult::kTooLong: return "too long";
  }
  return "?";
}

std::string V2(uint8_t ver_cmd, uint8_t family, const std::vector<uint8_t>& body) {
  std::string s("\r\n\r\n\0\r\nQUIT\n", 12);
  s += static_cast<char>(ver_cmd);
  s += static_cast<char>(family);
  s += static_cast<char>(body.size() >> 8);
  s += static_cast<char>(body.size() & 0xff);
  s.append(body.begin(), body.end());
  return s;
}

std::vector<uint8_t> V4Body(std::vector<uint8_t> tlvs = {}) {
  std::vector<uint8_t> b = {192, 0, 2, 7, 10, 0, 0, 2, 0x9c, 0x40, 0, 80};
  b.insert(b.end(), tlvs.begin(), tlvs.end());
  return b;
}

std::vector<uint8_t> V6Body(std::vector<uint8_t> tlvs = {}) {
  std::vector<uint8_t> b(36, 0);
  b[0] = 0x20, b[1] = 0x01, b[2] = 0x0d, b[3] = 0xb8, b[15] = 0x07;  // 2001:db8::7
  b[16] = 0x20, b[17] = 0x01, b[18] = 0x0d, b[19] = 0xb8, b[31] = 0x02;
  b[33] = 1, b[35] = 80;
  b.insert(b.end(), tlvs.begin(), tlvs.end());
  return b;
}

TEST(ProxyProtocolTest, V1Tcp4Tcp6AndUnknown) {
  EXPECT_EQ(Client("PROXY TCP4 192.0.2.7 10.0.0.2 40000 80\r\n"), "ok 192.0.2.7");
  EXPECT_EQ(Client("PROXY TCP6 2001:db8::7 2001:db8::2 40000 443\r\n"), "ok 2001:db8::7");
  // An IPv4 client written by a proxy listening on IPv6 is that IPv4 client.
  EXPECT_EQ(Client("PROXY TCP6 ::ffff:192.0.2.7 ::ffff:10.0.0.2 1 80\r\n"), "ok 192.0.2.7");
  EXPECT_EQ(Client("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), "ok 0.0.0.0");
  EXPECT_EQ(Client("PROXY UNKNOWN\r\n"), "local");
  EXPECT_EQ(Client("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"), "local");
  // The longest v1 line is 107 bytes with its CRLF.
  const std::string longest = "PROXY UNKNOWN " + std::string(107 - 16, 'x') + "\r\n";
  ASSERT_EQ(longest.size(), 107u);
  EXPECT_EQ(Client(longest), "local");
  EXPECT_EQ(Client("PROXY UNKNOWN " + std::string(107 - 15, 'x') + "\r\n"), "malformed");
}

TEST(ProxyProtocolTest, V1BadAddressesPortsAndSyntaxAreMalformed) {
  for (const char* bad : {
           "PROXY TCP4 192.0.2.7 10.0.0.2 40000 80\n",        // bare LF
           "PROXY TCP4 192.0.2.7 10.0.0.2 40000 80\r\r\n",    // CR not followed by LF
           "PROXY TCP4 192.0.2.7 10.0.0.2 40000 80 \r\n",     // trailing space
           "PROXY TCP4  192.0.2.7 10.0.0.2 40000 80\r\n",     // two spaces
           "PROXY TCP4 192.0.2.7 10.0.0.2 40000\r\n",         // a field missing
           "PROXY TCP4 192.0.2.7 10.0.0.2 40000 80 81\r\n",   // a field too many
           "PROXY TCP4 2001:db8::7 10.0.0.2 40000 80\r\n",    // IPv6 under TCP4
           "PROXY TCP6 192.0.2.7 2001:db8::2 40000 80\r\n",   // IPv4 under TCP6
           "PROXY TCP4 192.0.2.07 10.0.0.2 40000 80\r\n",     // leading zero in an octet
           "PROXY TCP4 192.0.2.256 10.0.0.2 40000 80\r\n",
           "PROXY TCP4 192.0.2 10.0.0.2 40000 80\r\n",
           "PROXY TCP4 192.0.2.7 10.0.0.2 65536 80\r\n",      // port out of range
           "PROXY TCP4 192.0.2.7 10.0.0.2 040000 80\r\n",     // leading zero in a port
           "PROXY TCP4 192.0.2.7 10.0.0.2 -1 80\r\n",
           "PROXY TCP4 192.0.2.7 10.0.0.2 4x 80\r\n",
           "PROXY TCP4 192.0.2.7 10.0.0.2 40000 \r\n",
           "PROXY TCP5 192.0.2.7 10.0.0.2 40000 80\r\n",      // unknown protocol
           "PROXY tcp4 192.0.2.7 10.0.0.2 40000 80\r\n",
           "PROXY UNKNOWNX\r\n",
           "PROXY \r\n",
       }) {
    EXPECT_EQ(Client(bad), "malformed") << bad;
  }
  // Bytes outside printable US-ASCII: a NUL would end the address inet_pton reads.
  EXPECT_EQ(Client(std::string("PROXY TCP4 192.0.2.7\0\0 10.0.0.2 40000 80\r\n", 42)), "malformed");
  EXPECT_EQ(Client(std::string("PROXY TCP4 192.0.2.7 10.0.0.2\0 40000 80\r\n", 41)), "malformed");
  EXPECT_EQ(Client("PROXY TCP4 192.0.2.7 10.0.0.2 40000 80\t\r\n"), "malformed");
  EXPECT_EQ(Client("PROXY UNKNOWN \x80\r\n"), "malformed");
  // Not a PROXY header at all.
  EXPECT_EQ(Client("proxy TCP4 192.0.2.7 10.0.0.2 40000 80\r\n"), "missing");
  EXPECT_EQ(Client("PROXY/1.0 TCP4 192.0.2.7 10.0.0.2 40000 80\r\n"), "missing");
  EXPECT_EQ(Client(""), "missing");  // the stream starts with the request itself
  // A line that never ends within 107 bytes.
  ProxyHeader h;
  EXPECT_EQ(Parse("PROXY TCP4 " + std::string(200, '1'), h), ProxyResult::kMalformed);
}

TEST(ProxyProtocolTest, V2ProxyAndLocalWithTlvs) {
  EXPECT_EQ(Client(V2(0x21, 0x11, V4Body())), "ok 192.0.2.7");
  EXPECT_EQ(Client(V2(0x21, 0x21, V6Body())), "ok 2001:db8::7");
  // TLVs (ALPN, authority, a zero-length one, a custom one) are skipped.
  const std::vector<uint8_t> tlvs = {0x01, 0, 2, 'h', '2', 0x02, 0, 1, 'a', 0x04, 0, 0, 0xe0, 0, 3, 1, 2, 3};
  EXPECT_EQ(Client(V2(0x21, 0x11, V4Body(tlvs))), "ok 192.0.2.7");
  EXPECT_EQ(Client(V2(0x21, 0x21, V6Body(tlvs))), "ok 2001:db8::7");
  // A mapped IPv6 source is its IPv4 address.
  std::vector<uint8_t> mapped = V6Body();
  std::fill(mapped.begin(), mapped.begin() + 16, 0);
  mapped[10] = mapped[11] = 0xff, mapped[12] = 192, mapped[13] = 0, mapped[14] = 2, mapped[15] = 9;
  EXPECT_EQ(Client(V2(0x21, 0x21, mapped)), "ok 192.0.2.9");
  // LOCAL: the proxy's own connection; whatever block it carries is skipped unread.
  EXPECT_EQ(Client(V2(0x20, 0x00, {})), "local");
  EXPECT_EQ(Client(V2(0x20, 0x11, V4Body())), "local");
  EXPECT_EQ(Client(V2(0x20, 0x31, std::vector<uint8_t>(216, 'x'))), "local");
  // PROXY with the family unspecified: the connection's own source too.
  EXPECT_EQ(Client(V2(0x21, 0x00, {1, 2, 3})), "local");
}

TEST(ProxyProtocolTest, V2MalformedVariants) {
  EXPECT_EQ(Client(V2(0x11, 0x11, V4Body())), "malformed");  // version 1 in a v2 header
  EXPECT_EQ(Client(V2(0x31, 0x11, V4Body())), "malformed");  // version 3
  EXPECT_EQ(Client(V2(0x22, 0x11, V4Body())), "malformed");  // command 2
  EXPECT_EQ(Client(V2(0x21, 0x12, V4Body())), "malformed");  // UDP over IPv4
  EXPECT_EQ(Client(V2(0x21, 0x22, V6Body())), "malformed");  // UDP over IPv6
  EXPECT_EQ(Client(V2(0x21, 0x31, std::vector<uint8_t>(216, 'x'))), "malformed");  // UNIX
  EXPECT_EQ(Client(V2(0x21, 0x10, V4Body())), "malformed");  // IPv4, transport unspecified
  // Address block shorter than its family's, also where the input ends with the header
  // (the addresses must not be read past it).
  EXPECT_EQ(Client(V2(0x21, 0x11, std::vector<uint8_t>(11, 1))), "malformed");
  EXPECT_EQ(Client(V2(0x21, 0x21, V4Body())), "malformed");
  for (const std::string& s : {V2(0x21, 0x11, {}), V2(0x21, 0x11, {1, 2, 3}), V2(0x21, 0x21, V4Body())}) {
    ProxyHeader h;
    EXPECT_EQ(Parse(s, h), ProxyResult::kMalformed);
  }
  // TLVs that do not tile the rest exactly: a value that overruns, a partial TLV header.
  EXPECT_EQ(Client(V2(0x21, 0x11, V4Body({0x01, 0, 5, 'h', '2'}))), "malformed");
  EXPECT_EQ(Client(V2(0x21, 0x11, V4Body({0x01, 0}))), "malformed");
  EXPECT_EQ(Client(V2(0x21, 0x11, V4Body({0x01, 0xff, 0xff}))), "malformed");
}

TEST(ProxyProtocolTest, V2LongerThanTheBoundIsTooLong) {
  // A TLV of 8000 bytes: the header is longer than what the engine holds (512 here).
  std::vector<uint8_t> tlv = {0xe0, 0x1f, 0x40};
  tlv.resize(3 + 8000, 'x');
  const std::string big = V2(0x21, 0x11, V4Body(tlv));
  ProxyHeader h;
  // Known from its first 16 bytes, before the rest arrives.
  EXPECT_EQ(Parse(big.substr(0, 16), h, ProxyProtocol::kAny, 512), ProxyResult::kTooLong);
  EXPECT_EQ(Parse(big, h, ProxyProtocol::kAny, 8192), ProxyResult::kOk);
  EXPECT_EQ(Parse(V2(0x21, 0x11, V4Body()), h, ProxyProtocol::kAny, 16 + 11), ProxyResult::kTooLong);
  // A v1 line still incomplete at the bound never completes; a complete one beyond it
  // is refused as well, whatever the segmentation.
  EXPECT_EQ(Parse("PROXY TCP4 192.0.2.7 10.0.0.2", h, ProxyProtocol::kAny, 20), ProxyResult::kTooLong);
  EXPECT_EQ(Parse("PROXY TCP4 192.0.2.7 10.0.0.2 40000 80\r\n", h, ProxyProtocol::kAny, 30), ProxyResult::kTooLong);
}

TEST(ProxyProtocolTest, AcceptedVersions) {
  const std::string v1 = "PROXY TCP4 192.0.2.7 10.0.0.2 40000 80\r\n";
  const std::string v2 = V2(0x21, 0x11, V4Body());
  EXPECT_EQ(Client(v1, ProxyProtocol::kV1), "ok 192.0.2.7");
  EXPECT_EQ(Client(v2, ProxyProtocol::kV2), "ok 192.0.2.7");
  // The other version is a PROXY header, but not one this deployment sends.
  EXPECT_EQ(Client(v2, ProxyProtocol::kV1), "malformed");
  EXPECT_EQ(Client(v1, ProxyProtocol::kV2), "malformed");
  EXPECT_EQ(Client(v1, ProxyProtocol::kOff), "missing");
}

// Every prefix of a valid header asks for more; none is taken for a header, refused,
// or read past.
TEST(ProxyProtocolTest, EveryPrefixIsIncomplete) {
  for (const std::string& header :
       {std::string("PROXY TCP6 2001:db8::7 2001:db8::2 40000 443\r\n"), std::string("PROXY UNKNOWN\r\n"),
        V2(0x21, 0x21, V6Body({0x01, 0, 2, 'h', '2'})), V2(0x20, 0x00, {})}) {
    for (size_t k = 0; k < header.size(); ++k) {
      ProxyHeader h;
      EXPECT_EQ(Parse(header.substr(0, k), h), ProxyResult::kIncomplete) << k;
    }
    ProxyHeader h;
    EXPECT_EQ(Parse(header, h), ProxyResult::kOk);
    EXPECT_EQ(h.bytes, header.size());
  }
  // A prefix that already departs from both signatures is missing at once.
  ProxyHeader h;
  EXPECT_EQ(Parse("PRX", h), ProxyResult::kMissing);
  EXPECT_EQ(Parse(std::string("\r\n\r\n\0\r\nQ", 8) + "X", h), ProxyResult::kMissing);
}

TEST(ProxyProtocolTest, LooksLikeProxyHeader) {
  auto looks = [](const std::string& s) {
    return LooksLikeProxyHeader(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  EXPECT_TRUE(looks("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"));
  EXPECT_TRUE(looks("PROXY UNKNOWN\r\n"));
  EXPECT_TRUE(looks(V2(0x21, 0x11, V4Body())));
  EXPECT_TRUE(looks(V2(0x21, 0x11, V4Body()).substr(4)));  // after the CRLFs a head skips
  EXPECT_FALSE(looks("GET / HTTP/1.1\r\n"));
  EXPECT_FALSE(looks("PROXYX / HTTP/1.1\r\n"));
  EXPECT_FALSE(looks("PROXY"));
}

}  // namespace
}  // namespace dlb::packet
