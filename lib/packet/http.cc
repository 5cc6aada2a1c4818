#include "dlb/packet/http.h"

#include "dlb/path.h"

#include "http_internal.h"

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace dlb::packet {
namespace {

// tchar (RFC 9110, 5.6.2): the characters of methods and header names.
constexpr std::array<bool, 256> MakeTcharTable() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> kTchar = MakeTcharTable();

constexpr size_t kMaxMethodBytes = 24;
constexpr size_t kMaxContentLengthDigits = 18;  // < 1e18 < 2^63: no overflow below

inline bool IsTchar(uint8_t c) { return kTchar[c]; }
inline bool IsOws(uint8_t c) { return c == ' ' || c == '\t'; }
inline uint8_t Lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Eight bytes at a time (SWAR): header names are compared on every request.
constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighBits = 0x80 * kOnes;

inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ASCII lowercase of eight bytes: 0x20 is added to exactly the bytes in 'A'..'Z'. The
// sums stay below 0x100 per byte (heptet + 0x3f at most 0xbe), so no carry crosses bytes.
inline uint64_t Lower8(uint64_t x) {
  const uint64_t heptets = x & (0x7f * kOnes);
  const uint64_t at_least_a = heptets + (0x80 - 'A') * kOnes;   // high bit: heptet >= 'A'
  const uint64_t above_z = heptets + (0x80 - 'Z' - 1) * kOnes;  // high bit: heptet > 'Z'
  const uint64_t upper = (at_least_a ^ above_z) & ~x & kHighBits;
  return x | (upper >> 2);
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  if (n >= 8) {
    // Whole words, then the last eight bytes (overlapping the words already compared).
    for (size_t i = 0; i + 8 <= n; i += 8) {
      if (Lower8(Load64(a.data() + i)) != Lower8(Load64(b.data() + i))) return false;
    }
    return Lower8(Load64(a.data() + n - 8)) == Lower8(Load64(b.data() + n - 8));
  }
  if (n >= 4) {
    return Lower8(Load32(a.data())) == Lower8(Load32(b.data())) &&
           Lower8(Load32(a.data() + n - 4)) == Lower8(Load32(b.data() + n - 4));
  }
  for (size_t i = 0; i < n; ++i) {
    if (Lower(static_cast<uint8_t>(a[i])) != Lower(static_cast<uint8_t>(b[i]))) return false;
  }
  return true;
}

// Whether s holds a byte <= 0x20 (controls, space) or DEL. Word tests: a byte below
// 0x21 exists iff (x - 0x21..) & ~x & 0x80.. is non-zero, and a DEL iff x ^ 0x7f..
// has a zero byte (both exact as existence tests).
inline bool HasCtlOrDel(std::string_view s) {
  const auto word_has = [](uint64_t x) {
    const uint64_t below = (x - 0x21 * kOnes) & ~x & kHighBits;
    const uint64_t d = x ^ (0x7f * kOnes);
    const uint64_t del = (d - kOnes) & ~d & kHighBits;
    return (below | del) != 0;
  };
  const size_t n = s.size();
  if (n < 8) {
    for (char c : s) {
      if (static_cast<uint8_t>(c) <= ' ' || c == 0x7f) return true;
    }
    return false;
  }
  for (size_t i = 0; i + 8 <= n; i += 8) {
    if (word_has(Load64(s.data() + i))) return true;
  }
  return word_has(Load64(s.data() + n - 8));
}

inline std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(static_cast<uint8_t>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && IsOws(static_cast<uint8_t>(s.back()))) s.remove_suffix(1);
  return s;
}

// The first byte c in s, or npos: eight bytes at a time (a Host value is short; a
// library call costs more than the search). In (x - 0x01..) & ~x & 0x80.. the lowest
// flagged byte is exactly the first zero byte of x (borrows only flag bytes above one).
inline size_t FindByte(std::string_view s, char c) {
  const size_t n = s.size();
  const auto first_in = [c](uint64_t w) {
    const uint64_t x = w ^ (static_cast<uint8_t>(c) * kOnes);
    return (x - kOnes) & ~x & kHighBits;
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (const uint64_t z = first_in(Load64(s.data() + i)); z != 0) {
      return i + static_cast<size_t>(__builtin_ctzll(z)) / 8;
    }
  }
  if (n >= 8 && i < n) {
    // The last eight bytes, overlapping those already searched (which hold no c).
    if (const uint64_t z = first_in(Load64(s.data() + n - 8)); z != 0) {
      return n - 8 + static_cast<size_t>(__builtin_ctzll(z)) / 8;
    }
    return std::string_view::npos;
  }
  for (; i < n; ++i) {
    if (s[i] == c) return i;
  }
  return std::string_view::npos;
}

// Drops the port from an authority: "[::1]:8080" -> "[::1]", "a.example:443" -> "a.example".
inline std::string_view StripPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const size_t close = FindByte(host, ']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  const size_t colon = FindByte(host, ':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

inline bool ParseDecimal(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > kMaxContentLengthDigits) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

// Whether a header value has a control byte (below SP, HTAB included) or DEL.
inline bool HasCtlOrDelInValue(std::string_view v) {
  uint8_t bad = 0;
  for (char ch : v) {
    const uint8_t c = static_cast<uint8_t>(ch);
    bad |= static_cast<uint8_t>(c < 0x20) | static_cast<uint8_t>(c == 0x7f);
  }
  return bad != 0;
}

// The last comma-separated element of a Transfer-Encoding value, OWS trimmed.
inline std::string_view LastCoding(std::string_view v) {
  const size_t comma = v.rfind(',');
  return TrimOws(comma == std::string_view::npos ? v : v.substr(comma + 1));
}

HeadResult ParseTarget(std::string_view target, Method method, RequestHead& head,
                       bool& authority_host) {
  authority_host = false;
  if (target.empty()) return HeadResult::kBadRequestLine;
  if (target.front() == '/') {
    head.path = target.substr(0, target.find('?'));
    return HeadResult::kOk;
  }
  if (target == "*") {  // asterisk-form (OPTIONS *)
    head.path = target;
    return HeadResult::kOk;
  }
  const size_t scheme_end = target.find("://");
  if (scheme_end != std::string_view::npos && scheme_end > 0) {
    // absolute-form: its authority replaces Host (RFC 9112, 3.2.2).
    std::string_view rest = target.substr(scheme_end + 3);
    const size_t path_start = rest.find_first_of("/?");
    head.host = StripPort(rest.substr(0, path_start));
    authority_host = true;
    if (path_start == std::string_view::npos || rest[path_start] == '?') {
      head.path = "/";
    } else {
      std::string_view p = rest.substr(path_start);
      head.path = p.substr(0, p.find('?'));
    }
    return HeadResult::kOk;
  }
  if (method == Method::kConnect) {  // authority-form
    head.host = StripPort(target);
    authority_host = true;
    head.path = "";
    return HeadResult::kOk;
  }
  return HeadResult::kBadRequestLine;
}

}  // namespace

const char* MethodName(Method m) {
  static constexpr const char* kNames[kMethodCount] = {
      "", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};
  const auto i = static_cast<size_t>(m);
  return i < kMethodCount ? kNames[i] : "";
}

Method MethodFromToken(std::string_view t) {
  switch (t.size()) {
    case 3:
      if (t == "GET") return Method::kGet;
      if (t == "PUT") return Method::kPut;
      break;
    case 4:
      if (t == "POST") return Method::kPost;
      if (t == "HEAD") return Method::kHead;
      break;
    case 5:
      if (t == "PATCH") return Method::kPatch;
      if (t == "TRACE") return Method::kTrace;
      break;
    case 6:
      if (t == "DELETE") return Method::kDelete;
      break;
    case 7:
      if (t == "OPTIONS") return Method::kOptions;
      if (t == "CONNECT") return Method::kConnect;
      break;
    default:
      break;
  }
  return Method::kOther;
}

const char* HeadResultName(HeadResult r) {
  switch (r) {
#define DLB_X(name, str) \
  case HeadResult::name: return str;
    DLB_HEAD_RESULTS(DLB_X)
#undef DLB_X
  }
  return "unknown";
}

HeadResult FindHeadEnd(const uint8_t* data, size_t len, uint32_t max_head_bytes,
                       uint32_t& scan_from, uint32_t& head_bytes) {
  const size_t limit = len < max_head_bytes ? len : max_head_bytes;
  size_t i = scan_from;
  while (i < limit) {
    const void* nl = std::memchr(data + i, '\n', limit - i);
    if (nl == nullptr) break;
    i = static_cast<const uint8_t*>(nl) - data;
    // An empty line follows this LF: "\n\n" or "\n\r\n".
    if (i + 1 < len && data[i + 1] == '\n') {
      if (i + 2 > max_head_bytes) return HeadResult::kTooLarge;
      head_bytes = static_cast<uint32_t>(i + 2);
      return HeadResult::kOk;
    }
    if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n') {
      if (i + 3 > max_head_bytes) return HeadResult::kTooLarge;
      head_bytes = static_cast<uint32_t>(i + 3);
      return HeadResult::kOk;
    }
    if (i + 2 >= len && (i + 1 >= len || data[i + 1] == '\r')) {
      scan_from = static_cast<uint32_t>(i);  // undecided until more bytes arrive
      return len >= max_head_bytes ? HeadResult::kTooLarge : HeadResult::kIncomplete;
    }
    ++i;
  }
  scan_from = static_cast<uint32_t>(limit);
  return len >= max_head_bytes ? HeadResult::kTooLarge : HeadResult::kIncomplete;
}

