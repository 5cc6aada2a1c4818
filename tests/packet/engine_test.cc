#include "dlb/packet/engine.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <utility>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dlb/packet/reject.h"
#include "frames.h"

namespace dlb::packet {
namespace {

using testing::BuildSegment;
using testing::Head;
using testing::SegmentSpec;

constexpr int64_t kStartNs = 1'000'000'000;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.max_flows = 64;
    config_.reassembly_buffers = 8;
    config_.shard_users = 1000;
    RuleConfig pay;
    pay.name = "pay";
    pay.method = "POST";
    pay.path_prefix = "/pay";
    pay.bucket = {.capacity = 2, .leak_rate_per_s = 1};
    config_.rules = {pay};
    config_.default_rule.bucket = {.capacity = 3, .leak_rate_per_s = 1};
  }

  void Start() {
    auto rules = RuleSet::Compile(config_.rules, config_.default_rule);
    ASSERT_TRUE(rules.ok()) << rules.status().ToString();
    rules_ = std::make_unique<RuleSet>(std::move(rules).value());
    auto e = PacketEngine::Create(config_, *rules_, HeapAllocator::Instance(), SipKey{11, 22}, kStartNs);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
  }

  // One frame through the engine. Unless answer_ is off, the server behind it is a fast
  // one: each request a client segment forwarded is answered at once (200, two body
  // bytes), and the client's later segments acknowledge the answers, as a client's
  // would; the engine's 429 is then the next response whenever a head is limited.
  FrameResult Send(const SegmentSpec& spec) {
    SegmentSpec s = spec;
    const bool to_server = s.dst.port == kServicePort;
    const auto key = std::make_pair(s.ip_version, to_server ? s.src.port : s.dst.port);
    if (to_server && server_next_.count(key) && (s.flags & 0x10)) s.ack = server_next_[key];
    const uint64_t forwarded_before = Forwarded();
    frames_.push_back(BuildSegment(s));
    const Frame f{frames_.back().data(), static_cast<uint32_t>(frames_.back().size())};
    FrameResult r;
    engine_->ProcessBurst(&f, 1, now_, &r);
    if (answer_ && to_server && (r.verdict == Verdict::kForward || r.verdict == Verdict::kForwardPrefix)) {
      const uint32_t end = s.seq + static_cast<uint32_t>(r.verdict == Verdict::kForward ? s.payload.size() : r.forward_bytes);
      for (uint64_t n = Forwarded() - forwarded_before; n > 0; --n) Answer(s, end, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
    return r;
  }

  // A server segment carrying `payload` on the connection of client segment `client`,
  // acknowledging the client's bytes up to `client_end`.
  FrameResult Answer(const SegmentSpec& client, uint32_t client_end, const std::string& payload, uint8_t flags = 0x18) {
    const auto key = std::make_pair(client.ip_version, client.src.port);
    if (!server_next_.count(key)) server_next_[key] = client.ack;
    SegmentSpec a = client;
    std::swap(a.src, a.dst);
    a.seq = server_next_[key];
    a.ack = client_end;
    a.flags = flags;
    a.payload = payload;
    server_next_[key] += static_cast<uint32_t>(payload.size()) + ((flags & 0x01) ? 1 : 0);
    frames_.push_back(BuildSegment(a));
    const Frame f{frames_.back().data(), static_cast<uint32_t>(frames_.back().size())};
    FrameResult r;
    engine_->ProcessBurst(&f, 1, now_, &r);
    return r;
  }

  // A server segment after everything client connection `c` sent.
  template <typename C>
  FrameResult Reply(const C& c, const std::string& payload) {
    return Answer(c.base, c.next, payload);
  }

  // Heads that went to the server.
  uint64_t Forwarded() const {
    return engine_ ? C().allowed + C().shadow_limited + C().identity_missing_passed : 0;
  }

  std::vector<FrameResult> SendBurst(const std::vector<SegmentSpec>& specs) {
    std::vector<Frame> in;
    for (const auto& s : specs) frames_.push_back(BuildSegment(s));
    for (size_t i = 0; i < specs.size(); ++i) {
      const auto& b = frames_[frames_.size() - specs.size() + i];
      in.push_back({b.data(), static_cast<uint32_t>(b.size())});
    }
    std::vector<FrameResult> out(specs.size());
    engine_->ProcessBurst(in.data(), in.size(), now_, out.data());
    return out;
  }

  const EngineCounters& C() const { return engine_->counters(); }

  PacketConfig config_;
  std::unique_ptr<RuleSet> rules_;
  std::unique_ptr<PacketEngine> engine_;
  int64_t now_ = kStartNs;
  std::vector<std::vector<uint8_t>> frames_;
  static constexpr uint16_t kServicePort = 80;
  bool answer_ = true;
  std::map<std::pair<int, uint16_t>, uint32_t> server_next_;  // per connection: the server's next seq
};

// A client connection: tracks its sequence number, opens with a SYN.
struct Conn {
  SegmentSpec base;
  uint32_t next = 0;

  explicit Conn(uint16_t port, int ip_version = 4, uint32_t isn = 1000) {
    base.src.port = port;
    base.ip_version = ip_version;
    if (ip_version == 6) {
      base.src.addr = testing::V6(1);
      base.dst.addr = testing::V6(2);
    }
    base.seq = isn;
    next = isn + 1;
  }
  SegmentSpec Syn() const {
    SegmentSpec s = base;
    s.flags = 0x02;
    return s;
  }
  SegmentSpec At(uint32_t seq, std::string data, uint8_t flags = 0x18) const {
    SegmentSpec s = base;
    s.seq = seq;
    s.payload = std::move(data);
    s.flags = flags;
    return s;
  }
  SegmentSpec Data(std::string data, uint8_t flags = 0x18) {
    SegmentSpec s = At(next, data, flags);
    next += static_cast<uint32_t>(data.size());
    return s;
  }
};

TEST_F(EngineTest, AdmitsUpToCapacityThenRejects) {
  Start();
  Conn c(40001);
  EXPECT_EQ(Send(c.Syn()).verdict, Verdict::kForward);
  for (int i = 0; i < 2; ++i) {
    const FrameResult r = Send(c.Data(Head("POST", "/pay", "alice")));
    EXPECT_EQ(r.verdict, Verdict::kForward);
    EXPECT_EQ(r.heads, 1);
  }
  const uint32_t head_seq = c.next;
  const FrameResult r = Send(c.Data(Head("POST", "/pay", "alice")));
  ASSERT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.rule, 0);
  EXPECT_EQ(r.reset_seq, head_seq);
  EXPECT_FALSE(r.decision.allowed);
  EXPECT_GT(r.decision.retry_after_ns, 0);
  EXPECT_EQ(C().allowed, 2u);
  EXPECT_EQ(C().rejected, 1u);
  // The connection is closed: later segments are dropped.
  EXPECT_EQ(Send(c.Data("more")).verdict, Verdict::kDrop);
  EXPECT_EQ(C().closed_flow_segments_dropped, 1u);
}

TEST_F(EngineTest, UsersAndRulesHaveSeparateBuckets) {
  Start();
  Conn c(40002);
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "alice"))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "bob"))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(c.Data(Head("GET", "/pay", "alice"))).verdict, Verdict::kForward);  // default rule
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "alice"))).verdict, Verdict::kReject);
}

TEST_F(EngineTest, ReloadThatReordersRulesKeepsEachUsersLevelOnItsRule) {
  // Buckets never leak here: a level is exactly what was admitted.
  RuleConfig pay;
  pay.name = "pay";
  pay.method = "POST";
  pay.path_prefix = "/pay";
  pay.bucket = {.capacity = 2, .leak_rate_per_s = 0};
  RuleConfig refund = pay;
  refund.name = "refund";
  refund.path_prefix = "/refund";
  refund.bucket = {.capacity = 4, .leak_rate_per_s = 0};
  config_.rules = {pay, refund};
  Start();
  uint16_t port = 41000;
  const auto send = [&](const char* path) {
    Conn c(port++);
    Send(c.Syn());
    return Send(c.Data(Head("POST", path, "alice")));
  };
  EXPECT_EQ(send("/pay").verdict, Verdict::kForward);
  EXPECT_EQ(send("/pay").verdict, Verdict::kForward);  // pay: full (2 of 2)
  EXPECT_EQ(send("/refund").verdict, Verdict::kForward);  // refund: 1 of 4

  auto reordered = RuleSet::Compile({refund, pay}, config_.default_rule);
  ASSERT_TRUE(reordered.ok()) << reordered.status().ToString();
  const RuleSet next = std::move(reordered).value();
  engine_->SetRules(next);
  // pay, now second, is still full; refund, now first, still holds 1 of 4.
  const FrameResult limited = send("/pay");
  EXPECT_EQ(limited.verdict, Verdict::kReject);
  EXPECT_EQ(limited.rule, 1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send("/refund").verdict, Verdict::kForward) << i;
  const FrameResult refund_limited = send("/refund");
  EXPECT_EQ(refund_limited.verdict, Verdict::kReject);
  EXPECT_EQ(refund_limited.rule, 0);
  engine_->SetRules(*rules_);  // `next` goes out of scope first
}

TEST_F(EngineTest, BucketLeaksOverTime) {
  Start();
  Conn c(40003);
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) Send(c.Data(Head("POST", "/pay", "u")));
  now_ += 1'000'000'000;  // one request leaks per second
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "u"))).verdict, Verdict::kForward);
}

TEST_F(EngineTest, PureAcksAndServerTrafficAreNotTracked) {
  Start();
  Conn c(40004);
  Send(c.Syn());
  SegmentSpec ack = c.At(c.next, "", 0x10);
  EXPECT_EQ(Send(ack).verdict, Verdict::kForward);
  SegmentSpec reply = c.base;
  std::swap(reply.src, reply.dst);
  reply.payload = "HTTP/1.1 200 OK\r\n\r\n";
  EXPECT_EQ(Send(reply).verdict, Verdict::kForward);
  EXPECT_EQ(C().server_segments, 1u);
  EXPECT_EQ(C().heads, 0u);
  SegmentSpec other = c.At(c.next, Head("POST", "/pay", "x"));
  other.dst.port = 443;  // not a service port
  EXPECT_EQ(Send(other).verdict, Verdict::kForward);
  EXPECT_EQ(C().heads, 0u);
}

TEST_F(EngineTest, HeadSplitIntoOneByteSegments) {
  Start();
  Conn c(40005);
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) Send(c.Data(Head("POST", "/pay", "carol")));
  const std::string h = Head("POST", "/pay", "carol");
  const uint32_t head_seq = c.next;
  for (size_t i = 0; i + 1 < h.size(); ++i) {
    ASSERT_EQ(Send(c.Data(h.substr(i, 1))).verdict, Verdict::kForward) << i;
  }
  EXPECT_EQ(C().heads, 2u);
  const FrameResult r = Send(c.Data(h.substr(h.size() - 1)));
  EXPECT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.reset_seq, head_seq + h.size() - 1);  // the server has every byte before it
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
}

