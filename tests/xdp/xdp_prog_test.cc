// The XDP program in the kernel on packet fixtures (bpf_prog_test_run_opts): heads
// allowed then limited, the 429 frame read back by the packet engine's parser with
// checksums, sequence numbers and the response checked byte for byte, VLAN, IPv6,
// non-heads, malformed frames and heads, the rejected flow's RSTs, actions, identity
// matching; a parity run against the C++ PacketEngine; the word-at-a-time head scan
// against a byte-at-a-time specification of it on generated and mutated heads; the
// hand-over of a 429 to the TC program, and that program on frames without one.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../packet/frames.h"
#include "dlb/packet/engine.h"
#include "dlb/packet/parse.h"
#include "dlb/packet/reject.h"
#include "dlb/packet/rules.h"
#include "dlb/key.h"
#include "dlb_tc.skel.h"
#include "xdp_config.h"
#include "xdp_program.h"
#include "xdp_sha.skel.h"
#include "xdp_sync.h"
#include "xdp_tc.h"
#include "xdp_test_util.h"

namespace dlb::xdp {
namespace {

using packet::testing::BuildSegment;
using packet::testing::Fold;
using packet::testing::Head;
using packet::testing::SegmentSpec;
using packet::testing::SumBytes;
using packet::testing::V6;
using xdptest::RunResult;
using xdptest::RunXdp;
using xdptest::RunXdpOnNewFlow;
using xdptest::SynOf;

packet::RuleConfig Rule(std::string name, std::string path_prefix, int64_t capacity,
                        double rate, Mode mode = Mode::kLocal,
                        packet::Action action = packet::Action::kReject) {
  packet::RuleConfig r;
  r.name = std::move(name);
  r.path_prefix = std::move(path_prefix);
  r.bucket = {.capacity = capacity, .leak_rate_per_s = rate};
  r.mode = mode;
  r.action = action;
  return r;
}

packet::PacketConfig BaseConfig() {
  packet::PacketConfig c;
  c.service_ports = {80};
  c.rules = {Rule("pay", "/pay", 3, 0.001)};
  c.default_rule = Rule("default", "", 1000, 1000);
  c.default_rule.name = "default";
  return c;
}

// The head scan, byte at a time: the specification the program's word-at-a-time scan
// must match exactly (request line, header names and values, OWS and CR, duplicate
// Host and identity, line count), on the first min(payload, DLB_XDP_SCAN_BYTES) bytes.
struct ScanOutcome {
  uint32_t result = DLB_XDP_SCAN_MORE;
  uint32_t sp1 = 0, sp2 = 0, q = 0, head_end = 0;
  uint32_t host_off = 0, host_len = 0, id_off = 0, id_len = 0;   // len + 1; 0: absent
  bool operator==(const ScanOutcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const ScanOutcome& o) {
  return os << "{result " << o.result << " sp1 " << o.sp1 << " sp2 " << o.sp2 << " q " << o.q
            << " head_end " << o.head_end << " host " << o.host_off << "/" << o.host_len
            << " id " << o.id_off << "/" << o.id_len << "}";
}

// What the program's last record says of its scan (the fields of a head that scanned).
ScanOutcome OutcomeOf(const dlb_xdp_last& last) {
  ScanOutcome o;
  o.result = last.scan_result;
  if (o.result != DLB_XDP_SCAN_OK) return o;
  o.sp1 = last.scan_sp1;
  o.sp2 = last.scan_sp2;
  o.q = last.scan_q;
  o.head_end = last.scan_head_end;
  o.host_off = last.scan_host_off;
  o.host_len = last.scan_host_len;
  o.id_off = last.scan_id_off;
  o.id_len = last.scan_id_len;
  return o;
}

bool IsTchar(uint8_t c) {
  return c < 128 && c > 32 && std::strchr("\"(),/:;<=>?@[\\]{}", c) == nullptr && c != 127;
}

ScanOutcome ReferenceScan(const std::string& payload, const std::string& id_name, uint32_t max_id,
                          uint32_t max_lines = 128) {
  ScanOutcome o;
  const size_t n = std::min<size_t>(payload.size(), DLB_XDP_SCAN_BYTES);
  const auto* h = reinterpret_cast<const uint8_t*>(payload.data());
  size_t line_start = 0, line_no = 0, colon = 0, vstart = 0, vend = 0;
  bool have_host = false, have_id = false, have_cl = false;
  auto name_is = [&](size_t ls, size_t len, const std::string& name) {
    if (len != name.size()) return false;
    for (size_t k = 0; k < len; ++k) {
      const uint8_t want = static_cast<uint8_t>(std::tolower(static_cast<unsigned char>(name[k])));
      const bool letter = std::isalpha(static_cast<unsigned char>(name[k])) != 0;
      if ((letter ? (h[ls + k] | 0x20) : h[ls + k]) != want) return false;
    }
    return true;
  };
  auto done = [&](uint32_t r) {
    o.result = r;
    return o;
  };
  for (size_t i = 0; i < n; ++i) {
    const uint8_t c = h[i];
    if (line_no == 0) {
      if (!o.sp1) {
        if (c == ' ' && i > 0) {
          o.sp1 = static_cast<uint32_t>(i + 1);
        } else if (!IsTchar(c) || i >= DLB_XDP_MAX_METHOD) {
          return done(DLB_XDP_SCAN_NOT_HTTP);
        }
        continue;
      }
      if (!o.sp2) {
        if (c == ' ') {
          o.sp2 = static_cast<uint32_t>(i + 1);
        } else if (c == '?') {
          if (!o.q) o.q = static_cast<uint32_t>(i + 1);
        } else if (c <= 0x20 || c == 0x7f) {
          return done(DLB_XDP_SCAN_MALFORMED);
        }
        continue;
      }
      if (c != '\n') continue;
      size_t le = i;
      if (le > 0 && h[le - 1] == '\r') --le;
      const size_t vo = o.sp2;
      if (le != vo + 8 || vo == o.sp1 + 1u || std::memcmp(h + vo, "HTTP/1.", 7) != 0 ||
          (h[vo + 7] != '1' && h[vo + 7] != '0')) {
        return done(DLB_XDP_SCAN_MALFORMED);
      }
      line_no = 1;
      line_start = i + 1;
      colon = vstart = vend = 0;
      continue;
    }
    if (c == '\n') {
      const size_t ls = line_start;
      if (!colon) {
        if (i == ls || (i == ls + 1 && h[ls] == '\r')) {
          o.head_end = static_cast<uint32_t>(i + 1);
          return done(DLB_XDP_SCAN_OK);
        }
        return done(DLB_XDP_SCAN_MALFORMED);
      }
      const size_t name_len = colon - 1 - ls;
      const size_t vs = vstart ? vstart - 1 : i, ve = vstart ? vend : i;
      if (name_is(ls, name_len, "host")) {
        if (have_host) return done(DLB_XDP_SCAN_MALFORMED);
        have_host = true;
        o.host_off = static_cast<uint32_t>(vs);
        o.host_len = static_cast<uint32_t>(ve - vs + 1);
      }
      if (name_is(ls, name_len, "content-length")) {
        // 1 to 9 digits and nothing else, once
        const size_t len = vstart ? ve - vs + 1 : 0;
        bool ok = !have_cl && len >= 1 && len <= 9;
        for (size_t k = 0; ok && k < len; ++k) ok = h[vs + k] >= '0' && h[vs + k] <= '9';
        if (!ok) return done(DLB_XDP_SCAN_MALFORMED);
        have_cl = true;
      }
      if (name_is(ls, name_len, id_name)) {
        if (have_id || ve - vs > max_id) return done(DLB_XDP_SCAN_MALFORMED);
        for (size_t k = vs; vstart && k < ve; ++k) {   // no control byte or DEL in the value
          if (h[k] < 0x20 || h[k] == 0x7f) return done(DLB_XDP_SCAN_MALFORMED);
        }
        have_id = true;
        o.id_off = static_cast<uint32_t>(vs);
        o.id_len = static_cast<uint32_t>(ve - vs + 1);
      }
      if (++line_no > max_lines) return done(DLB_XDP_SCAN_MALFORMED);
      line_start = i + 1;
      colon = vstart = vend = 0;
      continue;
    }
    if (colon) {
      if (c != ' ' && c != '\t' && c != '\r') {
        if (!vstart) vstart = i + 1;
        vend = i + 1;
      }
      continue;
    }
    if (c == ':') {
      if (i == line_start) return done(DLB_XDP_SCAN_MALFORMED);
      colon = i + 1;
      continue;
    }
    if (c == '\r') continue;
    if (!IsTchar(c)) return done(DLB_XDP_SCAN_MALFORMED);
  }
  return o;   // DLB_XDP_SCAN_MORE
}

// Heads built from good and bad pieces, then sometimes mutated byte by byte and cut.
class HeadGen {
 public:
  explicit HeadGen(uint32_t seed, std::string id_name) : rng_(seed), id_(std::move(id_name)) {}
  // Half the heads take only the well-formed pieces (the first `good` of each list)
  // before the mutations; the others take any piece.
  std::string Next() {
    good_ = Below(2) == 0;
    std::string h = Pick(7, {"GET", "POST", "M-SEARCH", "A", "get", "PATCH", "X.Y!", "P_OST",
                             std::string(24, 'M'), std::string(25, 'M'), "", "GE\rT", "GET\t",
                             std::string(7, 'Q') + "_" + std::string(9, 'R')});
    h += Pick(1, {" ", "  ", "\t"});
    h += Pick(7, {"/", "/pay", "/a?b=1", "/p?x?y", "*", "/\xc3\xa9t\xc3\xa9",
                  "/" + std::string(Below(300), 'p') + "?q=" + std::string(Below(40), 'v'),
                  "", "/x\x7f", "/\x01", "http://example.com/x"});
    h += Pick(2, {" HTTP/1.1", " HTTP/1.0", " HTTP/1.2", " HTTP/2.0", " http/1.1", " HTTP/1.1 ",
                  "  HTTP/1.1", " HTTP/1.11", ""});
    h += Pick(2, {"\r\n", "\n", "\r\r\n", "\r"});
    const size_t lines = Below(10) == 0 ? 120 + Below(12) : Below(16);
    for (size_t i = 0; i < lines; ++i) {
      h += Pick(12, {"Host", "host", "HOST", id_, Upper(id_), id_ + "s", id_.substr(0, id_.size() - 1),
                     "Accept", "User-Agent", "X_Weird.Name!", "Content-Length",
                     "X-" + std::string(Below(20), 'a') + "-" + id_, "Ho\rst", "A",
                     std::string(Below(70) + 1, 'N'), "Bad Name", "Bad\"Name", "", " folded",
                     "\tX"});
      h += Pick(5, {":", ": ", ":\t ", ":" + std::string(Below(20), ' '), "::", " :", ""});
      h += Pick(13, {"v", "alice", "bob ", "  \t ", "", "a b c", "x\ry", "nul\0x" + std::string(1, '\0'),
                     "\xff\xfe", std::string(Below(300), 'i'), "api.example.com:8080",
                     "[::1]:80", "text/html,application/xhtml+xml;q=0.9"});
      h += Pick(5, {"\r\n", "\r\n", "\n", " \r\n", "\t\r\n", "\r\r\n"});
    }
    h += Pick(2, {"\r\n", "\n", "", "\r", "\r\r\n", " \r\n"});
    if (Below(3) == 0) h += Pick(3, {"{\"a\":1}", "body\r\n\r\n", std::string(Below(500), 'b')});
    for (size_t k = Below(4) == 0 ? Below(4) : 0; k > 0 && !h.empty(); --k) {
      good_ = false;
      h[Below(h.size())] = Pick(0, {" ", "\t", "\r", "\n", ":", std::string(1, '\0'), "?", "\x7f",
                                    "\x80", "\xff", "A", "a", "-"})[0];
    }
    if (Below(6) == 0 && !h.empty()) h.resize(Below(h.size()) + 1);
    // Past the scan's bound, within what one test frame carries.
    if (h.size() > 2600) h.resize(2600);
    return h;
  }