HeadResult CheckRequestStart(const uint8_t* data, size_t len) {
  const size_t n = len < kMaxMethodBytes + 1 ? len : kMaxMethodBytes + 1;
  for (size_t i = 0; i < n; ++i) {
    if (data[i] == ' ') return i == 0 ? HeadResult::kNotHttp : HeadResult::kOk;
    if (!IsTchar(data[i])) return HeadResult::kNotHttp;
  }
  return len > kMaxMethodBytes ? HeadResult::kNotHttp : HeadResult::kIncomplete;
}

namespace {

// Character classes of one 64-byte chunk as bit masks (bit i = byte i of the chunk).
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
  // Scanners with kBack: the bytes 5, 15, 18 or id + 1 after an LF, where the colon of
  // a line whose name is 4, 14, 17 or id bytes long would be.
  uint64_t back = 0;
};

// The chunk scanners: one per instruction set, their constants built once per head.
// operator() classifies the 64 bytes at p; WithPrev those at p with the bytes before p
// (two, or with kBack up to 64), which the caller has.
struct ScanSse2 {
  static constexpr bool kBack = false;
#if defined(__SSE2__)
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
#else
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
#endif
};

#if defined(__x86_64__)
// Wider variants for CPUs that have them, chosen once at start (as glibc's string
// functions are): AVX-512BW compares a whole chunk into masks directly, AVX2 in halves.
#define DLB_AVX512 gnu::target("avx512f,avx512bw,bmi,bmi2,popcnt")
#define DLB_AVX2 gnu::target("avx2,bmi,bmi2,popcnt")
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
    // An LF at any of the four distances back: the minimum of the bytes XOR LF is 0.
    const __m512i near = _mm512_min_epu8(_mm512_min_epu8(XorLf(p - 5), XorLf(p - 15)),
                                         _mm512_min_epu8(XorLf(p - 18), XorLf(p - id1)));
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
#endif

// Pass 1 of ParseRequestHead (see there), for one chunk scanner.
constexpr size_t kMaxChunks = (65536 + 63) / 64;  // max_head_bytes <= 64 KiB

// Per chunk, side by side (separate arrays of 8 KiB each would put a chunk's words
// 8 KiB apart).
struct ChunkBits {
  uint64_t lf;
  uint64_t colon;        // full pass (and the lean pass's first and last chunks)
  uint64_t ctl;          // as colon
  uint64_t start;        // first byte of each header line
  uint64_t first_colon;  // each header line's first ':' (full pass only)
  // The first ':' of each header line whose name is 4, 14 or 17 bytes long or (when
  // below 64) as long as the identity header's name: the lines we may look at.
  uint64_t wanted;
};
inline constexpr size_t kChunkWords = sizeof(ChunkBits) / sizeof(uint64_t);

struct HeadMasks {
  ChunkBits c[kMaxChunks];
};

// One mask of every chunk, as an array indexed by chunk.
struct MaskRow {
  const uint64_t* first;
  uint64_t operator[](size_t c) const { return first[c * kChunkWords]; }
};
inline MaskRow Row(const HeadMasks& hm, uint64_t ChunkBits::*field) { return MaskRow{&(hm.c[0].*field)}; }

