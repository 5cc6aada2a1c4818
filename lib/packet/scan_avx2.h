// The AVX2 chunk scanner (x86-64 CPUs that have it, chosen at start): a 64-byte chunk
// in two 32-byte halves.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "scan_masks.h"

#define DLB_AVX2 gnu::target("avx2,bmi,bmi2,popcnt")

namespace dlb::packet::scan {

struct ScanAvx2 {
  static constexpr bool kBack = false;
  __m256i lf, cr, colon, space;
  [[DLB_AVX2]] ScanAvx2()
      : lf(_mm256_set1_epi8('\n')), cr(_mm256_set1_epi8('\r')), colon(_mm256_set1_epi8(':')),
        space(_mm256_set1_epi8(0x20)) {}
  [[DLB_AVX2]] static uint64_t Bits(__m256i lo, __m256i hi) {
    return static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(lo))) |
           static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(hi))) << 32;
  }
  [[DLB_AVX2]] ChunkMasks operator()(const uint8_t* p) const {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    const __m256i zero = _mm256_setzero_si256();
    ChunkMasks m;
    m.lf = Bits(_mm256_cmpeq_epi8(a, lf), _mm256_cmpeq_epi8(b, lf));
    m.cr = Bits(_mm256_cmpeq_epi8(a, cr), _mm256_cmpeq_epi8(b, cr));
    m.nul = Bits(_mm256_cmpeq_epi8(a, zero), _mm256_cmpeq_epi8(b, zero));
    m.colon = Bits(_mm256_cmpeq_epi8(a, colon), _mm256_cmpeq_epi8(b, colon));
    m.ctl = Bits(_mm256_cmpeq_epi8(_mm256_max_epu8(a, space), space),
                 _mm256_cmpeq_epi8(_mm256_max_epu8(b, space), space));
    return m;
  }
  struct Half {
    __m256i lf, starts, colon, ctl, special;
  };
  [[DLB_AVX2]] Half HalfWithPrev(const uint8_t* q) const {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q - 1));
    const __m256i v2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q - 2));
    Half h;
    h.lf = _mm256_cmpeq_epi8(v, lf);
    h.starts = _mm256_cmpeq_epi8(v1, lf);
    const __m256i after_cr = _mm256_cmpeq_epi8(v1, cr);
    const __m256i end =
        _mm256_and_si256(h.lf, _mm256_or_si256(h.starts, _mm256_and_si256(after_cr, _mm256_cmpeq_epi8(v2, lf))));
    h.special = _mm256_or_si256(_mm256_or_si256(end, _mm256_andnot_si256(h.lf, after_cr)),
                                _mm256_cmpeq_epi8(v, _mm256_setzero_si256()));
    h.colon = _mm256_cmpeq_epi8(v, colon);
    h.ctl = _mm256_cmpeq_epi8(_mm256_max_epu8(v, space), space);
    return h;
  }
  [[DLB_AVX2]] LeanMasks WithPrev(const uint8_t* p, size_t) const {
    const Half a = HalfWithPrev(p);
    const Half b = HalfWithPrev(p + 32);
    LeanMasks m;
    m.lf = Bits(a.lf, b.lf);
    m.starts = Bits(a.starts, b.starts);
    m.colon = Bits(a.colon, b.colon);
    m.ctl = Bits(a.ctl, b.ctl);
    m.special = Bits(a.special, b.special);
    return m;
  }
};

}  // namespace dlb::packet::scan