 private:
  size_t Below(size_t n) { return n == 0 ? 0 : rng_() % n; }
  std::string Pick(size_t good, std::initializer_list<std::string> xs) {
    const size_t n = good_ && good > 0 ? std::min(good, xs.size()) : xs.size();
    return *(xs.begin() + static_cast<long>(Below(n)));
  }
  static std::string Upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  }
  std::mt19937 rng_;
  std::string id_;
  bool good_ = false;
};

class XdpProgTest : public ::testing::Test {
 protected:
  // Verifying the program takes seconds: one load for the suite, state cleared per test.
  static void SetUpTestSuite() {
    auto p = XdpProgram::Load({.max_users = 1024, .record_last = true});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    shared_ = std::move(*p).release();
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
    delete small_;
    small_ = nullptr;
    delete replay_;
    replay_ = nullptr;
  }
  // Tests that run one frame many times use a program that reads each run as its flow's
  // next head (ProgramOptions::replay_heads), with the current config.
  void UseReplayProgram() {
    if (replay_ == nullptr) {
      auto p = XdpProgram::Load({.max_users = 1024, .record_last = true, .replay_heads = true});
      ASSERT_TRUE(p.ok()) << p.status().ToString();
      replay_ = std::move(*p).release();
    }
    prog_ = replay_;
    ASSERT_TRUE(prog_->ClearState().ok());
    ASSERT_TRUE(prog_->Push(tables_).ok());
  }
  // The program a test runs: the full build; the small variant's fixtures override it.
  virtual XdpProgram* Program() { return shared_; }
  // The small variant (ProgramVariant::kSmall), loaded once for the suites that use it.
  static XdpProgram* SmallProgram() {
    if (small_ == nullptr) {
      auto p = XdpProgram::Load({.max_users = 1024, .record_last = true, .variant = ProgramVariant::kSmall});
      EXPECT_TRUE(p.ok()) << p.status().ToString();
      if (p.ok()) small_ = std::move(*p).release();
    }
    return small_;
  }
  void ExpectRejectFrameReadsBackAs429WithCorrectNumbers();
  void SetUp() override {
    ASSERT_EQ(xdptest::PinToCpu0(), 0);
    ASSERT_NE(shared_, nullptr);
    prog_ = Program();
    ASSERT_NE(prog_, nullptr);
    ASSERT_TRUE(prog_->ClearState().ok());
    Configure(BaseConfig());
  }
  void Configure(const packet::PacketConfig& c) {
    auto t = CompileXdpTables(c, 1.0);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tables_ = *t;
    ASSERT_TRUE(prog_->Push(tables_).ok());
  }
  RunResult RunHead(const std::string& head, uint16_t sport = 40000, int ipv = 4,
                    std::vector<uint16_t> vlans = {}) {
    SegmentSpec s;
    s.ip_version = ipv;
    if (ipv == 6) {
      s.src.addr = V6(1);
      s.dst.addr = V6(2);
    }
    s.src.port = sport;
    s.vlans = vlans;
    s.payload = head;
    return RunXdpOnNewFlow(prog_->prog_fd(), s);
  }
  uint64_t Counter(int idx) {
    auto c = prog_->ReadCounters();
    EXPECT_TRUE(c.ok());
    return c.ok() ? (*c)[idx] : 0;
  }
  // Capacity 3 on POST /pay: three heads of one user pass, the fourth gets a 429;
  // another user and another rule are not affected.
  void ExpectAllowedUpToCapacityThenLimited() {
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(RunHead(Head("POST", "/pay/1", "alice"), 40000 + i).action, XDP_PASS) << i;
    }
    const RunResult limited = RunHead(Head("POST", "/pay/1", "alice"), 40010);
    EXPECT_EQ(limited.action, XDP_TX);
    EXPECT_NE(std::string(limited.frame.begin(), limited.frame.end()).find("HTTP/1.1 429 Too Many Requests"),
              std::string::npos);
    EXPECT_EQ(RunHead(Head("POST", "/pay/1", "bob"), 40011).action, XDP_PASS);
    EXPECT_EQ(RunHead(Head("GET", "/other", "alice"), 40012).action, XDP_PASS);
    EXPECT_EQ(Counter(DLB_XDP_C_heads), 6u);
    EXPECT_EQ(Counter(DLB_XDP_C_allowed), 5u);
    EXPECT_EQ(Counter(DLB_XDP_C_rejected), 1u);
  }
  static inline XdpProgram* shared_ = nullptr;
  static inline XdpProgram* replay_ = nullptr;
  static inline XdpProgram* small_ = nullptr;
  XdpProgram* prog_ = nullptr;
  XdpTables tables_;
};


TEST_F(XdpProgTest, HeadsAllowedUpToCapacityThenLimited) { ExpectAllowedUpToCapacityThenLimited(); }

// Every program of both builds (with and without the test's record) leaves the kernel's
// verifier most of its instruction limit: a program near the limit on one kernel is over
// it on the next (the verifier's exploration differs between kernel versions and hosts).
TEST_F(XdpProgTest, VerifierHeadroom) {
  constexpr uint32_t kBudget = XdpProgram::kVerifierInsnLimit * 3 / 10;
  auto plain = XdpProgram::Load({.max_users = 1024, .variant = ProgramVariant::kFull});
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  auto small = XdpProgram::Load({.max_users = 1024, .variant = ProgramVariant::kSmall});
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ((*plain)->variant(), ProgramVariant::kFull);
  EXPECT_EQ((*small)->variant(), ProgramVariant::kSmall);
  uint32_t full_insns = 0, small_insns = 0;
  for (const XdpProgram* p : {prog_, plain->get(), small->get()}) {
    auto counts = p->VerifierCounts();
    ASSERT_TRUE(counts.ok()) << counts.status().ToString();
    ASSERT_EQ(counts->size(), 2u);   // dlb_xdp and its control program
    for (const auto& c : *counts) {
      std::printf("verifier: %s (%s) processed %u instructions (%.1f%% of the limit)\n", c.program.c_str(),
                  VariantName(p->variant()), c.verified_insns,
                  100.0 * c.verified_insns / XdpProgram::kVerifierInsnLimit);
      EXPECT_GT(c.verified_insns, 0u) << c.program;   // kernels before 5.16 do not report it
      EXPECT_LE(c.verified_insns, kBudget) << c.program;
      if (c.program == "dlb_xdp" && p == plain->get()) full_insns = c.verified_insns;
      if (c.program == "dlb_xdp" && p == small->get()) small_insns = c.verified_insns;
    }
  }
  // The small variant is the fallback of a kernel that explores more states than this
  // one: it has to need clearly less of the verifier.
  EXPECT_LE(small_insns, full_insns * 6 / 10) << "full " << full_insns << ", small " << small_insns;
  dlb_tc_bpf* tc = dlb_tc_bpf__open_and_load();
  ASSERT_NE(tc, nullptr);
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  ASSERT_EQ(bpf_obj_get_info_by_fd(bpf_program__fd(tc->progs.dlb_tc_reject), &info, &len), 0);
  std::printf("verifier: dlb_tc_reject processed %u instructions\n", info.verified_insns);
  EXPECT_GT(info.verified_insns, 0u);
  EXPECT_LE(info.verified_insns, kBudget);
  dlb_tc_bpf__destroy(tc);
}

// The program as the agent loads it, without the tests' per-head record: it decides
// the same, and ReadLast says it has nothing to read.
TEST_F(XdpProgTest, ProgramWithoutRecordDecidesTheSame) {
  auto plain = XdpProgram::Load({.max_users = 1024});
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  prog_ = plain->get();
  Configure(BaseConfig());
  ExpectAllowedUpToCapacityThenLimited();
  EXPECT_FALSE(prog_->ReadLast(0).ok());
  prog_ = shared_;
}

TEST_F(XdpProgTest, RejectFrameReadsBackAs429WithFinAndCorrectNumbers) {
  ExpectRejectFrameReadsBackAs429WithCorrectNumbers();
}

void XdpProgTest::ExpectRejectFrameReadsBackAs429WithCorrectNumbers() {
  const std::string head = Head("POST", "/pay", "carol");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(RunHead(head, 41000 + i).action, XDP_PASS);
  SegmentSpec s;
  s.src.port = 41100;
  s.seq = 777;
  s.ack = 9999;
  s.payload = head;
  const RunResult r = RunXdpOnNewFlow(prog_->prog_fd(), s);
  ASSERT_EQ(r.action, XDP_TX);

  packet::PacketView v;
  ASSERT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
  // MACs swapped, addresses and ports swapped.
  EXPECT_EQ(r.frame[0], 0x02);
  EXPECT_EQ(r.frame[5], 0x01);
  EXPECT_EQ(r.frame[11], 0x02);
  EXPECT_EQ(v.src_addr[3], 2);
  EXPECT_EQ(v.dst_addr[3], 1);
  EXPECT_EQ(v.src_port, 80);
  EXPECT_EQ(v.dst_port, 41100);
  EXPECT_EQ(v.seq, 9999u);
  EXPECT_EQ(v.ack, 777u + head.size());
  EXPECT_EQ(v.tcp_flags, packet::tcp_flags::kFin | packet::tcp_flags::kPsh | packet::tcp_flags::kAck);
  // Checksums: IPv4 header and TCP over the pseudo-header.
  const uint8_t* ip = r.frame.data() + v.l3_offset;
  EXPECT_EQ(Fold(SumBytes(ip, 20)), 0);
  const size_t l4 = r.frame.size() - v.l4_offset;
  EXPECT_EQ(Fold(SumBytes(ip + 12, 8) + 6 + l4 + SumBytes(r.frame.data() + v.l4_offset, l4)), 0);
  // The response is the engine's, for the decision the program made.
  const std::string body(reinterpret_cast<const char*>(r.frame.data() + v.payload_offset), v.payload_bytes);
  auto last = prog_->ReadLast(0);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->allowed, 0u);
  auto rules = packet::RuleSet::Compile(BaseConfig().rules, BaseConfig().default_rule);
  ASSERT_TRUE(rules.ok());
  dlb::Decision d;
  d.retry_after_ns = static_cast<int64_t>(last->retry_after_ns);
  d.remaining = last->remaining;
  char expect[1024];
  const size_t n = packet::FormatRejectResponse(rules->rule(0), d, expect, sizeof expect);
  ASSERT_GT(n, 0u);
  EXPECT_EQ(body, std::string(expect, n));
  EXPECT_EQ(body.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0), 0u);
  EXPECT_NE(body.find("\r\nRetry-After: 1000\r\n"), std::string::npos) << body;  // 1/r, rounded up
  EXPECT_NE(body.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_NE(body.find("\r\nRateLimit-Policy: "), std::string::npos);
}

TEST_F(XdpProgTest, RejectedFlowResetsTheServerThenTheClient) {
  const std::string head = Head("POST", "/pay", "dave");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(RunHead(head, 42000 + i).action, XDP_PASS);
  SegmentSpec s;
  s.src.port = 42100;
  s.seq = 5000;
  s.payload = head;
  ASSERT_EQ(RunXdpOnNewFlow(prog_->prog_fd(), s).action, XDP_TX);
  // The client's FIN after the 429: the server gets a RST at the head's first byte.
  SegmentSpec fin = s;
  fin.payload.clear();
  fin.seq = 5000 + static_cast<uint32_t>(head.size());
  fin.flags = 0x11;
  RunResult r = RunXdp(prog_->prog_fd(), BuildSegment(fin));
  ASSERT_EQ(r.action, XDP_PASS);
  packet::PacketView v;
  ASSERT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
  EXPECT_EQ(v.tcp_flags, packet::tcp_flags::kRst);
  EXPECT_EQ(v.seq, 5000u);
  EXPECT_EQ(v.dst_port, 80);
  EXPECT_EQ(v.payload_bytes, 0u);
  const uint8_t* ip = r.frame.data() + v.l3_offset;
  EXPECT_EQ(Fold(SumBytes(ip + 12, 8) + 6 + 20 + SumBytes(r.frame.data() + v.l4_offset, 20)), 0);
  // A retransmitted FIN: the client gets a RST.
  r = RunXdp(prog_->prog_fd(), BuildSegment(fin));
  ASSERT_EQ(r.action, XDP_TX);
  ASSERT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
  EXPECT_EQ(v.tcp_flags, packet::tcp_flags::kRst | packet::tcp_flags::kAck);
  EXPECT_EQ(v.dst_port, 42100);
  EXPECT_EQ(Counter(DLB_XDP_C_server_resets), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_client_resets), 1u);
}