struct Classified {
  size_t end_lf = SIZE_MAX;  // the LF of the empty line that ends the head
  bool bad = false;          // a NUL or a bare CR in the head
  size_t header_lines = 0;
  // Some header line may be malformed (a name with whitespace or controls, no colon,
  // an empty name, a folded line): walk the lines one by one to say which.
  bool suspect = false;
  // The lean pass: bit c set when chunk c holds a wanted colon (heads of < 64 chunks).
  bool chunks_known = false;
  uint64_t wanted_chunks = 0;
};

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

template <class Scan>
[[gnu::always_inline]] inline Classified Classify(const uint8_t* data, size_t limit, size_t id_bytes,
                                                  HeadMasks& hm) {
  const Scan scan;
  // Locals, not `Classified` fields, through the loop: the mask stores could alias them.
  uint64_t header_lines = 0;
  uint64_t suspect_bits = 0;
  uint64_t bad_bits = 0;
  uint64_t last_lf = 0;       // the previous chunk's LF mask (its top bits carry)
  uint64_t last_cr = 0;       // ... CR mask
  uint64_t carry_name = 0;    // a name that runs on into this chunk
  uint64_t prev_starts = 0;   // the previous chunk's line starts
  const unsigned id_shift = id_bytes > 0 && id_bytes < 64 ? static_cast<unsigned>(id_bytes) : 0;

  // One chunk's masks into the head's: `in_head` limits them to the head (all ones
  // but in the last chunk), `starts` are its line starts.
  const auto add = [&](size_t c, const ChunkMasks& m, uint64_t prev_cr, uint64_t in_head, uint64_t starts) {
    hm.c[c].lf = m.lf;
    hm.c[c].colon = m.colon;
    hm.c[c].ctl = m.ctl;
    // A NUL, or a CR that no LF follows (both end a line for some servers, which would
    // see a header we did not); where exactly is found again if there is one.
    bad_bits |= ((prev_cr & ~m.lf) | m.nul) & in_head;
    // Names: from each line start to the line's first ':'. Adding the start bits to the
    // non-colon mask carries each start up to the next colon, so (~colon + starts) ^
    // ~colon marks every name with its colon, all lines at once.
    const uint64_t not_colon = ~m.colon;
    const uint64_t names = (AddCarry(not_colon, starts, carry_name) ^ not_colon) & in_head;
    const uint64_t first_colon = names & m.colon;
    hm.c[c].start = starts;
    hm.c[c].first_colon = first_colon;
    // A first colon whose line started 4, 14, 17 or identity-length bytes before. (A
    // start further back than the line's own may sit at such a distance too: the
    // lines visited check their name's length again.)
    uint64_t back = StartsBack<4>(starts, prev_starts) | StartsBack<14>(starts, prev_starts) |
                    StartsBack<17>(starts, prev_starts);
    if (id_shift != 0) back |= starts << id_shift | prev_starts >> (64 - id_shift);
    hm.c[c].wanted = first_colon & back;
    header_lines += static_cast<uint64_t>(__builtin_popcountll(starts));
    // A name byte that is a control or white space (a line with no colon runs its
    // "name" into its LF, which is one), or a line that starts with ':'.
    suspect_bits |= (names & ~m.colon & m.ctl) | (starts & m.colon);
    prev_starts = starts;
  };
  // The chunk that holds the end of the head.
  const auto finish = [&](size_t base, const ChunkMasks& m, uint64_t prev_lf, uint64_t prev_cr, uint64_t ends) {
    const int e = __builtin_ctzll(ends);
    const uint64_t in_head = e == 63 ? ~uint64_t{0} : (uint64_t{2} << e) - 1;
    // The empty line is no header line: its start is the LF itself or the CR before.
    uint64_t empty_line = uint64_t{1} << e;
    if (e > 0 && (m.cr >> (e - 1) & 1)) empty_line |= uint64_t{1} << (e - 1);
    if (ends & 1 && last_cr >> 63 && base > 0) suspect_bits = 1;  // the empty line began in the last chunk
    add(base >> 6, m, prev_cr, in_head, prev_lf & in_head & ~empty_line);
    Classified out;
    out.end_lf = base + static_cast<size_t>(e);
    out.bad = bad_bits != 0;
    out.header_lines = header_lines;
    out.suspect = suspect_bits != 0;
    return out;
  };

  size_t base = 0;
  for (; limit - base >= 64; base += 64) {
    const ChunkMasks m = scan(data + base);
    // An empty line: LF preceded by LF, or by CR preceded by LF. (An LF at 0, or
    // "\r\n" at 0, ends no head: the carries start at zero.)
    const uint64_t prev_lf = m.lf << 1 | last_lf >> 63;
    const uint64_t prev_cr = m.cr << 1 | last_cr >> 63;
    const uint64_t ends = m.lf & (prev_lf | (prev_cr & (m.lf << 2 | last_lf >> 62)));
    if (ends != 0) return finish(base, m, prev_lf, prev_cr, ends);
    add(base >> 6, m, prev_cr, ~uint64_t{0}, prev_lf);  // starts: bytes that follow an LF
    last_lf = m.lf;
    last_cr = m.cr;
  }
  if (base < limit) {
    // The last, partial chunk.
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
    const uint64_t valid = (uint64_t{1} << n) - 1;
    const uint64_t prev_lf = m.lf << 1 | last_lf >> 63;
    const uint64_t prev_cr = m.cr << 1 | last_cr >> 63;
    const uint64_t ends = m.lf & (prev_lf | (prev_cr & (m.lf << 2 | last_lf >> 62))) & valid;
    if (ends != 0) return finish(base, m, prev_lf, prev_cr, ends);
  }
  Classified out;
  out.bad = bad_bits != 0;
  return out;
}

