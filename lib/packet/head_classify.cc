// Pass 1 of the head parser (head_classify.h): one classifier, instantiated per chunk
// scanner (scan.h) and in two variants, lean and full (Pass<Scan, kLean>).
#include "head_classify.h"

#include <bit>
#include <cstring>
#include <iterator>
#include <utility>

#include "header_names.h"
#include "http_internal.h"
#include "scan.h"

namespace dlb::packet::internal {
namespace {

using scan::ChunkMasks;
using scan::LeanMasks;

// Bits of a line start d bytes before (0 < d < 64), from this chunk's starts and the
// previous chunk's: one double-width shift.
template <unsigned kD>
inline uint64_t StartsBack(uint64_t starts, uint64_t prev_starts) {
#if defined(__SIZEOF_INT128__)
  const unsigned __int128 both = static_cast<unsigned __int128>(starts) << 64 | prev_starts;
  return static_cast<uint64_t>((both << kD) >> 64);
#else
  return starts << kD | prev_starts >> (64 - kD);
#endif
}

template <size_t... I>
inline uint64_t KnownStartsBack(uint64_t starts, uint64_t prev_starts, std::index_sequence<I...>) {
  return (StartsBack<kKnownHeaders[I].name.size()>(starts, prev_starts) | ...);
}

// Line starts moved to where the colon of a line with a known header name would be.
inline uint64_t KnownStartsBack(uint64_t starts, uint64_t prev_starts) {
  return KnownStartsBack(starts, prev_starts, std::make_index_sequence<std::size(kKnownHeaders)>());
}

// a + b + carry_in, and the carry out (one add-with-carry where there is one).
inline uint64_t AddCarry(uint64_t a, uint64_t b, uint64_t& carry) {
#if defined(__x86_64__)
  unsigned long long sum;
  carry = _addcarry_u64(static_cast<unsigned char>(carry), a, b, &sum);
  return sum;
#else
  uint64_t sum;
  const bool c1 = __builtin_add_overflow(a, b, &sum);
  const bool c2 = __builtin_add_overflow(sum, carry, &sum);
  carry = (c1 || c2) ? 1 : 0;
  return sum;
#endif
}

// The masks of data[base, limit) (fewer than 64 bytes), bit 0 = byte base.
template <class Scan>
[[gnu::always_inline]] inline ChunkMasks ScanTail(const Scan& scan, const uint8_t* data, size_t base, size_t limit) {
  const size_t n = limit - base;
  ChunkMasks m;
  if (limit >= 64) {
    // Scan the 64 bytes that end at the limit (overlapping the previous chunk) and
    // shift its bytes out. Copying the tail to a buffer instead costs a
    // store-forwarding stall per head.
    m = scan(data + limit - 64);
    const int drop = static_cast<int>(64 - n);
    m.lf >>= drop;
    m.cr >>= drop;
    m.nul >>= drop;
    m.colon >>= drop;
    m.ctl >>= drop;
  } else {
    uint8_t tail[64];
    std::memset(tail, 0xff, sizeof tail);  // 0xff: in no class
    std::memcpy(tail, data + base, n);
    m = scan(tail);
  }
  return m;
}

// Pass 1 over one head. The full variant keeps every mask the line walk of
// ParseRequestHead needs to name a fault. The lean one (kLean, identity names of 1 to
// 63 bytes) keeps only what a well-formed head needs: no colon or first-colon masks,
// one `suspect` for a NUL, a bare CR, a malformed name or no end (then the full one
// runs), and which chunks hold wanted colons. Its chunks inside the head come from
// comparing bytes with their neighbours (Scan::WithPrev), not from carried masks.
template <class Scan, bool kLean>
class Pass {
 public:
  [[gnu::always_inline]] Pass(const uint8_t* data, size_t limit, size_t id_bytes, HeadMasks& hm)
      : data_(data),
        limit_(limit),
        hm_(hm),
        id_shift_(kLean || (id_bytes > 0 && id_bytes < 64) ? static_cast<unsigned>(id_bytes) : 0) {}

  [[gnu::always_inline]] Classified Run() {
    if constexpr (kLean) {
      return RunLean();
    } else {
      return RunFull();
    }
  }