// Segments skip the rejected-flow lookup when no rejected flow hashes to their slot: with
// 2000 rejected flows (many sharing slots), half of them ended (their entries removed),
// every other one still gets its RSTs, the ended ones pass untouched, and a flow
// rejected again after a SYN reused its 4-tuple is found again.
TEST_F(XdpProgTest, RejectedFlowsAreFoundAfterOthersInTheirSlotsEnded) {
  constexpr int kFlows = 2000;
  constexpr uint16_t kPort = 30000;
  const std::string head = Head("POST", "/pay", "erin");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(RunHead(head, 29000 + i).action, XDP_PASS);
  auto spec = [&](int i, uint8_t flags, bool with_head) {
    SegmentSpec s;
    s.src.port = static_cast<uint16_t>(kPort + i);
    s.seq = 7000;
    s.flags = flags;
    if (with_head) {
      s.payload = head;
    } else {
      s.seq += static_cast<uint32_t>(head.size());
    }
    return s;
  };
  auto segment = [&](int i, uint8_t flags, bool with_head) { return BuildSegment(spec(i, flags, with_head)); };
  for (int i = 0; i < kFlows; ++i) ASSERT_EQ(RunXdp(prog_->prog_fd(), SynOf(spec(i, 0x18, true))).action, XDP_PASS);
  auto flags_of = [](const RunResult& r) {
    packet::PacketView v;
    EXPECT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
    return v.tcp_flags;
  };
  for (int i = 0; i < kFlows; ++i) ASSERT_EQ(RunXdp(prog_->prog_fd(), segment(i, 0x18, true)).action, XDP_TX) << i;
  // The even flows end: FIN (the server's RST), FIN again (the client's RST, entry gone).
  for (int i = 0; i < kFlows; i += 2) {
    RunResult r = RunXdp(prog_->prog_fd(), segment(i, 0x11, false));
    ASSERT_EQ(r.action, XDP_PASS) << i;
    EXPECT_EQ(flags_of(r), packet::tcp_flags::kRst) << i;
    ASSERT_EQ(RunXdp(prog_->prog_fd(), segment(i, 0x11, false)).action, XDP_TX) << i;
  }
  EXPECT_EQ(Counter(DLB_XDP_C_client_resets), static_cast<uint64_t>(kFlows / 2));
  for (int i = 1; i < kFlows; i += 2) {
    RunResult r = RunXdp(prog_->prog_fd(), segment(i, 0x11, false));
    ASSERT_EQ(r.action, XDP_PASS) << i;
    EXPECT_EQ(flags_of(r), packet::tcp_flags::kRst) << "flow " << i << " not found";
  }
  for (int i = 0; i < kFlows; i += 2) {
    RunResult r = RunXdp(prog_->prog_fd(), segment(i, 0x11, false));
    ASSERT_EQ(r.action, XDP_PASS) << i;
    EXPECT_EQ(flags_of(r), packet::tcp_flags::kFin | packet::tcp_flags::kAck) << "ended flow " << i;
  }
  EXPECT_EQ(Counter(DLB_XDP_C_server_resets), static_cast<uint64_t>(kFlows));
  EXPECT_EQ(Counter(DLB_XDP_C_client_resets), static_cast<uint64_t>(kFlows / 2));
  // A SYN reuses an odd flow's 4-tuple: the old entry goes, a new reject is found.
  ASSERT_EQ(RunXdp(prog_->prog_fd(), SynOf(spec(1, 0x18, true))).action, XDP_PASS);
  ASSERT_EQ(RunXdp(prog_->prog_fd(), segment(1, 0x18, true)).action, XDP_TX);
  RunResult r = RunXdp(prog_->prog_fd(), segment(1, 0x11, false));
  ASSERT_EQ(r.action, XDP_PASS);
  EXPECT_EQ(flags_of(r), packet::tcp_flags::kRst);
}

// Rules are matched two per bpf_loop call: with 1 to 7 rules and with the most the
// program takes, a head matching rule k (or none: the default, last) is decided by it,
// whichever of a call's two places it has.
TEST_F(XdpProgTest, EveryRulePositionMatches) {
  uint16_t port = 21000;
  for (size_t rules : {1, 2, 3, 4, 5, 6, 7, DLB_XDP_MAX_RULES - 1}) {
    packet::PacketConfig c = BaseConfig();
    c.rules.clear();
    for (size_t k = 0; k < rules; ++k) {
      c.rules.push_back(Rule("r" + std::to_string(k), "/r" + std::to_string(k) + "/", 100, 1));
    }
    Configure(c);
    for (size_t k = 0; k <= rules; ++k) {   // k == rules: no rule matches
      ASSERT_EQ(RunHead(Head("GET", "/r" + std::to_string(k) + "/x", "rita"), port++).action, XDP_PASS);
      auto last = prog_->ReadLast(0);
      ASSERT_TRUE(last.ok());
      EXPECT_EQ(last->rule, k) << rules << " rules, head for rule " << k;
    }
  }
}

TEST_F(XdpProgTest, QinQAndIpv6HeadsAreDecided) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(RunHead(Head("POST", "/pay", "erin"), 43000 + i, 4, {100, 200}).action, XDP_PASS);
  }
  EXPECT_EQ(RunHead(Head("POST", "/pay", "erin"), 43010, 4, {100, 200}).action, XDP_TX);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(RunHead(Head("POST", "/pay", "frank"), 43100 + i, 6, {7}).action, XDP_PASS);
  }
  const RunResult r = RunHead(Head("POST", "/pay", "frank"), 43110, 6, {7});
  ASSERT_EQ(r.action, XDP_TX);
  packet::PacketView v;
  ASSERT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
  EXPECT_EQ(v.ip_version, 6);
  EXPECT_EQ(v.vlan_count, 1);
  const size_t l4 = r.frame.size() - v.l4_offset;
  EXPECT_EQ(Fold(SumBytes(r.frame.data() + v.l3_offset + 8, 32) + 6 + l4 +
                 SumBytes(r.frame.data() + v.l4_offset, l4)),
            0);
}

TEST_F(XdpProgTest, NonHeadsAndOtherTrafficPass) {
  SegmentSpec s;
  s.payload = "POST /pay HTTP/1.1\r\nX-User-ID: gina\r\nContent-Length: 14\r\n\r\n";
  EXPECT_EQ(RunXdpOnNewFlow(prog_->prog_fd(), s).action, XDP_PASS);
  s.seq += static_cast<uint32_t>(s.payload.size());
  s.payload = "{\"amount\": 10}";               // its body
  EXPECT_EQ(RunXdp(prog_->prog_fd(), BuildSegment(s)).action, XDP_PASS);
  s.seq += static_cast<uint32_t>(s.payload.size());
  s.payload.clear();                            // a bare ACK
  EXPECT_EQ(RunXdp(prog_->prog_fd(), BuildSegment(s)).action, XDP_PASS);
  s.payload = Head("POST", "/pay", "gina");
  s.dst.port = 8080;                            // not a service port
  for (int i = 0; i < 5; ++i) EXPECT_EQ(RunXdp(prog_->prog_fd(), BuildSegment(s)).action, XDP_PASS);
  std::vector<uint8_t> arp(60, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_EQ(RunXdp(prog_->prog_fd(), arp).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_body_segments), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_no_payload), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_other_port), 5u);
  EXPECT_EQ(Counter(DLB_XDP_C_not_ip), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 1u);
}

// The stream of one client flow, segment by segment: what each does to the program.
class XdpStreamTest : public XdpProgTest {
 protected:
  void SetUp() override {
    XdpProgTest::SetUp();
    flow_.src.port = next_port_++;
    flow_.seq = 1000;
    next_ = 1000;
    ASSERT_EQ(RunXdp(prog_->prog_fd(), SynOf(flow_)).action, XDP_PASS);
  }
  // Sends `payload` at the flow's next sequence number (plus `gap`), moving it on.
  RunResult Send(const std::string& payload, uint32_t gap = 0, uint8_t flags = 0x18) {
    SegmentSpec s = flow_;
    s.seq = next_ + gap;
    s.flags = flags;
    s.payload = payload;
    if (gap == 0) next_ += static_cast<uint32_t>(payload.size());
    return RunXdp(prog_->prog_fd(), BuildSegment(s));
  }
  RunResult SendAt(uint32_t seq, const std::string& payload, uint8_t flags = 0x18) {
    SegmentSpec s = flow_;
    s.seq = seq;
    s.flags = flags;
    s.payload = payload;
    return RunXdp(prog_->prog_fd(), BuildSegment(s));
  }
  bool UserKnown(const std::string& id) {
    bool found = false;
    EXPECT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key& k) {
      found = found || std::string(reinterpret_cast<const char*>(k.id), k.id_len) == id;
    }).ok());
    return found;
  }
  static uint8_t Flags(const RunResult& r) {
    packet::PacketView v;
    EXPECT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
    return v.tcp_flags;
  }
  void ExpectBodyBytesAreNeverDecidedAsAHead();
  void ExpectHeadsSpanningPacketsAreDecidedOnTheirLastPacket();
  static inline uint16_t next_port_ = 56000;
  SegmentSpec flow_;
  uint32_t next_ = 1000;
};

// A body segment that reads like a head (the attacker controls the body, and so where a
// segment starts) is body: nobody's bucket is charged for it.
TEST_F(XdpStreamTest, BodyBytesAreNeverDecidedAsAHead) { ExpectBodyBytesAreNeverDecidedAsAHead(); }

void XdpStreamTest::ExpectBodyBytesAreNeverDecidedAsAHead() {
  const std::string fake = Head("POST", "/pay", "victim");
  const std::string body = fake + fake + std::string(100, 'x');
  ASSERT_EQ(Send("POST /upload HTTP/1.1\r\nX-User-ID: eve\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n").action, XDP_PASS);
  ASSERT_EQ(Send(fake).action, XDP_PASS);
  ASSERT_EQ(Send(body.substr(fake.size())).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_body_segments), 2u);
  EXPECT_FALSE(UserKnown("victim"));
  // The next head after the body is decided.
  ASSERT_EQ(Send(Head("POST", "/pay", "eve")).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 2u);
}

// Data of a flow whose SYN the program did not see: it cannot tell a head from a body.
TEST_F(XdpStreamTest, DataOfAFlowNotSeenOpenedIsRefused) {
  SegmentSpec s;
  s.src.port = 55999;
  s.payload = Head("POST", "/pay", "mallory");
  const RunResult r = RunXdp(prog_->prog_fd(), BuildSegment(s));
  EXPECT_EQ(Flags(r), packet::tcp_flags::kRst);
  EXPECT_EQ(Counter(DLB_XDP_C_stream_untracked), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 0u);
}

// A segment after a gap may hold a head whose start is in the gap: dropped (the client
// sends it again), unless all of it is body. Where the next head starts is known from
// the Content-Length, so body segments out of order never hide it.
TEST_F(XdpStreamTest, SegmentsAfterAGapAreDroppedUnlessAllBody) {
  const std::string head = Head("POST", "/other", "gus");
  EXPECT_EQ(Send(head, 10).action, XDP_DROP);          // the first head's start is in the gap
  EXPECT_EQ(Counter(DLB_XDP_C_stream_out_of_order), 1u);
  ASSERT_EQ(Send("POST /x HTTP/1.1\r\nX-User-ID: gus\r\nContent-Length: 100\r\n\r\n").action, XDP_PASS);
  EXPECT_EQ(Send(std::string(50, 'b'), 50).action, XDP_PASS);   // body bytes 50..99 first
  EXPECT_EQ(Send(head, 110).action, XDP_DROP);                  // after the next head's start
  EXPECT_EQ(Send(std::string(50, 'b')).action, XDP_PASS);       // then body bytes 0..49
  next_ += 50;                                                  // the server has 50..99 already
  EXPECT_EQ(Send(head).action, XDP_PASS);                       // the next head, decided
  EXPECT_EQ(Counter(DLB_XDP_C_body_segments), 2u);
  EXPECT_EQ(Counter(DLB_XDP_C_stream_out_of_order), 2u);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 2u);
}

// SYN, FIN and RST change the stream only in window (RFC 5961): crafted ones at other
// sequence numbers leave the heads where they are, and every head is still decided.
TEST_F(XdpStreamTest, ControlSegmentsOutOfWindowChangeNothing) {
  ASSERT_EQ(Send(Head("GET", "/other", "ida")).action, XDP_PASS);
  EXPECT_EQ(SendAt(next_ + (1u << 30), "", 0x02).action, XDP_PASS);   // SYN on the live flow
  EXPECT_EQ(Counter(DLB_XDP_C_syn_ignored), 1u);
  EXPECT_EQ(SendAt(next_ + (1u << 28), "", 0x11).action, XDP_PASS);   // FIN far ahead
  EXPECT_EQ(SendAt(next_ + 5, "", 0x04).action, XDP_PASS);            // RST not at next_seq
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Send(Head("GET", "/other", "ida")).action, XDP_PASS) << i;
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 4u);
  // A retransmission of passed bytes passes again.
  EXPECT_EQ(SendAt(1000, Head("GET", "/other", "ida")).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_stream_retransmits), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 4u);
}

// A head that spans packets is decided on the packet that ends it (the server cannot act
// on it before): the earlier packets pass, the head's bytes held until then.
TEST_F(XdpStreamTest, HeadsSpanningPacketsAreDecidedOnTheirLastPacket) {
  ExpectHeadsSpanningPacketsAreDecidedOnTheirLastPacket();
}

void XdpStreamTest::ExpectHeadsSpanningPacketsAreDecidedOnTheirLastPacket() {
  const std::string head = "POST /pay HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(700, 'p') +
                           "\r\nX-User-ID: lena\r\n\r\n";
  for (int i = 0; i < 3; ++i) {   // capacity 3, then limited
    ASSERT_EQ(Send(head.substr(0, 20)).action, XDP_PASS) << i;
    ASSERT_EQ(Send(head.substr(20, 500)).action, XDP_PASS) << i;
    EXPECT_EQ(Counter(DLB_XDP_C_heads), static_cast<uint64_t>(i));
    ASSERT_EQ(Send(head.substr(520)).action, XDP_PASS) << i;
    EXPECT_EQ(Counter(DLB_XDP_C_heads), static_cast<uint64_t>(i + 1));
  }
  EXPECT_EQ(Counter(DLB_XDP_C_split_heads_held), 6u);
  ASSERT_EQ(Send(head.substr(0, 600)).action, XDP_PASS);
  // A retransmission of held bytes passes; the packet that ends the head gets the 429.
  EXPECT_EQ(SendAt(next_ - 600, head.substr(0, 600)).action, XDP_PASS);
  const RunResult r = Send(head.substr(600));
  EXPECT_EQ(r.action, XDP_TX);
  EXPECT_EQ(Counter(DLB_XDP_C_rejected), 1u);
  EXPECT_TRUE(UserKnown("lena"));
}

