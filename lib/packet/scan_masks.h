// What a chunk scanner (scan_sse2.h, scan_avx2.h, scan_avx512.h, scan_scalar.h) reports
// of 64 bytes of a request head: character classes as bit masks, bit i = byte i. Pass 1
// of the head parser (head_classify.cc) builds everything else from them.
#pragma once

#include <cstdint>

namespace dlb::packet::scan {

// Character classes of one 64-byte chunk.
struct ChunkMasks {
  uint64_t lf = 0;
  uint64_t cr = 0;
  uint64_t nul = 0;
  uint64_t colon = 0;
  uint64_t ctl = 0;  // bytes <= 0x20: controls, space, tab (CR and LF too)
};

// A chunk inside the head (not the first), its neighbours compared too: `starts` are
// the bytes that follow an LF, and `special` marks what the lean pass does not handle
// itself: an empty line's LF (the end of the head), a NUL, a CR that no LF follows.
struct LeanMasks {
  uint64_t lf = 0;
  uint64_t starts = 0;
  uint64_t colon = 0;
  uint64_t ctl = 0;
  uint64_t special = 0;
  // Scanners with kBack: the bytes a known header name's length + 1 (header_names.h)
  // or id + 1 after an LF, where the colon of a line with such a name would be.
  uint64_t back = 0;
};

}  // namespace dlb::packet::scan