// The same pass for the usual head, with less to keep per chunk: only whether any
// chunk holds a NUL, a bare CR or a malformed name (then Classify runs to say where),
// and no first-colon masks. For identity names of 1 to 63 bytes.
template <class Scan>
[[gnu::always_inline]] inline Classified ClassifyLean(const uint8_t* data, size_t limit, size_t id_bytes,
                                                      HeadMasks& hm) {
  const Scan scan;
  uint64_t header_lines = 0;
  uint64_t trouble = 0;
  uint64_t last_lf = 0;
  uint64_t last_cr = 0;
  uint64_t carry_name = 0;
  uint64_t prev_starts = 0;
  const unsigned id_shift = static_cast<unsigned>(id_bytes);
  const unsigned id_back = 64 - id_shift;
  const size_t id1 = id_bytes + 1;  // <= 64: the lean loop starts at byte 64
  uint64_t wanted_chunks = 0;
  const auto add = [&](size_t c, const ChunkMasks& m, uint64_t prev_cr, uint64_t in_head, uint64_t starts) {
    hm.c[c].lf = m.lf;
    hm.c[c].ctl = m.ctl;
    hm.c[c].start = starts;
    const uint64_t not_colon = ~m.colon;
    const uint64_t names = (AddCarry(not_colon, starts, carry_name) ^ not_colon) & in_head;
    // As in Classify; a colon is no control, so names & ctl are the bad name bytes.
    trouble |= (((prev_cr & ~m.lf) | m.nul) & in_head) | (names & m.ctl) | (starts & m.colon);
    const uint64_t back = StartsBack<4>(starts, prev_starts) | StartsBack<14>(starts, prev_starts) |
                          StartsBack<17>(starts, prev_starts) | starts << id_shift | prev_starts >> id_back;
    const uint64_t wanted = names & m.colon & back;
    hm.c[c].wanted = wanted;
    wanted_chunks |= uint64_t{wanted != 0} << (c & 63);
    header_lines += static_cast<uint64_t>(__builtin_popcountll(starts));
    prev_starts = starts;
  };
  const auto finish = [&](size_t base, const ChunkMasks& m, uint64_t prev_lf, uint64_t prev_cr, uint64_t ends) {
    const int e = __builtin_ctzll(ends);
    const uint64_t in_head = e == 63 ? ~uint64_t{0} : (uint64_t{2} << e) - 1;
    uint64_t empty_line = uint64_t{1} << e;
    if (e > 0 && (m.cr >> (e - 1) & 1)) empty_line |= uint64_t{1} << (e - 1);
    if (ends & 1 && last_cr >> 63 && base > 0) trouble = 1;
    add(base >> 6, m, prev_cr, in_head, prev_lf & in_head & ~empty_line);
    Classified out;
    out.end_lf = base + static_cast<size_t>(e);
    out.header_lines = header_lines;
    out.suspect = trouble != 0;  // the caller runs Classify for the details
    out.chunks_known = true;
    out.wanted_chunks = wanted_chunks;
    return out;
  };
  // A chunk scanned the usual way, after the bytes before it: with carries from them.
  const auto scalar_chunk = [&](size_t base, ChunkMasks m, uint64_t valid, Classified& out) {
    if (base > 0) {
      last_lf = uint64_t{data[base - 1] == '\n'} << 63 | uint64_t{data[base - 2] == '\n'} << 62;
      last_cr = uint64_t{data[base - 1] == '\r'} << 63;
    }
    const uint64_t prev_lf = m.lf << 1 | last_lf >> 63;
    const uint64_t prev_cr = m.cr << 1 | last_cr >> 63;
    const uint64_t ends = m.lf & (prev_lf | (prev_cr & (m.lf << 2 | last_lf >> 62))) & valid;
    if (ends != 0) {
      out = finish(base, m, prev_lf, prev_cr, ends);
      return true;
    }
    add(base >> 6, m, prev_cr, ~uint64_t{0}, prev_lf);
    return false;
  };
  Classified out;
  out.suspect = true;  // no end found (or a NUL or bare CR seen): Classify decides
  size_t base = 0;
  if (limit >= 64) {
    if (scalar_chunk(0, scan(data), ~uint64_t{0}, out)) return out;
    // The chunks inside the head: the end of the head, NULs and bare CRs come from
    // comparing the bytes with their neighbours, not from carrying masks along.
    // The loop keeps its state in registers: its rare exit (a chunk with something
    // special) is handled after it, not by a call that would need that state in memory.
    // Only what the fast path of ParseRequestHead reads is stored (LF, controls, line
    // starts, wanted colons); a head that needs the line walk is classified again in
    // full.
    uint64_t carry = carry_name;
    uint64_t prev = prev_starts;
    uint64_t bad = 0;
    uint64_t lines = 0;
    bool special = false;
    // Pointers, not an index: the loop is short of registers.
    const uint8_t* p = data + 64;
    const uint8_t* const last = data + limit - 64;  // the last whole chunk starts here
    ChunkBits* cb = &hm.c[1];
    uint64_t chunk_bit = 2;  // this chunk's bit in wanted_chunks (0 from chunk 64 on)
    uint64_t gathered = 0;
    for (; p <= last; p += 64, ++cb, chunk_bit <<= 1) {
      const LeanMasks m = scan.WithPrev(p, id1);
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
      uint64_t wanted;
      if constexpr (Scan::kBack) {
        wanted = names & m.colon & m.back;
      } else {
        const uint64_t back = StartsBack<4>(m.starts, prev) | StartsBack<14>(m.starts, prev) |
                              StartsBack<17>(m.starts, prev) | m.starts << id_shift | prev >> id_back;
        wanted = names & m.colon & back;
        prev = m.starts;
      }
      cb->wanted = wanted;
      gathered |= wanted != 0 ? chunk_bit : 0;
      lines += static_cast<uint64_t>(__builtin_popcountll(m.starts));
    }
    base = static_cast<size_t>(p - data);
    wanted_chunks |= gathered;
    carry_name = carry;
    // The previous chunk's line starts, for the chunk after the loop.
    prev_starts = Scan::kBack ? hm.c[(base >> 6) - 1].start : prev;
    trouble |= bad;
    header_lines += lines;
    if (special) {
      scalar_chunk(base, scan(data + base), ~uint64_t{0}, out);
      return out;  // the end of the head, or a NUL or a bare CR (suspect: Classify says)
    }
  }
  if (base < limit && limit >= 64) {
    if (base > 0) {
      last_lf = uint64_t{data[base - 1] == '\n'} << 63 | uint64_t{data[base - 2] == '\n'} << 62;
      last_cr = uint64_t{data[base - 1] == '\r'} << 63;
    }
    const size_t n = limit - base;
    ChunkMasks m = scan(data + limit - 64);
    const int drop = static_cast<int>(64 - n);
    m.lf >>= drop;
    m.cr >>= drop;
    m.nul >>= drop;
    m.colon >>= drop;
    m.ctl >>= drop;
    const uint64_t valid = (uint64_t{1} << n) - 1;
    const uint64_t prev_lf = m.lf << 1 | last_lf >> 63;
    const uint64_t prev_cr = m.cr << 1 | last_cr >> 63;
    const uint64_t ends = m.lf & (prev_lf | (prev_cr & (m.lf << 2 | last_lf >> 62))) & valid;
    if (ends != 0) return finish(base, m, prev_lf, prev_cr, ends);
  }
  return out;
}