// A head longer than the program holds (DLB_XDP_SCAN_BYTES) is refused, never passed.
TEST_F(XdpStreamTest, HeadsLongerThanTheProgramHoldsAreRefused) {
  const std::string head = "POST /pay HTTP/1.1\r\nX-Pad: " + std::string(DLB_XDP_SCAN_BYTES, 'p') + "\r\n";
  ASSERT_EQ(Send(head.substr(0, 1400)).action, XDP_PASS);
  const RunResult r = Send(head.substr(1400));
  EXPECT_EQ(Flags(r), packet::tcp_flags::kRst);
  EXPECT_EQ(Counter(DLB_XDP_C_oversize_heads), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 0u);
}

// Empty lines before a request line are skipped (RFC 9112 2.2) and the head decided.
TEST_F(XdpStreamTest, EmptyLinesBeforeAHeadAreSkipped) {
  ASSERT_EQ(Send("\r\n" + Head("POST", "/pay", "jane")).action, XDP_PASS);
  ASSERT_EQ(Send("\r\n\r\n").action, XDP_PASS);
  ASSERT_EQ(Send(Head("POST", "/pay", "jane")).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 2u);
  EXPECT_TRUE(UserKnown("jane"));
}

// A cut frame's IP length and checksums are right, and its payload is `want`.
void ExpectCutTo(const RunResult& r, const std::string& want) {
  packet::PacketView v;
  ASSERT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
  ASSERT_EQ(v.payload_bytes, want.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.frame.data() + v.payload_offset), want.size()), want);
  EXPECT_EQ(r.frame.size(), v.payload_offset + want.size());
  const uint8_t* ip = r.frame.data() + v.l3_offset;
  const size_t l4 = v.payload_offset - v.l4_offset + want.size();
  if (v.ip_version == 4) {
    EXPECT_EQ(Fold(SumBytes(ip, v.l4_offset - v.l3_offset)), 0);
    EXPECT_EQ(Fold(SumBytes(ip + 12, 8) + 6 + l4 + SumBytes(r.frame.data() + v.l4_offset, l4)), 0);
  } else {
    EXPECT_EQ(Fold(SumBytes(ip + 8, 32) + 6 + l4 + SumBytes(r.frame.data() + v.l4_offset, l4)), 0);
  }
}

// Pipelined requests in one packet: the first is decided and, admitted, passes alone
// (the packet cut after its body); the server acknowledges only it, the client sends the
// rest again, and each next head is decided first in its own packet, as the appliance
// decides a head after a cut. A whole packet sent again is never charged twice: the bytes
// before the next head are passed bytes, not a head.
TEST_F(XdpStreamTest, PipelinedRequestsAreEachDecidedOnce) {
  const std::string a = "POST /pay HTTP/1.1\r\nX-User-ID: kim\r\nContent-Length: 5\r\n\r\nhello";
  const std::string b = Head("POST", "/pay", "kim"), c = Head("GET", "/other", "kim");
  const std::string all = a + b + c;
  RunResult r = Send(all);
  ASSERT_EQ(r.action, XDP_PASS);
  ExpectCutTo(r, a);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_pipelined_cut), 1u);
  // The client sends everything from b again (the server acknowledged a only).
  r = SendAt(1000 + a.size(), b + c);
  ASSERT_EQ(r.action, XDP_PASS);
  ExpectCutTo(r, b);
  // The whole packet again (an ACK lost): a is passed bytes, c is the next head.
  r = SendAt(1000, all);
  ASSERT_EQ(r.action, XDP_PASS);
  EXPECT_EQ(r.frame.size(), BuildSegment([&] { SegmentSpec s = flow_; s.payload = all; return s; }()).size());
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 3u);
  EXPECT_EQ(Counter(DLB_XDP_C_allowed), 3u);
  // The /pay rule (capacity 3) charged twice, not three times: one more head fits.
  ASSERT_EQ(SendAt(1000 + all.size(), b).action, XDP_PASS);
  EXPECT_EQ(SendAt(1000 + all.size() + b.size(), b).action, XDP_TX);
}

// A limited head after admitted ones: the admitted request passes (the packet cut before
// the limited head), and the limited head gets its 429 once it starts its packet, after
// the earlier request: what the appliance does (kForwardPrefix, then kReject).
TEST_F(XdpStreamTest, ALimitedPipelinedHeadGetsItsAnswerAfterTheAdmittedOnes) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Send(Head("POST", "/pay", "lee")).action, XDP_PASS) << i;
  const std::string ok = Head("GET", "/other", "lee"), limited = Head("POST", "/pay", "lee");
  const uint32_t at = next_;
  RunResult r = Send(ok + limited);
  ASSERT_EQ(r.action, XDP_PASS);
  ExpectCutTo(r, ok);
  EXPECT_EQ(Counter(DLB_XDP_C_rejected), 0u);
  r = SendAt(at + ok.size(), limited);
  EXPECT_EQ(r.action, XDP_TX);
  EXPECT_EQ(Counter(DLB_XDP_C_rejected), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 5u);
}

// Pipelined heads behind IPv6 and TCP options: the cut keeps the headers and fixes the
// lengths and checksums.
TEST_F(XdpStreamTest, CutsKeepIpv6AndTcpOptions) {
  flow_.ip_version = 6;
  flow_.src.addr = V6(1);
  flow_.dst.addr = V6(2);
  flow_.src.port = next_port_++;
  flow_.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};   // NOP NOP timestamps
  ASSERT_EQ(RunXdp(prog_->prog_fd(), SynOf(flow_)).action, XDP_PASS);
  const std::string a = Head("GET", "/other", "max"), b = Head("GET", "/other", "max");
  RunResult r = Send(a + b);
  ASSERT_EQ(r.action, XDP_PASS);
  ExpectCutTo(r, a);
  // IPv4 with options, an odd length kept.
  SetUp();
  flow_.ip_options = {1, 1, 1, 0};
  flow_.tcp_options = {1, 1, 1, 0};
  flow_.src.port = next_port_++;
  ASSERT_EQ(RunXdp(prog_->prog_fd(), SynOf(flow_)).action, XDP_PASS);
  const std::string odd = Head("GET", "/other", "maxi");
  r = Send(odd + b);
  ASSERT_EQ(r.action, XDP_PASS);
  ExpectCutTo(r, odd);
}

// Bodies whose end only a chunked decoder could find: not followed, so refused; and a
// first request too long to cut after.
TEST_F(XdpStreamTest, ChunkedAndLongPipelinedRequestsAreRefused) {
  const RunResult c = Send("POST /pay HTTP/1.1\r\nX-User-ID: kim\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(Flags(c), packet::tcp_flags::kRst);
  EXPECT_EQ(Counter(DLB_XDP_C_unframed_bodies), 1u);
  EXPECT_FALSE(UserKnown("kim"));
  SetUp();   // a new flow
  const std::string body(2100, 'b');
  const RunResult r = Send("POST /pay HTTP/1.1\r\nX-User-ID: kim\r\nContent-Length: 2100\r\n\r\n" + body +
                           Head("POST", "/pay", "kim"));
  EXPECT_EQ(Flags(r), packet::tcp_flags::kRst);
  EXPECT_EQ(Counter(DLB_XDP_C_pipelined_refused), 1u);
  EXPECT_FALSE(UserKnown("kim"));
}

// Rules match the normalized path (lib/dlb/path.h). The program does not rewrite paths:
// a target the server would route under another spelling (nginx: "//pay", "/%70ay",
// "/./pay", "/x/../pay" are all /pay) is refused, never decided under the default rule.
TEST_F(XdpProgTest, TargetsThatAreNotTheirNormalPathAreRefused) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(RunHead(Head("POST", "/pay", "olga"), 45200 + i).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("POST", "/pay", "olga"), 45210).action, XDP_TX);
  uint16_t port = 45220;
  for (const char* spelling : {"//pay", "/%70ay", "/./pay", "/x/../pay", "/pay/.", "/p%61y", "/%2fpay"}) {
    const RunResult r = RunHead(Head("POST", spelling, "olga"), port++);
    packet::PacketView v;
    ASSERT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp) << spelling;
    EXPECT_EQ(v.tcp_flags, packet::tcp_flags::kRst) << spelling;
  }
  EXPECT_EQ(Counter(DLB_XDP_C_paths_not_normal), 7u);
  // Normal paths with escapes that are not decoded, and a query, are decided as usual.
  EXPECT_EQ(RunHead(Head("POST", "/other%20x?a=/./b", "olga"), port++).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 5u);
}

// A fold_case rule matches its prefix in any case; its Retry-After for a missing identity
// is the rule's (lib/dlb/retry_after.h), as in the engine.
TEST_F(XdpProgTest, FoldCaseRulesAndTheSharedRetryAfter) {
  packet::PacketConfig c = BaseConfig();
  c.rules[0].fold_case = true;
  c.on_missing_identity = packet::MissingIdentityPolicy::kLimit;
  Configure(c);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(RunHead(Head("POST", i == 0 ? "/PAY" : "/Pay", "pia"), 45300 + i).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("POST", "/pAy", "pia"), 45310).action, XDP_TX);
  const RunResult r = RunHead("POST /pay HTTP/1.1\r\nHost: a\r\n\r\n", 45311);
  ASSERT_EQ(r.action, XDP_TX);
  const std::string frame(r.frame.begin(), r.frame.end());
  const std::string want = "\r\nRetry-After: " + std::to_string(tables_.rules[0].no_bucket_retry_s) + "\r\n";
  EXPECT_NE(frame.find(want), std::string::npos) << want;
  EXPECT_EQ(tables_.rules[0].no_bucket_retry_s, 1000u);   // one interval of 1/0.001 s
}

// max_header_lines is the program's bound on a head's lines, as the engine's.
TEST_F(XdpProgTest, MaxHeaderLinesIsHonoured) {
  packet::PacketConfig c = BaseConfig();
  c.max_header_lines = 3;
  Configure(c);
  uint16_t port = 45400;
  for (int lines = 0; lines <= 5; ++lines) {
    std::string head = "GET /other HTTP/1.1\r\n";
    for (int i = 0; i < lines; ++i) head += "A: b\r\n";
    head += "\r\n";
    RunHead(head, port++);
    auto last = prog_->ReadLast(0);
    ASSERT_TRUE(last.ok());
    EXPECT_EQ(last->scan_result, ReferenceScan(head, "X-User-ID", 256, 3).result) << lines;
  }
  EXPECT_EQ(Counter(DLB_XDP_C_malformed_heads), 3u);   // 3, 4 and 5 lines: too many
}

// An absolute-form target is decided on its path and its authority, as the engine
// decides it (lib/packet/http.cc): "POST http://api.example/pay" is /pay's bucket, the
// one "POST /pay" spends. Its path must be normal, as an origin-form one; a target in
// no form the program decides (CONNECT's authority) is refused, never passed undecided.
TEST_F(XdpProgTest, AbsoluteFormHeadsAreDecidedOnTheirPath) {
  const auto head = [](const std::string& target) {
    return "POST " + target + " HTTP/1.1\r\nHost: api.example\r\nX-User-ID: ivan\r\n\r\n";
  };
  EXPECT_EQ(RunHead(head("http://api.example/pay"), 45100).action, XDP_PASS);
  EXPECT_EQ(RunHead(head("/pay/x"), 45101).action, XDP_PASS);
  EXPECT_EQ(RunHead(head("https://api.example:8443/pay?x=1"), 45102).action, XDP_PASS);
  EXPECT_EQ(RunHead(head("http://api.example/pay"), 45103).action, XDP_TX);   // capacity 3
  auto last = prog_->ReadLast(0);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->rule, 0u);
  // No path: "/", the default rule's.
  uint16_t port = 45110;
  for (const char* target : {"http://api.example", "http://api.example?to=/pay", "http://a?b://c/pay"}) {
    EXPECT_EQ(RunHead(head(target), port++).action, XDP_PASS) << target;
    last = prog_->ReadLast(0);
    ASSERT_TRUE(last.ok());
    EXPECT_EQ(last->rule, 1u) << target;
  }
  EXPECT_EQ(Counter(DLB_XDP_C_absolute_form), 6u);
  // A path that is not its normal form is refused, as in origin form.
  RunResult r = RunHead(head("http://api.example/./pay"), 45120);
  packet::PacketView v;
  ASSERT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
  EXPECT_EQ(v.tcp_flags, packet::tcp_flags::kRst);
  EXPECT_EQ(Counter(DLB_XDP_C_paths_not_normal), 1u);
  // CONNECT's authority form and a target in no form: refused by the malformed-head policy.
  for (const char* line : {"CONNECT api.example:443 HTTP/1.1", "POST api.example/pay HTTP/1.1"}) {
    r = RunHead(std::string(line) + "\r\nHost: api.example\r\nX-User-ID: ivan\r\n\r\n", port++);
    ASSERT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
    EXPECT_EQ(v.tcp_flags, packet::tcp_flags::kRst) << line;
  }
  EXPECT_EQ(Counter(DLB_XDP_C_slow_path_authority_form), 2u);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 7u);
}