// Bytes after a gap are not forwarded before the gap is decided: they are dropped and
// taken when the client retransmits them in order.
TEST_F(EngineTest, OutOfOrderSegmentsAreDroppedUntilTheGapIsFilled) {
  Start();
  Conn c(40006);
  Send(c.Syn());
  const std::string h = Head("POST", "/pay", "dave", "X-Pad: " + std::string(100, 'p') + "\r\n");
  const uint32_t s0 = c.next;
  const size_t a = 40;
  const size_t b = 90;
  EXPECT_EQ(Send(c.At(s0 + b, h.substr(b))).verdict, Verdict::kDrop);
  EXPECT_EQ(Send(c.At(s0 + a, h.substr(a, b - a))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().out_of_order_dropped, 2u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);  // nothing held for them
  EXPECT_EQ(Send(c.At(s0, h.substr(0, a))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(c.At(s0 + a, h.substr(a, b - a))).verdict, Verdict::kForward);
  EXPECT_EQ(C().heads, 0u);
  const FrameResult r = Send(c.At(s0 + b, h.substr(b)));
  EXPECT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(C().allowed, 1u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
}

// Pipelined heads reordered: the limited head's segment arrives first. It must not
// reach the server before it is decided.
TEST_F(EngineTest, SegmentAfterAGapIsNotForwardedUndecided) {
  Start();
  Conn c(40040);
  Send(c.Syn());
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "olga"))).verdict, Verdict::kForward);
  const std::string h3 = Head("POST", "/pay", "olga");
  const std::string h4 = Head("POST", "/pay", "olga");
  const uint32_t s3 = c.next;
  const uint32_t s4 = s3 + static_cast<uint32_t>(h3.size());
  EXPECT_EQ(Send(c.At(s4, h4)).verdict, Verdict::kDrop);  // H4, ahead of H3
  EXPECT_EQ(Send(c.At(s3, h3)).verdict, Verdict::kForward);
  const FrameResult r = Send(c.At(s4, h4));  // retransmitted
  EXPECT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.reset_seq, s4);
  EXPECT_EQ(C().allowed, 2u);
  EXPECT_EQ(C().rejected, 1u);
}

// A dropped frame's bytes are not consumed: the heads before the refused one go on in a
// cut frame, and nothing the server did not get counts as passed.
TEST_F(EngineTest, PolicyDropCutsTheFrameBeforeTheRefusedHead) {
  config_.on_malformed_head = HeadPolicy::kDrop;
  Start();
  Conn c(40041);
  Send(c.Syn());
  const std::string good = Head("GET", "/", "pia");
  const std::string bad = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
  const uint32_t s0 = c.next;
  FrameResult r = Send(c.Data(good + bad));
  EXPECT_EQ(r.verdict, Verdict::kForwardPrefix);
  EXPECT_EQ(r.forward_bytes, good.size());
  // The retransmission from the refused head on is refused again, not forwarded.
  r = Send(c.At(s0 + static_cast<uint32_t>(good.size()), bad));
  EXPECT_EQ(r.verdict, Verdict::kDrop);
  EXPECT_EQ(C().heads, 1u);
}

// A retransmission that contradicts bytes of a partial head the server already holds:
// Linux may keep either copy, so the engine cannot know who the server reads. Reset.
TEST_F(EngineTest, ConflictingOverlapResetsTheFlow) {
  Start();
  Conn c(40007);
  Send(c.Syn());
  const std::string h = Head("POST", "/pay", "erin");
  const uint32_t s0 = c.next;
  const size_t id_pos = h.find("erin");
  EXPECT_EQ(Send(c.At(s0, h.substr(0, id_pos + 2))).verdict, Verdict::kForward);  // "...: er"
  std::string forged = h;
  forged[id_pos + 1] = 'v';  // "ev..."
  const FrameResult r = Send(c.At(s0, forged));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(r.reset_seq, s0 + id_pos + 2);
  EXPECT_EQ(C().conflicting_overlaps, 1u);
  EXPECT_EQ(C().heads, 0u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
}

TEST_F(EngineTest, IdenticalOverlapIsFine) {
  Start();
  Conn c(40037);
  Send(c.Syn());
  const std::string h = Head("POST", "/pay", "erin");
  const uint32_t s0 = c.next;
  Send(c.At(s0, h.substr(0, 30)));
  const FrameResult r = Send(c.At(s0, h));
  EXPECT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(C().conflicting_overlaps, 0u);
}

TEST_F(EngineTest, OverlapWithNewBytesAtTheEnd) {
  Start();
  Conn c(40008);
  Send(c.Syn());
  const std::string h = Head("GET", "/x", "fred");
  const uint32_t s0 = c.next;
  Send(c.At(s0, h.substr(0, 10)));
  // Retransmission of 0..10 plus new bytes 10..20.
  Send(c.At(s0, h.substr(0, 20)));
  EXPECT_EQ(C().retransmitted_segments, 1u);
  const FrameResult r = Send(c.At(s0 + 15, h.substr(15)));
  EXPECT_EQ(r.heads, 1);
  // A full retransmission of a decided head is not decided again.
  EXPECT_EQ(Send(c.At(s0, h)).heads, 0);
  EXPECT_EQ(C().heads, 1u);
}

TEST_F(EngineTest, PipelinedHeadsAreEachDecided) {
  Start();
  Conn c(40009);
  Send(c.Syn());
  const std::string two = Head("POST", "/pay", "gus") + Head("POST", "/pay", "gus");
  FrameResult r = Send(c.Data(two));
  EXPECT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(r.heads, 2);
  // The third head is allowed, the fourth (the pay bucket is spent) is not: the third
  // goes on in a frame cut before the fourth, which the client then retransmits alone.
  const uint32_t seg = c.next;
  const std::string allowed = Head("GET", "/", "gus");
  const std::string limited = Head("POST", "/pay", "gus");
  r = Send(c.Data(allowed + limited));
  EXPECT_EQ(r.heads, 2);
  EXPECT_EQ(r.verdict, Verdict::kForwardPrefix);
  EXPECT_EQ(r.forward_bytes, allowed.size());
  EXPECT_EQ(C().deferred_heads, 1u);
  EXPECT_EQ(C().rejected, 0u);
  // The retransmission starts at the limited head: a 429 answers it, and the server is
  // reset right after the bytes it was given.
  r = Send(c.At(seg + static_cast<uint32_t>(allowed.size()), limited));
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.reset_seq, seg + allowed.size());
  EXPECT_EQ(C().allowed, 3u);
  EXPECT_EQ(C().rejected, 1u);
}

TEST_F(EngineTest, PipelinedLimitedHeadIsForwardedOnceItsBucketLeaked) {
  config_.rules[0].action = Action::kDrop;
  Start();
  Conn c(40019);
  Send(c.Syn());
  Send(c.Data(Head("POST", "/pay", "kim") + Head("POST", "/pay", "kim")));
  const uint32_t seg = c.next;
  const std::string allowed = Head("GET", "/", "kim");
  const std::string limited = Head("POST", "/pay", "kim");
  FrameResult r = Send(c.Data(allowed + limited + allowed));
  EXPECT_EQ(r.verdict, Verdict::kForwardPrefix);
  EXPECT_EQ(r.forward_bytes, allowed.size());
  EXPECT_EQ(C().allowed, 3u);
  // One second later the pay bucket has room for one: the retransmitted rest passes,
  // and the trailing head is decided once, now.
  now_ += 1'000'000'000;
  r = Send(c.At(seg + static_cast<uint32_t>(allowed.size()), limited + allowed));
  EXPECT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(r.heads, 2);
  EXPECT_EQ(C().allowed, 5u);
  EXPECT_EQ(C().dropped, 0u);
}

TEST_F(EngineTest, ManyPipelinedHeadsInOneSegment) {
  config_.default_rule.bucket = {.capacity = 1000, .leak_rate_per_s = 1};
  Start();
  Conn c(40010);
  Send(c.Syn());
  std::string many;
  for (int i = 0; i < 150; ++i) many += "GET /" + std::to_string(i) + " HTTP/1.1\r\nX-User-ID: p\r\n\r\n";
  const FrameResult r = Send(c.Data(many));
  EXPECT_EQ(r.heads, 150);
  EXPECT_EQ(C().allowed, 150u);
}

TEST_F(EngineTest, ContentLengthBodiesAreSkipped) {
  Start();
  Conn c(40011);
  Send(c.Syn());
  // A body that looks like a request must not be counted.
  const std::string body = Head("POST", "/pay", "hank");
  const std::string head = Head("POST", "/upload", "hank", "Content-Length: " + std::to_string(body.size()) + "\r\n");
  FrameResult r = Send(c.Data(head + body.substr(0, 10)));
  EXPECT_EQ(r.heads, 1);
  r = Send(c.Data(body.substr(10) + Head("GET", "/next", "hank")));
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(C().heads, 2u);
}

TEST_F(EngineTest, OutOfOrderBodySegmentsNeedNoBuffer) {
  Start();
  Conn c(40012);
  Send(c.Syn());
  const std::string head = Head("PUT", "/f", "ivy", "Content-Length: 3000\r\n");
  Send(c.Data(head));
  const uint32_t body = c.next;
  Send(c.At(body + 1000, std::string(1000, 'b')));  // inside the body, ahead of order
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
  Send(c.At(body, std::string(1000, 'a')));
  Send(c.At(body + 2000, std::string(1000, 'c')));
  c.next = body + 3000;
  EXPECT_EQ(Send(c.Data(Head("GET", "/", "ivy"))).heads, 1);
}

TEST_F(EngineTest, ChunkedBodiesAreFollowed) {
  Start();
  Conn c(40013);
  Send(c.Syn());
  const std::string head = Head("POST", "/up", "jo", "Transfer-Encoding: chunked\r\n");
  const std::string chunks = "5\r\nGET /\r\n1a;x=y\r\n" + std::string(26, 'z') + "\r\n0\r\nTrailer: t\r\n\r\n";
  FrameResult r = Send(c.Data(head + chunks.substr(0, 7)));
  EXPECT_EQ(r.heads, 1);
  // The rest in 3-byte segments, then a request.
  for (size_t i = 7; i < chunks.size(); i += 3) Send(c.Data(chunks.substr(i, 3)));
  EXPECT_EQ(C().heads, 1u);
  r = Send(c.Data(Head("GET", "/after", "jo")));
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(C().malformed_chunked, 0u);
}

TEST_F(EngineTest, MalformedChunkedBodyFollowsPolicy) {
  Start();
  Conn c(40014);
  Send(c.Syn());
  Send(c.Data(Head("POST", "/up", "k", "Transfer-Encoding: chunked\r\n")));
  const FrameResult r = Send(c.Data("zz\r\n"));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(C().malformed_chunked, 1u);
}

TEST_F(EngineTest, Ipv6AndVlanTagsWork) {
  Start();
  Conn c(40015, 6);
  c.base.vlans = {10, 20};
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "v6"))).verdict, Verdict::kForward);
  const FrameResult r = Send(c.Data(Head("POST", "/pay", "v6")));
  EXPECT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.view.vlan_count, 2);
  EXPECT_EQ(r.view.ip_version, 6);
}

// Once /pay is limited, every spelling a normalizing server (nginx) routes to /pay is
// limited too: they share the rule and the bucket.
TEST_F(EngineTest, PathSpellingsShareTheLimitedRule) {
  Start();
  Conn c(40040);
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "eve"))).verdict, Verdict::kForward);
  uint16_t port = 40100;
  for (const char* p : {"/pay", "//pay", "/%70ay", "/./pay", "/x/../pay", "/pay?x", "http://h/pay",
                        "/%2e%2e/pay", "/x%2F..%2Fpay"}) {
    Conn d(port++);  // a rejected connection is closed: one per spelling
    Send(d.Syn());
    const FrameResult r = Send(d.Data(Head("POST", p, "eve")));
    EXPECT_EQ(r.verdict, Verdict::kReject) << p;
    EXPECT_EQ(r.rule, 0) << p;
  }
  // Not /pay: the default rule's bucket.
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay/..", "eve"))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(c.Data(Head("POST", "/PAY", "eve"))).verdict, Verdict::kForward);
}

