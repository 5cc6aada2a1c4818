// libFuzzer target: the flow and reassembly state machine of the engine. The input is
// a script of segments of one (or two) client connections: each step picks flags, an
// offset into a stream and a length; the stream bytes come from the input's tail, so
// the fuzzer controls both the HTTP content and its segmentation, order, overlaps,
// retransmissions, FIN/RST/SYN. Invariants: every reassembly buffer comes back once
// flows end; no frame is both a head and untouched by the rules; no crash under ASan.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "dlb/packet/engine.h"

using namespace dlb::packet;

namespace {

constexpr uint32_t kBuffers = 4;

void Put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
void Put32(std::vector<uint8_t>& v, uint32_t x) {
  Put16(v, static_cast<uint16_t>(x >> 16));
  Put16(v, static_cast<uint16_t>(x));
}

std::vector<uint8_t> Segment(uint16_t port, uint32_t seq, uint8_t flags, const uint8_t* p, size_t n,
                             bool from_server = false) {
  std::vector<uint8_t> f = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00};
  Put16(f, 0x4500);
  Put16(f, static_cast<uint16_t>(40 + n));
  Put32(f, 0x4000);
  Put16(f, 0x4006);
  Put16(f, 0);
  Put32(f, from_server ? 0x0a000002 : 0x0a000001);
  Put32(f, from_server ? 0x0a000001 : 0x0a000002);
  Put16(f, from_server ? 80 : port);
  Put16(f, from_server ? port : 80);
  Put32(f, seq);
  Put32(f, 1);
  Put16(f, static_cast<uint16_t>(0x5000 | flags));
  Put16(f, 65535);
  Put32(f, 0);
  f.insert(f.end(), p, p + n);
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  // Script length in steps of 4 bytes, then the stream.
  const size_t steps = data[0] % 32;
  const uint8_t knobs = data[1];
  if (size < 2 + steps * 4) return 0;
  const uint8_t* script = data + 2;
  const uint8_t* stream = script + steps * 4;
  const size_t stream_bytes = size - 2 - steps * 4;

  PacketConfig config;
  config.max_flows = 4;
  config.reassembly_buffers = kBuffers;
  config.max_head_bytes = 128 + (knobs & 3) * 256;
  config.shard_users = 16;
  config.on_not_http = static_cast<HeadPolicy>((knobs >> 2) % 3);
  config.on_malformed_head = static_cast<HeadPolicy>((knobs >> 4) % 3);
  config.on_missing_identity = static_cast<MissingIdentityPolicy>((knobs >> 6) % 3);
  RuleConfig rule;
  rule.name = "r";
  rule.bucket = {.capacity = 2, .leak_rate_per_s = 1};
  rule.action = static_cast<Action>(knobs % 3);
  config.rules = {rule};
  auto rules = RuleSet::Compile(config.rules, config.default_rule);
  if (!rules.ok()) __builtin_trap();
  auto engine = PacketEngine::Create(config, *rules, HeapAllocator::Instance(), dlb::SipKey{1, 2}, 1);
  if (!engine.ok()) __builtin_trap();
  PacketEngine& e = **engine;

  const uint32_t isn = 0xfffffe00u + knobs;  // close to the wrap of sequence space
  int64_t now = 1;
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t port : {1000, 1001}) {
    frames.push_back(Segment(port, isn, 0x02, nullptr, 0));
  }
  for (size_t i = 0; i < steps; ++i) {
    const uint8_t* s = script + i * 4;
    const uint16_t port = (s[0] & 0x80) ? 1001 : 1000;
    uint8_t flags = 0x18;
    if ((s[0] & 0x0f) == 1) flags |= 0x01;  // FIN
    if ((s[0] & 0x0f) == 2) flags = 0x04;   // RST
    if ((s[0] & 0x0f) == 3) flags = 0x02;   // SYN again
    const size_t off = stream_bytes ? (size_t{s[1]} << 8 | s[2]) % stream_bytes : 0;
    size_t len = s[3];
    if (off + len > stream_bytes) len = stream_bytes - off;
    frames.push_back(Segment(port, isn + 1 + static_cast<uint32_t>(off), flags, stream + off, len));
    if (s[0] & 0x40) now += 1'000'000'000;
  }
  // Bursts of up to 5 frames, so that one flow appears several times in one burst.
  for (size_t i = 0; i < frames.size();) {
    const size_t n = frames.size() - i < 5 ? frames.size() - i : 5;
    Frame in[5];
    FrameResult out[5];
    for (size_t k = 0; k < n; ++k) in[k] = {frames[i + k].data(), static_cast<uint32_t>(frames[i + k].size())};
    e.ProcessBurst(in, n, now, out);
    for (size_t k = 0; k < n; ++k) {
      if (out[k].parse != ParseResult::kTcp) __builtin_trap();
    }
    i += n;
  }
  // End both connections (the server's RST: a client RST counts only at the stream's
  // position): every buffer must come back.
  for (uint16_t port : {1000, 1001}) {
    auto rst = Segment(port, 7000, 0x04, nullptr, 0, /*from_server=*/true);
    Frame in{rst.data(), static_cast<uint32_t>(rst.size())};
    FrameResult out;
    e.ProcessBurst(&in, 1, now, &out);
  }
  if (e.active_flows() != 0) __builtin_trap();
  if (e.free_reassembly_buffers() != kBuffers) __builtin_trap();
  const EngineCounters& c = e.counters();
  if (c.allowed + c.limited + c.identity_missing_passed > c.heads) __builtin_trap();
  return 0;
}