// Absolute-form targets through the engine and the program: the same rule limits each
// (the path after the authority, the authority for Host whatever the Host line says).
TEST_F(XdpProgTest, AbsoluteFormParityWithThePacketEngine) {
  packet::PacketConfig c = BaseConfig();
  c.rules = {Rule("pay", "/pay", 1, 0.001), Rule("host", "/h", 1, 0.001)};
  c.rules[1].host = "api.example";
  c.default_rule = Rule("default", "", 1, 0.001);
  Configure(c);
  auto rules = packet::RuleSet::Compile(c.rules, c.default_rule);
  ASSERT_TRUE(rules.ok());
  auto engine = packet::PacketEngine::Create(c, *rules, packet::HeapAllocator::Instance(),
                                             SipKey{1, 2}, 1'000'000'000);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const char* targets[] = {
      "http://api.example/pay",      "https://x.example/pay/1?q=1", "http://api.example",
      "http://api.example?x=/pay",   "http://api.example:8080/h/1", "http://API.example/h",
      "http://other.example/h",      "x://y/pay",                   "http://a?b://c/pay",
      "a?b://c/pay",                 "http:///pay",                 "http://[::1]:80/h",
      "http://u@api.example/h",      "/h",
  };
  uint16_t port = 21000;
  int64_t now = 2'000'000'000;
  for (size_t t = 0; t < std::size(targets); ++t) {
    // A user per target; the second head of each is limited by the rule it matched.
    const std::string payload = "GET " + std::string(targets[t]) + " HTTP/1.1\r\nHost: other.example\r\n"
                                "X-User-ID: p" + std::to_string(t) + "\r\n\r\n";
    for (int i = 0; i < 2; ++i) {
      SegmentSpec syn;
      syn.src.port = port++;
      syn.seq = 100;
      syn.flags = 0x02;
      SegmentSpec s = syn;
      s.seq = 101;
      s.flags = 0x18;
      s.payload = payload;
      const std::vector<uint8_t> f0 = BuildSegment(syn), f1 = BuildSegment(s);
      packet::Frame frames[2] = {{f0.data(), static_cast<uint32_t>(f0.size())},
                                 {f1.data(), static_cast<uint32_t>(f1.size())}};
      packet::FrameResult res[2];
      (*engine)->ProcessBurst(frames, 2, now++, res);
      ASSERT_EQ(res[1].heads, 1) << targets[t];
      ASSERT_EQ(RunXdp(prog_->prog_fd(), f0).action, XDP_PASS);
      const RunResult r = RunXdp(prog_->prog_fd(), f1);
      const bool engine_limited = res[1].verdict == packet::Verdict::kReject;
      EXPECT_EQ(engine_limited, i == 1) << targets[t];
      EXPECT_EQ(r.action == XDP_TX, engine_limited) << targets[t] << " head " << i;
      if (engine_limited) {
        auto last = prog_->ReadLast(0);
        ASSERT_TRUE(last.ok());
        EXPECT_EQ(last->rule, res[1].rule) << targets[t];
      }
    }
  }
}

TEST_F(XdpProgTest, MalformedFramesAndHeads) {
  SegmentSpec spec;
  spec.payload = Head("GET", "/", "x");
  std::vector<uint8_t> f = BuildSegment(spec);
  f.resize(14 + 10);                             // truncated IPv4 header
  // Dropped by default (on_malformed_frame: drop): it may carry a service's bytes.
  EXPECT_EQ(RunXdp(prog_->prog_fd(), f).action, XDP_DROP);
  EXPECT_EQ(Counter(DLB_XDP_C_malformed_frames), 1u);
  // A duplicate Host: malformed; the default policy resets (a RST to the server).
  const RunResult r = RunHead("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 45000);
  EXPECT_EQ(r.action, XDP_PASS);
  packet::PacketView v;
  ASSERT_EQ(packet::ParseFrame(r.frame.data(), r.frame.size(), {}, v), packet::ParseResult::kTcp);
  EXPECT_EQ(v.tcp_flags, packet::tcp_flags::kRst);
  EXPECT_EQ(Counter(DLB_XDP_C_malformed_heads), 1u);
  EXPECT_EQ(RunHead("GET / HTTP/2.0\r\n\r\n", 45001).action, XDP_PASS);   // bad version
  EXPECT_EQ(Counter(DLB_XDP_C_malformed_heads), 2u);
  EXPECT_EQ(RunHead("GET / HTTP/1.1\r\nX-User-ID: a\r\n folded\r\n\r\n", 45002).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_malformed_heads), 3u);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 0u);
}

TEST_F(XdpProgTest, IdentityHeaderIsCaseInsensitiveAndTrimmed) {
  EXPECT_EQ(RunHead("POST /pay HTTP/1.1\r\nx-user-id:ivy\r\n\r\n", 46000).action, XDP_PASS);
  EXPECT_EQ(RunHead("POST /pay HTTP/1.1\r\nX-USER-ID: \t ivy \t\r\n\r\n", 46001).action, XDP_PASS);
  EXPECT_EQ(RunHead("POST /pay HTTP/1.1\r\nX-User-Id: ivy\n\n", 46002).action, XDP_PASS);
  EXPECT_EQ(RunHead("POST /pay HTTP/1.1\r\nX-User-ID: ivy\r\n\r\n", 46003).action, XDP_TX);
  // A name that only shares a prefix is another header.
  EXPECT_EQ(RunHead("POST /pay HTTP/1.1\r\nX-User-IDs: ivy\r\nX-User-ID: jim\r\n\r\n", 46004).action,
            XDP_PASS);
}

TEST_F(XdpProgTest, MissingIdentityIsKeyedBySourceAddress) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(RunHead(Head("POST", "/pay", ""), 47000 + i).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("POST", "/pay", ""), 47010).action, XDP_TX);
  EXPECT_EQ(Counter(DLB_XDP_C_identity_source_ip), 4u);
  bool found = false;
  ASSERT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key& k) {
    if (k.kind == DLB_XDP_KEY_IPV4) found = UserIdOf(k) == "ip:10.0.0.1";
  }).ok());
  EXPECT_TRUE(found);
}

TEST_F(XdpProgTest, DropAndShadowActions) {
  packet::PacketConfig c = BaseConfig();
  c.rules = {Rule("drop", "/d", 1, 0.001, Mode::kLocal, packet::Action::kDrop),
             Rule("shadow", "/s", 1, 0.001, Mode::kLocal, packet::Action::kShadow)};
  Configure(c);
  EXPECT_EQ(RunHead(Head("GET", "/d", "kim"), 48000).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("GET", "/d", "kim"), 48001).action, XDP_DROP);
  EXPECT_EQ(RunHead(Head("GET", "/s", "kim"), 48002).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("GET", "/s", "kim"), 48003).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_dropped), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_shadow_limited), 1u);
}

// A head of a synced rule past this host's share, with no lease and Redis not known
// full, waits (dropped: the client sends it again) instead of a possibly false 429; the
// user is marked as waiting for the agent, whose round then keeps a lease for it. Held
// (Redis full) it gets its 429; with the store down the rule's policy decides.
TEST_F(XdpProgTest, SyncedHeadPastTheShareWaitsForALeaseInsteadOfA429) {
  packet::PacketConfig c = BaseConfig();
  c.rules = {Rule("sync", "/s", 2, 0.001, Mode::kSynced)};
  Configure(c);
  EXPECT_EQ(RunHead(Head("GET", "/s", "wen"), 49100).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("GET", "/s", "wen"), 49101).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("GET", "/s", "wen"), 49102).action, XDP_DROP);   // the share (2) used
  EXPECT_EQ(Counter(DLB_XDP_C_lease_waits), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_limited), 0u);
  dlb_xdp_user_key key{};
  ASSERT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key& k) { key = k; }).ok());
  std::vector<dlb_xdp_ctl> cmd(1);
  cmd[0].key = key;
  cmd[0].op = DLB_XDP_CTL_COLLECT;
  ASSERT_TRUE(prog_->Control(cmd).ok());
  EXPECT_NE(cmd[0].out_waited, 0u) << "the agent is not told that a head waits";
  EXPECT_EQ(cmd[0].out_demand, 3u);
  // The agent's round grants a lease: the retransmission is admitted against it.
  cmd[0].op = DLB_XDP_CTL_GRANT;
  cmd[0].in_lease = 1;
  cmd[0].in_hold_until_ns = 0;
  ASSERT_TRUE(prog_->Control(cmd).ok());
  EXPECT_EQ(RunHead(Head("GET", "/s", "wen"), 49102).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_leased), 1u);
  // Redis full: held, the 429.
  cmd[0].in_lease = 0;
  cmd[0].in_hold_until_ns = ~0ULL >> 2;
  ASSERT_TRUE(prog_->Control(cmd).ok());
  EXPECT_EQ(RunHead(Head("GET", "/s", "wen"), 49103).action, XDP_TX);
  EXPECT_EQ(Counter(DLB_XDP_C_held), 1u);
  // The agent keeps a lease for a user that waited within the last 3 s, not after.
  const int64_t now = 5'000'000'000'000;
  const uint64_t waited = (static_cast<uint64_t>(now) >> 20) | 1;
  EXPECT_TRUE(xdp::XdpSync::WaitedRecently(waited, now + 1'000'000'000));
  EXPECT_FALSE(xdp::XdpSync::WaitedRecently(waited, now + 4'000'000'000));
}

TEST_F(XdpProgTest, SyncedRuleAdmitsAgainstTheLeaseAndHolds) {
  packet::PacketConfig c = BaseConfig();
  c.rules = {Rule("sync", "/s", 100, 0.001, Mode::kSynced)};
  Configure(c);
  // First contact: no lease yet, the local bucket decides and the admission is debt.
  ASSERT_EQ(RunHead(Head("GET", "/s", "lee"), 49000).action, XDP_PASS);
  dlb_xdp_user_key key{};
  ASSERT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key& k) { key = k; }).ok());
  std::vector<dlb_xdp_ctl> cmd(1);
  cmd[0].key = key;
  cmd[0].op = DLB_XDP_CTL_COLLECT;
  ASSERT_TRUE(prog_->Control(cmd).ok());
  EXPECT_EQ(cmd[0].found, 1u);
  EXPECT_EQ(cmd[0].out_debt, 1u);
  EXPECT_EQ(cmd[0].out_demand, 1u);
  // A lease of 2, then a hold far in the future: two admitted, the third held.
  cmd[0].op = DLB_XDP_CTL_GRANT;
  cmd[0].in_lease = 2;
  cmd[0].in_hold_until_ns = ~0ULL >> 2;
  ASSERT_TRUE(prog_->Control(cmd).ok());
  EXPECT_EQ(RunHead(Head("GET", "/s", "lee"), 49001).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("GET", "/s", "lee"), 49002).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("GET", "/s", "lee"), 49003).action, XDP_TX);
  EXPECT_EQ(Counter(DLB_XDP_C_leased), 2u);
  EXPECT_EQ(Counter(DLB_XDP_C_held), 1u);
  // The store down with on_store_failure closed: limited.
  c.rules[0].on_store_failure = FailurePolicy::kClosed;
  Configure(c);
  ASSERT_TRUE(prog_->SetStoreDown(true).ok());
  EXPECT_EQ(RunHead(Head("GET", "/s", "max"), 49010).action, XDP_TX);
  EXPECT_EQ(Counter(DLB_XDP_C_store_down_closed), 1u);
}

// Runs `frame` `repeat` times on CPU 0 and CPU 1 at once (both threads start together),
// the program's buckets shared by the two CPUs. False when the machine has one CPU.
bool RunOnTwoCpus(int prog_fd, const std::vector<uint8_t>& frame, int repeat) {
  if (std::thread::hardware_concurrency() < 2) return false;
  std::atomic<int> ready{0};
  std::atomic<bool> ok{true};
  auto run = [&](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) ok = false;
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    std::vector<uint8_t> out(4096);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(frame.size()),
                .data_size_out = static_cast<__u32>(out.size()), .repeat = repeat);
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0 || opts.retval != XDP_PASS) ok = false;
  };
  std::thread a(run, 0), b(run, 1);
  a.join();
  b.join();
  return ok.load();
}

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// The local bucket's TAT changes by compare-and-swap: two CPUs deciding the same user at
// once admit exactly the capacity (a lost update would admit more), and the TAT is the
// first admission's time plus one interval per admission. Also for a bucket that never
// leaks (its TAT counts units). Shadow rules: limited heads pass the frame unchanged.
TEST_F(XdpProgTest, LocalBucketIsExactAcrossCpus) {
  constexpr int kRepeat = 40000;
  constexpr int64_t kCapacity = 50000;   // runs out while both CPUs are deciding
  packet::PacketConfig c = BaseConfig();
  c.rules = {Rule("leaky", "/l", kCapacity, 0.001, Mode::kLocal, packet::Action::kShadow),
             Rule("never", "/n", kCapacity, 0, Mode::kLocal, packet::Action::kShadow)};
  Configure(c);
  UseReplayProgram();
  ASSERT_EQ(tables_.rules[0].interval_ns, 1'000'000'000'000ULL);
  ASSERT_EQ(tables_.rules[1].interval_ns, 0u);
  for (const char* path : {"/l", "/n"}) {
    ASSERT_TRUE(prog_->ClearState().ok());
    SegmentSpec s;
    s.payload = Head("GET", path, "racer");
    const uint64_t t0 = MonotonicNs();
    if (!RunOnTwoCpus(prog_->prog_fd(), BuildSegment(s), kRepeat)) {
      GTEST_SKIP() << "needs two CPUs";
    }
    const uint64_t t1 = MonotonicNs();
    EXPECT_EQ(Counter(DLB_XDP_C_allowed), static_cast<uint64_t>(kCapacity)) << path;
    EXPECT_EQ(Counter(DLB_XDP_C_limited), static_cast<uint64_t>(2 * kRepeat - kCapacity)) << path;
    EXPECT_EQ(Counter(DLB_XDP_C_shadow_limited), static_cast<uint64_t>(2 * kRepeat - kCapacity));
    dlb_xdp_user_key key{};
    key.rule = path[1] == 'l' ? 0 : 1;
    key.kind = DLB_XDP_KEY_IDENTITY;
    key.id_len = 5;
    std::memcpy(key.id, "racer", 5);
    auto u = prog_->LookupUser(key);
    ASSERT_TRUE(u.ok()) << path;
    if (path[1] == 'l') {
      const uint64_t first = u->tat_ns - static_cast<uint64_t>(kCapacity) * tables_.rules[0].interval_ns;
      EXPECT_GE(first, t0);
      EXPECT_LE(first, t1);
    } else {
      EXPECT_EQ(u->tat_ns, static_cast<uint64_t>(kCapacity));
    }
  }
}