TEST_F(EngineTest, CaseFoldingRuleLimitsEveryCase) {
  config_.rules[0].fold_case = true;
  Start();
  Conn c(40042);
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "eve"))).verdict, Verdict::kForward);
  Conn d(40043);
  Send(d.Syn());
  EXPECT_EQ(Send(d.Data(Head("POST", "/PAY", "eve"))).verdict, Verdict::kReject);
}

// A target the rules cannot normalize is malformed: refused by the policy (reset).
TEST_F(EngineTest, UnnormalizablePathIsMalformed) {
  Start();
  Conn c(40044);
  Send(c.Syn());
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay%zz", "eve"))).verdict, Verdict::kReset);
}

// A head refused without a bucket (no identity under limit, a full table under limit)
// is told to retry after one emission interval rounded up to whole seconds
// (dlb/retry_after.h), the same value the XDP agent writes for the program.
TEST_F(EngineTest, NoBucketRetryAfterIsOneIntervalInWholeSeconds) {
  config_.on_missing_identity = MissingIdentityPolicy::kLimit;
  config_.default_rule.bucket = {.capacity = 3, .leak_rate_per_s = 0.004};  // T = 250 s
  config_.default_rule.on_table_full = OverflowPolicy::kLimit;
  config_.shard_users = 5;  // 8 entries
  Start();
  Conn a(40050);
  Send(a.Syn());
  FrameResult r = Send(a.Data(Head("GET", "/", "")));
  ASSERT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.decision.retry_after_ns, 250'000'000'000);
  Conn b(40051);
  Send(b.Syn());
  for (int u = 0; u < 8; ++u) Send(b.Data(Head("GET", "/", "user" + std::to_string(u))));
  Conn d(40052);
  Send(d.Syn());
  r = Send(d.Data(Head("GET", "/", "newcomer")));
  ASSERT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(C().shard_table_full_limited, 1u);
  EXPECT_EQ(r.decision.retry_after_ns, 250'000'000'000);

  config_.default_rule.bucket = {.capacity = 3, .leak_rate_per_s = 1000};  // T = 1 ms: 1 s
  Start();
  Conn e(40053);
  Send(e.Syn());
  r = Send(e.Data(Head("GET", "/", "")));
  ASSERT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.decision.retry_after_ns, 1'000'000'000);
}

// Behind a terminator every connection comes from its address: with trusted_proxies
// the client is the one X-Forwarded-For names, keyed as a direct client would be.
TEST_F(EngineTest, TrustedProxyNamesTheClientInForwardedFor) {
  config_.trusted_proxies = 1;
  Start();
  auto head = [](const std::string& xff) {
    return "POST /pay HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: " + xff + "\r\n\r\n";
  };
  Conn a(40060);
  Send(a.Syn());
  // Two clients behind one terminator address: separate buckets.
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(a.Data(head("192.0.2.1"))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(a.Data(head("192.0.2.2"))).verdict, Verdict::kForward);
  // What the client wrote left of the trusted hop does not move it to another bucket.
  Conn b(40061);
  Send(b.Syn());
  EXPECT_EQ(Send(b.Data(head("203.0.113.5, 192.0.2.1"))).verdict, Verdict::kReject);
  EXPECT_EQ(C().identity_source_ip, 4u);
  // No client address: limited, with the no-bucket Retry-After.
  Conn c(40062);
  Send(c.Syn());
  const FrameResult r = Send(c.Data(Head("POST", "/pay", "")));
  EXPECT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(C().identity_no_client_address, 1u);
  EXPECT_EQ(r.decision.retry_after_ns, 1'000'000'000);
}

TEST_F(EngineTest, MissingIdentityUsesSourceAddress) {
  Start();
  Conn a(40016);
  Send(a.Syn());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(a.Data(Head("POST", "/pay", ""))).verdict, Verdict::kForward);
  // Another connection from the same address shares the bucket.
  Conn b(40017);
  Send(b.Syn());
  EXPECT_EQ(Send(b.Data(Head("POST", "/pay", ""))).verdict, Verdict::kReject);
  // Another address does not.
  Conn d(40018);
  d.base.src.addr = {10, 0, 0, 9};
  Send(d.Syn());
  EXPECT_EQ(Send(d.Data(Head("POST", "/pay", ""))).verdict, Verdict::kForward);
  EXPECT_EQ(C().identity_source_ip, 4u);
}

TEST_F(EngineTest, MissingIdentityLimitAndPassPolicies) {
  config_.on_missing_identity = MissingIdentityPolicy::kLimit;
  Start();
  Conn a(40019);
  Send(a.Syn());
  FrameResult r = Send(a.Data(Head("GET", "/", "")));
  EXPECT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(C().identity_missing_limited, 1u);

  config_.on_missing_identity = MissingIdentityPolicy::kPass;
  Start();
  Conn b(40020);
  Send(b.Syn());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Send(b.Data(Head("GET", "/", ""))).verdict, Verdict::kForward);
  EXPECT_EQ(C().identity_missing_passed, 10u);
}

TEST_F(EngineTest, DropActionDropsAndRedecidesTheRetransmission) {
  config_.rules[0].action = Action::kDrop;
  Start();
  Conn c(40021);
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) Send(c.Data(Head("POST", "/pay", "lu")));
  // A head split over two segments; the second completes it and is dropped.
  const std::string h = Head("POST", "/pay", "lu");
  const uint32_t s0 = c.next;
  EXPECT_EQ(Send(c.At(s0, h.substr(0, 20))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(c.At(s0 + 20, h.substr(20))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().dropped, 1u);
  // The client retransmits the dropped segment: decided again (still limited).
  EXPECT_EQ(Send(c.At(s0 + 20, h.substr(20))).verdict, Verdict::kDrop);
  // After the bucket leaks, the same retransmission passes, once.
  now_ += 1'000'000'000;
  FrameResult r = Send(c.At(s0 + 20, h.substr(20)));
  EXPECT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(Send(c.At(s0 + 20, h.substr(20))).heads, 0);
  EXPECT_EQ(C().dropped, 2u);
}

TEST_F(EngineTest, ShadowActionOnlyCounts) {
  config_.rules[0].action = Action::kShadow;
  Start();
  Conn c(40022);
  Send(c.Syn());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "m"))).verdict, Verdict::kForward);
  EXPECT_EQ(C().shadow_limited, 3u);
  EXPECT_EQ(C().allowed, 2u);
}

TEST_F(EngineTest, NotHttpFlowIsLeftAlone) {
  Start();
  Conn c(40023);
  Send(c.Syn());
  EXPECT_EQ(Send(c.Data("\x16\x03\x01\x02\x00")).verdict, Verdict::kForward);
  EXPECT_EQ(C().not_http, 1u);
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "n"))).heads, 0);
}

