// Executed versus decided, on the engine alone: adversarial client streams go through
// the engine to a model of the Linux server behind it (the receive side of TCP as
// RFC 5961 and tcp_data_queue have it, and an HTTP/1.1 server on the bytes it takes).
// Whatever the segmentation, order, duplicates with conflicting bytes and injected
// SYN / FIN / RST, the requests the model server executes never exceed the rule's
// limit, and bodies that read like someone else's request never charge that user.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dlb/packet/engine.h"
#include "dlb/packet/http.h"
#include "frames.h"

namespace dlb::packet {
namespace {

using testing::BuildSegment;
using testing::Head;
using testing::SegmentSpec;

constexpr uint8_t kFin = 0x01;
constexpr uint8_t kSyn = 0x02;
constexpr uint8_t kRst = 0x04;

inline bool After(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }

// The server: in-order bytes, out-of-order segments queued (a longer copy at the same
// sequence number replaces the queued one, as Linux does), RST only at rcv_nxt, SYN
// ignored (challenge ACK), data after an in-order FIN discarded. Requests are executed
// as soon as their head is complete; a malformed head closes the connection.
struct ModelServer {
  uint32_t rcv_nxt = 0;
  bool dead = false;
  bool fin = false;
  std::string stream;
  std::map<uint32_t, std::string> ofo;
  size_t pos = 0;
  uint64_t body_left = 0;
  bool chunked = false;
  ChunkedDecoder decoder;
  std::vector<std::string> executed;  // "METHOD path user"

  void Segment(uint32_t seq, const std::string& data, uint8_t flags) {
    if (dead) return;
    if (flags & kRst) {
      if (seq == rcv_nxt) dead = true;
      return;
    }
    if ((flags & kSyn) || fin) return;
    Add(seq, data);
    if ((flags & kFin) && seq + static_cast<uint32_t>(data.size()) == rcv_nxt) fin = true;
    Execute();
  }

  void Add(uint32_t seq, const std::string& data) {
    const uint32_t end = seq + static_cast<uint32_t>(data.size());
    if (!After(end, rcv_nxt)) return;
    if (After(seq, rcv_nxt)) {
      std::string& queued = ofo[seq];
      if (data.size() > queued.size()) queued = data;
      return;
    }
    stream += data.substr(rcv_nxt - seq);
    rcv_nxt = end;
    for (bool more = true; more;) {
      more = false;
      for (auto it = ofo.begin(); it != ofo.end(); ++it) {
        if (After(it->first, rcv_nxt)) continue;
        const uint32_t e = it->first + static_cast<uint32_t>(it->second.size());
        if (After(e, rcv_nxt)) {
          stream += it->second.substr(rcv_nxt - it->first);
          rcv_nxt = e;
        }
        ofo.erase(it);
        more = true;
        break;
      }
    }
  }

