// libFuzzer target: the PROXY protocol header, alone and at the start of a flow.
// Input: a knob byte (accepted versions, the header bound, the refusal policy), a cut
// byte, then the stream the client sends.
// Invariants of the parser: a header it takes is no longer than the input, than 107
// bytes (v1) or than the bound; every strict prefix of it is incomplete, and the same
// header with any bytes after it is the same header; its address is IPv4 or a
// non-mapped IPv6. Of the engine, with the stream sent in two segments cut anywhere:
// with the header required no head is decided before one was taken, without it none is
// ever taken; every buffer comes back; no crash under ASan/UBSan.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dlb/packet/engine.h"
#include "dlb/packet/proxy_protocol.h"

using namespace dlb::packet;

namespace {

void Put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
void Put32(std::vector<uint8_t>& v, uint32_t x) {
  Put16(v, static_cast<uint16_t>(x >> 16));
  Put16(v, static_cast<uint16_t>(x));
}

std::vector<uint8_t> Segment(uint32_t seq, uint8_t flags, const uint8_t* p, size_t n, bool from_server = false) {
  std::vector<uint8_t> f = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00};
  Put16(f, 0x4500);
  Put16(f, static_cast<uint16_t>(40 + n));
  Put32(f, 0x4000);
  Put16(f, 0x4006);
  Put16(f, 0);
  Put32(f, from_server ? 0x0a000002 : 0x0a000001);
  Put32(f, from_server ? 0x0a000001 : 0x0a000002);
  Put16(f, from_server ? 80 : 1000);
  Put16(f, from_server ? 1000 : 80);
  Put32(f, seq);
  Put32(f, 1);
  Put16(f, static_cast<uint16_t>(0x5000 | flags));
  Put16(f, 65535);
  Put32(f, 0);
  if (n > 0) f.insert(f.end(), p, p + n);
  return f;
}

void CheckParser(const uint8_t* data, size_t size, ProxyProtocol accept, size_t max_bytes) {
  ProxyHeader h;
  const ProxyResult r = ParseProxyHeader(data, size, accept, max_bytes, h);
  if (r != ProxyResult::kOk) return;
  if (h.bytes == 0 || h.bytes > size || h.bytes > max_bytes) __builtin_trap();
  if (data[0] == 'P' && h.bytes > kProxyV1MaxBytes) __builtin_trap();
  if (!h.local) {
    if (h.source.ip_version != 4 && h.source.ip_version != 6) __builtin_trap();
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (h.source.ip_version == 6 && std::memcmp(h.source.bytes, kMapped, 12) == 0) __builtin_trap();
  }
  // Exactly the header: the same without what followed it, incomplete without its end.
  ProxyHeader again;
  if (ParseProxyHeader(data, h.bytes, accept, max_bytes, again) != ProxyResult::kOk || again.bytes != h.bytes ||
      again.local != h.local || std::memcmp(&again.source, &h.source, sizeof h.source) != 0) {
    __builtin_trap();
  }
  for (size_t k = 0; k < h.bytes; ++k) {
    if (ParseProxyHeader(data, k, accept, max_bytes, again) != ProxyResult::kIncomplete) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || size > 4096) return 0;
  const uint8_t knobs = data[0];
  const size_t cut = data[1];
  const uint8_t* stream = data + 2;
  const size_t stream_bytes = size - 2;
  const auto accept = static_cast<ProxyProtocol>(1 + knobs % 3);
  const size_t max_bytes = 64 + ((knobs >> 2) & 3) * 200;
  CheckParser(stream, stream_bytes, accept, max_bytes);

  PacketConfig config;
  config.max_flows = 4;
  config.reassembly_buffers = 2;
  config.max_head_bytes = static_cast<uint32_t>(max_bytes);
  config.shard_users = 16;
  config.proxy_protocol = (knobs & 0x80) ? ProxyProtocol::kOff : accept;
  config.on_not_http = static_cast<HeadPolicy>((knobs >> 4) % 3);
  config.on_malformed_head = static_cast<HeadPolicy>((knobs >> 5) % 3);
  RuleConfig rule;
  rule.name = "r";
  rule.bucket = {.capacity = 2, .leak_rate_per_s = 1};
  config.rules = {rule};
  auto rules = RuleSet::Compile(config.rules, config.default_rule);
  if (!rules.ok()) __builtin_trap();
  auto engine = PacketEngine::Create(config, *rules, HeapAllocator::Instance(), dlb::SipKey{1, 2}, 1);
  if (!engine.ok()) __builtin_trap();
  PacketEngine& e = **engine;

  const uint32_t isn = 0xffffff00u;  // the header crosses the wrap of sequence space
  const size_t first = cut < stream_bytes ? cut : stream_bytes;
  std::vector<std::vector<uint8_t>> frames = {
      Segment(isn, 0x02, nullptr, 0),
      Segment(isn + 1, 0x18, stream, first),
      Segment(isn + 1 + static_cast<uint32_t>(first), 0x18, stream + first, stream_bytes - first),
  };
  for (const auto& f : frames) {
    Frame in{f.data(), static_cast<uint32_t>(f.size())};
    FrameResult out;
    e.ProcessBurst(&in, 1, 1, &out);
    if (out.parse != ParseResult::kTcp) __builtin_trap();
  }
  const EngineCounters& c = e.counters();
  // With the header required, no head is decided (or passed) before one was taken.
  if (config.proxy_protocol != ProxyProtocol::kOff && c.heads > 0 && c.proxy_headers + c.proxy_headers_local == 0) {
    __builtin_trap();
  }
  if (config.proxy_protocol == ProxyProtocol::kOff && c.proxy_headers + c.proxy_headers_local != 0) __builtin_trap();
  auto rst = Segment(7000, 0x04, nullptr, 0, /*from_server=*/true);
  Frame in{rst.data(), static_cast<uint32_t>(rst.size())};
  FrameResult out;
  e.ProcessBurst(&in, 1, 1, &out);
  if (e.active_flows() != 0 || e.free_reassembly_buffers() != 2) __builtin_trap();
  return 0;
}