TEST_F(EngineTest, MalformedAndOversizeHeadsFollowPolicy) {
  config_.max_head_bytes = 256;
  Start();
  Conn c(40024);
  Send(c.Syn());
  FrameResult r = Send(c.Data("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(C().malformed_head[static_cast<int>(HeadResult::kDuplicateHost)], 1u);
  Conn d(40025);
  Send(d.Syn());
  r = Send(d.Data(Head("GET", "/", "o", "X-Pad: " + std::string(300, 'x') + "\r\n")));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(C().oversize_heads, 1u);
  // Oversize across segments too.
  Conn e(40026);
  Send(e.Syn());
  Send(e.Data("GET / HTTP/1.1\r\nX-Pad: " + std::string(150, 'x')));
  r = Send(e.Data(std::string(150, 'y')));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(C().oversize_heads, 2u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
}

TEST_F(EngineTest, FinAndRstFreeTheFlow) {
  Start();
  Conn c(40027);
  Send(c.Syn());
  EXPECT_EQ(engine_->active_flows(), 1u);
  const SegmentSpec last = c.Data(Head("GET", "/", "p"), 0x19);  // PSH|ACK|FIN
  Send(last);
  EXPECT_EQ(C().flows_closed, 1u);
  Send(last);  // retransmitted: not a new connection, not decided again
  EXPECT_EQ(C().heads, 1u);
  EXPECT_EQ(C().untracked_segments_reset, 0u);
  Send(c.At(c.next + 1, "", 0x04));  // the client's RST ends the lingering slot
  EXPECT_EQ(engine_->active_flows(), 0u);
  Conn d(40028);
  Send(d.Syn());
  Send(d.Data("GET / HT"));
  EXPECT_EQ(engine_->free_reassembly_buffers(), 7u);
  SegmentSpec rst = d.At(d.next, "", 0x04);
  Send(rst);
  EXPECT_EQ(engine_->active_flows(), 0u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
  // A server RST ends a flow too.
  Conn e(40029);
  Send(e.Syn());
  SegmentSpec srst = e.base;
  std::swap(srst.src, srst.dst);
  srst.flags = 0x04;
  Send(srst);
  EXPECT_EQ(engine_->active_flows(), 0u);
}

TEST_F(EngineTest, IdleFlowsExpire) {
  config_.max_flows = 1;  // 16 slots; one probe window of 8 covers the flows below
  config_.flow_idle_timeout_ns = 5'000'000'000;
  Start();
  for (uint16_t p = 0; p < 16; ++p) {
    Conn c(static_cast<uint16_t>(41000 + p));
    Send(c.Syn());
  }
  const uint64_t full_before = C().flow_table_full;
  EXPECT_GT(full_before, 0u);
  now_ += 6'000'000'000;
  Conn late(42000);
  Send(late.Syn());
  EXPECT_EQ(C().flow_table_full, full_before);
  EXPECT_GT(C().flows_expired, 0u);
}

// No flow slot: the SYN is dropped (the client retries it), and data of a connection
// whose start was not seen is refused, never decided from what one segment shows.
TEST_F(EngineTest, FullFlowTableDropsSynsAndRefusesUntrackedData) {
  config_.max_flows = 1;
  Start();
  int dropped_syn_port = -1;
  for (uint16_t p = 0; p < 40; ++p) {
    Conn c(static_cast<uint16_t>(43000 + p));
    if (Send(c.Syn()).verdict == Verdict::kDrop && dropped_syn_port < 0) dropped_syn_port = 43000 + p;
  }
  ASSERT_GT(C().flow_table_full_syns_dropped, 0u);
  ASSERT_GE(dropped_syn_port, 0);
  Conn c(static_cast<uint16_t>(dropped_syn_port));
  // A body segment that reads like a victim's head must not charge the victim.
  const FrameResult r = Send(c.Data(Head("POST", "/pay", "victim")));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(r.heads, 0);
  EXPECT_EQ(C().untracked_segments_reset, 1u);
  EXPECT_EQ(C().heads, 0u);
}

TEST_F(EngineTest, FullShardFollowsOverflowPolicy) {
  config_.shard_users = 5;  // 8 entries
  config_.default_rule.bucket = {.capacity = 5, .leak_rate_per_s = 0.001};
  Start();
  Conn c(40030);
  Send(c.Syn());
  for (int u = 0; u < 8; ++u) EXPECT_EQ(Send(c.Data(Head("GET", "/", "user" + std::to_string(u)))).verdict, Verdict::kForward);
  // No free entry: by default the rule's limit applies (fail closed), counted.
  EXPECT_EQ(Send(c.Data(Head("GET", "/", "newcomer"))).verdict, Verdict::kReject);
  EXPECT_EQ(C().shard_table_full_limited, 1u);
  // Existing users still have their buckets.
  EXPECT_EQ(engine_->shard().CountUsed(), 8u);

  config_.default_rule.on_table_full = OverflowPolicy::kAllow;
  Start();
  Conn d(40031);
  Send(d.Syn());
  for (int u = 0; u < 8; ++u) Send(d.Data(Head("GET", "/", "user" + std::to_string(u))));
  EXPECT_EQ(Send(d.Data(Head("GET", "/", "newcomer"))).verdict, Verdict::kForward);
  EXPECT_EQ(C().shard_table_full_allowed, 1u);
}

TEST_F(EngineTest, SameFlowTwiceInOneBurst) {
  Start();
  Conn c(40032);
  Send(c.Syn());
  std::vector<SegmentSpec> burst;
  for (int i = 0; i < 4; ++i) burst.push_back(c.Data(Head("POST", "/pay", "r")));
  const auto out = SendBurst(burst);
  EXPECT_EQ(out[0].verdict, Verdict::kForward);
  EXPECT_EQ(out[1].verdict, Verdict::kForward);
  // The server has not answered the first two yet: the third head is held back, and
  // the fourth is behind the gap it leaves.
  EXPECT_EQ(out[2].verdict, Verdict::kDrop);
  EXPECT_EQ(C().rejects_deferred, 1u);
  EXPECT_EQ(out[3].verdict, Verdict::kDrop);
  Answer(burst[1], burst[2].seq, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  Answer(burst[1], burst[2].seq, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(Send(burst[2]).verdict, Verdict::kReject);  // now the next response
  EXPECT_EQ(Send(burst[3]).verdict, Verdict::kDrop);    // the flow is closed by then
}

TEST_F(EngineTest, FinThenRetransmissionInOneBurst) {
  Start();
  Conn c(40035);
  Send(c.Syn());
  const SegmentSpec last = c.Data(Head("GET", "/", "t"), 0x19);
  const auto out = SendBurst({last, last, last});
  EXPECT_EQ(out[0].heads, 1);
  EXPECT_EQ(C().heads, 1u);  // the copies after the FIN do not count the head again
  EXPECT_EQ(C().flows_closed, 1u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
}

// No SYN seen (the engine started mid-connection): where heads start is unknown, and a
// body segment that starts with a request line is not a head.
TEST_F(EngineTest, MidStreamFlowIsRefused) {
  Start();
  Conn c(40033);
  EXPECT_EQ(Send(c.Data("tail of a body")).verdict, Verdict::kReset);
  const FrameResult r = Send(c.Data(Head("POST", "/pay", "victim")));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(r.heads, 0);
  EXPECT_EQ(C().untracked_segments_reset, 2u);
  EXPECT_EQ(engine_->active_flows(), 0u);
  // The victim's bucket is untouched.
  Conn v(40038);
  Send(v.Syn());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(v.Data(Head("POST", "/pay", "victim"))).verdict, Verdict::kForward);

  config_.on_untracked_flow = HeadPolicy::kDrop;
  Start();
  Conn d(40039);
  EXPECT_EQ(Send(d.Data(Head("POST", "/pay", "victim"))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().untracked_segments_dropped, 1u);
  EXPECT_EQ(C().heads, 0u);
}

TEST_F(EngineTest, FragmentsAndMalformedFramesFollowPolicy) {
  Start();
  Conn c(40034);
  auto process = [&](const std::vector<uint8_t>& f) {
    const Frame in{f.data(), static_cast<uint32_t>(f.size())};
    FrameResult r;
    engine_->ProcessBurst(&in, 1, now_, &r);
    return r;
  };
  // Defaults: dropped where they may carry a service's bytes.
  auto frag = BuildSegment(c.Data("x"));
  frag[14 + 6] = 0x20;  // MF
  EXPECT_EQ(process(frag).verdict, Verdict::kDrop);
  EXPECT_EQ(C().fragments_dropped, 1u);
  auto truncated = frag;
  truncated.resize(20);
  EXPECT_EQ(process(truncated).verdict, Verdict::kDrop);
  EXPECT_EQ(C().parse[static_cast<int>(ParseResult::kTruncatedIpv4)], 1u);
  // A TCP option overrunning the header (Linux keeps the payload): a head not decided
  // must not pass.
  SegmentSpec bad_opt = c.Data(Head("POST", "/pay", "x"));
  bad_opt.tcp_options = {1, 1, 8, 0xff};
  EXPECT_EQ(process(BuildSegment(bad_opt)).verdict, Verdict::kDrop);
  EXPECT_EQ(C().malformed_frames_dropped, 2u);
  // Other ports are not the engine's business.
  SegmentSpec other = bad_opt;
  other.dst.port = 443;
  EXPECT_EQ(process(BuildSegment(other)).verdict, Verdict::kForward);
  auto other_frag = BuildSegment(other);
  other_frag[14 + 6] = 0x20;
  EXPECT_EQ(process(other_frag).verdict, Verdict::kForward);

  config_.on_fragment = FramePolicy::kForward;
  config_.on_malformed_frame = FramePolicy::kForward;
  Start();
  EXPECT_EQ(process(frag).verdict, Verdict::kForward);
  EXPECT_EQ(process(BuildSegment(bad_opt)).verdict, Verdict::kForward);
  EXPECT_EQ(C().fragments_dropped + C().malformed_frames_dropped, 0u);
}

// Random segmentations and orders of one stream of requests give the same decisions
// as delivering it whole, with the client retransmitting what was dropped (as TCP does).
TEST_F(EngineTest, RandomSegmentationGivesTheSameDecisions) {
  config_.default_rule.bucket = {.capacity = 1000, .leak_rate_per_s = 1};
  config_.reassembly_buffers = 64;
  std::mt19937 rng(2024);
  std::string stream;
  int expected = 0;
  for (int i = 0; i < 30; ++i) {
    const std::string body(rng() % 50, 'b');
    stream += Head(i % 2 ? "POST" : "GET", "/r" + std::to_string(i), "user" + std::to_string(i % 3),
                   body.empty() ? "" : "Content-Length: " + std::to_string(body.size()) + "\r\n");
    stream += body;
    ++expected;
  }
  for (int trial = 0; trial < 30; ++trial) {
    Start();
    Conn c(static_cast<uint16_t>(44000 + trial));
    Send(c.Syn());
    // Cut into pieces of 1..120 bytes, then shuffle within windows of 4 pieces, and
    // retransmit some pieces.
    std::vector<std::pair<uint32_t, std::string>> pieces;
    for (size_t pos = 0; pos < stream.size();) {
      const size_t n = std::min<size_t>(stream.size() - pos, 1 + rng() % 120);
      pieces.push_back({c.next + static_cast<uint32_t>(pos), stream.substr(pos, n)});
      pos += n;
    }
    for (size_t w = 0; w < pieces.size(); w += 4) {
      std::shuffle(pieces.begin() + w, pieces.begin() + std::min(pieces.size(), w + 4), rng);
    }
    // Rounds: what a round dropped is sent again in the next, in its order.
    for (int round = 0; !pieces.empty(); ++round) {
      ASSERT_LT(round, 200) << trial;
      std::vector<std::pair<uint32_t, std::string>> again;
      for (const auto& piece : pieces) {
        const Verdict v = Send(c.At(piece.first, piece.second)).verdict;
        ASSERT_NE(v, Verdict::kReset) << trial;
        ASSERT_NE(v, Verdict::kForwardPrefix) << trial;
        if (v == Verdict::kDrop) again.push_back(piece);
        if (rng() % 5 == 0) Send(c.At(piece.first, piece.second));  // a duplicate
      }
      pieces = std::move(again);
    }
    EXPECT_EQ(C().heads, static_cast<uint64_t>(expected)) << trial;
    EXPECT_EQ(C().allowed, static_cast<uint64_t>(expected)) << trial;
    EXPECT_EQ(engine_->free_reassembly_buffers(), 64u) << trial;
  }
}

// A segment that continues a held partial head and is larger than the buffer's room:
// the held head ends in it, and every head after it is decided too (one crossing the
// buffer's end included), the last partial one held again.
TEST_F(EngineTest, SegmentLargerThanTheBufferRoomAfterAPartialHead) {
  config_.max_head_bytes = 256;
  config_.default_rule.bucket = {.capacity = 100, .leak_rate_per_s = 1};
  Start();
  Conn c(40080);
  Send(c.Syn());
  const std::string first = Head("GET", "/a", "kai", "X-Pad: " + std::string(60, 'p') + "\r\n");
  Send(c.Data(first.substr(0, 40)));
  ASSERT_EQ(engine_->free_reassembly_buffers(), 7u);
  std::string rest = first.substr(40);
  for (int i = 0; i < 8; ++i) rest += Head("GET", "/b" + std::to_string(i), "kai");
  const std::string last = Head("POST", "/pay", "kai");
  rest += last.substr(0, 25);
  ASSERT_GT(rest.size(), 256u);
  FrameResult r = Send(c.Data(rest));
  EXPECT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(r.heads, 9);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 7u);
  r = Send(c.Data(last.substr(25)));
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(C().allowed, 10u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
}

// The same with the held head limited under `drop`: decided before the buffer moves on,
// the segment is dropped and the held bytes stay, so that the retransmission is decided
// again, whole.
TEST_F(EngineTest, LimitedHeldHeadInASegmentLargerThanTheBufferRoom) {
  config_.max_head_bytes = 256;
  config_.rules[0].action = Action::kDrop;
  config_.default_rule.bucket = {.capacity = 100, .leak_rate_per_s = 1};
  Start();
  Conn c(40081);
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) Send(c.Data(Head("POST", "/pay", "lea")));
  const std::string held = Head("POST", "/pay", "lea", "X-Pad: " + std::string(60, 'p') + "\r\n");
  Send(c.Data(held.substr(0, 40)));
  std::string rest = held.substr(40);
  for (int i = 0; i < 8; ++i) rest += Head("GET", "/b" + std::to_string(i), "lea");
  rest += Head("GET", "/c", "lea").substr(0, 20);
  const uint32_t seg = c.next;
  FrameResult r = Send(c.At(seg, rest));
  EXPECT_EQ(r.verdict, Verdict::kDrop);
  EXPECT_EQ(C().dropped, 1u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 7u);
  now_ += 1'000'000'000;
  r = Send(c.At(seg, rest));
  EXPECT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(r.heads, 9);
  EXPECT_EQ(C().allowed, 2u + 9u);
}

// --- TCP control segments act only in window (RFC 5961, as Linux) -------------------

TEST_F(EngineTest, SynOnLiveFlowDoesNotResetItsSequence) {
  Start();
  Conn c(40050);
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "sam"))).verdict, Verdict::kForward);
  SegmentSpec syn = c.Syn();
  syn.seq = c.next + (1u << 30);
  EXPECT_EQ(Send(syn).verdict, Verdict::kForward);  // the server answers a challenge ACK
  EXPECT_EQ(C().syns_ignored, 1u);
  const FrameResult r = Send(c.Data(Head("POST", "/pay", "sam")));
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(r.verdict, Verdict::kReject);
}

TEST_F(EngineTest, FinOutOfWindowDoesNotEndTheFlow) {
  Start();
  Conn c(40051);
  Send(c.Syn());
  EXPECT_EQ(Send(c.At(c.next + (1u << 28), "", 0x11)).verdict, Verdict::kForward);  // FIN|ACK
  EXPECT_EQ(C().fins_ignored, 1u);
  EXPECT_EQ(C().flows_closed, 0u);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "tom"))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "tom"))).verdict, Verdict::kReject);
  EXPECT_EQ(C().heads, 3u);
}