using ClassifyFn = Classified (*)(const uint8_t*, size_t, size_t, HeadMasks&, bool);

// Pass 1 for one chunk scanner: the lean pass, then, if it saw anything unusual (or
// the identity name is 64 bytes or more), the full one; `full`: the full one only.
template <class Scan>
[[gnu::always_inline]] inline Classified ClassifyHead(const uint8_t* d, size_t n, size_t id, HeadMasks& hm,
                                                      bool full) {
  if (!full && id > 0 && id < 64) {
    const Classified lean = ClassifyLean<Scan>(d, n, id, hm);
    if (!lean.suspect) return lean;
  }
  return Classify<Scan>(d, n, id, hm);
}

Classified ClassifySse2(const uint8_t* d, size_t n, size_t id, HeadMasks& hm, bool full) {
  return ClassifyHead<ScanSse2>(d, n, id, hm, full);
}
#if defined(__x86_64__)
[[DLB_AVX2]] Classified ClassifyAvx2(const uint8_t* d, size_t n, size_t id, HeadMasks& hm, bool full) {
  return ClassifyHead<ScanAvx2>(d, n, id, hm, full);
}
[[DLB_AVX512]] Classified ClassifyAvx512(const uint8_t* d, size_t n, size_t id, HeadMasks& hm, bool full) {
  return ClassifyHead<ScanAvx512>(d, n, id, hm, full);
}
#endif

// The first NUL or bare CR in data[0, end] (data[end] is an LF).
size_t FirstBad(const uint8_t* data, size_t end) {
  for (size_t i = 0; i < end; ++i) {
    if (data[i] == 0 || (data[i] == '\r' && data[i + 1] != '\n')) return i;
  }
  return end;
}

#if defined(__x86_64__)
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
  return ClassifySse2;
}

ClassifyFn g_classify = PickClassify();

// The first set bit at a position in [from, to), or `to`.
inline size_t NextBit(MaskRow masks, size_t from, size_t to) {
  if (from >= to) return to;
  size_t c = from >> 6;
  uint64_t w = masks[c] & (~uint64_t{0} << (from & 63));
  for (;;) {
    if (w != 0) {
      const size_t p = (c << 6) + static_cast<size_t>(__builtin_ctzll(w));
      return p < to ? p : to;
    }
    if (++c << 6 >= to) return to;
    w = masks[c];
  }
}

// Parses a request line (without its line end). `sp1` and `sp2`, when not npos, are
// where its first two spaces are (known from the masks); otherwise they are looked for.
HeadResult ParseRequestLine(std::string_view line, RequestHead& head, bool& authority_host,
                            size_t sp1 = std::string_view::npos, size_t sp2 = std::string_view::npos) {
  if (sp1 == std::string_view::npos) sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp1 > kMaxMethodBytes) return HeadResult::kNotHttp;
  for (size_t i = 0; i < sp1; ++i) {
    if (!IsTchar(static_cast<uint8_t>(line[i]))) return HeadResult::kNotHttp;
  }
  head.method_token = line.substr(0, sp1);
  head.method = MethodFromToken(head.method_token);
  if (sp2 == std::string_view::npos) sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return HeadResult::kBadRequestLine;
  head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1") {
    head.http10 = false;
  } else if (version == "HTTP/1.0") {
    head.http10 = true;
  } else {
    return version.substr(0, 5) == "HTTP/" ? HeadResult::kBadVersion : HeadResult::kBadRequestLine;
  }
  // No whitespace or controls inside a target: a second space would be a different
  // request line to a lenient server.
  if (HasCtlOrDel(head.target)) return HeadResult::kBadRequestLine;
  return ParseTarget(head.target, head.method, head, authority_host);
}

// The first 64 bytes' '?' and DEL bytes as bit masks (SSE2 is in every x86-64).
inline void QueryAndDelMasks(const uint8_t* p, uint64_t& query, uint64_t& del) {
  query = 0;
  del = 0;
#if defined(__SSE2__)
  for (int b = 0; b < 4; ++b) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * b));
    query |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('?')))))
             << (16 * b);
    del |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)))))
           << (16 * b);
  }
#else
  for (int i = 0; i < 64; ++i) {
    query |= static_cast<uint64_t>(p[i] == '?') << i;
    del |= static_cast<uint64_t>(p[i] == 0x7f) << i;
  }
#endif
}

// A method token of at most eight bytes as the word Load64 reads (bytes past it zero).
constexpr uint64_t TokenWord(std::string_view t) {
  uint64_t w = 0;
  for (size_t i = 0; i < t.size() && i < 8; ++i) {
    const uint64_t b = static_cast<uint8_t>(t[i]);
    w |= std::endian::native == std::endian::little ? b << (8 * i) : b << (8 * (7 - i));
  }
  return w;
}

// The known method whose token is the sp1 bytes at p (sp1 in 1..8), without a branch
// per method; kOther if none.
inline Method MethodFromWord(const uint8_t* p, size_t sp1) {
  static constexpr struct {
    uint64_t word;
    Method method;
  } kMethods[] = {{TokenWord("GET"), Method::kGet},         {TokenWord("HEAD"), Method::kHead},
                  {TokenWord("POST"), Method::kPost},       {TokenWord("PUT"), Method::kPut},
                  {TokenWord("DELETE"), Method::kDelete},   {TokenWord("PATCH"), Method::kPatch},
                  {TokenWord("OPTIONS"), Method::kOptions}, {TokenWord("CONNECT"), Method::kConnect},
                  {TokenWord("TRACE"), Method::kTrace}};
  const uint64_t keep = sp1 >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * sp1)) - 1;
  const uint64_t w = Load64(reinterpret_cast<const char*>(p)) &
                     (std::endian::native == std::endian::little ? keep : ~(~uint64_t{0} >> (8 * sp1)));
  Method m = Method::kOther;
  for (const auto& k : kMethods) m = w == k.word ? k.method : m;
  return m;
}

