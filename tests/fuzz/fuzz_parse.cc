// libFuzzer target: L2-L4 parsing of arbitrary frames, and the reply frames built from
// whatever parses as TCP. Invariants are checked with __builtin_trap so that a
// violation is a crash the fuzzer reports.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dlb/packet/parse.h"
#include "dlb/packet/reject.h"
#include "dlb/packet/rules.h"

using namespace dlb::packet;

namespace {
const CompiledRule& Rule() {
  static const RuleSet rules = [] {
    auto r = RuleSet::Compile({}, DefaultRuleConfig());
    if (!r.ok()) __builtin_trap();
    return std::move(r).value();
  }();
  return rules.rule(0);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy: ASan then sees any read past the frame.
  std::vector<uint8_t> frame(data, data + size);
  PacketView v;
  ParseOptions options;
  options.max_ipv6_extension_headers = size > 0 ? data[0] % 12 : 8;
  const ParseResult r = ParseFrame(frame.data(), frame.size(), options, v);
  if (r != ParseResult::kTcp) return 0;
  if (v.payload_offset + v.payload_bytes > size) __builtin_trap();
  if (v.l3_offset > v.l4_offset || v.l4_offset > v.payload_offset) __builtin_trap();
  uint8_t out[kMaxBuiltFrameBytes];
  dlb::Decision d;
  d.retry_after_ns = static_cast<int64_t>(v.seq) * 1000;
  d.remaining = v.ack % 7;
  const size_t n = BuildClientReject(frame.data(), v, Rule(), d, out, sizeof out);
  if (n == 0) __builtin_trap();  // always fits: at most 22 + 40 + 20 + the response
  PacketView back;
  if (ParseFrame(out, n, ParseOptions{}, back) != ParseResult::kTcp) __builtin_trap();
  if (back.seq != v.ack || back.src_port != v.dst_port) __builtin_trap();
  if (BuildServerReset(frame.data(), v, v.seq, out, sizeof out) == 0) __builtin_trap();
  return 0;
}