  void Execute() {
    const auto* data = reinterpret_cast<const uint8_t*>(stream.data());
    for (;;) {
      if (body_left > 0) {
        const uint64_t n = std::min<uint64_t>(body_left, stream.size() - pos);
        pos += n;
        body_left -= n;
        if (body_left > 0) return;
      }
      if (chunked) {
        size_t used = 0;
        const auto r = decoder.Feed(data + pos, stream.size() - pos, used);
        pos += used;
        if (r == ChunkedDecoder::Result::kError) dead = true;
        if (r != ChunkedDecoder::Result::kDone) return;
        chunked = false;
      }
      while (pos < stream.size() && (stream[pos] == '\r' || stream[pos] == '\n')) ++pos;
      if (pos == stream.size()) return;
      RequestHead h;
      const HeadResult r = ParseRequestHead(data + pos, stream.size() - pos, HeadOptions{}, h);
      if (r == HeadResult::kIncomplete) return;
      if (r != HeadResult::kOk) {
        dead = true;  // 400 and close
        return;
      }
      executed.push_back(std::string(h.method_token) + " " + std::string(h.path) + " " + std::string(h.identity));
      pos += h.head_bytes;
      if (h.chunked) {
        chunked = true;
        decoder.Reset();
      } else {
        body_left = h.content_length;
      }
    }
  }
};

class StreamOracleTest : public ::testing::Test {
 protected:
  void Start() {
    config_.max_flows = 64;
    config_.reassembly_buffers = 4;
    config_.max_head_bytes = 512;
    config_.shard_users = 1000;
    RuleConfig pay;
    pay.name = "pay";
    pay.method = "POST";
    pay.path_prefix = "/pay";
    pay.bucket = {.capacity = 2, .leak_rate_per_s = 0.001};
    config_.rules = {pay};
    config_.default_rule.bucket = {.capacity = 1000, .leak_rate_per_s = 1};
    auto rules = RuleSet::Compile(config_.rules, config_.default_rule);
    ASSERT_TRUE(rules.ok());
    rules_ = std::make_unique<RuleSet>(std::move(rules).value());
    auto e = PacketEngine::Create(config_, *rules_, HeapAllocator::Instance(), SipKey{5, 6}, 1'000'000'000);
    ASSERT_TRUE(e.ok());
    engine_ = std::move(e).value();
  }

  // One client frame through the engine; what the engine lets through reaches `server`.
  Verdict Send(ModelServer& server, uint16_t port, uint32_t seq, const std::string& data, uint8_t flags) {
    SegmentSpec s;
    s.src.port = port;
    s.seq = seq;
    s.flags = static_cast<uint8_t>(flags | 0x10);
    s.payload = data;
    const std::vector<uint8_t> f = BuildSegment(s);
    const Frame in{f.data(), static_cast<uint32_t>(f.size())};
    FrameResult r;
    engine_->ProcessBurst(&in, 1, 1'000'000'000, &r);
    switch (r.verdict) {
      case Verdict::kForward:
        server.Segment(seq, data, flags);
        break;
      case Verdict::kForwardPrefix:
        server.Segment(seq, data.substr(0, r.forward_bytes), static_cast<uint8_t>(flags & ~kFin));
        break;
      case Verdict::kDrop:
        break;
      case Verdict::kReject:
      case Verdict::kReset:
        server.Segment(r.reset_seq, "", kRst);
        server.dead = true;  // the engine drops the rest of the connection
        break;
    }
    return r.verdict;
  }

  PacketConfig config_;
  std::unique_ptr<RuleSet> rules_;
  std::unique_ptr<PacketEngine> engine_;
};

std::string MakeStream(std::mt19937& rng) {
  std::string s;
  const int n = 4 + static_cast<int>(rng() % 6);
  for (int i = 0; i < n; ++i) {
    switch (rng() % 5) {
      case 0:
      case 1:
        s += (rng() % 3 == 0 ? "\r\n" : "") + Head("POST", "/pay", "eve");
        break;
      case 2:
        s += Head("GET", "/x", "eve");
        break;
      case 3: {  // a body that reads like the victim's requests
        const std::string body = Head("POST", "/pay", "victim") + Head("POST", "/pay", "victim");
        s += Head("POST", "/upload", "eve", "Content-Length: " + std::to_string(body.size()) + "\r\n") + body;
        break;
      }
      case 4: {
        const std::string inner = Head("POST", "/pay", "victim");
        char size[16];
        std::snprintf(size, sizeof size, "%zx", inner.size());
        s += Head("POST", "/upload", "eve", "Transfer-Encoding: chunked\r\n") + size + "\r\n" + inner +
             "\r\n0\r\n\r\n";
        break;
      }
    }
  }
  return s;
}

TEST_F(StreamOracleTest, ExecutedRequestsNeverExceedTheLimit) {
  std::mt19937 rng(19);
  int executed_total = 0;
  int eve_pay_total = 0;
  int completed = 0;
  uint64_t heads_total = 0;
  for (int trial = 0; trial < 300; ++trial) {
    Start();
    const uint16_t port = 45000;
    const uint32_t isn = 1000 + static_cast<uint32_t>(rng() % 100000);
    const std::string data = MakeStream(rng);
    ModelServer server;
    server.rcv_nxt = isn + 1;
    Send(server, port, isn, "", kSyn);
    for (int round = 0; round < 60 && !server.dead && server.rcv_nxt != isn + 1 + data.size(); ++round) {
      // The client sends what the server has not acknowledged, cut at random, some
      // pieces reordered, duplicated, or duplicated with other bytes.
      struct Piece {
        uint32_t seq;
        std::string bytes;
        uint8_t flags;
      };
      std::vector<Piece> pieces;
      for (size_t off = server.rcv_nxt - (isn + 1); off < data.size();) {
        const size_t n = std::min<size_t>(data.size() - off, 1 + rng() % 160);
        pieces.push_back({isn + 1 + static_cast<uint32_t>(off), data.substr(off, n), 0});
        off += n;
      }
      if (!pieces.empty() && round > 2) pieces.back().flags = kFin;
      for (size_t w = 0; w + 1 < pieces.size(); w += 3) {
        if (rng() % 2) std::swap(pieces[w], pieces[w + 1]);
      }
      std::vector<Piece> sent;
      for (const Piece& p : pieces) {
        const uint32_t r = rng() % 16;
        if (r == 0) {
          // Another user's name in the same bytes (the server may keep either copy).
          Piece forged = p;
          for (size_t at = forged.bytes.find("eve"); at != std::string::npos; at = forged.bytes.find("eve", at)) {
            forged.bytes[at + 2] = 'a';
          }
          sent.push_back(forged);
        } else if (r == 1) {
          sent.push_back({p.seq + static_cast<uint32_t>(rng()), "", kSyn});
        } else if (r == 2) {
          sent.push_back({p.seq + static_cast<uint32_t>(rng() % 5000), "", kFin});
        } else if (r == 3) {
          sent.push_back({p.seq + 1 + static_cast<uint32_t>(rng() % 5000), "", kRst});
        }
        sent.push_back(p);
        if (r == 4) sent.push_back(p);
      }
      for (const Piece& p : sent) Send(server, port, p.seq, p.bytes, p.flags);
    }
    int eve_pay = 0;
    for (const std::string& e : server.executed) {
      EXPECT_EQ(e.find("victim"), std::string::npos) << trial << ": " << e;
      if (e == "POST /pay eve") ++eve_pay;
    }
    EXPECT_LE(eve_pay, 2) << trial;
    eve_pay_total += eve_pay;
    completed += server.rcv_nxt == isn + 1 + data.size();
    heads_total += engine_->counters().heads;
    executed_total += static_cast<int>(server.executed.size());
    // The victim, who sent nothing, has a whole bucket.
    ModelServer victim_server;
    const uint32_t visn = 777;
    victim_server.rcv_nxt = visn + 1;
    Send(victim_server, 46000, visn, "", kSyn);
    const std::string h = Head("POST", "/pay", "victim");
    for (uint32_t i = 0; i < 2; ++i) {
      EXPECT_EQ(Send(victim_server, 46000, visn + 1 + i * static_cast<uint32_t>(h.size()), h, 0), Verdict::kForward)
          << trial;
    }
  }
  // The runs did execute requests (the oracle is not vacuous).
  EXPECT_GT(executed_total, 300);
  std::printf("executed %d, eve pay %d, completed %d, engine heads %llu\n", executed_total, eve_pay_total, completed,
              static_cast<unsigned long long>(heads_total));
}

}  // namespace
}  // namespace dlb::packet
