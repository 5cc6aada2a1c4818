#include "dlb/packet/parse.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "frames.h"

namespace dlb::packet {
namespace {

using testing::BuildSegment;
using testing::SegmentSpec;

ParseResult Parse(const std::vector<uint8_t>& f, PacketView& v, ParseOptions o = {}) {
  return ParseFrame(f.data(), f.size(), o, v);
}

TEST(ParseTest, Ipv4TcpFieldsAndPayload) {
  SegmentSpec s;
  s.payload = "GET / HTTP/1.1\r\n\r\n";
  s.seq = 0xfffffff0;
  const auto f = BuildSegment(s);
  PacketView v;
  ASSERT_EQ(Parse(f, v), ParseResult::kTcp);
  EXPECT_EQ(v.ip_version, 4);
  EXPECT_EQ(v.l3_offset, 14u);
  EXPECT_EQ(v.l4_offset, 34u);
  EXPECT_EQ(v.payload_offset, 54u);
  EXPECT_EQ(v.payload_bytes, s.payload.size());
  EXPECT_EQ(v.src_port, 40000);
  EXPECT_EQ(v.dst_port, 80);
  EXPECT_EQ(v.seq, 0xfffffff0u);
  EXPECT_EQ(v.ack, 5000u);
  EXPECT_EQ(v.tcp_flags, 0x18);
  EXPECT_EQ(v.src_addr[0], 10);
  EXPECT_EQ(v.dst_addr[3], 2);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data() + v.payload_offset), v.payload_bytes),
            s.payload);
}

TEST(ParseTest, EthernetPaddingIsNotPayload) {
  SegmentSpec s;  // a bare ACK: 54 bytes, padded to the 60-byte minimum on the wire
  s.flags = 0x10;
  auto f = BuildSegment(s);
  f.resize(60, 0);
  PacketView v;
  ASSERT_EQ(Parse(f, v), ParseResult::kTcp);
  EXPECT_EQ(v.payload_bytes, 0u);
}

TEST(ParseTest, VlanAndQinQTagsAreSkipped) {
  SegmentSpec s;
  s.payload = "x";
  s.vlans = {100};
  PacketView v;
  ASSERT_EQ(Parse(BuildSegment(s), v), ParseResult::kTcp);
  EXPECT_EQ(v.vlan_count, 1);
  EXPECT_EQ(v.l3_offset, 18u);
  s.vlans = {100, 200};
  ASSERT_EQ(Parse(BuildSegment(s), v), ParseResult::kTcp);
  EXPECT_EQ(v.vlan_count, 2);
  EXPECT_EQ(v.l3_offset, 22u);
  EXPECT_EQ(v.payload_bytes, 1u);
}

TEST(ParseTest, ThreeVlanTagsAreTooMany) {
  SegmentSpec s;
  s.vlans = {1, 2};
  auto f = BuildSegment(s);
  // Insert a third 802.1Q tag after the second.
  const uint8_t tag[4] = {0x81, 0x00, 0x00, 0x03};
  f.insert(f.begin() + 20, tag, tag + 4);
  PacketView v;
  EXPECT_EQ(Parse(f, v), ParseResult::kTooManyVlanTags);
}

TEST(ParseTest, Ipv4OptionsAreSkipped) {
  SegmentSpec s;
  s.ip_options = {0x01, 0x01, 0x01, 0x00};  // NOP NOP NOP EOL
  s.payload = "abc";
  PacketView v;
  ASSERT_EQ(Parse(BuildSegment(s), v), ParseResult::kTcp);
  EXPECT_EQ(v.l4_offset, 38u);
  EXPECT_EQ(v.payload_bytes, 3u);
}

TEST(ParseTest, TcpOptionsAreValidated) {
  SegmentSpec s;
  s.tcp_options = {0x02, 0x04, 0x05, 0xb4, 0x01, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2};  // MSS, NOP, TS
  s.payload = "hi";
  PacketView v;
  ASSERT_EQ(Parse(BuildSegment(s), v), ParseResult::kTcp);
  EXPECT_EQ(v.payload_bytes, 2u);
  s.tcp_options = {0x02, 0x09, 0x05, 0xb4};  // MSS claiming 9 bytes in a 4-byte option area
  EXPECT_EQ(Parse(BuildSegment(s), v), ParseResult::kBadTcpOption);
  s.tcp_options = {0x08, 0x01, 0, 0};  // length 1 < 2
  EXPECT_EQ(Parse(BuildSegment(s), v), ParseResult::kBadTcpOption);
}