// A leased admission charges the local share bucket by compare-and-swap: two CPUs
// admitting against one lease at once add exactly one interval per head to its TAT.
TEST_F(XdpProgTest, LeasedAdmissionsChargeTheLocalBucketExactlyAcrossCpus) {
  constexpr int kRepeat = 40000;
  packet::PacketConfig c = BaseConfig();
  c.rules = {Rule("sync", "/s", 1'000'000, 0.001, Mode::kSynced)};
  Configure(c);
  UseReplayProgram();
  ASSERT_EQ(RunHead(Head("GET", "/s", "leaser"), 49100).action, XDP_PASS);   // the user
  dlb_xdp_user_key key{};
  ASSERT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key& k) { key = k; }).ok());
  std::vector<dlb_xdp_ctl> cmd(1);
  cmd[0].key = key;
  cmd[0].op = DLB_XDP_CTL_GRANT;
  cmd[0].in_lease = 2 * kRepeat;
  ASSERT_TRUE(prog_->Control(cmd).ok());
  ASSERT_EQ(cmd[0].found, 1u);
  auto before = prog_->LookupUser(key);
  ASSERT_TRUE(before.ok());
  ASSERT_GT(before->tat_ns, MonotonicNs());   // the TAT stays ahead of the clock
  SegmentSpec s;
  s.payload = Head("GET", "/s", "leaser");
  if (!RunOnTwoCpus(prog_->prog_fd(), BuildSegment(s), kRepeat)) GTEST_SKIP() << "needs two CPUs";
  EXPECT_EQ(Counter(DLB_XDP_C_leased), static_cast<uint64_t>(2 * kRepeat));
  auto after = prog_->LookupUser(key);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->lease, 0);
  EXPECT_EQ(after->tat_ns - before->tat_ns, 2ULL * kRepeat * tables_.rules[0].interval_ns);
}

// A short ID is copied into its key a word at a time, reading past the ID (and, at the
// end of the scan window, past the head buffer) into stale scratch bytes: the key holds
// the ID's bytes and zeros, at every alignment up to the window's last bytes.
TEST_F(XdpProgTest, IdCopiedWholeAtTheEndOfTheScanWindow) {
  // A limited head first: its 429 leaves bytes in the scratch that follows the head.
  for (int i = 0; i < 4; ++i) RunHead(Head("POST", "/pay", "filler"), 49200 + i);
  ASSERT_EQ(Counter(DLB_XDP_C_rejected), 1u);
  const std::string ids[] = {"a", "ab", "abcdefg", "abcdefgh", "abcdefghi", std::string(40, 'z')};
  uint16_t port = 49300;
  for (const std::string& id : ids) {
    for (size_t pad = 0; pad < 9; ++pad) {
      // The head ends exactly at DLB_XDP_SCAN_BYTES - pad.
      const std::string start = "GET /e HTTP/1.1\r\nX-Pad: ";
      const std::string tail = "\r\nX-User-ID: " + id + "\r\n\r\n";
      const size_t total = DLB_XDP_SCAN_BYTES - pad;
      std::string head = start + std::string(total - start.size() - tail.size(), 'p') + tail;
      ASSERT_EQ(head.size(), total);
      EXPECT_EQ(RunHead(head, port++).action, XDP_PASS) << id << " pad " << pad;
    }
  }
  std::vector<std::string> seen;
  ASSERT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key& k) {
    for (size_t b = k.id_len; b < DLB_XDP_MAX_ID; ++b) EXPECT_EQ(k.id[b], 0) << "byte " << b;
    if (k.rule == tables_.rules.size() - 1) seen.push_back(UserIdOf(k));
  }).ok());
  std::vector<std::string> want(std::begin(ids), std::end(ids));
  std::sort(want.begin(), want.end());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, want);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 4 + 9 * std::size(ids));
}

// IDs on both sides of DLB_XDP_SHORT_ID (short keys in one map, long ones in the
// other): each decides in its own bucket, also an ID that is a prefix of another (across
// the two maps and within each), binary bytes and the longest ID; the agent's calls
// (ForEachUser, LookupUser, Control, DeleteUser, ClearState) find every key in its map.
TEST_F(XdpProgTest, ShortAndLongIdsDecideInSeparateBuckets) {
  static_assert(DLB_XDP_SHORT_ID == 40, "the IDs below straddle the short key's length");
  std::string binary = "\x80\xff\xfe-";
  for (int i = 0; i < 40; ++i) binary += static_cast<char>(0x80 + i);   // 46 bytes: long
  const std::vector<std::string> ids = {
      "a",                          // 1 byte
      "ab",                         // "a" is its prefix
      std::string(39, 'x'),         // a prefix of the next: short, short, long, long
      std::string(40, 'x'),
      std::string(41, 'x'),
      std::string(42, 'x'),
      std::string(40, 'y') + "z",   // 41 bytes: the same short-key bytes as 40 'y' + ...
      std::string(40, 'y'),         // ... and this one's ID bytes
      binary,
      "\x80\x81\xff",            // binary, short
      std::string(256, 'k'),        // DLB_XDP_MAX_ID
      std::string(255, 'k'),
  };
  auto key_of = [](const std::string& id) {
    dlb_xdp_user_key k{};
    k.rule = 0;   // pay
    k.kind = DLB_XDP_KEY_IDENTITY;
    k.id_len = static_cast<uint16_t>(id.size());
    std::memcpy(k.id, id.data(), id.size());
    return k;
  };
  // Capacity 3 each: rounds of one head per ID; a shared bucket would run out early.
  uint16_t port = 50000;
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(RunHead(Head("POST", "/pay", ids[i]), port++).action, XDP_PASS)
          << "round " << round << " id " << i << " (" << ids[i].size() << " bytes)";
    }
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(RunHead(Head("POST", "/pay", ids[i]), port++).action, XDP_TX) << "id " << i;
  }
  EXPECT_EQ(Counter(DLB_XDP_C_table_full), 0u);
  EXPECT_EQ(Counter(DLB_XDP_C_allowed), 3 * ids.size());

  // Every user once, with its full key.
  std::vector<std::string> seen;
  ASSERT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key& k) {
    EXPECT_EQ(k.rule, 0u);
    EXPECT_EQ(k.kind, DLB_XDP_KEY_IDENTITY);
    for (size_t b = k.id_len; b < DLB_XDP_MAX_ID; ++b) EXPECT_EQ(k.id[b], 0) << "byte " << b;
    seen.push_back(UserIdOf(k));
  }).ok());
  std::vector<std::string> want = ids;
  std::sort(want.begin(), want.end());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, want);
  for (const std::string& id : ids) {
    auto u = prog_->LookupUser(key_of(id));
    ASSERT_TRUE(u.ok()) << id.size() << " bytes";
    EXPECT_GT(u->tat_ns, 0u);
  }
  // A key nobody sent: 41 bytes sharing the first 40 with a short user.
  EXPECT_FALSE(prog_->LookupUser(key_of(std::string(40, 'y') + "w")).ok());

  // The control program picks the same map as the data path.
  std::vector<dlb_xdp_ctl> cmds;
  for (const std::string& id : ids) {
    dlb_xdp_ctl c{};
    c.key = key_of(id);
    c.op = DLB_XDP_CTL_ADD_DEBT;
    c.in_debt = id.size();
    cmds.push_back(c);
  }
  dlb_xdp_ctl absent{};
  absent.key = key_of(std::string(40, 'y') + "w");
  absent.op = DLB_XDP_CTL_COLLECT;
  cmds.push_back(absent);
  ASSERT_TRUE(prog_->Control(cmds).ok());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(cmds[i].found, 1u) << "id " << i;
  EXPECT_EQ(cmds.back().found, 0u);
  for (dlb_xdp_ctl& c : cmds) c.op = DLB_XDP_CTL_COLLECT;
  ASSERT_TRUE(prog_->Control(cmds).ok());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(cmds[i].out_debt, ids[i].size()) << "id " << i;
    EXPECT_EQ(cmds[i].out_demand, 0u) << "local rule";
  }

  // Deleting the long user leaves its short prefix's bucket (still limited), and the
  // long user starts afresh.
  ASSERT_TRUE(prog_->DeleteUser(key_of(std::string(40, 'y') + "z")).ok());
  EXPECT_FALSE(prog_->LookupUser(key_of(std::string(40, 'y') + "z")).ok());
  EXPECT_TRUE(prog_->LookupUser(key_of(std::string(40, 'y'))).ok());
  EXPECT_EQ(RunHead(Head("POST", "/pay", std::string(40, 'y') + "z"), port++).action, XDP_PASS);
  EXPECT_EQ(RunHead(Head("POST", "/pay", std::string(40, 'y')), port++).action, XDP_TX);
  ASSERT_TRUE(prog_->DeleteUser(key_of("a")).ok());
  EXPECT_TRUE(prog_->LookupUser(key_of("ab")).ok());

  ASSERT_TRUE(prog_->ClearState().ok());
  size_t left = 0;
  ASSERT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key&) { ++left; }).ok());
  EXPECT_EQ(left, 0u);
}

// The program's SHA-256 (ebpf/dlb_xdp_sha.h, run on its own) is lib/key's on messages
// around every padding boundary (one block, the length spilling into a second, whole
// blocks) and the longest message it takes.
TEST(XdpShaTest, Sha256InTheKernelIsTheLibrarys) {
  ASSERT_EQ(xdptest::PinToCpu0(), 0);
  xdp_sha_bpf* skel = xdp_sha_bpf__open_and_load();
  ASSERT_NE(skel, nullptr);
  std::mt19937 rng(20);
  for (size_t len : {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 2039}) {
    std::string msg(len, '\0');
    for (char& ch : msg) ch = static_cast<char>(rng());
    std::vector<uint8_t> frame(14, 0);
    frame.insert(frame.end(), msg.begin(), msg.end());
    const RunResult r = RunXdp(bpf_program__fd(skel->progs.sha_test), frame);
    ASSERT_EQ(r.action, XDP_PASS) << len;
    ASSERT_EQ(skel->bss->sha_ok, 1u) << len;
    const std::array<uint8_t, 32> want = Sha256(msg);
    EXPECT_EQ(std::memcmp(skel->bss->sha_out, want.data(), 32), 0) << len << " bytes";
  }
  // The FIPS 180-4 example "abc".
  std::vector<uint8_t> abc(14, 0);
  abc.insert(abc.end(), {'a', 'b', 'c'});
  ASSERT_EQ(RunXdp(bpf_program__fd(skel->progs.sha_test), abc).action, XDP_PASS);
  const uint8_t abc_digest[4] = {0xba, 0x78, 0x16, 0xbf};
  EXPECT_EQ(std::memcmp(skel->bss->sha_out, abc_digest, 4), 0);
  xdp_sha_bpf__destroy(skel);
}