 private:
  [[gnu::always_inline]] Classified RunFull() {
    Classified out;
    size_t base = 0;
    for (; limit_ - base >= 64; base += 64) {
      if (Step(base, scan_(data_ + base), out)) return out;
    }
    return Tail(base);
  }

  [[gnu::always_inline]] Classified RunLean() {
    Classified out;
    out.suspect = true;  // no end found (or a NUL or bare CR seen): the full pass decides
    if (limit_ < 64) return out;
    if (Step(0, scan_(data_), out)) return out;
    bool special;
    const size_t base = Inside(special);
    CarryFromBytes(base);
    if (special) {
      Step(base, scan_(data_ + base), out);
      return out;  // the end of the head, or a NUL or a bare CR (suspect: the full pass says)
    }
    return Tail(base);
  }

  // Line starts moved to where a wanted colon would be: a known name's or the identity's.
  [[gnu::always_inline]] uint64_t Back(uint64_t starts, uint64_t prev_starts) const {
    uint64_t back = KnownStartsBack(starts, prev_starts);
    if (kLean || id_shift_ != 0) back |= starts << id_shift_ | prev_starts >> (64 - id_shift_);
    return back;
  }

  // The LFs of chunk `m` that end the head (an empty line: LF preceded by LF, or by CR
  // preceded by LF), with the chunk's bytes-after-LF and bytes-after-CR. An LF at 0, or
  // "\r\n" at 0, ends no head: the carries start at zero.
  [[gnu::always_inline]] uint64_t Ends(const ChunkMasks& m, uint64_t& prev_lf, uint64_t& prev_cr) const {
    prev_lf = m.lf << 1 | last_lf_ >> 63;
    prev_cr = m.cr << 1 | last_cr_ >> 63;
    return m.lf & (prev_lf | (prev_cr & (m.lf << 2 | last_lf_ >> 62)));
  }

  // The carries of the bytes before `base` read from the bytes (the lean loop keeps none).
  [[gnu::always_inline]] void CarryFromBytes(size_t base) {
    last_lf_ = uint64_t{data_[base - 1] == '\n'} << 63 | uint64_t{data_[base - 2] == '\n'} << 62;
    last_cr_ = uint64_t{data_[base - 1] == '\r'} << 63;
  }

  // One whole chunk at `base` after the bytes before it: true (and `out`) if the head
  // ends in it.
  [[gnu::always_inline]] bool Step(size_t base, const ChunkMasks& m, Classified& out) {
    uint64_t prev_lf;
    uint64_t prev_cr;
    if (const uint64_t ends = Ends(m, prev_lf, prev_cr); ends != 0) {
      out = Finish(base, m, prev_lf, prev_cr, ends);
      return true;
    }
    Add(base >> 6, m, prev_cr, ~uint64_t{0}, prev_lf);  // starts: bytes that follow an LF
    last_lf_ = m.lf;
    last_cr_ = m.cr;
    return false;
  }

  // The last, partial chunk, if any: the result with the end, or without one.
  [[gnu::always_inline]] Classified Tail(size_t base) {
    if (base < limit_) {
      const ChunkMasks m = ScanTail(scan_, data_, base, limit_);
      const uint64_t valid = (uint64_t{1} << (limit_ - base)) - 1;
      uint64_t prev_lf;
      uint64_t prev_cr;
      if (const uint64_t ends = Ends(m, prev_lf, prev_cr) & valid; ends != 0) {
        return Finish(base, m, prev_lf, prev_cr, ends);
      }
    }
    Classified out;
    if constexpr (kLean) out.suspect = true;
    if constexpr (!kLean) out.bad = bad_ != 0;
    return out;
  }

