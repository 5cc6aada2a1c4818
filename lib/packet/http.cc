#include "dlb/packet/http.h"

#include "dlb/path.h"

#include "head_classify.h"
#include "header_names.h"
#include "scan.h"

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

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

using internal::ChunkBits;
using internal::Classified;
using internal::HeadMasks;
using internal::MaskRow;
using internal::Row;

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
  scan::QueryAndDelMasks(data, query, del);
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
  const KnownHeaderName* known = nullptr;
  for (const KnownHeaderName& k : kKnownHeaders) {
    if (name.size() == k.name.size() && EqualsIgnoreCase(name, k.name)) {
      known = &k;
      break;
    }
  }
  if (known == nullptr) return HeadResult::kOk;
  switch (known->id) {
    case KnownHeader::kHost:
      if (st.seen_host) return HeadResult::kDuplicateHost;
      st.seen_host = true;
      if (!st.authority_host) head.host = StripPort(TrimOws(raw_value));
      break;
    case KnownHeader::kContentLength: {
      uint64_t n = 0;
      if (!ParseDecimal(TrimOws(raw_value), n)) return HeadResult::kBadContentLength;
      if (head.has_content_length && n != head.content_length) return HeadResult::kConflictingContentLength;
      head.has_content_length = true;
      head.content_length = n;
      break;
    }
    case KnownHeader::kTransferEncoding:
      // The last coding of the last field decides (RFC 9112, 6.1); a request whose
      // final coding is not chunked has no determinable length: malformed.
      st.seen_te = true;
      head.chunked = EqualsIgnoreCase(LastCoding(TrimOws(raw_value)), "chunked");
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

// The first NUL or bare CR in data[0, end] (data[end] is an LF).
size_t FirstBad(const uint8_t* data, size_t end) {
  for (size_t i = 0; i < end; ++i) {
    if (data[i] == 0 || (data[i] == '\r' && data[i + 1] != '\n')) return i;
  }
  return end;
}

// Where the usual request line's two spaces are (sp1, sp2), when it holds no other
// byte <= 0x20: then the masks say where they are, and they need no search. npos
// otherwise.
inline void FindRequestLineSpaces(const uint8_t* data, const HeadMasks& hm, size_t line_end, size_t& sp1,
                                  size_t& sp2) {
  sp1 = std::string_view::npos;
  sp2 = std::string_view::npos;
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
    return;
  }
  const MaskRow ctl_masks = Row(hm, &ChunkBits::ctl);
  if (const size_t q = NextBit(ctl_masks, 0, line_end); q < line_end && data[q] == ' ') {
    if (const size_t r = NextBit(ctl_masks, q + 1, line_end);
        r < line_end && data[r] == ' ' && NextBit(ctl_masks, r + 1, line_end) == line_end) {
      sp1 = q;
      sp2 = r;
    }
  }
}

// Step 2 of ParseRequestHead: the request line, which ends at `first_lf`.
[[gnu::always_inline]] inline HeadResult ParseFirstLine(const uint8_t* data, size_t limit, const HeadMasks& hm,
                                                        size_t first_lf, HeaderState& st, RequestHead& head) {
  const size_t line_end = first_lf > 0 && data[first_lf - 1] == '\r' ? first_lf - 1 : first_lf;
  size_t sp1;
  size_t sp2;
  FindRequestLineSpaces(data, hm, line_end, sp1, sp2);
  HeadResult result;
  if (sp1 == std::string_view::npos || limit < 64 || !ParseUsualRequestLine(data, sp1, sp2, line_end, head, result)) {
    result = ParseRequestLine(std::string_view(reinterpret_cast<const char*>(data), line_end), head,
                              st.authority_host, sp1, sp2);
  }
  return result;
}