// An identity longer than a user key holds (DLB_XDP_MAX_ID) is decided, keyed by its
// digest: limited after the rule's capacity, one bucket per ID (two IDs that differ only
// in their last byte are two users), and the agent's Redis key of the user is
// dlb::RedisKey(ID, rule), the appliance's and the library's.
TEST_F(XdpProgTest, LongIdentitiesAreDecidedByTheirDigest) {
  packet::PacketConfig c = BaseConfig();
  c.max_identity_bytes = 4096;
  Configure(c);
  std::mt19937 rng(300);
  auto id_of = [&](size_t len) {
    std::string id(len, 'x');
    for (char& ch : id) ch = static_cast<char>('!' + rng() % 94);   // visible ASCII
    return id;
  };
  const std::string id300 = id_of(300), id1500 = id_of(1500);
  std::string id1500b = id1500;
  id1500b.back() = id1500b.back() == 'a' ? 'b' : 'a';
  const std::vector<std::string> ids = {id300, id1500, id1500b, std::string(257, 'k')};
  uint16_t port = 51000;
  for (int round = 0; round < 3; ++round) {   // capacity 3 each
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(RunHead(Head("POST", "/pay", ids[i]), port++).action, XDP_PASS)
          << "round " << round << " id " << i << " (" << ids[i].size() << " bytes)";
    }
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const RunResult r = RunHead(Head("POST", "/pay", ids[i]), port++);
    EXPECT_EQ(r.action, XDP_TX) << "id " << i;
    EXPECT_NE(std::string(r.frame.begin(), r.frame.end()).find("HTTP/1.1 429 Too Many Requests"),
              std::string::npos);
  }
  EXPECT_EQ(Counter(DLB_XDP_C_identity_digests), 4 * ids.size());
  EXPECT_EQ(Counter(DLB_XDP_C_allowed), 3 * ids.size());
  EXPECT_EQ(Counter(DLB_XDP_C_oversize_heads), 0u);

  // One digest key per ID, in the short map; the agent's Redis key is every form's.
  std::vector<std::string> seen, want;
  ASSERT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key& k) {
    EXPECT_EQ(k.kind, DLB_XDP_KEY_DIGEST);
    EXPECT_EQ(k.id_len, DLB_XDP_DIGEST_BYTES);
    for (size_t b = k.id_len; b < DLB_XDP_MAX_ID; ++b) EXPECT_EQ(k.id[b], 0) << "byte " << b;
    seen.push_back(RedisKeyOf(k, "pay"));
  }).ok());
  for (const std::string& id : ids) want.push_back(RedisKey(id, "pay"));
  std::sort(want.begin(), want.end());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, want);
  // The agent finds the bucket by a key it builds from the ID alone.
  dlb_xdp_user_key k{};
  k.rule = 0;
  k.kind = DLB_XDP_KEY_DIGEST;
  k.id_len = DLB_XDP_DIGEST_BYTES;
  const UserDigest d = DigestUserId(id1500);
  std::memcpy(k.id, d.data(), d.size());
  auto u = prog_->LookupUser(k);
  ASSERT_TRUE(u.ok());
  EXPECT_GT(u->tat_ns, 0u);
}

// The same stream through the C++ PacketEngine and the program: the same decisions.
TEST_F(XdpProgTest, ParityWithThePacketEngine) {
  packet::PacketConfig c = BaseConfig();
  c.rules = {Rule("quota", "/q", 4, 0.0), Rule("slow", "/s", 3, 0.001),
             Rule("get", "/", 2, 0.001)};
  c.rules[2].method = "GET";
  c.rules[2].host = "API.example.com";
  c.default_rule = Rule("default", "", 5, 0.001);
  Configure(c);
  auto rules = packet::RuleSet::Compile(c.rules, c.default_rule);
  ASSERT_TRUE(rules.ok());
  auto engine = packet::PacketEngine::Create(c, *rules, packet::HeapAllocator::Instance(),
                                             SipKey{1, 2}, 1'000'000'000);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  std::mt19937 rng(7);
  const char* users[] = {"u1", "u2", "u3", ""};
  const char* methods[] = {"GET", "POST", "PUT"};
  const char* paths[] = {"/q/a", "/s", "/x", "/q", "/"};
  int compared = 0, limited = 0;
  for (int i = 0; i < 300; ++i) {
    SegmentSpec syn;
    syn.src.port = static_cast<uint16_t>(20000 + i);
    syn.seq = 100;
    syn.flags = 0x02;
    SegmentSpec s = syn;
    s.seq = 101;
    s.flags = 0x18;
    s.payload = Head(methods[rng() % 3], paths[rng() % 5], users[rng() % 4]);
    const std::vector<uint8_t> f0 = BuildSegment(syn), f1 = BuildSegment(s);
    packet::Frame frames[2] = {{f0.data(), static_cast<uint32_t>(f0.size())},
                               {f1.data(), static_cast<uint32_t>(f1.size())}};
    packet::FrameResult res[2];
    (*engine)->ProcessBurst(frames, 2, 2'000'000'000 + i, res);
    ASSERT_EQ(res[1].heads, 1) << s.payload;
    const bool engine_limited = res[1].verdict == packet::Verdict::kReject;
    ASSERT_EQ(RunXdp(prog_->prog_fd(), f0).action, XDP_PASS);
    const RunResult r = RunXdp(prog_->prog_fd(), f1);
    const bool xdp_limited = r.action == XDP_TX;
    ASSERT_EQ(engine_limited, xdp_limited) << "request " << i << ": " << s.payload;
    auto last = prog_->ReadLast(0);
    ASSERT_TRUE(last.ok());
    if (engine_limited) {
      EXPECT_EQ(last->rule, res[1].rule) << s.payload;
      // The same 429: Retry-After and RateLimit's remaining (r=) as the engine renders
      // them (lib/packet/reject.cc); the two clocks differ by the run's elapsed time, so
      // Retry-After may differ by a second.
      char want[512];
      const size_t n = packet::FormatRejectResponse(rules->rule(res[1].rule), res[1].decision, want, sizeof want);
      ASSERT_GT(n, 0u);
      const std::string engine_429(want, n);
      const std::string xdp_frame(r.frame.begin(), r.frame.end());
      const size_t at = xdp_frame.find("HTTP/1.1 429");
      ASSERT_NE(at, std::string::npos) << s.payload;
      const std::string xdp_429 = xdp_frame.substr(at);
      auto field = [](const std::string& text, const std::string& name) {
        const size_t p = text.find(name);
        return p == std::string::npos ? int64_t{-1} : std::atoll(text.c_str() + p + name.size());
      };
      EXPECT_NEAR(static_cast<double>(field(xdp_429, "Retry-After: ")),
                  static_cast<double>(field(engine_429, "Retry-After: ")), 1.0)
          << s.payload << "\n" << xdp_429 << "\n" << engine_429;
      EXPECT_EQ(field(xdp_429, ";r="), field(engine_429, ";r=")) << s.payload;
      ++limited;
    }
    ++compared;
  }
  EXPECT_EQ(compared, 300);
  EXPECT_GT(limited, 50);   // the stream exercises both outcomes
  // The same Redis keys: every bucket the program holds is named by the agent as the
  // library and the appliance name that user's bucket (a header's ID, or "ip:" and the
  // source address for a head without one).
  std::set<std::string> xdp_keys, want_keys;
  ASSERT_TRUE(prog_->ForEachUser([&](const dlb_xdp_user_key& k) {
    xdp_keys.insert(RedisKeyOf(k, rules->rule(k.rule).name));
  }).ok());
  const uint8_t src[4] = {10, 0, 0, 1};
  for (const char* u : users) {
    const std::string id = *u ? std::string(u) : SourceAddressUserId(4, src);
    for (const char* name : {"quota", "slow", "get", "default"}) want_keys.insert(RedisKey(id, name));
  }
  ASSERT_FALSE(xdp_keys.empty());
  for (const std::string& k : xdp_keys) EXPECT_EQ(want_keys.count(k), 1u) << k;
}

TEST_F(XdpProgTest, HeadScanMatchesItsByteAtATimeSpecification) {
  struct Variant {
    std::string id_name;
    uint32_t max_id;
    uint32_t seed;
  };
  uint16_t port = 10000;
  for (const Variant& var : {Variant{"X-User-ID", 256, 1}, Variant{"api_key.2", 16, 2},
                             Variant{"K", 8, 3}, Variant{"X-Very-Long-Identity-Header-Name", 40, 4}}) {
    packet::PacketConfig c = BaseConfig();
    c.identity_header = var.id_name;
    c.max_identity_bytes = var.max_id;
    Configure(c);
    HeadGen gen(var.seed, var.id_name);
    int compared = 0;
    int by_result[5] = {};
    uint64_t last_seq = 0;
    for (int i = 0; i < 2500; ++i) {
      std::string payload = gen.Next();
      // Empty lines before a request line are skipped before the scan (RFC 9112 2.2).
      payload.erase(0, std::min<size_t>(payload.find_first_not_of("\r\n"), 8));
      if (payload.empty() || payload[0] == '\r' || payload[0] == '\n') continue;
      RunHead(payload, port++);  // a malformed head resets its flow: each head a new one
      auto last = prog_->ReadLast(0);
      ASSERT_TRUE(last.ok());
      ASSERT_GT(last->scan_seq, last_seq) << "payload not scanned: " << testing::PrintToString(payload);
      last_seq = last->scan_seq;
      const ScanOutcome got = OutcomeOf(*last);
      ScanOutcome want = ReferenceScan(payload, var.id_name, var.max_id);
      if (want.result != DLB_XDP_SCAN_OK) want = ScanOutcome{.result = want.result};
      ASSERT_EQ(got, want) << var.id_name << " head " << i << ": " << testing::PrintToString(payload);
      ++by_result[want.result];
      ++compared;
    }
    // The generator reaches every outcome.
    EXPECT_GT(compared, 2000);
    EXPECT_GT(by_result[DLB_XDP_SCAN_OK], 100) << var.id_name;
    EXPECT_GT(by_result[DLB_XDP_SCAN_MALFORMED], 100) << var.id_name;
    EXPECT_GT(by_result[DLB_XDP_SCAN_NOT_HTTP], 20) << var.id_name;
    EXPECT_GT(by_result[DLB_XDP_SCAN_MORE], 20) << var.id_name;
  }
}

// The head is copied out of the frame by 8-byte loads, word by word up to 128 bytes and
// in overlapping blocks of 128 bytes past that (a helper below 8 bytes): at every length
// across those bounds, behind IPv4, IPv6 and two VLAN tags, and after a payload that
// left other bytes in the scratch, the scan sees exactly the payload's bytes.
TEST_F(XdpProgTest, HeadScanSeesThePayloadAtEveryLength) {
  std::string full = "POST /pay/x?y=1 HTTP/1.1\r\nHost: api.example.com:8080\r\nX-User-ID: alice\r\n";
  while (full.size() < 520) full += "X-Pad: " + std::string(full.size() % 23, 'p') + "\r\n";
  full += "\r\n";
  const std::string junk = "GET /" + std::string(DLB_XDP_SCAN_BYTES, '\n');
  struct Layout {
    int ipv;
    std::vector<uint16_t> vlans;
  };
  uint16_t port = 20000;
  uint64_t ok = 0;
  for (const Layout& layout : {Layout{4, {}}, Layout{6, {}}, Layout{4, {7, 9}}}) {
    for (size_t len = 1; len <= full.size(); ++len) {
      RunHead(junk, port++, layout.ipv, layout.vlans);
      const std::string payload = full.substr(0, len);
      RunHead(payload, port++, layout.ipv, layout.vlans);
      auto last = prog_->ReadLast(0);
      ASSERT_TRUE(last.ok());
      const ScanOutcome got = OutcomeOf(*last);
      if (got.result == DLB_XDP_SCAN_OK) ++ok;
      ScanOutcome want = ReferenceScan(payload, "X-User-ID", 256);
      if (want.result != DLB_XDP_SCAN_OK) want = ScanOutcome{.result = want.result};
      ASSERT_EQ(got, want) << "IPv" << layout.ipv << " tags " << layout.vlans.size() << " length " << len;
    }
  }
  EXPECT_EQ(ok, 3u);   // the whole head, once per layout
}

// Cases the scan decides at word edges and on single bytes, each against the
// specification and with the outcome spelled out.
TEST_F(XdpProgTest, HeadScanEdgeCases) {
  struct Case {
    std::string head;
    uint32_t result;
  };
  const std::string id8 = "X-User-ID: " + std::string(8, 'u');
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\n\r\n", DLB_XDP_SCAN_OK},
      {"GET / HTTP/1.0\n\n", DLB_XDP_SCAN_OK},
      {"GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n", DLB_XDP_SCAN_OK},          // bare CR in a name
      {"GET / HTTP/1.1\r\nX-User-ID: a\rb\r\n\r\n", DLB_XDP_SCAN_MALFORMED},   // bare CR in the identity
      {"GET / HTTP/1.1\r\nA: a\rb\r\n\r\n", DLB_XDP_SCAN_OK},            // in another value
      {std::string("GET / HTTP/1.1\r\nA: \0\r\n\r\n", 25), DLB_XDP_SCAN_OK},   // NUL in a value
      {std::string("GET / HTTP/1.1\r\nA\0: x\r\n\r\n", 25), DLB_XDP_SCAN_MALFORMED},  // in a name
      {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", DLB_XDP_SCAN_MALFORMED},
      {"GET / HTTP/1.1\r\n: x\r\n\r\n", DLB_XDP_SCAN_MALFORMED},          // empty name
      {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", DLB_XDP_SCAN_MALFORMED},
      {"GET / HTTP/1.1\r\n\r\r\n", DLB_XDP_SCAN_MALFORMED},
      {"GET / HTTP/1.1\r\nX_a.b!~: x\r\n\r\n", DLB_XDP_SCAN_OK},          // tchar beyond [A-Za-z0-9-]
      {"GET / HTTP/1.1\r\nA: b", DLB_XDP_SCAN_MORE},
      {"GET / HTTP/1.1\r\nBad Na", DLB_XDP_SCAN_MALFORMED},               // decided before the end
      {"GET / HTTPXXXXXXXXXXXX", DLB_XDP_SCAN_MORE},
      {"GET / HTTP/1.1 \r\n\r\n", DLB_XDP_SCAN_MALFORMED},
      {"GET  / HTTP/1.1\r\n\r\n", DLB_XDP_SCAN_MALFORMED},               // empty target
      {"GET /a\x7f HTTP/1.1\r\n\r\n", DLB_XDP_SCAN_MALFORMED},
      {"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", DLB_XDP_SCAN_OK},
      {std::string(24, 'M') + " / HTTP/1.1\r\n\r\n", DLB_XDP_SCAN_OK},   // the longest method
      {std::string(25, 'M') + " / HTTP/1.1\r\n\r\n", DLB_XDP_SCAN_NOT_HTTP},
      {std::string(20, 'M'), DLB_XDP_SCAN_MORE},
      {" GET / HTTP/1.1\r\n\r\n", DLB_XDP_SCAN_NOT_HTTP},
      {"GE\rT / HTTP/1.1\r\n\r\n", DLB_XDP_SCAN_NOT_HTTP},
      {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", DLB_XDP_SCAN_MALFORMED},
      {"GET / HTTP/1.1\r\n" + id8 + "\r\n" + id8 + "\r\n\r\n", DLB_XDP_SCAN_MALFORMED},
      {"GET / HTTP/1.1\r\nX-User-ID: " + std::string(257, 'u') + "\r\n\r\n", DLB_XDP_SCAN_MALFORMED},
      {"GET / HTTP/1.1\r\nX-User-ID: " + std::string(256, 'u') + "\r\n\r\n", DLB_XDP_SCAN_OK},
      {"GET / HTTP/1.1\r\nX-User-ID:" + std::string(300, ' ') + "id" + std::string(300, '\t') +
           "\r\n\r\n",
       DLB_XDP_SCAN_OK},
  };
  uint16_t port = 30000;
  for (size_t shift = 0; shift < 8; ++shift) {     // every alignment of the lines to words
    for (const Case& k : cases) {
      std::string head = k.head;
      if (shift > 0 && k.result != DLB_XDP_SCAN_NOT_HTTP && head.rfind("GET /", 0) == 0) {
        head.insert(5, std::string(shift, 'p'));
      }
      RunHead(head, port++);  // a malformed head resets its flow: each case a new one
      auto last = prog_->ReadLast(0);
      ASSERT_TRUE(last.ok());
      EXPECT_EQ(last->scan_result, k.result)
          << testing::PrintToString(head) << " sp1 " << last->scan_sp1 << " sp2 " << last->scan_sp2
          << " q " << last->scan_q << " end " << last->scan_head_end;
      EXPECT_EQ(ReferenceScan(head, "X-User-ID", 256).result, k.result) << testing::PrintToString(head);
    }
  }
  // 127 header lines are a head; 128 are too many.
  std::string h = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 127; ++i) h += "A: b\r\n";
  SegmentSpec s;
  s.src.port = port++;
  s.payload = h + "\r\n";
  RunXdpOnNewFlow(prog_->prog_fd(), s);
  EXPECT_EQ(prog_->ReadLast(0)->scan_result, DLB_XDP_SCAN_OK);
  s.src.port = port++;
  s.payload = h + "A: b\r\n\r\n";
  RunXdpOnNewFlow(prog_->prog_fd(), s);
  EXPECT_EQ(prog_->ReadLast(0)->scan_result, DLB_XDP_SCAN_MALFORMED);
}

// With the TC program attached (dlb_tc_on = 1) a 429 is passed with its hand-over record
// in front instead of sent with XDP_TX; the client's ACK of it is dropped (the TC program
// reset the server already), a later segment gets a RST.
TEST_F(XdpProgTest, RejectIsHandedToTheTcProgramWhenItIsAttached) {
  const int tc_on = FindProgramMap(prog_->prog_fd(), "dlb_tc_on");
  ASSERT_GE(tc_on, 0);
  const uint32_t zero = 0, one = 1;
  ASSERT_EQ(bpf_map_update_elem(tc_on, &zero, &one, BPF_ANY), 0);
  const std::string head = Head("POST", "/pay", "tc");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(RunHead(head, 52000 + i).action, XDP_PASS);
  SegmentSpec s;
  s.src.port = 52100;
  s.seq = 4242;
  s.payload = head;
  const RunResult r = RunXdpOnNewFlow(prog_->prog_fd(), s);
  const uint32_t off = 0;
  ASSERT_EQ(bpf_map_update_elem(tc_on, &zero, &off, BPF_ANY), 0);
  close(tc_on);
  ASSERT_EQ(r.action, XDP_PASS);
  ASSERT_GT(r.frame.size(), sizeof(dlb_xdp_tc_meta));
  dlb_xdp_tc_meta meta;
  std::memcpy(&meta, r.frame.data(), sizeof meta);   // the test run returns the metadata first
  EXPECT_EQ(meta.magic, DLB_XDP_TC_MAGIC);
  EXPECT_EQ(ntohl(meta.server_seq), 4242u);
  packet::PacketView v;
  ASSERT_EQ(packet::ParseFrame(r.frame.data() + sizeof meta, r.frame.size() - sizeof meta, {}, v),
            packet::ParseResult::kTcp);
  EXPECT_EQ(v.tcp_flags, packet::tcp_flags::kFin | packet::tcp_flags::kPsh | packet::tcp_flags::kAck);
  EXPECT_EQ(v.dst_port, 52100);
  EXPECT_EQ(v.ack, 4242u + head.size());
  const std::string body(reinterpret_cast<const char*>(r.frame.data() + sizeof meta + v.payload_offset),
                         v.payload_bytes);
  EXPECT_EQ(body.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0), 0u) << body;
  EXPECT_EQ(Counter(DLB_XDP_C_tc_rejects), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_rejected), 1u);
  // The client's ACK of the 429 and FIN: dropped.
  SegmentSpec ack = s;
  ack.payload.clear();
  ack.seq = 4242 + static_cast<uint32_t>(head.size());
  ack.flags = 0x10;
  EXPECT_EQ(RunXdp(prog_->prog_fd(), BuildSegment(ack)).action, XDP_DROP);
  EXPECT_EQ(Counter(DLB_XDP_C_server_resets), 0u);   // the TC program's, not this program's
  // Its FIN: a RST back.
  ack.flags = 0x11;
  const RunResult rst = RunXdp(prog_->prog_fd(), BuildSegment(ack));
  ASSERT_EQ(rst.action, XDP_TX);
  ASSERT_EQ(packet::ParseFrame(rst.frame.data(), rst.frame.size(), {}, v), packet::ParseResult::kTcp);
  EXPECT_EQ(v.tcp_flags, packet::tcp_flags::kRst | packet::tcp_flags::kAck);
  EXPECT_EQ(v.dst_port, 52100);
}

// The TC program leaves every frame without the hand-over record alone (the kernel's
// test run of a TC program carries no XDP metadata: the hand-over itself is checked end
// to end in xdp_e2e_test).
TEST(TcProgTest, FramesWithoutTheHandOverPassUntouched) {
  TcReject tc;
  EXPECT_FALSE(tc.Attach(1, -1).ok());   // not an XDP program's fd: an error, nothing attached
  EXPECT_FALSE(tc.attached());
  dlb_tc_bpf* skel = dlb_tc_bpf__open_and_load();
  ASSERT_NE(skel, nullptr);
  const int fd = bpf_program__fd(skel->progs.dlb_tc_reject);
  SegmentSpec s;
  s.payload = Head("GET", "/", "alice");
  for (const std::vector<uint8_t>& frame : {BuildSegment(s), std::vector<uint8_t>(60, 0)}) {
    std::vector<uint8_t> out(4096);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(frame.size()),
                .data_size_out = static_cast<__u32>(out.size()), .repeat = 1);
    ASSERT_EQ(bpf_prog_test_run_opts(fd, &opts), 0);
    EXPECT_EQ(opts.retval, static_cast<__u32>(TC_ACT_OK));
    out.resize(opts.data_size_out);
    EXPECT_EQ(out, frame);
  }
  dlb_tc_bpf__destroy(skel);
}

}  // namespace
}  // namespace dlb::xdp

