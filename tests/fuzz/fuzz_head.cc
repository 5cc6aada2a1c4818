// libFuzzer target: the HTTP request head parser and the chunked body decoder.
// FindHeadEnd fed the input one growing prefix at a time must agree with one call on
// the whole input; every chunk scanner the CPU has (SSE2, AVX2, AVX-512BW) must give
// the same head; the chunked decoder fed random-size pieces must agree with one call.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dlb/packet/http.h"
#include "dlb/path.h"
#include "packet/http_internal.h"

using namespace dlb::packet;

namespace {

bool SameHead(HeadResult ra, const RequestHead& a, HeadResult rb, const RequestHead& b) {
  if (ra != rb) return false;
  if (ra != HeadResult::kOk) return true;
  return a.method == b.method && a.method_token == b.method_token && a.target == b.target && a.path == b.path &&
         a.path_normal == b.path_normal &&
         a.host == b.host && a.identity == b.identity && a.has_identity == b.has_identity &&
         a.http10 == b.http10 && a.chunked == b.chunked && a.has_content_length == b.has_content_length &&
         a.content_length == b.content_length && a.head_bytes == b.head_bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t knobs = data[0];
  std::vector<uint8_t> buf(data + 1, data + size);  // exact size for ASan
  HeadOptions o;
  o.max_head_bytes = 64 + (knobs & 0x3f) * 64;
  o.max_identity_bytes = 1 + (knobs >> 6) * 40;

  uint32_t scan = 0;
  uint32_t head_bytes = 0;
  const HeadResult whole = FindHeadEnd(buf.data(), buf.size(), o.max_head_bytes, scan, head_bytes);
  uint32_t scan2 = 0;
  uint32_t head_bytes2 = 0;
  HeadResult step = HeadResult::kIncomplete;
  for (size_t len = 1; len <= buf.size() && step == HeadResult::kIncomplete; ++len) {
    step = FindHeadEnd(buf.data(), len, o.max_head_bytes, scan2, head_bytes2);
  }
  if (!buf.empty() && step != whole) __builtin_trap();
  if (whole == HeadResult::kOk) {
    if (head_bytes2 != head_bytes || head_bytes > buf.size()) __builtin_trap();
    RequestHead h;
    const HeadResult r = ParseRequestHead(buf.data(), head_bytes, o, h);
    // The one-pass parse over the whole buffer must agree with parsing the found head.
    RequestHead h2;
    const HeadResult r2 = ParseRequestHead(buf.data(), buf.size(), o, h2);
    if (r2 != r) __builtin_trap();
    if (r == HeadResult::kOk && (h2.head_bytes != head_bytes || h2.identity != h.identity)) __builtin_trap();
    if (r == HeadResult::kOk) {
      const char* b = reinterpret_cast<const char*>(buf.data());
      const char* e = b + head_bytes;
      for (std::string_view s : {h.method_token, h.target, h.path, h.host, h.identity}) {
        // Views into the head, except the "/" an absolute-form target without a path means.
        if (s.empty() || s == "/") continue;
        if (s.data() < b || s.data() + s.size() > e) __builtin_trap();
      }
      if (h.identity.size() > o.max_identity_bytes) __builtin_trap();
      // The parser's path_normal is exactly dlb_path_is_normal (rules trust it).
      const bool normal = dlb_path_is_normal(reinterpret_cast<const dlb_path_u8*>(h.path.data()),
                                             static_cast<dlb_path_u32>(h.path.size()), 0) != 0;
      if (h.path_normal != normal) __builtin_trap();
      for (char c : h.identity) {
        if (static_cast<uint8_t>(c) < 0x20 || c == 0x7f) __builtin_trap();
      }
    }
  }
  {
    // The same head from every scanner this CPU has.
    RequestHead base;
    internal::ForceHeadScanner(internal::HeadScanner::kSse2);
    const HeadResult rb = ParseRequestHead(buf.data(), buf.size(), o, base);
    for (auto s : {internal::HeadScanner::kAvx2, internal::HeadScanner::kAvx512}) {
      if (!internal::ForceHeadScanner(s)) continue;
      RequestHead h;
      const HeadResult r = ParseRequestHead(buf.data(), buf.size(), o, h);
      if (!SameHead(rb, base, r, h)) __builtin_trap();
    }
    internal::ForceHeadScanner(internal::HeadScanner::kAuto);
  }
  (void)CheckRequestStart(buf.data(), buf.size());

  ChunkedDecoder one;
  size_t used_one = 0;
  const auto r1 = one.Feed(buf.data(), buf.size(), used_one);
  ChunkedDecoder pieces;
  size_t pos = 0;
  auto r2 = ChunkedDecoder::Result::kMore;
  size_t piece = 1 + (knobs % 13);
  while (pos < buf.size() && r2 == ChunkedDecoder::Result::kMore) {
    const size_t n = buf.size() - pos < piece ? buf.size() - pos : piece;
    size_t used = 0;
    r2 = pieces.Feed(buf.data() + pos, n, used);
    if (used > n) __builtin_trap();
    pos += used;
    piece = piece * 7 % 17 + 1;
  }
  if (!buf.empty() && r1 != r2) __builtin_trap();
  if (r1 == ChunkedDecoder::Result::kDone && used_one != pos) __builtin_trap();
  return 0;
}
