// The floor of a head decision in user space, for bench_packet: only what any decision
// of these frames must do, on the same frames, with the same burst and prefetching
// scheme as the engine. Per frame:
//   - Ethernet, IPv4 and TCP with their bounds checks (no VLAN, options or IPv6 paths
//     beyond what the frames hold);
//   - the flow: a keyed hash (SipHash-1-3) of the 4-tuple, one slot of a table checked
//     for the expected sequence number and advanced (no reassembly, no state machine);
//   - the head: one pass of 64-byte LF compares (AVX-512 where the CPU has it) to the
//     empty line that ends it, and at each line start an 8-byte compare of the name
//     with the identity header's ("x-user-i", then "d:"), case folded by OR 0x20;
//   - the identity value's keyed hash (SipHash-1-3);
//   - one bucket per user in 64-byte lines of four 16-byte entries (tag, TAT),
//     prefetched in the first pass, decided by GCRA in the second.
// It checks nothing else: no NUL or bare CR, no header name syntax, no request line,
// no Host, Content-Length or Transfer-Encoding, no rules, no counters, no verdicts.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "dlb/packet/allocator.h"
#include "dlb/packet/parse.h"
#include "dlb/siphash.h"

namespace dlb::bench {

class FloorDecider {
 public:
  static constexpr size_t kMaxBurst = 32;
  struct Frame {
    const uint8_t* data;
    uint32_t bytes;
  };

  FloorDecider(uint64_t users, int64_t interval_ns, int64_t tau_ns)
      : interval_ns_(interval_ns), tau_ns_(tau_ns) {
    // As many entries as the engine's shard gives three buckets per user, at load 0.8.
    uint64_t lines = 1;
    while (lines * 4 * 8 < users * 3 * 10) lines <<= 1;
    // The engine's allocator: large tables 2 MiB-aligned on transparent huge pages.
    lines_.reset(static_cast<Line*>(packet::HeapAllocator::Instance().Allocate(lines * sizeof(Line), 64)));
    std::memset(static_cast<void*>(lines_.get()), 0, lines * sizeof(Line));
    line_mask_ = lines - 1;
    flows_.assign(kFlowSlots, Flow{});
#if defined(__x86_64__)
    __builtin_cpu_init();
    avx512_ = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f");
#endif
  }

  bool avx512() const { return avx512_; }
  // The identity hash the floor finds in a head's bytes (0: none), and what it must be.
  uint64_t IdentityOf(const uint8_t* head, size_t n) const {
#if defined(__x86_64__)
    if (avx512_) return IdentityAvx512(head, n);
#endif
    return IdentityScalar(head, n);
  }
  uint64_t ScalarIdentityOf(const uint8_t* head, size_t n) const { return IdentityScalar(head, n); }
  uint64_t HashOf(const uint8_t* value, size_t n) const { return SipHash13(identity_key_, value, n) | 1; }
  uint64_t decided() const { return decided_; }
  uint64_t admitted() const { return admitted_; }

  // Returns the number of heads decided in the burst.
  size_t Burst(const Frame* frames, size_t n, int64_t now_ns) {
    uint64_t tags[kMaxBurst];
    size_t heads = 0;
    // Every line of the frames a few ahead, as the engine fetches the payloads it parses.
    for (size_t i = 0; i < n && i < kPrefetchAhead; ++i) PrefetchFrame(frames[i]);
    for (size_t i = 0; i < n && i < kMaxBurst; ++i) {
      if (i + kPrefetchAhead < n) PrefetchFrame(frames[i + kPrefetchAhead]);
      const uint64_t tag = Head(frames[i]);
      if (tag == 0) continue;
      __builtin_prefetch(&lines_.get()[tag & line_mask_]);
      tags[heads++] = tag;
    }
    for (size_t k = 0; k < heads; ++k) Decide(tags[k], now_ns);
    decided_ += heads;
    return heads;
  }

  // The flow of this frame expects it next (untimed setup).
  void Expect(const Frame& f) {
    const uint8_t* d = f.data;
    const size_t tcp = 14 + (d[14] & 0x0f) * 4u;
    FlowFor(d + 14 + 12, d + tcp).next_seq = packet::LoadBe32(d + tcp + 4);
  }

