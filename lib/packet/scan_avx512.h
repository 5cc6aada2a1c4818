// The AVX-512BW chunk scanner (x86-64 CPUs that have it, chosen at start as glibc's
// string functions are): a whole 64-byte chunk compares into masks directly.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <iterator>

#include "header_names.h"
#include "scan_masks.h"

#define DLB_AVX512 gnu::target("avx512f,avx512bw,bmi,bmi2,popcnt")

namespace dlb::packet::scan {

struct ScanAvx512 {
  // The line-start distances are found by loads and compares (spare vector work)
  // instead of shifts of the start masks (scarce scalar work); measured slower for
  // the narrower scanners, which need twice or four times the vector instructions.
  static constexpr bool kBack = true;
  __m512i lf, cr, colon, space;
  [[DLB_AVX512]] ScanAvx512()
      : lf(_mm512_set1_epi8('\n')), cr(_mm512_set1_epi8('\r')), colon(_mm512_set1_epi8(':')),
        space(_mm512_set1_epi8(0x20)) {}
  [[DLB_AVX512]] ChunkMasks operator()(const uint8_t* p) const {
    const __m512i v = _mm512_loadu_si512(p);
    ChunkMasks m;
    m.lf = _mm512_cmpeq_epi8_mask(v, lf);
    m.cr = _mm512_cmpeq_epi8_mask(v, cr);
    m.nul = _mm512_testn_epi8_mask(v, v);
    m.colon = _mm512_cmpeq_epi8_mask(v, colon);
    m.ctl = _mm512_cmple_epu8_mask(v, space);
    return m;
  }
  [[DLB_AVX512]] __m512i XorLf(const uint8_t* p) const { return _mm512_xor_si512(_mm512_loadu_si512(p), lf); }
  // id1: the identity name's length + 1, at most 64.
  [[DLB_AVX512]] LeanMasks WithPrev(const uint8_t* p, size_t id1) const {
    const __m512i v = _mm512_loadu_si512(p);
    // An LF at any of the four distances back (the known names', the identity's): the minimum of the bytes XOR LF is 0.
    static_assert(std::size(kKnownHeaders) == 3, "one XorLf per known header name");
    const __m512i near =
        _mm512_min_epu8(_mm512_min_epu8(XorLf(p - (kKnownHeaders[0].name.size() + 1)),
                                        XorLf(p - (kKnownHeaders[1].name.size() + 1))),
                        _mm512_min_epu8(XorLf(p - (kKnownHeaders[2].name.size() + 1)), XorLf(p - id1)));
    const __m512i v1 = _mm512_loadu_si512(p - 1);
    const __m512i v2 = _mm512_loadu_si512(p - 2);
    const __mmask64 is_lf = _mm512_cmpeq_epi8_mask(v, lf);
    const __mmask64 after_lf = _mm512_cmpeq_epi8_mask(v1, lf);
    const __mmask64 after_cr = _mm512_cmpeq_epi8_mask(v1, cr);
    const __mmask64 end = is_lf & (after_lf | (after_cr & _mm512_cmpeq_epi8_mask(v2, lf)));
    LeanMasks m;
    m.lf = is_lf;
    m.starts = after_lf;
    m.colon = _mm512_cmpeq_epi8_mask(v, colon);
    m.ctl = _mm512_cmple_epu8_mask(v, space);
    m.special = end | (after_cr & ~is_lf) | _mm512_testn_epi8_mask(v, v);
    m.back = _mm512_testn_epi8_mask(near, near);
    return m;
  }
};

}  // namespace dlb::packet::scan