// The header line whose name is `name_bytes` long and whose first ':' is at `colon`,
// up to the LF at or after it.
[[gnu::always_inline]] inline HeadResult OnHeaderAt(const uint8_t* data, MaskRow lf_masks, size_t end_lf,
                                                    size_t colon, size_t name_bytes, const HeadOptions& options,
                                                    HeaderState& st, RequestHead& head) {
  const char* const text = reinterpret_cast<const char*>(data);
  const size_t lf = NextBit(lf_masks, colon, end_lf + 1);
  const size_t line_end = data[lf - 1] == '\r' ? lf - 1 : lf;  // no bare CR: a CR here precedes the LF
  return OnHeader(std::string_view(text + colon - name_bytes, name_bytes),
                  std::string_view(text + colon + 1, line_end - colon - 1), options, st, head);
}

// The chunks that hold marked colons, gathered without a branch per chunk (a head of
// 4 KiB or more, 64 chunks, takes them all).
inline uint64_t WantedChunks(const Classified& cls, const HeadMasks& hm, size_t last) {
  if (last >= 64) return ~uint64_t{0};
  if (cls.chunks_known) return cls.wanted_chunks;
  uint64_t chunks = 0;
  for (size_t c = 0; c <= last; ++c) chunks |= uint64_t{hm.c[c].wanted != 0} << c;
  return chunks;
}

// Step 3 when every header line is well formed (pass 1 says so). Pass 1 marked the
// first colons that lie a known name's or the identity name's length after a line
// start: only the lines whose name may be one we use are visited, in order (so the
// first fault is the one the line walk would name), without a branch per line.
[[gnu::always_inline]] inline HeadResult VisitMarkedLines(const uint8_t* data, const Classified& cls, HeadMasks& hm,
                                                          const HeadOptions& options, HeaderState& st,
                                                          RequestHead& head) {
  const size_t end_lf = cls.end_lf;
  const size_t last = end_lf >> 6;
  const size_t id_bytes = options.identity_header.size();
  if (id_bytes >= 64) [[unlikely]] {
    // An identity name of 64 bytes or more: its lines are found here.
    for (size_t c = 0; c <= last; ++c) {
      hm.c[c].wanted |= StartsBefore(Row(hm, &ChunkBits::start), c, id_bytes) & hm.c[c].first_colon;
    }
  }
  const MaskRow lf_masks = Row(hm, &ChunkBits::lf);
  uint64_t chunks = WantedChunks(cls, hm, last);
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
      if (!IsKnownHeaderLength(name_bytes) && name_bytes != id_bytes) continue;
      if (HeadResult r = OnHeaderAt(data, lf_masks, end_lf, colon, name_bytes, options, st, head);
          r != HeadResult::kOk) {
        return r;
      }
    }
  }
  return FinishHead(st, head);
}

// Step 3 otherwise: the header lines one by one, to name what is wrong (the full
// pass's masks).
HeadResult WalkLines(const uint8_t* data, const HeadMasks& hm, size_t first_lf, size_t end_lf,
                     const HeadOptions& options, HeaderState& st, RequestHead& head) {
  const MaskRow lf_masks = Row(hm, &ChunkBits::lf);
  const MaskRow colon_masks = Row(hm, &ChunkBits::colon);
  const MaskRow ctl_masks = Row(hm, &ChunkBits::ctl);
  uint32_t lines = 0;
  size_t line_start = first_lf + 1;
  while (line_start <= end_lf) {
    const size_t lf = NextBit(lf_masks, line_start, end_lf + 1);
    if (lf == end_lf && (lf == line_start || (lf == line_start + 1 && data[line_start] == '\r'))) break;
    const size_t line_end = data[lf - 1] == '\r' ? lf - 1 : lf;  // no bare CR: a CR here precedes the LF
    if (++lines > options.max_header_lines) return HeadResult::kTooManyHeaders;
    if (IsOws(data[line_start])) return HeadResult::kObsoleteLineFolding;
    const size_t colon = NextBit(colon_masks, line_start, line_end);
    if (colon == line_end || colon == line_start) return HeadResult::kBadHeader;
    if (NextBit(ctl_masks, line_start, colon) != colon) return HeadResult::kBadHeader;
    const size_t name_bytes = colon - line_start;
    if (IsKnownHeaderLength(name_bytes) || name_bytes == options.identity_header.size()) {
      if (HeadResult r = OnHeaderAt(data, lf_masks, end_lf, colon, name_bytes, options, st, head);
          r != HeadResult::kOk) {
        return r;
      }
    }
    line_start = lf + 1;
  }
  return FinishHead(st, head);
}

}  // namespace