TEST_F(EngineTest, FinAheadOfAGapDoesNotEndTheFlow) {
  Start();
  Conn c(40052);
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) Send(c.Data(Head("POST", "/pay", "uma")));
  const std::string h = Head("POST", "/pay", "uma");
  // The FIN comes right after the (missing) third head.
  EXPECT_EQ(Send(c.At(c.next + static_cast<uint32_t>(h.size()), "", 0x11)).verdict, Verdict::kForward);
  EXPECT_EQ(C().fins_ignored, 1u);
  EXPECT_EQ(Send(c.Data(h)).verdict, Verdict::kReject);
}

TEST_F(EngineTest, FinInOrderAfterAPartialHeadEndsTheFlow) {
  Start();
  Conn c(40053);
  Send(c.Syn());
  Send(c.Data("POST /pay HTTP/1.1\r\nX-Us"));
  EXPECT_EQ(engine_->free_reassembly_buffers(), 7u);
  Send(c.At(c.next, "", 0x11));
  EXPECT_EQ(C().flows_closed, 1u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
  // Bytes after the FIN: Linux discards them; never forwarded.
  EXPECT_EQ(Send(c.At(c.next + 1, Head("POST", "/pay", "x"))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().data_after_fin_dropped, 1u);
}

// An RST that is not at the server's next expected byte changes nothing; the heads
// after it, including those that begin with an empty line (RFC 9112, 2.2), are decided,
// and a limited one that starts its segment gets its 429 directly.
TEST_F(EngineTest, RstOutOfWindowDoesNotEraseTheFlow) {
  Start();
  Conn c(40054);
  Send(c.Syn());
  EXPECT_EQ(Send(c.At(c.next + 12345, "", 0x04)).verdict, Verdict::kForward);
  EXPECT_EQ(C().rsts_ignored, 1u);
  EXPECT_EQ(engine_->active_flows(), 1u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Send(c.Data("\r\n" + Head("POST", "/pay", "vic"))).verdict, Verdict::kForward);
  }
  const uint32_t seg = c.next;
  const FrameResult r = Send(c.Data("\r\n" + Head("POST", "/pay", "vic")));
  EXPECT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.reset_seq, seg);
  EXPECT_EQ(C().heads, 3u);
  EXPECT_EQ(C().deferred_heads, 0u);
}

TEST_F(EngineTest, RstInWindowEndsTheFlow) {
  Start();
  Conn c(40055);
  Send(c.Syn());
  Send(c.Data(Head("GET", "/", "w")));
  Send(c.Data("GET / HT"));
  // The server holds the partial head: its next expected byte is past it.
  EXPECT_EQ(Send(c.At(c.next - 8, "", 0x04)).verdict, Verdict::kForward);
  EXPECT_EQ(engine_->active_flows(), 1u);
  Send(c.At(c.next, "", 0x04));
  EXPECT_EQ(engine_->active_flows(), 0u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), 8u);
}

TEST_F(EngineTest, NewConnectionOnAFinishedFlowStartsOver) {
  Start();
  Conn c(40056);
  Send(c.Syn());
  Send(c.Data(Head("POST", "/pay", "yan"), 0x19));
  Conn again(40056, 4, 900000);
  Send(again.Syn());
  EXPECT_EQ(C().syns_ignored, 0u);
  EXPECT_EQ(Send(again.Data(Head("POST", "/pay", "yan"))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(again.Data(Head("POST", "/pay", "yan"))).verdict, Verdict::kReject);
}

// --- exhaustion refuses --------------------------------------------------------------

TEST_F(EngineTest, ExhaustedBuffersDropSplitHeadsNeverForwardThem) {
  config_.reassembly_buffers = 2;
  Start();
  for (uint16_t p = 0; p < 2; ++p) {
    Conn s(static_cast<uint16_t>(40060 + p));
    Send(s.Syn());
    Send(s.Data("POST /pay HTTP/1.1\r\nX-Pad: "));
  }
  ASSERT_EQ(engine_->free_reassembly_buffers(), 0u);
  Conn c(40062);
  Send(c.Syn());
  const std::string h = Head("POST", "/pay", "zed");
  const uint32_t s0 = c.next;
  EXPECT_EQ(Send(c.At(s0, h.substr(0, 20))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().reassembly_buffers_exhausted, 1u);
  // The rest alone is not a head either: it waits for the start (dropped, a gap).
  EXPECT_EQ(Send(c.At(s0 + 20, h.substr(20))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().heads, 0u);
  // A whole head needs no buffer.
  EXPECT_EQ(Send(c.At(s0, h)).heads, 1);
}

TEST_F(EngineTest, StalledPartialHeadsLoseTheirBuffersAndAreReset) {
  config_.reassembly_buffers = 2;
  config_.partial_head_timeout_ns = 5'000'000'000;
  Start();
  std::vector<Conn> stalled;
  for (uint16_t p = 0; p < 2; ++p) {
    stalled.emplace_back(static_cast<uint16_t>(40063 + p));
    Send(stalled.back().Syn());
    Send(stalled.back().Data("POST /pay HTTP/1.1\r\nX-Pad: "));
  }
  now_ += 4'000'000'000;  // not yet stalled long enough
  Conn c(40065);
  Send(c.Syn());
  const std::string h = Head("POST", "/pay", "amy");
  EXPECT_EQ(Send(c.Data(h.substr(0, 20))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().stalled_heads_reclaimed, 0u);
  now_ += 2'000'000'000;
  c.next -= 20;
  EXPECT_EQ(Send(c.Data(h.substr(0, 20))).verdict, Verdict::kForward);
  EXPECT_EQ(C().stalled_heads_reclaimed, 2u);
  EXPECT_EQ(Send(c.Data(h.substr(20))).heads, 1);
  // A stalled connection that goes on is refused: its head's start is gone.
  const uint32_t pos = stalled[0].next;
  const FrameResult r = Send(stalled[0].Data("a\r\nX-User-ID: amy\r\n\r\n"));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(r.reset_seq, pos);
  EXPECT_EQ(C().stalled_heads_reset, 1u);
  EXPECT_EQ(C().heads, 1u);
}

// --- passthrough only when the server agrees ----------------------------------------

SegmentSpec ServerReply(const Conn& c, std::string payload) {
  SegmentSpec s = c.base;
  std::swap(s.src, s.dst);
  s.seq = 7000;
  s.payload = std::move(payload);
  return s;
}

TEST_F(EngineTest, RefusedConnectStaysHttp) {
  Start();
  answer_ = false;  // the server's answers are the test's
  Conn c(40070);
  Send(c.Syn());
  EXPECT_EQ(Send(c.Data("CONNECT pay.example:443 HTTP/1.1\r\nHost: pay.example:443\r\nX-User-ID: bo\r\n\r\n")).verdict,
            Verdict::kForward);
  // Before the server answers, what follows is held back.
  const uint32_t held = c.next;
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "bo"))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().switch_held_segments, 1u);
  Reply(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(C().protocol_switches_refused, 1u);
  c.next = held;
  answer_ = true;
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "bo"))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "bo"))).verdict, Verdict::kReject);
}

TEST_F(EngineTest, AcceptedConnectBecomesATunnel) {
  Start();
  answer_ = false;
  Conn c(40071);
  Send(c.Syn());
  // Bytes after the CONNECT head in its own segment wait too: the frame is cut.
  const std::string connect = "CONNECT pay.example:443 HTTP/1.1\r\nHost: pay.example:443\r\nX-User-ID: cy\r\n\r\n";
  FrameResult r = Send(c.Data(connect + "\x16\x03\x01"));
  EXPECT_EQ(r.verdict, Verdict::kForwardPrefix);
  EXPECT_EQ(r.forward_bytes, connect.size());
  c.next -= 3;
  Reply(c, "HTTP/1.1 100 Continue\r\n\r\n");  // interim: still waiting
  EXPECT_EQ(Send(c.At(c.next, "\x16\x03\x01")).verdict, Verdict::kDrop);
  Reply(c, "HTTP/1.1 200 Connection Established\r\n\r\n");
  EXPECT_EQ(C().protocol_switches, 1u);
  EXPECT_EQ(Send(c.Data("\x16\x03\x01")).verdict, Verdict::kForward);
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "cy"))).heads, 0);  // inside the tunnel
}

TEST_F(EngineTest, UpgradeSwitchesOnlyOn101) {
  Start();
  answer_ = false;
  Conn c(40072);
  Send(c.Syn());
  Send(c.Data(Head("GET", "/ws", "di", "Connection: Upgrade\r\nupgrade: websocket\r\n")));
  Reply(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");  // upgrade ignored
  EXPECT_EQ(C().protocol_switches_refused, 1u);
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "di"))).heads, 1);

  Conn d(40073);
  Send(d.Syn());
  Send(d.Data(Head("GET", "/ws", "di", "Connection: Upgrade\r\nUpgrade: websocket\r\n")));
  Reply(d, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_EQ(C().protocol_switches, 1u);
  EXPECT_EQ(Send(d.Data("\x81\x85" "abcd")).verdict, Verdict::kForward);
}