// The usual request line, "METHOD SP /path[?query] SP HTTP/1.x" of a known method in
// the first 64 bytes, from the masks: sp1 and sp2 are its only bytes <= 0x20 and the
// caller has 64 bytes. Sets `result` and returns true, or returns false for any other
// line (ParseRequestLine then decides), giving what ParseRequestLine would.
inline bool ParseUsualRequestLine(const uint8_t* data, size_t sp1, size_t sp2, size_t line_end, RequestHead& head,
                                  HeadResult& result) {
  static constexpr uint64_t kHttp11 = TokenWord("HTTP/1.1");
  static constexpr uint64_t kHttp10 = TokenWord("HTTP/1.0");
  if (sp1 == 0 || sp1 > 8 || line_end > 64 || line_end - sp2 != 9 || data[sp1 + 1] != '/') return false;
  const uint64_t version = Load64(reinterpret_cast<const char*>(data) + sp2 + 1);
  if (version != kHttp11 && version != kHttp10) return false;
  const Method method = MethodFromWord(data, sp1);
  if (method == Method::kOther) return false;
  const char* const text = reinterpret_cast<const char*>(data);
  head.method = method;
  head.method_token = std::string_view(text, sp1);
  head.target = std::string_view(text + sp1 + 1, sp2 - sp1 - 1);
  head.http10 = version == kHttp10;
  uint64_t query;
  uint64_t del;
  QueryAndDelMasks(data, query, del);
  const uint64_t in_target = ((uint64_t{1} << sp2) - 1) & ~((uint64_t{2} << sp1) - 1);
  if (del & in_target) {
    result = HeadResult::kBadRequestLine;
    return true;
  }
  query &= in_target;
  const size_t path_end = query != 0 ? static_cast<size_t>(__builtin_ctzll(query)) : sp2;
  head.path = std::string_view(text + sp1 + 1, path_end - sp1 - 1);
  result = HeadResult::kOk;
  return true;
}

struct HeaderState {
  bool authority_host = false;
  bool seen_identity = false;
  bool seen_host = false;
  bool seen_te = false;
};

// A header whose name is known to be one we look at; `name` and `value` as sent.
[[gnu::always_inline]] inline HeadResult OnHeader(std::string_view name, std::string_view raw_value, const HeadOptions& options,
                    HeaderState& st, RequestHead& head) {
  if (name.size() == options.identity_header.size() && EqualsIgnoreCase(name, options.identity_header)) {
    // Exactly one identity line: a second one, even after an empty first, would let a
    // backend that joins or picks lines read a user we did not decide for.
    if (st.seen_identity) return HeadResult::kDuplicateIdentity;
    st.seen_identity = true;
    const std::string_view value = TrimOws(raw_value);
    if (value.size() > options.max_identity_bytes) return HeadResult::kIdentityTooLong;
    // Controls inside would make distinct IDs of what a backend trims to one user.
    if (HasCtlOrDelInValue(value)) return HeadResult::kBadIdentity;
    head.has_identity = !value.empty();
    head.identity = value;
    return HeadResult::kOk;
  }
  switch (name.size()) {
    case 4:
      if (EqualsIgnoreCase(name, "host")) {
        if (st.seen_host) return HeadResult::kDuplicateHost;
        st.seen_host = true;
        if (!st.authority_host) head.host = StripPort(TrimOws(raw_value));
      }
      break;
    case 14:
      if (EqualsIgnoreCase(name, "content-length")) {
        uint64_t n = 0;
        if (!ParseDecimal(TrimOws(raw_value), n)) return HeadResult::kBadContentLength;
        if (head.has_content_length && n != head.content_length) {
          return HeadResult::kConflictingContentLength;
        }
        head.has_content_length = true;
        head.content_length = n;
      }
      break;
    case 17:
      if (EqualsIgnoreCase(name, "transfer-encoding")) {
        // The last coding of the last field decides (RFC 9112, 6.1); a request whose
        // final coding is not chunked has no determinable length: malformed.
        st.seen_te = true;
        head.chunked = EqualsIgnoreCase(LastCoding(TrimOws(raw_value)), "chunked");
      }
      break;
    default:
      break;
  }
  return HeadResult::kOk;
}

// Bit p of the result (p in chunk c) is bit p - d of `masks`: the mask array shifted
// up by d bits, one 64-bit word of it.
inline uint64_t StartsBefore(MaskRow masks, size_t c, size_t d) {
  const size_t words = d >> 6;
  const unsigned bits = static_cast<unsigned>(d & 63);
  if (c < words) return 0;
  const uint64_t hi = masks[c - words];
  if (bits == 0) return hi;
  const uint64_t lo = c > words ? masks[c - words - 1] : 0;
  return hi << bits | lo >> (64 - bits);
}

// The last set bit at a position below `pos`; the caller knows there is one.
inline size_t PrevBit(MaskRow masks, size_t pos) {
  size_t c = pos >> 6;
  uint64_t w = masks[c] & ((uint64_t{1} << (pos & 63)) - 1);
  while (w == 0) w = masks[--c];
  return (c << 6) + 63 - static_cast<size_t>(__builtin_clzll(w));
}

// As head = RequestHead(), field by field: a temporary and its copy cost more than
// the parse of a short head.
inline void ResetHead(RequestHead& head) {
  head.method = Method::kOther;
  head.method_token = {};
  head.target = {};
  head.path = {};
  head.host = {};
  head.identity = {};
  head.has_identity = false;
  head.path_normal = false;
  head.http10 = false;
  head.chunked = false;
  head.has_content_length = false;
  head.content_length = 0;
  head.head_bytes = 0;
}

// Whether a path is plainly normal: '/' first, then no '%', '.', '?' or '#' and no
// "//" (the usual API path). A cheap first test, one table load per byte; a path it
// refuses may still be normal (dlb_path_is_normal decides).
inline bool IsPlainNormalPath(std::string_view path) {
  static constexpr auto kSpecial = [] {
    std::array<uint8_t, 256> t{};
    t['%'] = t['.'] = t['?'] = t['#'] = 1;
    t['/'] = 2;
    return t;
  }();
  if (path.empty() || path.front() != '/' || path.size() > DLB_PATH_MAX_BYTES) return false;
  uint8_t prev = 2;
  for (size_t i = 1; i < path.size(); ++i) {
    const uint8_t k = kSpecial[static_cast<uint8_t>(path[i])];
    if ((k & 1) | (k & prev)) return false;  // a special byte, or '/' after '/'
    prev = k;
  }
  return true;
}

