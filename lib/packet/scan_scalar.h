// The portable chunk scanner, a byte at a time: the baseline where there is no SSE2.
#pragma once

#include <cstddef>
#include <cstdint>

#include "scan_masks.h"

namespace dlb::packet::scan {

// As ScanSse2 (scan_sse2.h), byte by byte.
struct ScanScalar {
  static constexpr bool kBack = false;
  ChunkMasks operator()(const uint8_t* p) const {
    ChunkMasks m;
    for (int i = 0; i < 64; ++i) {
      const uint64_t bit = uint64_t{1} << i;
      if (p[i] == '\n') m.lf |= bit;
      if (p[i] == '\r') m.cr |= bit;
      if (p[i] == 0) m.nul |= bit;
      if (p[i] == ':') m.colon |= bit;
      if (p[i] <= 0x20) m.ctl |= bit;
    }
    return m;
  }
  LeanMasks WithPrev(const uint8_t* p, size_t) const {
    LeanMasks m;
    for (int i = 0; i < 64; ++i) {
      const uint64_t bit = uint64_t{1} << i;
      const bool is_lf = p[i] == '\n';
      if (is_lf) m.lf |= bit;
      if (p[i - 1] == '\n') m.starts |= bit;
      if (p[i] == ':') m.colon |= bit;
      if (p[i] <= 0x20) m.ctl |= bit;
      const bool end = is_lf && (p[i - 1] == '\n' || (p[i - 1] == '\r' && p[i - 2] == '\n'));
      if (end || (p[i - 1] == '\r' && !is_lf) || p[i] == 0) m.special |= bit;
    }
    return m;
  }
};

// The first 64 bytes' '?' and DEL bytes as bit masks (the usual request line).
inline void QueryAndDelMasks(const uint8_t* p, uint64_t& query, uint64_t& del) {
  query = 0;
  del = 0;
  for (int i = 0; i < 64; ++i) {
    query |= static_cast<uint64_t>(p[i] == '?') << i;
    del |= static_cast<uint64_t>(p[i] == 0x7f) << i;
  }
}

}  // namespace dlb::packet::scan