 private:
  struct Entry {
    uint64_t tag;
    int64_t tat;
  };
  struct alignas(64) Line {
    Entry e[4];
  };
  struct Flow {
    uint64_t key = 0;
    uint32_t next_seq = 0;
  };
  static constexpr size_t kFlowSlots = 4096;
  struct FreeDeleter {
    void operator()(Line* p) const { packet::HeapAllocator::Instance().Free(p); }
  };

  static constexpr size_t kPrefetchAhead = 4;
  static constexpr size_t kMaxChunks = 16;  // heads of up to 1 KiB
  static void PrefetchFrame(const Frame& f) {
    const uint32_t n = f.bytes < 704 ? f.bytes : 704;
    for (uint32_t off = 0; off < n; off += 64) __builtin_prefetch(f.data + off);
  }

  Flow& FlowFor(const uint8_t* addrs, const uint8_t* ports) {
    uint8_t key[12];
    std::memcpy(key, addrs, 8);
    std::memcpy(key + 8, ports, 4);
    const uint64_t h = SipHash13(flow_key_, key, sizeof key) | 1;
    for (size_t probe = 0;; ++probe) {
      Flow& f = flows_[(h + probe) & (kFlowSlots - 1)];
      if (f.key == h || f.key == 0 || probe == 7) {
        f.key = h;
        return f;
      }
    }
  }

  // The identity's hash (never 0), or 0 when the frame holds no decidable head.
  uint64_t Head(const Frame& f) {
    const uint8_t* d = f.data;
    const uint32_t len = f.bytes;
    if (len < 14 + 20 + 20 || d[12] != 0x08 || d[13] != 0x00) return 0;
    const size_t ip = 14;
    const size_t ihl = (d[ip] & 0x0f) * 4u;
    if ((d[ip] >> 4) != 4 || ihl < 20 || d[ip + 9] != 6) return 0;
    const size_t ip_total = packet::LoadBe16(d + ip + 2);
    if (ip_total < ihl + 20 || ip + ip_total > len) return 0;
    if ((d[ip + 6] & 0x3f) != 0 || d[ip + 7] != 0) return 0;  // a fragment
    const size_t tcp = ip + ihl;
    const size_t doff = (d[tcp + 12] >> 4) * 4u;
    if (doff < 20 || ihl + doff > ip_total) return 0;
    const size_t payload = tcp + doff;
    const size_t bytes = ip + ip_total - payload;
    if (bytes == 0) return 0;
    Flow& fl = FlowFor(d + ip + 12, d + tcp);
    const uint32_t seq = packet::LoadBe32(d + tcp + 4);
    if (seq != fl.next_seq) return 0;  // out of order: the engine would buffer it
    fl.next_seq = seq + static_cast<uint32_t>(bytes);
    return IdentityOf(d + payload, bytes);
  }

  // A line start at p[s]: is it the identity header's ("X-User-ID:", any case)?
  static bool IsIdentityLine(const uint8_t* p, size_t s, size_t n) {
    if (s + 10 > n) return false;
    uint64_t w;
    std::memcpy(&w, p + s, 8);
    // "x-user-i" with 0x20 ORed into every byte ('-' and ':' have that bit set).
    constexpr uint64_t kName = 0x692d726573752d78ULL;
    return (w | 0x2020202020202020ULL) == kName && (p[s + 8] | 0x20) == 'd' && p[s + 9] == ':';
  }