TEST(ParseTest, Ipv6WithExtensionHeaders) {
  SegmentSpec s;
  s.ip_version = 6;
  s.src = {testing::V6(1), 40000};
  s.dst = {testing::V6(2), 80};
  s.payload = "GET";
  auto f = BuildSegment(s);
  PacketView v;
  ASSERT_EQ(Parse(f, v), ParseResult::kTcp);
  EXPECT_EQ(v.ip_version, 6);
  EXPECT_EQ(v.src_addr[15], 1);
  EXPECT_EQ(v.payload_bytes, 3u);
  // Insert a hop-by-hop (8 bytes) and a destination options header (16 bytes).
  std::vector<uint8_t> ext = {60, 0, 1, 4, 0, 0, 0, 0,                               // HBH -> DST
                              6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};       // DST -> TCP
  f[14 + 6] = 0;  // next header: hop-by-hop
  f.insert(f.begin() + 54, ext.begin(), ext.end());
  const uint16_t plen = static_cast<uint16_t>((f[18] << 8 | f[19]) + ext.size());
  f[18] = static_cast<uint8_t>(plen >> 8);
  f[19] = static_cast<uint8_t>(plen);
  ASSERT_EQ(Parse(f, v), ParseResult::kTcp);
  EXPECT_EQ(v.l4_offset, 54u + 24u);
  EXPECT_EQ(v.payload_bytes, 3u);
  ParseOptions strict;
  strict.max_ipv6_extension_headers = 1;
  EXPECT_EQ(Parse(f, v, strict), ParseResult::kIpv6ExtensionChainTooLong);
  // An extension header claiming more than the payload holds.
  auto g = f;
  g[54 + 8 + 1] = 200;
  EXPECT_EQ(Parse(g, v), ParseResult::kTruncatedIpv6Extension);
  // A fragment header.
  auto h = f;
  h[54 + 8] = 44;
  EXPECT_EQ(Parse(h, v), ParseResult::kIpv6Fragment);
}

