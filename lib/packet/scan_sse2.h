// The SSE2 chunk scanner (every x86-64 has SSE2): 64 bytes as four 16-byte compares.
// The baseline the wider scanners (scan_avx2.h, scan_avx512.h) are chosen over at start.
#pragma once

#include <emmintrin.h>

#include <cstddef>
#include <cstdint>

#include "scan_masks.h"

namespace dlb::packet::scan {

// operator() classifies the 64 bytes at p; WithPrev those at p with the two bytes
// before p, which the caller has. Constants built once per head.
struct ScanSse2 {
  static constexpr bool kBack = false;
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i colon = _mm_set1_epi8(':');
  const __m128i space = _mm_set1_epi8(0x20);
  ChunkMasks operator()(const uint8_t* p) const {
    ChunkMasks m;
    for (int b = 0; b < 4; ++b) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * b));
      const auto bits = [&](__m128i eq) {
        return static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(eq))) << (16 * b);
      };
      m.lf |= bits(_mm_cmpeq_epi8(v, lf));
      m.cr |= bits(_mm_cmpeq_epi8(v, cr));
      m.nul |= bits(_mm_cmpeq_epi8(v, _mm_setzero_si128()));
      m.colon |= bits(_mm_cmpeq_epi8(v, colon));
      // v <= 0x20 (unsigned) iff max(v, 0x20) == 0x20.
      m.ctl |= bits(_mm_cmpeq_epi8(_mm_max_epu8(v, space), space));
    }
    return m;
  }
  LeanMasks WithPrev(const uint8_t* p, size_t) const {
    LeanMasks m;
    for (int b = 0; b < 4; ++b) {
      const uint8_t* q = p + 16 * b;
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
      const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q - 1));
      const __m128i v2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q - 2));
      const auto bits = [&](__m128i eq) {
        return static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(eq))) << (16 * b);
      };
      const __m128i is_lf = _mm_cmpeq_epi8(v, lf);
      const __m128i after_lf = _mm_cmpeq_epi8(v1, lf);
      const __m128i after_cr = _mm_cmpeq_epi8(v1, cr);
      const __m128i end = _mm_and_si128(is_lf, _mm_or_si128(after_lf, _mm_and_si128(after_cr, _mm_cmpeq_epi8(v2, lf))));
      const __m128i bad = _mm_or_si128(_mm_andnot_si128(is_lf, after_cr), _mm_cmpeq_epi8(v, _mm_setzero_si128()));
      m.lf |= bits(is_lf);
      m.starts |= bits(after_lf);
      m.colon |= bits(_mm_cmpeq_epi8(v, colon));
      m.ctl |= bits(_mm_cmpeq_epi8(_mm_max_epu8(v, space), space));
      m.special |= bits(_mm_or_si128(end, bad));
    }
    return m;
  }
};

// The first 64 bytes' '?' and DEL bytes as bit masks (the usual request line).
inline void QueryAndDelMasks(const uint8_t* p, uint64_t& query, uint64_t& del) {
  query = 0;
  del = 0;
  for (int b = 0; b < 4; ++b) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * b));
    query |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('?')))))
             << (16 * b);
    del |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)))))
           << (16 * b);
  }
}

}  // namespace dlb::packet::scan