  // One chunk's masks into the head's: `in_head` limits them to the head (all ones
  // but in the last chunk), `starts` are its line starts.
  [[gnu::always_inline]] void Add(size_t c, const ChunkMasks& m, uint64_t prev_cr, uint64_t in_head,
                                  uint64_t starts) {
    ChunkBits& cb = hm_.c[c];
    cb.lf = m.lf;
    cb.ctl = m.ctl;
    cb.start = starts;
    if constexpr (!kLean) cb.colon = m.colon;
    // Names: from each line start to the line's first ':'. Adding the start bits to the
    // non-colon mask carries each start up to the next colon, so (~colon + starts) ^
    // ~colon marks every name with its colon, all lines at once.
    const uint64_t not_colon = ~m.colon;
    const uint64_t names = (AddCarry(not_colon, starts, carry_name_) ^ not_colon) & in_head;
    const uint64_t first_colon = names & m.colon;
    // A NUL, or a CR that no LF follows (both end a line for some servers, which would
    // see a header we did not); where exactly is found again if there is one.
    const uint64_t bad = ((prev_cr & ~m.lf) | m.nul) & in_head;
    // A name byte that is a control or white space (a line with no colon runs its
    // "name" into its LF, which is one; a colon is no control), or a line that starts
    // with ':'.
    const uint64_t malformed = (names & m.ctl) | (starts & m.colon);
    // A first colon whose line started a wanted length before. (A start further back
    // than the line's own may sit at such a distance too: the lines visited check their
    // name's length again.)
    const uint64_t wanted = first_colon & Back(starts, prev_starts_);
    cb.wanted = wanted;
    if constexpr (kLean) {
      suspect_ |= bad | malformed;  // the full pass says where
      wanted_chunks_ |= uint64_t{wanted != 0} << (c & 63);
    } else {
      bad_ |= bad;
      suspect_ |= malformed;
      cb.first_colon = first_colon;
    }
    header_lines_ += static_cast<uint64_t>(std::popcount(starts));
    prev_starts_ = starts;
  }

  // The chunk that holds the end of the head (the lowest bit of `ends`).
  [[gnu::always_inline]] Classified Finish(size_t base, const ChunkMasks& m, uint64_t prev_lf, uint64_t prev_cr,
                                           uint64_t ends) {
    const int e = std::countr_zero(ends);
    const uint64_t in_head = e == 63 ? ~uint64_t{0} : (uint64_t{2} << e) - 1;
    // The empty line is no header line: its start is the LF itself or the CR before.
    uint64_t empty_line = uint64_t{1} << e;
    if (e > 0 && (m.cr >> (e - 1) & 1)) empty_line |= uint64_t{1} << (e - 1);
    if (ends & 1 && last_cr_ >> 63 && base > 0) suspect_ = 1;  // the empty line began in the last chunk
    Add(base >> 6, m, prev_cr, in_head, prev_lf & in_head & ~empty_line);
    Classified out;
    out.end_lf = base + static_cast<size_t>(e);
    out.header_lines = header_lines_;
    out.suspect = suspect_ != 0;
    if constexpr (kLean) {
      out.chunks_known = true;
      out.wanted_chunks = wanted_chunks_;
    } else {
      out.bad = bad_ != 0;
    }
    return out;
  }

  // The lean pass's chunks inside the head, from the second: returns where it stopped,
  // `special` when at a chunk it leaves to Step (the end of the head, a NUL, a bare CR).
  // The loop keeps its state in registers: its rare exit is handled after it, not by a
  // call that would need that state in memory. Only what the fast path of
  // ParseRequestHead reads is stored (LF, controls, line starts, wanted colons).
  [[gnu::always_inline]] size_t Inside(bool& special) {
    uint64_t carry = carry_name_;
    uint64_t prev = prev_starts_;
    uint64_t bad = 0;
    uint64_t lines = 0;
    special = false;
    // Pointers, not an index: the loop is short of registers.
    const uint8_t* p = data_ + 64;
    const uint8_t* const last = data_ + limit_ - 64;  // the last whole chunk starts here
    ChunkBits* cb = &hm_.c[1];
    uint64_t chunk_bit = 2;  // this chunk's bit in wanted_chunks (0 from chunk 64 on)
    uint64_t gathered = 0;
    const size_t id1 = id_shift_ + 1;  // <= 64: the loop starts at byte 64
    for (; p <= last; p += 64, ++cb, chunk_bit <<= 1) {
      const LeanMasks m = scan_.WithPrev(p, id1);
      if (m.special != 0) [[unlikely]] {
        special = true;
        break;
      }
      cb->lf = m.lf;
      cb->ctl = m.ctl;  // a request line may run past the first chunk
      cb->start = m.starts;
      const uint64_t not_colon = ~m.colon;
      const uint64_t names = AddCarry(not_colon, m.starts, carry) ^ not_colon;
      bad |= (names & m.ctl) | (m.starts & m.colon);
      uint64_t back;
      if constexpr (Scan::kBack) {
        back = m.back;
      } else {
        back = Back(m.starts, prev);
        prev = m.starts;
      }
      const uint64_t wanted = names & m.colon & back;
      cb->wanted = wanted;
      gathered |= wanted != 0 ? chunk_bit : 0;
      lines += static_cast<uint64_t>(std::popcount(m.starts));
    }
    const size_t base = static_cast<size_t>(p - data_);
    wanted_chunks_ |= gathered;
    carry_name_ = carry;
    // The previous chunk's line starts, for the chunk after the loop.
    prev_starts_ = Scan::kBack ? hm_.c[(base >> 6) - 1].start : prev;
    suspect_ |= bad;
    header_lines_ += lines;
    return base;
  }