TEST(ParseTest, EveryReasonIsReachable) {
  std::set<ParseResult> seen;
  PacketView v;
  auto check = [&](std::vector<uint8_t> f, ParseResult want) {
    const ParseResult got = ParseFrame(f.data(), f.size(), ParseOptions{}, v);
    EXPECT_EQ(got, want) << ParseResultName(want);
    seen.insert(got);
  };
  SegmentSpec s;
  s.payload = "x";
  const auto base = BuildSegment(s);
  check(base, ParseResult::kTcp);
  {
    auto f = base;
    f[12] = 0x08;
    f[13] = 0x06;  // ARP
    check(f, ParseResult::kNotIp);
  }
  {
    auto f = base;
    f[14 + 9] = 17;  // UDP
    check(f, ParseResult::kNotTcp);
  }
  {
    auto f = base;
    f[14 + 6] = 0x20;  // MF
    check(f, ParseResult::kIpv4Fragment);
  }
  {
    auto f = base;
    f[14 + 6] = 0x00;
    f[14 + 7] = 0x10;  // offset
    check(f, ParseResult::kIpv4Fragment);
  }
  check(std::vector<uint8_t>(base.begin(), base.begin() + 13), ParseResult::kTruncatedEthernet);
  {
    SegmentSpec t = s;
    t.vlans = {7};
    auto f = BuildSegment(t);
    f.resize(16);
    check(f, ParseResult::kTruncatedVlan);
  }
  {
    SegmentSpec t = s;
    t.vlans = {1, 2};
    auto f = BuildSegment(t);
    const uint8_t tag[4] = {0x81, 0x00, 0x00, 0x03};
    f.insert(f.begin() + 20, tag, tag + 4);
    check(f, ParseResult::kTooManyVlanTags);
  }
  check(std::vector<uint8_t>(base.begin(), base.begin() + 30), ParseResult::kTruncatedIpv4);
  {
    auto f = base;
    f[14] = 0x55;
    check(f, ParseResult::kBadIpv4Version);
  }
  {
    auto f = base;
    f[14] = 0x44;
    check(f, ParseResult::kBadIpv4HeaderLength);
  }
  {
    auto f = base;
    f[16] = 0x10;  // total length 4096+ > frame
    check(f, ParseResult::kBadIpv4TotalLength);
  }
  {
    auto f = base;
    f[16] = 0;
    f[17] = 16;  // total < IHL
    check(f, ParseResult::kBadIpv4TotalLength);
  }
  SegmentSpec s6 = s;
  s6.ip_version = 6;
  s6.src = {testing::V6(1), 40000};
  s6.dst = {testing::V6(2), 80};
  const auto base6 = BuildSegment(s6);
  check(base6, ParseResult::kTcp);
  check(std::vector<uint8_t>(base6.begin(), base6.begin() + 50), ParseResult::kTruncatedIpv6);
  {
    auto f = base6;
    f[14] = 0x40;
    check(f, ParseResult::kBadIpv6Version);
  }
  {
    auto f = base6;
    f[18] = 0xff;
    check(f, ParseResult::kBadIpv6PayloadLength);
  }
  {
    auto f = base6;
    f[20] = 0;  // hop-by-hop, but no room for it
    f[18] = 0;
    f[19] = 1;
    check(f, ParseResult::kTruncatedIpv6Extension);
  }
  {
    auto f = base6;
    f[20] = 60;  // destination options chained to itself, 9 deep
    std::vector<uint8_t> ext;
    for (int i = 0; i < 9; ++i) {
      const uint8_t e[8] = {static_cast<uint8_t>(i == 8 ? 6 : 60), 0, 1, 4, 0, 0, 0, 0};
      ext.insert(ext.end(), e, e + 8);
    }
    f.insert(f.begin() + 54, ext.begin(), ext.end());
    const uint16_t plen = static_cast<uint16_t>((f[18] << 8 | f[19]) + ext.size());
    f[18] = static_cast<uint8_t>(plen >> 8);
    f[19] = static_cast<uint8_t>(plen);
    check(f, ParseResult::kIpv6ExtensionChainTooLong);
  }
  {
    auto f = base6;
    f[20] = 44;
    check(f, ParseResult::kIpv6Fragment);
  }
  {
    auto f = base;
    f.resize(14 + 20 + 10);
    f[16] = 0;
    f[17] = 30;
    check(f, ParseResult::kTruncatedTcp);
  }
  {
    auto f = base;
    f[14 + 20 + 12] = 0x40;  // data offset 4 words < 5
    check(f, ParseResult::kBadTcpDataOffset);
  }
  {
    auto f = base;
    f[14 + 20 + 12] = 0xf0;  // 60 bytes > segment
    check(f, ParseResult::kBadTcpDataOffset);
  }
  {
    SegmentSpec t = s;
    t.tcp_options = {0x05, 0x0a, 0, 0};
    check(BuildSegment(t), ParseResult::kBadTcpOption);
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kParseResultCount)) << "a reason without a test";
}

TEST(ParseTest, NamesAreDistinctLabels) {
  std::set<std::string> names;
  for (int i = 0; i < kParseResultCount; ++i) {
    const std::string n = ParseResultName(static_cast<ParseResult>(i));
    EXPECT_EQ(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"), std::string::npos) << n;
    names.insert(n);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kParseResultCount));
}

TEST(ParseTest, EveryTruncationOfAValidFrameIsSafe) {
  SegmentSpec s;
  s.vlans = {5, 6};
  s.tcp_options = {0x02, 0x04, 0x05, 0xb4};
  s.payload = "GET / HTTP/1.1\r\n\r\n";
  const auto f = BuildSegment(s);
  for (size_t n = 0; n < f.size(); ++n) {
    std::vector<uint8_t> cut(f.begin(), f.begin() + n);  // exact size: ASan sees overreads
    PacketView v;
    const ParseResult r = ParseFrame(cut.data(), cut.size(), ParseOptions{}, v);
    if (r == ParseResult::kTcp) {
      EXPECT_LE(v.payload_offset + v.payload_bytes, n);
    } else {
      EXPECT_TRUE(IsMalformed(r)) << n << " " << ParseResultName(r);
    }
  }
}

}  // namespace
}  // namespace dlb::packet