HeadResult FinishHead(const HeaderState& st, RequestHead& head) {
  // A path rules cannot normalize (a bad escape, or longer than DLB_PATH_MAX_BYTES) is
  // one most servers refuse; deciding it by its raw bytes could miss its rule.
  head.path_normal = IsPlainNormalPath(head.path) ||
                     dlb_path_is_normal(reinterpret_cast<const dlb_path_u8*>(head.path.data()),
                                        static_cast<dlb_path_u32>(head.path.size()), 0);
  if (!head.path_normal) {
    dlb_path_u8 buf[DLB_PATH_MAX_BYTES + 1];
    if (dlb_path_normalize(reinterpret_cast<const dlb_path_u8*>(head.path.data()),
                           static_cast<dlb_path_u32>(head.path.size()), buf, sizeof buf, 0) < 0) {
      return HeadResult::kBadPath;
    }
  }
  if (st.seen_te) {
    // RFC 9112, 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing; a
    // server that ignores it (Go) reads the body as the next requests.
    if (head.http10) return HeadResult::kBadTransferEncoding;
    if (!head.chunked) return HeadResult::kBadTransferEncoding;
    // Both framings at once is the classic smuggling vector (RFC 9112, 6.3).
    if (head.has_content_length) return HeadResult::kContentLengthWithTransferEncoding;
  }
  return HeadResult::kOk;
}

}  // namespace