  const Scan scan_;
  const uint8_t* const data_;
  const size_t limit_;
  HeadMasks& hm_;
  const unsigned id_shift_;  // the identity name's length when below 64 (lean: always)
  uint64_t header_lines_ = 0;
  uint64_t suspect_ = 0;
  uint64_t bad_ = 0;            // the full pass
  uint64_t wanted_chunks_ = 0;  // the lean pass
  uint64_t last_lf_ = 0;        // the previous chunk's LF mask (its top bits carry)
  uint64_t last_cr_ = 0;        // ... CR mask
  uint64_t carry_name_ = 0;     // a name that runs on into this chunk
  uint64_t prev_starts_ = 0;    // the previous chunk's line starts
};

template <class Scan>
[[gnu::always_inline]] inline Classified ClassifyWith(const uint8_t* d, size_t n, size_t id, HeadMasks& hm,
                                                      bool full) {
  if (!full && id > 0 && id < 64) {
    const Classified lean = Pass<Scan, true>(d, n, id, hm).Run();
    if (!lean.suspect) return lean;
  }
  return Pass<Scan, false>(d, n, id, hm).Run();
}

Classified ClassifyBaseline(const uint8_t* d, size_t n, size_t id, HeadMasks& hm, bool full) {
  return ClassifyWith<scan::ScanBaseline>(d, n, id, hm, full);
}
#if defined(__x86_64__)
[[DLB_AVX2]] Classified ClassifyAvx2(const uint8_t* d, size_t n, size_t id, HeadMasks& hm, bool full) {
  return ClassifyWith<scan::ScanAvx2>(d, n, id, hm, full);
}
[[DLB_AVX512]] Classified ClassifyAvx512(const uint8_t* d, size_t n, size_t id, HeadMasks& hm, bool full) {
  return ClassifyWith<scan::ScanAvx512>(d, n, id, hm, full);
}

// The wide scanners also use BMI1/2 and POPCNT, which every CPU with AVX2 has.
bool HasAvx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
         __builtin_cpu_supports("popcnt");
}
bool HasAvx512() { return HasAvx2() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f"); }
#endif

ClassifyFn PickClassify() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (HasAvx512()) return ClassifyAvx512;
  if (HasAvx2()) return ClassifyAvx2;
#endif
  return ClassifyBaseline;
}

}  // namespace

ClassifyFn g_classify = PickClassify();

bool ForceHeadScanner(HeadScanner scanner) {
  switch (scanner) {
    case HeadScanner::kAuto:
      g_classify = PickClassify();
      return true;
    case HeadScanner::kSse2:
      g_classify = ClassifyBaseline;
      return true;
    case HeadScanner::kAvx2:
#if defined(__x86_64__)
      if (!HasAvx2()) return false;
      g_classify = ClassifyAvx2;
      return true;
#else
      return false;
#endif
    case HeadScanner::kAvx512:
#if defined(__x86_64__)
      if (!HasAvx512()) return false;
      g_classify = ClassifyAvx512;
      return true;
#else
      return false;
#endif
  }
  return false;
}

}  // namespace dlb::packet::internal