HeadResult ParseRequestHead(const uint8_t* data, size_t len, const HeadOptions& options,
                            RequestHead& head) {
  // One pass over the bytes (at most max_head_bytes), then work per line of interest.
  //
  // 1. Classify 64-byte chunks with SIMD compares into bit masks (LF, CR, NUL, ':',
  //    bytes <= 0x20) until the empty line that ends the head (head_classify.h). The
  //    checks that apply to every byte are mask operations there: no NUL, and no CR
  //    that is not followed by LF (both end a line for some servers, which would see a
  //    header we did not). Names are marked too (from each line start to its first ':',
  //    all lines at once by an add-carry), so that a name holding whitespace or
  //    controls is found without visiting the line (RFC 9112, 5.1: servers that
  //    disagree about "Name :" are how requests get smuggled). Other delimiter bytes in
  //    a name only make a header nobody recognises.
  //    Pass 1 also marks the lines whose name length is one we use (a known header's,
  //    header_names.h, or the identity name's), by shifting the line starts to where
  //    such a name's colon would be. A lean variant runs first and keeps only what a
  //    well-formed head needs; anything unusual in it (NUL, bare CR, a malformed name,
  //    no end) runs the full one, which says where.
  // 2. The request line: the usual one (a known method, an origin-form target, two
  //    spaces where the masks say, HTTP/1.x) is read without searching; any other is
  //    parsed generally.
  // 3. Visit only the marked header lines, in order; compare only those names and look
  //    only at their values. If pass 1 saw a malformed line, walk the lines one by
  //    one instead, to name the first fault.
  ResetHead(head);
  const size_t limit = len < options.max_head_bytes ? len : options.max_head_bytes;
  HeadMasks hm;  // 48 KiB of stack at most; only the chunks of this head are written
  Classified cls = internal::ClassifyHead(data, limit, options.identity_header.size(), hm, false);
  if (!cls.suspect && cls.header_lines > options.max_header_lines) {
    // Too many lines: the line walk names the fault, from the full pass's masks.
    cls = internal::ClassifyHead(data, limit, options.identity_header.size(), hm, true);
  }
  const size_t end_lf = cls.end_lf;
  if (end_lf == SIZE_MAX) {
    return len >= options.max_head_bytes ? HeadResult::kTooLarge : HeadResult::kIncomplete;
  }
  head.head_bytes = static_cast<uint32_t>(end_lf + 1);

  const uint64_t first_lfs = hm.c[0].lf;
  const size_t first_lf = first_lfs != 0 && static_cast<size_t>(__builtin_ctzll(first_lfs)) <= end_lf
                              ? static_cast<size_t>(__builtin_ctzll(first_lfs))
                              : NextBit(Row(hm, &ChunkBits::lf), 0, end_lf + 1);
  const size_t bad = cls.bad ? FirstBad(data, end_lf) : SIZE_MAX;
  if (bad < first_lf) return HeadResult::kBadRequestLine;
  HeaderState st;
  if (HeadResult r = ParseFirstLine(data, limit, hm, first_lf, st, head); r != HeadResult::kOk) return r;
  if (bad != SIZE_MAX) return HeadResult::kBadHeader;
  if (!cls.suspect && cls.header_lines <= options.max_header_lines) {
    return VisitMarkedLines(data, cls, hm, options, st, head);
  }
  return WalkLines(data, hm, first_lf, end_lf, options, st, head);
}

}  // namespace dlb::packet