namespace internal {

bool ForceHeadScanner(HeadScanner scanner) {
  switch (scanner) {
    case HeadScanner::kAuto:
      g_classify = PickClassify();
      return true;
    case HeadScanner::kSse2:
      g_classify = ClassifySse2;
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

}  // namespace internal

HeadResult ParseRequestHead(const uint8_t* data, size_t len, const HeadOptions& options,
                            RequestHead& head) {
  // One pass over the bytes (at most max_head_bytes), then work per line of interest.
  //
  // 1. Classify 64-byte chunks with SIMD compares into bit masks (LF, CR, NUL, ':',
  //    bytes <= 0x20) until the empty line that ends the head. The checks that apply
  //    to every byte are mask operations here: no NUL, and no CR that is not followed
  //    by LF (both end a line for some servers, which would see a header we did not).
  //    Names are marked too (from each line start to its first ':', all lines at once
  //    by an add-carry), so that a name holding whitespace or controls is found
  //    without visiting the line (RFC 9112, 5.1: servers that disagree about "Name :"
  //    are how requests get smuggled). Other delimiter bytes in a name only make a
  //    header nobody recognises.
  //    Pass 1 also marks the lines whose name length is one we use (4, 14, 17 or the
  //    identity name's), by shifting the line starts to where such a name's colon
  //    would be. A lean variant runs first and keeps only what a well-formed head
  //    needs; anything unusual in it (NUL, bare CR, a malformed name, no end) runs the
  //    full one, which says where.
  // 2. The request line: the usual one (a known method, an origin-form target, two
  //    spaces where the masks say, HTTP/1.x) is read without searching; any other is
  //    parsed generally.
  // 3. Visit only the marked header lines, in order; compare only those names and look
  //    only at their values. If pass 1 saw a malformed line, walk the lines one by
  //    one instead, to name the first fault.
  ResetHead(head);
  const size_t limit = len < options.max_head_bytes ? len : options.max_head_bytes;
  HeadMasks hm;  // 48 KiB of stack at most; only the chunks of this head are written
  Classified cls = g_classify(data, limit, options.identity_header.size(), hm, false);
  if (!cls.suspect && cls.header_lines > options.max_header_lines) {
    // Too many lines: the line walk below names the fault, from the full pass's masks.
    cls = g_classify(data, limit, options.identity_header.size(), hm, true);
  }
  const MaskRow lf_masks = Row(hm, &ChunkBits::lf);
  const MaskRow colon_masks = Row(hm, &ChunkBits::colon);
  const MaskRow ctl_masks = Row(hm, &ChunkBits::ctl);
  const size_t end_lf = cls.end_lf;
  if (end_lf == SIZE_MAX) {
    return len >= options.max_head_bytes ? HeadResult::kTooLarge : HeadResult::kIncomplete;
  }
  head.head_bytes = static_cast<uint32_t>(end_lf + 1);
  const char* const text = reinterpret_cast<const char*>(data);

  // The request line.
  const uint64_t first_lfs = hm.c[0].lf;
  const size_t first_lf = first_lfs != 0 && static_cast<size_t>(__builtin_ctzll(first_lfs)) <= end_lf
                              ? static_cast<size_t>(__builtin_ctzll(first_lfs))
                              : NextBit(lf_masks, 0, end_lf + 1);
  const size_t bad = cls.bad ? FirstBad(data, end_lf) : SIZE_MAX;
  if (bad < first_lf) return HeadResult::kBadRequestLine;
  size_t line_end = first_lf > 0 && data[first_lf - 1] == '\r' ? first_lf - 1 : first_lf;
  // The usual request line holds no byte <= 0x20 but its two spaces: then they are
  // where the masks say, and need no search.
  size_t sp1 = std::string_view::npos;
  size_t sp2 = std::string_view::npos;
  if (line_end < 64) {
    // Within the first chunk: its controls below the line's end, lowest first.
    const uint64_t ctl = hm.c[0].ctl & ((uint64_t{1} << line_end) - 1);
    const uint64_t after_first = ctl & (ctl - 1);
    if (ctl != 0 && after_first != 0 && (after_first & (after_first - 1)) == 0) {
      const size_t q = static_cast<size_t>(__builtin_ctzll(ctl));
      const size_t r = static_cast<size_t>(__builtin_ctzll(after_first));
      if (data[q] == ' ' && data[r] == ' ') {
        sp1 = q;
        sp2 = r;
      }
    }
  } else if (const size_t q = NextBit(ctl_masks, 0, line_end); q < line_end && data[q] == ' ') {
    if (const size_t r = NextBit(ctl_masks, q + 1, line_end);
        r < line_end && data[r] == ' ' && NextBit(ctl_masks, r + 1, line_end) == line_end) {
      sp1 = q;
      sp2 = r;
    }
  }
  HeaderState st;
  HeadResult line_result;
  if (sp1 == std::string_view::npos || limit < 64 ||
      !ParseUsualRequestLine(data, sp1, sp2, line_end, head, line_result)) {
    line_result = ParseRequestLine(std::string_view(text, line_end), head, st.authority_host, sp1, sp2);
  }
  if (line_result != HeadResult::kOk) return line_result;
  if (bad != SIZE_MAX) return HeadResult::kBadHeader;

  if (!cls.suspect && cls.header_lines <= options.max_header_lines) {
    // Every header line is well formed (pass 1 says so). Pass 1 marked the first
    // colons that lie 4, 14, 17 or identity-length bytes after a line start: only the
    // lines whose name may be one we use are visited, in order (so the first fault is
    // the one the line walk below would name), without a branch per line.
    const size_t last = end_lf >> 6;
    const size_t id_bytes = options.identity_header.size();
    if (id_bytes >= 64) [[unlikely]] {
      // An identity name of 64 bytes or more: its lines are found here.
      for (size_t c = 0; c <= last; ++c) {
        hm.c[c].wanted |= StartsBefore(Row(hm, &ChunkBits::start), c, id_bytes) & hm.c[c].first_colon;
      }
    }
    // The chunks that hold marked colons, gathered without a branch per chunk (a head
    // of 4 KiB or more takes them all).
    uint64_t chunks = ~uint64_t{0};
    if (last < 64) {
      if (cls.chunks_known) {
        chunks = cls.wanted_chunks;
      } else {
        chunks = 0;
        for (size_t c = 0; c <= last; ++c) chunks |= uint64_t{hm.c[c].wanted != 0} << c;
      }
    }
    for (size_t c = 0; c <= last; ++c) {
      if (c < 64) {
        if (chunks == 0) break;
        c = static_cast<size_t>(__builtin_ctzll(chunks));
        chunks &= chunks - 1;
      }
      uint64_t sel = hm.c[c].wanted;
      while (sel != 0) {
        const size_t colon = (c << 6) + static_cast<size_t>(__builtin_ctzll(sel));
        sel &= sel - 1;
        // The line's own start is the nearest one before its colon (a start further
        // back may sit at one of those distances too).
        const size_t name_bytes = colon - PrevBit(Row(hm, &ChunkBits::start), colon);
        if (name_bytes != 4 && name_bytes != 14 && name_bytes != 17 && name_bytes != id_bytes) continue;
        const size_t lf = NextBit(lf_masks, colon, end_lf + 1);
        line_end = data[lf - 1] == '\r' ? lf - 1 : lf;
        if (HeadResult r = OnHeader(std::string_view(text + colon - name_bytes, name_bytes),
                                    std::string_view(text + colon + 1, line_end - colon - 1), options, st, head);
            r != HeadResult::kOk) {
          return r;
        }
      }
    }
    return FinishHead(st, head);
  }

  // Header lines, one by one, to name what is wrong.
  uint32_t lines = 0;
  size_t line_start = first_lf + 1;
  while (line_start <= end_lf) {
    const size_t lf = NextBit(lf_masks, line_start, end_lf + 1);
    if (lf == end_lf && (lf == line_start || (lf == line_start + 1 && data[line_start] == '\r'))) break;
    line_end = data[lf - 1] == '\r' ? lf - 1 : lf;  // no bare CR: a CR here precedes the LF
    if (++lines > options.max_header_lines) return HeadResult::kTooManyHeaders;
    if (IsOws(data[line_start])) return HeadResult::kObsoleteLineFolding;
    const size_t colon = NextBit(colon_masks, line_start, line_end);
    if (colon == line_end || colon == line_start) return HeadResult::kBadHeader;
    if (NextBit(ctl_masks, line_start, colon) != colon) return HeadResult::kBadHeader;
    const size_t name_bytes = colon - line_start;
    if (name_bytes == 4 || name_bytes == 14 || name_bytes == 17 ||
        name_bytes == options.identity_header.size()) {
      if (HeadResult r = OnHeader(std::string_view(text + line_start, name_bytes),
                                  std::string_view(text + colon + 1, line_end - colon - 1), options, st, head);
          r != HeadResult::kOk) {
        return r;
      }
    }
    line_start = lf + 1;
  }
  return FinishHead(st, head);
}

ChunkedDecoder::Result ChunkedDecoder::Feed(const uint8_t* data, size_t len, size_t& consumed) {
  // Bounds: chunk sizes below 2^60 (15 hex digits); extension and trailer lines below
  // 8 KiB each, so that a peer cannot make the decoder scan forever without data.
  constexpr uint8_t kMaxSizeDigits = 15;
  constexpr uint16_t kMaxLineBytes = 8192;
  size_t i = 0;
  while (i < len) {
    const uint8_t c = data[i];
    switch (state_) {
      case State::kSize: {
        int digit = -1;
        if (c >= '0' && c <= '9') digit = c - '0';
        else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        if (digit >= 0) {
          if (++size_digits_ > kMaxSizeDigits) return Result::kError;
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
          ++i;
          break;
        }
        if (size_digits_ == 0) return Result::kError;
        if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::kExtension;
          line_bytes_ = 0;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n') {
          state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        } else {
          return Result::kError;
        }
        ++i;
        break;
      }
      case State::kExtension: {
        const void* nl = std::memchr(data + i, '\n', len - i);
        const size_t n = nl ? static_cast<const uint8_t*>(nl) - (data + i) : len - i;
        if (line_bytes_ + n > kMaxLineBytes) return Result::kError;
        line_bytes_ = static_cast<uint16_t>(line_bytes_ + n);
        i += n;
        if (nl) {
          ++i;
          state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        }
        break;
      }
      case State::kSizeLf:
        if (c != '\n') return Result::kError;
        ++i;
        state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        break;
      case State::kData: {
        const size_t n = len - i < remaining_ ? len - i : static_cast<size_t>(remaining_);
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
        if (c == '\r') {
          state_ = State::kDataLf;
        } else if (c == '\n') {
          state_ = State::kSize;
          size_digits_ = 0;
        } else {
          return Result::kError;
        }
        ++i;
        break;
      case State::kDataLf:
        if (c != '\n') return Result::kError;
        ++i;
        state_ = State::kSize;
        size_digits_ = 0;
        break;
      case State::kTrailerStart:
        ++i;
        if (c == '\n') {
          consumed = i;
          Reset();
          return Result::kDone;
        }
        if (c == '\r') {
          state_ = State::kTrailerEndLf;
        } else {
          state_ = State::kTrailerLine;
          line_bytes_ = 1;
        }
        break;
      case State::kTrailerLine: {
        const void* nl = std::memchr(data + i, '\n', len - i);
        const size_t n = nl ? static_cast<const uint8_t*>(nl) - (data + i) : len - i;
        if (line_bytes_ + n > kMaxLineBytes) return Result::kError;
        line_bytes_ = static_cast<uint16_t>(line_bytes_ + n);
        i += n;
        if (nl) {
          ++i;
          state_ = State::kTrailerStart;
        }
        break;
      }
      case State::kTrailerEndLf:
        if (c == '\n') {
          consumed = i + 1;
          Reset();
          return Result::kDone;
        }
        // "\r" then something: a trailer line that starts with CR is malformed.
        return Result::kError;
    }
  }
  consumed = len;
  return Result::kMore;
}

}  // namespace dlb::packet