  uint64_t ValueHash(const uint8_t* p, size_t s, size_t line_end) const {
    size_t v = s + 10;
    while (v < line_end && (p[v] == ' ' || p[v] == '\t')) ++v;
    size_t e = line_end;
    if (e > v && p[e - 1] == '\r') --e;
    return SipHash13(identity_key_, p + v, e - v) | 1;
  }

#if defined(__x86_64__)
  // The identity line is the one whose colon lies 9 bytes after its start: per chunk,
  // the colons at that distance from a line start are the only lines compared. Its
  // value ends at the next LF, found in the LF masks kept per chunk.
  [[gnu::target("avx512f,avx512bw,bmi,bmi2,popcnt")]] uint64_t IdentityAvx512(const uint8_t* p, size_t n) const {
    const __m512i lf = _mm512_set1_epi8('\n');
    const __m512i cr = _mm512_set1_epi8('\r');
    const __m512i colon = _mm512_set1_epi8(':');
    uint64_t lfs[kMaxChunks];
    uint64_t last_lf = 0;  // the previous chunk's LF and CR masks (their top bits carry)
    uint64_t last_cr = 0;
    uint64_t last_starts = 0;
    size_t id_at = SIZE_MAX;  // the identity line's start
    const size_t chunks = n < kMaxChunks * 64 ? (n + 63) / 64 : kMaxChunks;
    for (size_t c = 0; c < chunks; ++c) {
      const size_t base = c * 64;
      const size_t left = n - base;
      const __mmask64 in = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
      const __m512i v = _mm512_maskz_loadu_epi8(in, p + base);
      const uint64_t m_lf = _mm512_mask_cmpeq_epi8_mask(in, v, lf);
      const uint64_t m_cr = _mm512_mask_cmpeq_epi8_mask(in, v, cr);
      const uint64_t m_colon = _mm512_mask_cmpeq_epi8_mask(in, v, colon);
      lfs[c] = m_lf;
      const uint64_t starts = m_lf << 1 | last_lf >> 63;
      const uint64_t prev_cr = m_cr << 1 | last_cr >> 63;
      const uint64_t ends = m_lf & (starts | (prev_cr & (m_lf << 2 | last_lf >> 62)));
      const uint64_t cand = m_colon & (starts << 9 | last_starts >> 55);
      // The first candidate, without a branch (where it lies is random); checked below.
      const size_t at = base + static_cast<size_t>(__builtin_ctzll(cand | uint64_t{1} << 63)) - 9;
      id_at = id_at == SIZE_MAX && cand != 0 ? at : id_at;
      if (ends != 0) {
        const size_t end = base + static_cast<size_t>(__builtin_ctzll(ends));
        if (id_at >= end) return 0;
        if (!IsIdentityLine(p, id_at, n)) return IdentityScalar(p, n);  // another 9-byte name first
        // The LF after the identity's colon.
        size_t k = (id_at + 10) / 64;
        uint64_t w = lfs[k] & (~uint64_t{0} << ((id_at + 10) & 63));
        while (w == 0) w = lfs[++k];
        return ValueHash(p, id_at, k * 64 + static_cast<size_t>(__builtin_ctzll(w)));
      }
      last_lf = m_lf;
      last_cr = m_cr;
      last_starts = starts;
    }
    return 0;  // no end of head in the first kMaxChunks * 64 bytes
  }
#endif

  uint64_t IdentityScalar(const uint8_t* p, size_t n) const {
    size_t line = 0;
    uint64_t hash = 0;
    for (;;) {
      const void* lf = std::memchr(p + line, '\n', n - line);
      if (lf == nullptr) return 0;
      const size_t at = static_cast<const uint8_t*>(lf) - p;
      if (line > 0 && hash == 0 && IsIdentityLine(p, line, n)) hash = ValueHash(p, line, at);
      if (at == line || (at == line + 1 && p[line] == '\r')) return line > 0 ? hash : 0;
      line = at + 1;
      if (line >= n) return 0;
    }
  }

  void Decide(uint64_t tag, int64_t now_ns) {
    Line& l = lines_.get()[tag & line_mask_];
    Entry* slot = nullptr;
    for (Entry& e : l.e) {
      if (e.tag == tag) {
        slot = &e;
        break;
      }
      if (slot == nullptr && e.tag == 0) slot = &e;
    }
    if (slot == nullptr) return;  // line full: counted as not admitted
    const int64_t tat = (slot->tag == tag && slot->tat > now_ns ? slot->tat : now_ns) + interval_ns_;
    if (tat - now_ns > tau_ns_ + interval_ns_) return;  // limited
    slot->tag = tag;
    slot->tat = tat;
    ++admitted_;
  }

  int64_t interval_ns_;
  int64_t tau_ns_;
  std::unique_ptr<Line, FreeDeleter> lines_;
  uint64_t line_mask_ = 0;
  std::vector<Flow> flows_;
  SipKey flow_key_{0x1234 ^ 0x666c6f77ULL, 0x5678};
  SipKey identity_key_{0x1234, 0x5678 ^ 0x6964656eULL};
  bool avx512_ = false;
  uint64_t decided_ = 0;
  uint64_t admitted_ = 0;
};

}  // namespace dlb::bench