// With the port of arrival known, a client cannot pass a segment off as the server's:
// neither a status line that would open a tunnel nor an RST that would end the flow.
TEST_F(EngineTest, ClientCannotSpeakForTheServer) {
  Start();
  Conn c(40075);
  auto from_client = [&](const SegmentSpec& s) {
    frames_.push_back(BuildSegment(s));
    const Frame f{frames_.back().data(), static_cast<uint32_t>(frames_.back().size())};
    FrameResult r;
    engine_->ProcessBurst(&f, 1, now_, &r, Arrival::kClientPort);
    return r;
  };
  from_client(c.Syn());
  from_client(c.Data("CONNECT pay.example:443 HTTP/1.1\r\nHost: pay.example:443\r\nX-User-ID: fay\r\n\r\n"));
  EXPECT_EQ(from_client(ServerReply(c, "HTTP/1.1 200 Connection Established\r\n\r\n")).verdict, Verdict::kForward);
  SegmentSpec rst = ServerReply(c, "");
  rst.flags = 0x04;
  from_client(rst);
  EXPECT_EQ(C().protocol_switches, 0u);
  EXPECT_EQ(engine_->active_flows(), 1u);
  EXPECT_EQ(from_client(c.Data(Head("POST", "/pay", "fay"))).verdict, Verdict::kDrop);  // still held
  // The server's own answer, from its side, does count.
  frames_.push_back(BuildSegment(ServerReply(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")));
  const Frame f{frames_.back().data(), static_cast<uint32_t>(frames_.back().size())};
  FrameResult r;
  engine_->ProcessBurst(&f, 1, now_, &r, Arrival::kServerPort);
  EXPECT_EQ(C().protocol_switches_refused, 1u);
}

// on_not_http: forward is for connections that never were HTTP; after a request,
// bytes that are not a request are a desync and are refused.
TEST_F(EngineTest, NotHttpAfterARequestIsADesync) {
  Start();
  Conn c(40074);
  Send(c.Syn());
  EXPECT_EQ(Send(c.Data(Head("GET", "/", "ed"))).verdict, Verdict::kForward);
  const FrameResult r = Send(c.Data("\x16\x03\x01\x02\x00"));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(C().desync_resets, 1u);
  EXPECT_EQ(Send(c.Data(Head("POST", "/pay", "ed"))).verdict, Verdict::kDrop);  // closed
}

// A reject verdict turned into frames with the builders, read back independently of
// the engine's parser: the 429 acknowledges the whole segment at the client's expected
// sequence number, the RST lands on the server's next expected byte.
TEST_F(EngineTest, RejectVerdictBuildsConsistentFrames) {
  Start();
  Conn c(40036, 6);
  c.base.vlans = {300};
  c.base.ack = 0x7fff0000;
  Send(c.Syn());
  for (int i = 0; i < 2; ++i) Send(c.Data(Head("POST", "/pay", "w")));
  const uint32_t seg_seq = c.next;
  SegmentSpec spec = c.Data(Head("POST", "/pay", "w"));
  // The client has the server's two responses (the fixture's fast server answered each).
  const uint32_t server_next = 0x7fff0000 + 2 * static_cast<uint32_t>(sizeof "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" - 1);
  spec.ack = server_next;
  const std::vector<uint8_t> frame = BuildSegment(spec);
  const Frame in{frame.data(), static_cast<uint32_t>(frame.size())};
  FrameResult r;
  engine_->ProcessBurst(&in, 1, now_, &r);
  ASSERT_EQ(r.verdict, Verdict::kReject);
  uint8_t out[kMaxBuiltFrameBytes];
  const size_t n = BuildClientReject(frame.data(), r.view, rules_->rule(r.rule), r.decision, out, sizeof out);
  ASSERT_GT(n, 0u);
  // Ethernet(14) + one tag(4) + IPv6(40): TCP at 58.
  auto be32 = [](const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; };
  const uint8_t* tcp = out + 58;
  EXPECT_EQ(out[12], 0x81);
  EXPECT_EQ(be32(tcp + 4), server_next);  // seq: the client's ACK, after the responses
  EXPECT_EQ(be32(tcp + 8), seg_seq + static_cast<uint32_t>(spec.payload.size()));  // ack: the whole segment
  const std::string http(reinterpret_cast<const char*>(tcp + 20), n - 58 - 20);
  EXPECT_EQ(http.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0), 0u);
  EXPECT_NE(http.find("RateLimit-Policy: \"pay\";q=2;w=2\r\n"), std::string::npos) << http;
  EXPECT_NE(http.find("Retry-After: 1\r\n"), std::string::npos) << http;
  const size_t m = BuildServerReset(frame.data(), r.view, r.reset_seq, out, sizeof out);
  ASSERT_GT(m, 0u);
  EXPECT_EQ(be32(out + 58 + 4), seg_seq);  // the server has everything before this segment
  EXPECT_EQ(out[58 + 13], 0x14);
}

TEST_F(EngineTest, CountersHaveNames) {
  Start();
  int n = 0;
  ForEachCounter(C(), [&](const char* name, uint64_t) {
    EXPECT_NE(name[0], '\0');
    ++n;
  });
  EXPECT_GT(n, kParseResultCount + kHeadResultCount);
}

// --- the reject path and the server's bytes -----------------------------------------

const std::string kOk10 = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";

class ResponseOrderTest : public EngineTest {
 protected:
  // A client segment exactly as given: no ACK rewritten, no answer.
  FrameResult SendAsIs(const SegmentSpec& s) {
    frames_.push_back(BuildSegment(s));
    const Frame f{frames_.back().data(), static_cast<uint32_t>(frames_.back().size())};
    FrameResult r;
    engine_->ProcessBurst(&f, 1, now_, &r);
    return r;
  }
  uint32_t ServerNext(const Conn& c) { return server_next_[std::make_pair(c.base.ip_version, c.base.src.port)]; }
  // The client's segment acknowledging everything the server sent.
  SegmentSpec Acked(const Conn& c, SegmentSpec s) {
    s.ack = ServerNext(c);
    return s;
  }
};

// An admitted head and a limited one pipelined in one segment, the server slow: the
// limited head is held back (never forwarded) until the admitted response has gone
// through and been acknowledged; only then the 429, and the server's RST lands after
// the admitted request. The response's bytes pass untouched meanwhile.
TEST_F(ResponseOrderTest, LimitedHeadPipelinedBehindAnAdmittedOneWaitsForItsResponse) {
  Start();
  answer_ = false;
  Conn c(41001);
  Send(c.Syn());
  ASSERT_EQ(Send(c.Data(Head("POST", "/pay", "pia"))).verdict, Verdict::kForward);
  Reply(c, kOk10 + "0123456789");
  const std::string h = Head("POST", "/pay", "pia");
  const uint32_t h1 = c.next;
  FrameResult r = Send(c.Data(h + h));
  ASSERT_EQ(r.verdict, Verdict::kForwardPrefix);  // the admitted head goes on
  EXPECT_EQ(r.forward_bytes, h.size());
  const uint32_t h2 = h1 + static_cast<uint32_t>(h.size());
  c.next = h2;
  // The client retransmits the limited head while the server works on the payment.
  for (int i = 0; i < 3; ++i) {
    r = Send(c.At(h2, h));
    EXPECT_EQ(r.verdict, Verdict::kDrop) << i;
  }
  EXPECT_EQ(C().rejects_deferred, 3u);
  // The response, in two segments: neither is touched; the limited head still waits.
  EXPECT_EQ(Reply(c, kOk10 + "01234").verdict, Verdict::kForward);
  EXPECT_EQ(Send(c.At(h2, h)).verdict, Verdict::kDrop);
  const uint32_t before_tail = ServerNext(c);
  EXPECT_EQ(Reply(c, "56789").verdict, Verdict::kForward);
  // Sent, but not yet acknowledged by the client: a 429 now could overtake it.
  SegmentSpec stale = c.At(h2, h);
  stale.ack = before_tail;
  EXPECT_EQ(SendAsIs(stale).verdict, Verdict::kDrop);
  EXPECT_EQ(C().rejects_deferred, 5u);
  EXPECT_EQ(C().rejected, 0u);
  // Acknowledged: the 429 is the next response.
  const SegmentSpec last = Acked(c, c.At(h2, h));
  r = SendAsIs(last);
  ASSERT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.reset_seq, h2);  // the server has the admitted request, nothing after it
  EXPECT_EQ(r.view.ack, ServerNext(c));  // the 429's sequence number: after the response
  EXPECT_EQ(C().allowed, 2u);
  EXPECT_EQ(C().rejected, 1u);
}

// The same with the heads in separate segments and a chunked response in pieces.
TEST_F(ResponseOrderTest, LimitedHeadInItsOwnSegmentWaitsForAChunkedResponse) {
  Start();
  answer_ = false;
  Conn c(41002);
  Send(c.Syn());
  const std::string h = Head("POST", "/pay", "quin");
  ASSERT_EQ(Send(c.Data(h)).verdict, Verdict::kForward);
  Reply(c, kOk10 + "0123456789");
  ASSERT_EQ(Send(c.Data(h)).verdict, Verdict::kForward);  // admitted: the bucket's last
  const uint32_t h3 = c.next;
  EXPECT_EQ(Send(c.Data(h)).verdict, Verdict::kDrop);  // limited, a response still owed
  for (const std::string& piece : {std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                                   std::string("5\r\nhello\r\n"), std::string("3\r\nabc\r\n0\r\n")}) {
    EXPECT_EQ(Reply(c, piece).verdict, Verdict::kForward);
    EXPECT_EQ(Send(c.At(h3, h)).verdict, Verdict::kDrop);
  }
  EXPECT_EQ(Reply(c, "\r\n").verdict, Verdict::kForward);  // the chunked body's end
  const FrameResult r = Send(c.At(h3, h));
  ASSERT_EQ(r.verdict, Verdict::kReject);
  EXPECT_EQ(r.reset_seq, h3);
  EXPECT_EQ(C().rejects_deferred, 4u);
}

// A HEAD response has no body, whatever its Content-Length; a 100 Continue is not
// the final response.
TEST_F(ResponseOrderTest, HeadResponsesAndInterimResponsesAreFramed) {
  Start();
  answer_ = false;
  Conn c(41003);
  Send(c.Syn());
  const std::string h = Head("POST", "/pay", "rae");
  ASSERT_EQ(Send(c.Data(Head("HEAD", "/pay", "rae"))).verdict, Verdict::kForward);  // default rule
  ASSERT_EQ(Send(c.Data(h)).verdict, Verdict::kForward);
  ASSERT_EQ(Send(c.Data(h)).verdict, Verdict::kForward);
  const uint32_t h4 = c.next;
  EXPECT_EQ(Send(c.Data(h)).verdict, Verdict::kDrop);
  Reply(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");  // HEAD: no body follows
  Reply(c, "HTTP/1.1 100 Continue\r\n\r\n" + kOk10 + "0123456789");
  EXPECT_EQ(Send(c.At(h4, h)).verdict, Verdict::kDrop);  // one response still owed
  Reply(c, "HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_EQ(Send(c.At(h4, h)).verdict, Verdict::kReject);
}

// A response delimited by the close: the limited head waits for the server's FIN; no
// 429 can follow a FIN, so once the client has everything the connection is reset.
TEST_F(ResponseOrderTest, AfterAResponseEndedByTheCloseTheLimitedHeadIsReset) {
  Start();
  answer_ = false;
  Conn c(41004);
  Send(c.Syn());
  const std::string h = Head("POST", "/pay", "sol");
  Send(c.Data(h));
  Send(c.Data(h));
  const uint32_t h3 = c.next;
  Reply(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  Reply(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it");
  EXPECT_EQ(Send(c.Data(h)).verdict, Verdict::kDrop);  // the body may go on
  Answer(c.base, h3, "", 0x11);                        // FIN
  const FrameResult r = Send(c.At(h3, h));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(C().rejects_after_server_close, 1u);
  EXPECT_EQ(C().rejects_deferred, 1u);
}

// A response the engine cannot frame: no 429 on that connection any more; the limited
// head is held back (never forwarded) until the server closes.
TEST_F(ResponseOrderTest, UnframableResponsesHoldLimitedHeadsUntilTheServerCloses) {
  Start();
  answer_ = false;
  Conn c(41005);
  Send(c.Syn());
  const std::string h = Head("POST", "/pay", "tam");
  Send(c.Data(h));
  Send(c.Data(h));
  const uint32_t h3 = c.next;
  Reply(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok");
  Reply(c, kOk10 + "0123456789");
  EXPECT_EQ(C().response_framing_lost, 1u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Send(c.At(h3, h)).verdict, Verdict::kDrop);
  Answer(c.base, h3, "", 0x11);
  EXPECT_EQ(Send(c.At(h3, h)).verdict, Verdict::kReset);
}

// A reset by policy (here a desync) waits for the responses owed too, then happens.
TEST_F(ResponseOrderTest, PolicyResetWaitsForTheResponsesOwed) {
  Start();
  answer_ = false;
  Conn c(41006);
  Send(c.Syn());
  Send(c.Data(Head("GET", "/", "uma")));
  const uint32_t bad = c.next;
  EXPECT_EQ(Send(c.Data("\x16\x03\x01\x02\x00")).verdict, Verdict::kDrop);
  EXPECT_EQ(C().resets_deferred, 1u);
  EXPECT_EQ(Send(c.At(bad, "\x16\x03\x01\x02\x00")).verdict, Verdict::kDrop);
  Reply(c, kOk10 + "0123456789");
  const FrameResult r = Send(c.At(bad, "\x16\x03\x01\x02\x00"));
  EXPECT_EQ(r.verdict, Verdict::kReset);
  EXPECT_EQ(r.reset_seq, bad);
  EXPECT_EQ(C().resets_deferred, 2u);
}

// Body bytes forwarded ahead of a gap leave the server a hole; what follows the body
// is not decided before the hole is filled (the server could only queue it, and a
// longer copy with other bytes could replace it there).
TEST_F(EngineTest, NothingPastABodyIsDecidedWhileTheServerHasAHoleInIt) {
  Start();
  Conn c(41007);
  Send(c.Syn());
  const std::string body(100, 'b');
  Send(c.Data(Head("POST", "/upload", "val", "Content-Length: 100\r\n")));
  const uint32_t b0 = c.next;
  EXPECT_EQ(Send(c.At(b0 + 50, body.substr(50))).verdict, Verdict::kForward);  // inside the body
  const std::string h = Head("POST", "/pay", "val");
  EXPECT_EQ(Send(c.At(b0 + 100, h)).verdict, Verdict::kDrop);
  EXPECT_EQ(C().heads, 1u);
  EXPECT_EQ(Send(c.At(b0, body.substr(0, 50))).verdict, Verdict::kForward);  // the hole
  EXPECT_EQ(Send(c.At(b0 + 100, h)).verdict, Verdict::kForward);
  EXPECT_EQ(C().heads, 2u);
}

// --- checksums ----------------------------------------------------------------------

class ChecksumTest : public EngineTest {
 protected:
  FrameResult SendFrame(std::vector<uint8_t> frame, RxChecksum ip = RxChecksum::kUnknown,
                        RxChecksum l4 = RxChecksum::kUnknown) {
    frames_.push_back(std::move(frame));
    const Frame f{frames_.back().data(), static_cast<uint32_t>(frames_.back().size()), ip, l4};
    FrameResult r;
    engine_->ProcessBurst(&f, 1, now_, &r);
    return r;
  }
  // The frame of `s` with its TCP checksum off by one.
  static std::vector<uint8_t> BadTcp(const SegmentSpec& s) {
    std::vector<uint8_t> f = BuildSegment(s);
    const size_t tcp = 14 + (s.ip_version == 4 ? 20 : 40);
    f[tcp + 17] ^= 1;
    return f;
  }
};

// A segment the server drops for its checksum is neither decided nor forwarded; the
// retransmission with other bytes at the same sequence numbers is decided as the head
// it is (before, it passed as a retransmission of bytes already decided).
TEST_F(ChecksumTest, BadChecksumIsNotDecidedAndTheRealSegmentIs) {
  for (int ip_version : {4, 6}) {
    Start();
    answer_ = false;
    Conn spender(41100, ip_version);
    Send(spender.Syn());
    Send(spender.Data(Head("POST", "/pay", "mallory")));
    Send(spender.Data(Head("POST", "/pay", "mallory")));  // mallory's bucket is empty
    Conn c(41101, ip_version);
    Send(c.Syn());
    const SegmentSpec bad = c.At(c.next, Head("POST", "/pay", "robert1"));  // as long as mallory
    const FrameResult r = SendFrame(BadTcp(bad));
    EXPECT_EQ(r.verdict, Verdict::kDrop) << ip_version;
    EXPECT_EQ(r.heads, 0) << ip_version;
    EXPECT_EQ(C().bad_checksums, 1u) << ip_version;
    EXPECT_EQ(C().heads, 2u) << ip_version;
    const std::string h = Head("POST", "/pay", "mallory");
    ASSERT_EQ(h.size(), bad.payload.size());
    const FrameResult good = Send(c.At(c.next, h));
    EXPECT_EQ(good.heads, 1) << ip_version;
    EXPECT_EQ(good.verdict, Verdict::kReject) << ip_version;
  }
}

TEST_F(ChecksumTest, BadIpv4HeaderChecksumIsDropped) {
  Start();
  Conn c(41102);
  Send(c.Syn());
  std::vector<uint8_t> f = BuildSegment(c.At(c.next, Head("POST", "/pay", "cara")));
  f[14 + 10] ^= 0x40;
  EXPECT_EQ(SendFrame(f).verdict, Verdict::kDrop);
  EXPECT_EQ(C().bad_checksums, 1u);
  EXPECT_EQ(C().heads, 0u);
}

// The NIC's verdict is taken where it gave one; verify_checksums: false trusts every
// frame.
TEST_F(ChecksumTest, NicVerdictsAndTheSwitch) {
  Start();
  Conn c(41103);
  Send(c.Syn());
  const SegmentSpec s = c.At(c.next, Head("POST", "/pay", "dina"));
  EXPECT_EQ(SendFrame(BuildSegment(s), RxChecksum::kGood, RxChecksum::kBad).verdict, Verdict::kDrop);
  EXPECT_EQ(SendFrame(BadTcp(s), RxChecksum::kGood, RxChecksum::kGood).verdict, Verdict::kForward);
  EXPECT_EQ(C().bad_checksums, 1u);
  EXPECT_EQ(C().heads, 1u);

  config_.verify_checksums = false;
  Start();
  Conn d(41104);
  Send(d.Syn());
  EXPECT_EQ(SendFrame(BadTcp(d.At(d.next, Head("POST", "/pay", "dina")))).verdict, Verdict::kForward);
  EXPECT_EQ(C().bad_checksums, 0u);
  EXPECT_EQ(C().heads, 1u);
}

// Linux discards data without ACK on a synchronized connection: so does the engine.
TEST_F(EngineTest, DataWithoutAckIsDropped) {
  Start();
  Conn c(41105);
  Send(c.Syn());
  EXPECT_EQ(Send(c.At(c.next, Head("POST", "/pay", "emil"), 0x08)).verdict, Verdict::kDrop);
  EXPECT_EQ(C().no_ack_segments_dropped, 1u);
  EXPECT_EQ(C().heads, 0u);
  EXPECT_EQ(Send(c.At(c.next, Head("POST", "/pay", "emil"))).verdict, Verdict::kForward);
}


// --- PROXY protocol ------------------------------------------------------------------

std::string ProxyV1(const std::string& client) {
  return "PROXY TCP4 " + client + " 10.0.0.2 40000 80\r\n";
}

// A v2 header; no source: family unspecified, no address block.
std::string ProxyV2(uint8_t command, const std::vector<uint8_t>& source, std::vector<uint8_t> tlvs = {}) {
  std::vector<uint8_t> body = source;
  if (!source.empty()) {
    std::vector<uint8_t> dst(source.size(), 0);
    dst.back() = 2;
    body.insert(body.end(), dst.begin(), dst.end());
    body.insert(body.end(), {0x9c, 0x40, 0, 80});
  }
  body.insert(body.end(), tlvs.begin(), tlvs.end());
  std::string s("\r\n\r\n\0\r\nQUIT\n", 12);
  s += static_cast<char>(0x20 | command);
  s += static_cast<char>(source.empty() ? 0x00 : source.size() == 4 ? 0x11 : 0x21);
  s += static_cast<char>(body.size() >> 8);
  s += static_cast<char>(body.size() & 0xff);
  s.append(body.begin(), body.end());
  return s;
}

class ProxyEngineTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    config_.max_flows = 4096;
    config_.proxy_protocol = ProxyProtocol::kAny;
  }
  // A new connection from the terminator (10.0.0.1): the header in a segment of its
  // own, then the heads (the verdict of their segment). A limited head in the header's
  // segment is cut off behind it and decided again when retransmitted (see
  // HeadsAreKeyedByTheHeadersSourceAddress).
  FrameResult Connect(Conn& c, const std::string& header, const std::string& heads) {
    Send(c.Syn());
    if (header.empty() || heads.empty()) return Send(c.Data(header + heads));
    EXPECT_EQ(Send(c.Data(header)).verdict, Verdict::kForward);
    return Send(c.Data(heads));
  }
};

// Two clients behind one terminator get a bucket each, the one their address names in
// the header, whichever connection carries them.
TEST_F(ProxyEngineTest, HeadsAreKeyedByTheHeadersSourceAddress) {
  Start();
  const std::string pay = Head("POST", "/pay", "");
  Conn a(41000);
  EXPECT_EQ(Connect(a, ProxyV1("192.0.2.1"), pay).verdict, Verdict::kForward);
  EXPECT_EQ(Send(a.Data(pay)).verdict, Verdict::kForward);
  Conn b(41001);
  EXPECT_EQ(Connect(b, ProxyV1("192.0.2.2"), pay).verdict, Verdict::kForward);
  // A limited head in the header's segment: the header goes on, the head is cut off
  // and refused when the client retransmits it.
  Conn c(41002);
  Send(c.Syn());
  const std::string header = ProxyV1("192.0.2.1");
  const FrameResult cut = Send(c.Data(header + pay));
  EXPECT_EQ(cut.verdict, Verdict::kForwardPrefix);
  EXPECT_EQ(cut.forward_bytes, header.size());
  EXPECT_EQ(Send(c.At(c.next - static_cast<uint32_t>(pay.size()), pay)).verdict, Verdict::kReject);
  EXPECT_EQ(C().proxy_headers, 3u);
  EXPECT_EQ(C().identity_source_ip, 5u);
  EXPECT_EQ(C().heads, 5u);  // the headers are never heads
  EXPECT_EQ(C().not_http + C().malformed_heads, 0u);
}

TEST_F(ProxyEngineTest, V2ProxyAndLocalOverIpv4AndIpv6) {
  Start();
  const std::string pay = Head("POST", "/pay", "");
  const std::vector<uint8_t> tlvs = {0x01, 0, 2, 'h', '2', 0x04, 0, 0, 0xe0, 0, 3, 1, 2, 3};
  // LOCAL: keyed by the connection's own source, 10.0.0.1 ...
  Conn a(41010);
  EXPECT_EQ(Connect(a, ProxyV2(0, {}), pay).verdict, Verdict::kForward);
  // ... the same bucket as a header that names 10.0.0.1.
  Conn b(41011);
  EXPECT_EQ(Connect(b, ProxyV2(1, {10, 0, 0, 1}, tlvs), pay).verdict, Verdict::kForward);
  Conn c(41012);
  EXPECT_EQ(Connect(c, ProxyV2(1, {10, 0, 0, 1}), pay).verdict, Verdict::kReject);
  // An IPv6 client, through an IPv6 connection and through an IPv4 one.
  const std::vector<uint8_t> v6 = testing::V6(7);
  Conn d(41013, 6);
  EXPECT_EQ(Connect(d, ProxyV2(1, v6, tlvs), pay).verdict, Verdict::kForward);
  Conn e(41014);
  EXPECT_EQ(Connect(e, ProxyV2(1, v6), pay).verdict, Verdict::kForward);
  Conn f(41015);
  EXPECT_EQ(Connect(f, ProxyV2(1, v6), pay).verdict, Verdict::kReject);
  // v1 TCP6 names the same client as v2.
  Conn g(41016, 6);
  char text[64];
  inet_ntop(AF_INET6, v6.data(), text, sizeof text);
  EXPECT_EQ(Connect(g, "PROXY TCP6 " + std::string(text) + " ::2 1 80\r\n", pay).verdict, Verdict::kReject);
  // v1 UNKNOWN: the connection's source (10.0.0.1), whose bucket is full.
  Conn h(41017);
  EXPECT_EQ(Connect(h, "PROXY UNKNOWN\r\n", pay).verdict, Verdict::kReject);
  EXPECT_EQ(C().proxy_headers, 6u);
  EXPECT_EQ(C().proxy_headers_local, 2u);
}

// The header and the head after it split at every byte: the same decision, against the
// header's address, wherever the cut falls; and sent a byte per segment.
TEST_F(ProxyEngineTest, HeaderSplitAtEveryByte) {
  Start();
  int n = 0;
  for (bool v2 : {false, true}) {
    for (size_t cut = 1;; ++cut) {
      ++n;
      // A client per cut: keyed by the connection (10.0.0.1), every cut after the
      // first would find the bucket full.
      const std::vector<uint8_t> client = {192, 0, static_cast<uint8_t>(v2 ? 3 : 2), static_cast<uint8_t>(cut)};
      const std::string header =
          v2 ? ProxyV2(1, client) : ProxyV1("192.0." + std::to_string(client[2]) + "." + std::to_string(cut));
      const std::string stream = header + Head("POST", "/pay", "");
      if (cut >= stream.size()) break;
      Conn c(static_cast<uint16_t>(42000 + n));
      Send(c.Syn());
      ASSERT_EQ(Send(c.Data(stream.substr(0, cut))).verdict, Verdict::kForward) << cut;
      ASSERT_EQ(Send(c.Data(stream.substr(cut))).verdict, Verdict::kForward) << cut;
      // The bucket of the header's client, capacity 2: one more, then full.
      ASSERT_EQ(Send(c.Data(Head("POST", "/pay", ""))).verdict, Verdict::kForward) << cut;
      ASSERT_EQ(Send(c.Data(Head("POST", "/pay", ""))).verdict, Verdict::kReject) << cut;
    }
    // A byte per segment.
    const std::vector<uint8_t> client = {198, 51, 100, static_cast<uint8_t>(v2)};
    const std::string header = v2 ? ProxyV2(1, client) : ProxyV1("198.51.100.0");
    const std::string stream = header + Head("POST", "/pay", "");
    Conn c(static_cast<uint16_t>(43000 + v2));
    Send(c.Syn());
    for (char ch : stream) ASSERT_EQ(Send(c.Data(std::string(1, ch))).verdict, Verdict::kForward);
    EXPECT_EQ(Send(c.Data(Head("POST", "/pay", ""))).verdict, Verdict::kForward);
    EXPECT_EQ(Send(c.Data(Head("POST", "/pay", ""))).verdict, Verdict::kReject);
  }
  EXPECT_EQ(C().proxy_headers, static_cast<uint64_t>(n));
  EXPECT_EQ(C().proxy_header_missing + C().proxy_header_malformed + C().not_http + C().malformed_heads, 0u);
  EXPECT_EQ(engine_->free_reassembly_buffers(), config_.reassembly_buffers);
}

// A flow that does not start with a valid header is refused and counted, never
// forwarded: each variant on a connection of its own.
TEST_F(ProxyEngineTest, MissingOrMalformedHeadersAreRefused) {
  config_.on_not_http = HeadPolicy::kForward;
  config_.max_head_bytes = 512;
  Start();
  std::vector<uint8_t> big_tlv = {0xe0, 0x03, 0xe8};
  big_tlv.resize(3 + 1000, 'x');
  const struct {
    std::string first;
    uint64_t EngineCounters::*counter;
  } cases[] = {
      {Head("POST", "/pay", ""), &EngineCounters::proxy_header_missing},
      {"\r\n" + Head("POST", "/pay", ""), &EngineCounters::proxy_header_missing},
      {"SSH-2.0-x\r\n", &EngineCounters::proxy_header_missing},
      {"PROXY TCP4 192.0.2.1 10.0.0.2 40000 80\n" + Head("POST", "/pay", ""), &EngineCounters::proxy_header_malformed},
      {"PROXY TCP4 192.0.2.1 10.0.0.2 70000 80\r\n" + Head("POST", "/pay", ""), &EngineCounters::proxy_header_malformed},
      {"PROXY TCP4 192.0.2.1\r\n" + Head("POST", "/pay", ""), &EngineCounters::proxy_header_malformed},
      {"PROXY TCP4 " + std::string(120, '1'), &EngineCounters::proxy_header_malformed},
      {ProxyV2(1, {192, 0, 2, 1}, {0x01, 0, 9, 'h'}) + Head("POST", "/pay", ""), &EngineCounters::proxy_header_malformed},
      {ProxyV2(1, {192, 0, 2, 1}, big_tlv), &EngineCounters::proxy_header_too_long},
  };
  uint16_t port = 44000;
  for (const auto& c : cases) {
    const uint64_t before = C().*c.counter;
    Conn conn(port++);
    const FrameResult r = Connect(conn, "", c.first);
    EXPECT_EQ(r.verdict, Verdict::kReset) << c.first;
    EXPECT_EQ(C().*c.counter, before + 1) << c.first;
  }
  EXPECT_EQ(C().heads, 0u);
  EXPECT_EQ(C().proxy_headers, 0u);
}

// Under on_malformed_head: drop, the refused segment is dropped and the flow still
// waits for its header: a retransmission that carries one is read as usual. forward
// would pass the flow undecided: it resets instead.
TEST_F(ProxyEngineTest, DropPolicyKeepsWaitingForTheHeaderAndForwardResets) {
  config_.on_malformed_head = HeadPolicy::kDrop;
  Start();
  Conn c(44100);
  Send(c.Syn());
  EXPECT_EQ(Send(c.At(c.next, Head("POST", "/pay", ""))).verdict, Verdict::kDrop);
  EXPECT_EQ(Send(c.At(c.next, Head("POST", "/pay", ""))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().proxy_header_missing, 2u);
  EXPECT_EQ(Send(c.Data(ProxyV1("192.0.2.50") + Head("POST", "/pay", ""))).verdict, Verdict::kForward);
  EXPECT_EQ(C().heads, 1u);
  // A split header whose second half is wrong: dropped, and the right bytes still fit.
  Conn d(44101);
  Send(d.Syn());
  const std::string header = ProxyV1("192.0.2.51");
  EXPECT_EQ(Send(d.Data(header.substr(0, 10))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(d.At(d.next, "XX" + header.substr(12))).verdict, Verdict::kDrop);
  EXPECT_EQ(C().proxy_header_malformed, 1u);
  EXPECT_EQ(Send(d.At(d.next, header.substr(10) + Head("POST", "/pay", ""))).verdict, Verdict::kForward);
  EXPECT_EQ(C().proxy_headers, 2u);
  EXPECT_EQ(C().heads, 2u);

  config_.on_malformed_head = HeadPolicy::kForward;
  Start();
  Conn e(44102);
  Send(e.Syn());
  EXPECT_EQ(Send(e.Data(Head("POST", "/pay", ""))).verdict, Verdict::kReset);
  EXPECT_EQ(C().proxy_header_missing, 1u);
}

// Not configured: a client's own PROXY header must not pass for one, nor be passed
// through as not HTTP (a server reading PROXY headers would execute what follows
// undecided, for an address the client chose).
TEST_F(EngineTest, UnexpectedProxyHeaderIsRefusedWhenNotConfigured) {
  config_.on_not_http = HeadPolicy::kForward;
  Start();
  const std::string v1 = "PROXY TCP4 192.0.2.9 10.0.0.2 40000 80\r\n";
  const std::string v2 = ProxyV2(1, {192, 0, 2, 9});
  uint16_t port = 44200;
  for (const std::string& first : {v1 + Head("POST", "/pay", ""), "PROXY UNKNOWN\r\n" + Head("GET", "/", ""),
                                   v2 + Head("POST", "/pay", ""), v2}) {
    Conn c(port++);
    Send(c.Syn());
    EXPECT_EQ(Send(c.Data(first)).verdict, Verdict::kReset) << first;
  }
  EXPECT_EQ(C().proxy_header_unexpected, 4u);
  EXPECT_EQ(C().heads, 0u);
  // Split, or the line alone: held as a partial head (the server cannot act on it),
  // then refused once the head it starts is complete.
  Conn d(port++);
  Send(d.Syn());
  EXPECT_EQ(Send(d.Data(v1.substr(0, 8))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(d.Data(v1.substr(8))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(d.Data(Head("GET", "/", ""))).verdict, Verdict::kReset);
  EXPECT_EQ(C().proxy_header_unexpected, 5u);
  EXPECT_EQ(C().heads, 0u);
  // Anything else that is not HTTP still follows on_not_http.
  Conn e(port++);
  Send(e.Syn());
  EXPECT_EQ(Send(e.Data("SSH-2.0-x\r\n")).verdict, Verdict::kForward);
  EXPECT_EQ(C().proxy_header_unexpected, 5u);
}

// A second PROXY header, after the first or between requests, is a desync: refused.
TEST_F(ProxyEngineTest, HeaderInTheMiddleOfAFlowIsRefused) {
  Start();
  Conn a(44300);
  EXPECT_EQ(Connect(a, ProxyV1("192.0.2.60"), "").verdict, Verdict::kForward);
  EXPECT_EQ(Send(a.Data(ProxyV1("192.0.2.61") + Head("POST", "/pay", ""))).verdict, Verdict::kReset);
  Conn b(44301);
  EXPECT_EQ(Connect(b, ProxyV1("192.0.2.62"), Head("GET", "/", "")).verdict, Verdict::kForward);
  EXPECT_EQ(Send(b.Data(ProxyV2(1, {192, 0, 2, 63}) + Head("POST", "/pay", ""))).verdict, Verdict::kReset);
  EXPECT_EQ(C().proxy_header_unexpected, 2u);
  EXPECT_EQ(C().heads, 1u);
}

// Both configured: X-Forwarded-For's trusted hop names the client; a head without one
// has no client address (limited), never the PROXY header's address instead.
TEST_F(ProxyEngineTest, TrustedProxiesWinOverTheProxyHeader) {
  config_.trusted_proxies = 1;
  Start();
  auto head = [](const std::string& xff) {
    return "POST /pay HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: " + xff + "\r\n\r\n";
  };
  Conn a(44400);
  EXPECT_EQ(Connect(a, ProxyV1("192.0.2.70"), head("198.51.100.1")).verdict, Verdict::kForward);
  EXPECT_EQ(Send(a.Data(head("198.51.100.1"))).verdict, Verdict::kForward);
  EXPECT_EQ(Send(a.Data(head("198.51.100.2"))).verdict, Verdict::kForward);
  Conn b(44401);
  EXPECT_EQ(Connect(b, ProxyV1("192.0.2.71"), head("198.51.100.1")).verdict, Verdict::kReject);
  Conn c(44402);
  EXPECT_EQ(Connect(c, ProxyV1("192.0.2.72"), Head("POST", "/pay", "")).verdict, Verdict::kReject);
  EXPECT_EQ(C().identity_no_client_address, 1u);
  EXPECT_EQ(C().proxy_headers, 3u);
}

}  // namespace
}  // namespace dlb::packet
