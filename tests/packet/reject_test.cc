// The built frames are checked by an independent reading of their bytes: offsets from
// the L2 header, checksums recomputed with the test's own routine, the HTTP response
// parsed as text.
#include "dlb/packet/reject.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "frames.h"

namespace dlb::packet {
namespace {

using testing::BuildSegment;
using testing::SegmentSpec;

struct Decoded {
  size_t l3 = 0;
  int ip_version = 0;
  std::vector<uint8_t> src, dst;
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  std::string payload;
  bool ip_checksum_ok = false;
  bool tcp_checksum_ok = false;
};

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Be32(const uint8_t* p) { return uint32_t(Be16(p)) << 16 | Be16(p + 2); }

Decoded Decode(const uint8_t* f, size_t n) {
  Decoded d;
  size_t off = 12;
  while (Be16(f + off) == 0x8100 || Be16(f + off) == 0x88a8) off += 4;
  const uint16_t type = Be16(f + off);
  d.l3 = off + 2;
  const uint8_t* ip = f + d.l3;
  size_t tcp_off;
  size_t tcp_len;
  if (type == 0x0800) {
    d.ip_version = 4;
    d.src.assign(ip + 12, ip + 16);
    d.dst.assign(ip + 16, ip + 20);
    const size_t total = Be16(ip + 2);
    EXPECT_EQ(d.l3 + total, n);
    d.ip_checksum_ok = testing::Fold(testing::SumBytes(ip, 20)) == 0;
    tcp_off = d.l3 + 20;
    tcp_len = total - 20;
  } else {
    d.ip_version = 6;
    d.src.assign(ip + 8, ip + 24);
    d.dst.assign(ip + 24, ip + 40);
    tcp_off = d.l3 + 40;
    tcp_len = Be16(ip + 4);
    EXPECT_EQ(tcp_off + tcp_len, n);
    d.ip_checksum_ok = true;  // IPv6 has none
  }
  const uint8_t* tcp = f + tcp_off;
  d.sport = Be16(tcp);
  d.dport = Be16(tcp + 2);
  d.seq = Be32(tcp + 4);
  d.ack = Be32(tcp + 8);
  d.flags = tcp[13];
  const size_t doff = (tcp[12] >> 4) * 4;
  d.payload.assign(reinterpret_cast<const char*>(tcp + doff), tcp_len - doff);
  const uint64_t sum = testing::SumBytes(d.src.data(), d.src.size()) +
                       testing::SumBytes(d.dst.data(), d.dst.size()) + 6 + tcp_len +
                       testing::SumBytes(tcp, tcp_len);
  d.tcp_checksum_ok = testing::Fold(sum) == 0;
  return d;
}

struct Response {
  std::string status;
  std::map<std::string, std::string> headers;
  std::string body;
};

Response ParseResponse(const std::string& s) {
  Response r;
  const size_t end = s.find("\r\n\r\n");
  EXPECT_NE(end, std::string::npos);
  r.body = s.substr(end + 4);
  size_t pos = s.find("\r\n");
  r.status = s.substr(0, pos);
  pos += 2;
  while (pos < end) {
    const size_t eol = s.find("\r\n", pos);
    const std::string line = s.substr(pos, eol - pos);
    const size_t colon = line.find(": ");
    r.headers[line.substr(0, colon)] = line.substr(colon + 2);
    pos = eol + 2;
  }
  return r;
}

CompiledRule Rule(int64_t capacity, double rate) {
  RuleConfig rc;
  rc.name = "pay";
  rc.bucket = {.capacity = capacity, .leak_rate_per_s = rate};
  auto set = RuleSet::Compile({rc}, DefaultRuleConfig());
  EXPECT_TRUE(set.ok());
  return set->rule(0);
}

class RejectTest : public ::testing::TestWithParam<int> {};

TEST_P(RejectTest, ClientGets429WithFinAndCorrectNumbers) {
  SegmentSpec s;
  s.ip_version = GetParam();
  if (s.ip_version == 6) {
    s.src.addr = testing::V6(1);
    s.dst.addr = testing::V6(2);
  }
  s.vlans = {100, 200};
  s.seq = 0xfffffff0;  // the segment wraps the sequence space
  s.ack = 777;
  s.payload = "POST /pay HTTP/1.1\r\nX-User-ID: a\r\n\r\n";
  const auto frame = BuildSegment(s);
  PacketView v;
  ASSERT_EQ(ParseFrame(frame.data(), frame.size(), ParseOptions{}, v), ParseResult::kTcp);
  dlb::Decision d;
  d.allowed = false;
  d.remaining = 0;
  d.retry_after_ns = 1'500'000'001;  // 1.5 s: rounds up to 2
  const CompiledRule rule = Rule(10, 4);
  uint8_t out[kMaxBuiltFrameBytes];
  const size_t n = BuildClientReject(frame.data(), v, rule, d, out, sizeof out);
  ASSERT_GT(n, 0u);
  // L2: MACs swapped, both VLAN tags kept.
  EXPECT_EQ(0, std::memcmp(out, frame.data() + 6, 6));
  EXPECT_EQ(0, std::memcmp(out + 6, frame.data(), 6));
  EXPECT_EQ(0, std::memcmp(out + 12, frame.data() + 12, 8));
  const Decoded got = Decode(out, n);
  EXPECT_EQ(got.l3, v.l3_offset);
  EXPECT_TRUE(got.ip_checksum_ok);
  EXPECT_TRUE(got.tcp_checksum_ok);
  EXPECT_EQ(got.src, s.dst.addr);
  EXPECT_EQ(got.dst, s.src.addr);
  EXPECT_EQ(got.sport, 80);
  EXPECT_EQ(got.dport, 40000);
  EXPECT_EQ(got.seq, 777u);
  EXPECT_EQ(got.ack, static_cast<uint32_t>(0xfffffff0u + s.payload.size()));
  EXPECT_EQ(got.flags, 0x19);  // FIN PSH ACK
  const Response r = ParseResponse(got.payload);
  EXPECT_EQ(r.status, "HTTP/1.1 429 Too Many Requests");
  EXPECT_EQ(r.headers.at("Retry-After"), "2");
  EXPECT_EQ(r.headers.at("Connection"), "close");
  EXPECT_EQ(r.headers.at("RateLimit-Policy"), "\"pay\";q=10;w=3");
  EXPECT_EQ(r.headers.at("RateLimit"), "\"pay\";r=0;t=2");
  EXPECT_EQ(r.headers.at("Content-Type"), "application/json");
  EXPECT_EQ(std::stoul(r.headers.at("Content-Length")), r.body.size());
  EXPECT_NE(r.body.find("\"retry_after_s\":2"), std::string::npos);
}

TEST_P(RejectTest, ServerGetsRstAtTheGivenSequence) {
  SegmentSpec s;
  s.ip_version = GetParam();
  if (s.ip_version == 6) {
    s.src.addr = testing::V6(1);
    s.dst.addr = testing::V6(2);
  }
  s.vlans = {42};
  s.seq = 5000;
  s.ack = 9000;
  s.payload = "GET / HTTP/1.1\r\n\r\n";
  const auto frame = BuildSegment(s);
  PacketView v;
  ASSERT_EQ(ParseFrame(frame.data(), frame.size(), ParseOptions{}, v), ParseResult::kTcp);
  uint8_t out[kMaxBuiltFrameBytes];
  const size_t n = BuildServerReset(frame.data(), v, 4990, out, sizeof out);
  ASSERT_GT(n, 0u);
  EXPECT_EQ(0, std::memcmp(out, frame.data(), 12));  // same direction: MACs unchanged
  const Decoded got = Decode(out, n);
  EXPECT_TRUE(got.ip_checksum_ok);
  EXPECT_TRUE(got.tcp_checksum_ok);
  EXPECT_EQ(got.src, s.src.addr);
  EXPECT_EQ(got.dst, s.dst.addr);
  EXPECT_EQ(got.sport, 40000);
  EXPECT_EQ(got.dport, 80);
  EXPECT_EQ(got.seq, 4990u);
  EXPECT_EQ(got.ack, 9000u);
  EXPECT_EQ(got.flags, 0x14);  // RST ACK
  EXPECT_TRUE(got.payload.empty());

  const size_t m = BuildClientReset(frame.data(), v, out, sizeof out);
  ASSERT_GT(m, 0u);
  const Decoded back = Decode(out, m);
  EXPECT_TRUE(back.tcp_checksum_ok);
  EXPECT_EQ(back.seq, 9000u);
  EXPECT_EQ(back.ack, 5000u + s.payload.size());
  EXPECT_EQ(back.flags, 0x14);
}

INSTANTIATE_TEST_SUITE_P(IpVersions, RejectTest, ::testing::Values(4, 6));

TEST(RetryAfterTest, RoundsUpAndNeverZero) {
  EXPECT_EQ(RetryAfterSeconds(1), 1);
  EXPECT_EQ(RetryAfterSeconds(0), 1);
  EXPECT_EQ(RetryAfterSeconds(1'000'000'000), 1);
  EXPECT_EQ(RetryAfterSeconds(1'000'000'001), 2);
  EXPECT_EQ(RetryAfterSeconds(dlb::kNever), kMaxRetryAfterS);
}

TEST(RejectFrameTest, TooSmallOutputBufferGivesZero) {
  SegmentSpec s;
  s.payload = "x";
  const auto frame = BuildSegment(s);
  PacketView v;
  ASSERT_EQ(ParseFrame(frame.data(), frame.size(), ParseOptions{}, v), ParseResult::kTcp);
  uint8_t out[100];
  dlb::Decision d;
  EXPECT_EQ(BuildClientReject(frame.data(), v, Rule(1, 1), d, out, sizeof out), 0u);
  EXPECT_EQ(BuildServerReset(frame.data(), v, 1, out, 40), 0u);
}

// A truncated frame equals, byte for byte, the frame the test's own builder makes from
// the kept payload with FIN cleared: lengths and both checksums are right.
TEST(TruncatePayloadTest, EqualsAFrameBuiltFromThePrefix) {
  struct Case {
    int ip_version;
    std::vector<uint16_t> vlans;
    std::vector<uint8_t> ip_options;
    uint8_t flags;
  };
  const Case cases[] = {
      {4, {}, {}, 0x18},
      {4, {100}, {0x01, 0x01, 0x01, 0x00}, 0x19},  // NOPs + EOL options, FIN
      {6, {}, {}, 0x18},
      {6, {10, 20}, {}, 0x19},
  };
  for (const Case& c : cases) {
    SegmentSpec s;
    s.ip_version = c.ip_version;
    if (c.ip_version == 6) {
      s.src.addr = testing::V6(1);
      s.dst.addr = testing::V6(2);
    }
    s.vlans = c.vlans;
    s.ip_options = c.ip_options;
    s.tcp_options = {0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2};  // NOP NOP timestamps
    s.flags = c.flags;
    const std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    s.payload = first + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    auto frame = BuildSegment(s);
    PacketView v;
    ASSERT_EQ(ParseFrame(frame.data(), frame.size(), ParseOptions{}, v), ParseResult::kTcp);
    const size_t n = TruncatePayload(frame.data(), v, static_cast<uint32_t>(first.size()));
    ASSERT_GT(n, 0u);
    frame.resize(n);

    SegmentSpec expect = s;
    expect.payload = first;
    expect.flags = static_cast<uint8_t>(c.flags & ~tcp_flags::kFin);
    EXPECT_EQ(frame, BuildSegment(expect)) << "IPv" << c.ip_version;
    PacketView back;
    ASSERT_EQ(ParseFrame(frame.data(), frame.size(), ParseOptions{}, back), ParseResult::kTcp);
    EXPECT_EQ(back.payload_bytes, first.size());
    EXPECT_EQ(back.seq, v.seq);
  }
}

TEST(TruncatePayloadTest, RefusesToKeepTheWholePayloadOrMore) {
  SegmentSpec s;
  s.payload = "abc";
  auto frame = BuildSegment(s);
  PacketView v;
  ASSERT_EQ(ParseFrame(frame.data(), frame.size(), ParseOptions{}, v), ParseResult::kTcp);
  EXPECT_EQ(TruncatePayload(frame.data(), v, 3), 0u);
  EXPECT_EQ(TruncatePayload(frame.data(), v, 4), 0u);
  EXPECT_EQ(frame, BuildSegment(s));  // untouched
}

}  // namespace
}  // namespace dlb::packet