namespace dlb::xdp {
namespace {

// The small variant (dlb_xdp_small.bpf.o, the agent's fallback) decides as the full
// program on the key cases, and refuses by the head policies what it cannot hold.
class XdpSmallStreamTest : public XdpStreamTest {
 protected:
  XdpProgram* Program() override { return SmallProgram(); }
};

TEST_F(XdpSmallStreamTest, IsTheSmallVariant) { EXPECT_EQ(prog_->variant(), ProgramVariant::kSmall); }
TEST_F(XdpSmallStreamTest, HeadsAllowedUpToCapacityThenLimited) { ExpectAllowedUpToCapacityThenLimited(); }
TEST_F(XdpSmallStreamTest, RejectFrameReadsBackAs429WithFinAndCorrectNumbers) {
  ExpectRejectFrameReadsBackAs429WithCorrectNumbers();
}
TEST_F(XdpSmallStreamTest, BodyBytesAreNeverDecidedAsAHead) { ExpectBodyBytesAreNeverDecidedAsAHead(); }
TEST_F(XdpSmallStreamTest, HeadsSpanningPacketsAreDecidedOnTheirLastPacket) {
  ExpectHeadsSpanningPacketsAreDecidedOnTheirLastPacket();
}

// A head of 1,100 bytes in two packets: the full program decides it, the small variant
// (DLB_XDP_SMALL_SCAN_BYTES) refuses it by on_oversize_head (a RST), never passes it.
constexpr size_t kBetweenBounds = 1100;
static_assert(kBetweenBounds > DLB_XDP_SMALL_SCAN_BYTES && kBetweenBounds < DLB_XDP_SCAN_BYTES);

std::string HeadBetweenTheBounds() {
  const std::string start = "POST /pay HTTP/1.1\r\nHost: a\r\nX-User-ID: olga\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  return start + std::string(kBetweenBounds - start.size() - end.size(), 'p') + end;
}

TEST_F(XdpStreamTest, HeadsBetweenTheSmallAndTheFullBoundAreDecided) {
  const std::string head = HeadBetweenTheBounds();
  ASSERT_EQ(Send(head.substr(0, 600)).action, XDP_PASS);
  EXPECT_EQ(Send(head.substr(600)).action, XDP_PASS);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_oversize_heads), 0u);
  EXPECT_TRUE(UserKnown("olga"));
}

TEST_F(XdpSmallStreamTest, HeadsOverTheSmallBoundAreRefused) {
  const std::string head = HeadBetweenTheBounds();
  ASSERT_EQ(Send(head.substr(0, 600)).action, XDP_PASS);
  const RunResult r = Send(head.substr(600));
  EXPECT_EQ(Flags(r), packet::tcp_flags::kRst);
  EXPECT_EQ(Counter(DLB_XDP_C_oversize_heads), 1u);
  EXPECT_EQ(Counter(DLB_XDP_C_heads), 0u);
  EXPECT_FALSE(UserKnown("olga"));
  // In one packet too.
  flow_.src.port = next_port_++;
  flow_.seq = next_ = 5000;
  ASSERT_EQ(RunXdp(prog_->prog_fd(), SynOf(flow_)).action, XDP_PASS);
  EXPECT_EQ(Flags(Send(head)), packet::tcp_flags::kRst);
  EXPECT_EQ(Counter(DLB_XDP_C_oversize_heads), 2u);
}

// Under auto, a full program the kernel rejects for the verifier's limit (simulated
// here: this kernel accepts it) is replaced by the small variant, and the agent's line
// says so with the reason and the counts.
TEST(XdpVariantTest, AutoFallsBackToTheSmallVariantAndSaysSo) {
  auto p = XdpProgram::Load({.max_users = 64, .variant = ProgramVariant::kAuto, .test_reject_full = true});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)->variant(), ProgramVariant::kSmall);
  const std::string line = (*p)->FallbackLine();
  std::printf("%s\n", line.c_str());
  EXPECT_NE(line.find("rejected the full XDP program (Argument list too long: BPF program is too large. "
                      "Processed 1000001 insn (simulated: test_reject_full))"),
            std::string::npos) << line;
  EXPECT_NE(line.find("heads over 1024 bytes are refused by on_oversize_head"), std::string::npos) << line;
  EXPECT_NE(line.find("verifier instructions: dlb_xdp "), std::string::npos) << line;
  EXPECT_NE(line.find("dlb_xdp_control "), std::string::npos) << line;
  // Without the rejection, auto loads the full program and has nothing to say.
  auto full = XdpProgram::Load({.max_users = 64});
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ((*full)->variant(), ProgramVariant::kFull);
  EXPECT_EQ((*full)->FallbackLine(), "");
}

}  // namespace
}  // namespace dlb::xdp
