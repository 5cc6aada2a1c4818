#include "dlb/packet/http.h"

#include <array>
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

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(static_cast<uint8_t>(a[i])) != Lower(static_cast<uint8_t>(b[i]))) return false;
  }
  return true;
}

inline std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(static_cast<uint8_t>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && IsOws(static_cast<uint8_t>(s.back()))) s.remove_suffix(1);
  return s;
}

// Drops the port from an authority: "[::1]:8080" -> "[::1]", "a.example:443" -> "a.example".
inline std::string_view StripPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  const size_t colon = host.find(':');
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

HeadResult ParseRequestHead(const uint8_t* data, size_t head_bytes, const HeadOptions& options,
                            RequestHead& head) {
  head = RequestHead();
  head.head_bytes = static_cast<uint32_t>(head_bytes);
  const char* const begin = reinterpret_cast<const char*>(data);
  const char* const end = begin + head_bytes;

  // Request line: method SP request-target SP HTTP-version, one space each (RFC 9112, 3).
  const char* nl = static_cast<const char*>(std::memchr(begin, '\n', head_bytes));
  if (nl == nullptr) return HeadResult::kBadRequestLine;
  std::string_view line(begin, nl - begin);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp1 > kMaxMethodBytes) {
    return HeadResult::kNotHttp;
  }
  for (size_t i = 0; i < sp1; ++i) {
    if (!IsTchar(static_cast<uint8_t>(line[i]))) return HeadResult::kNotHttp;
  }
  head.method_token = line.substr(0, sp1);
  head.method = MethodFromToken(head.method_token);
  const size_t sp2 = line.find(' ', sp1 + 1);
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
  for (char c : head.target) {
    // No whitespace or controls inside a target: a second space would be a different
    // request line to a lenient server.
    if (static_cast<uint8_t>(c) <= ' ' || c == 0x7f) return HeadResult::kBadRequestLine;
  }
  bool authority_host = false;
  if (HeadResult r = ParseTarget(head.target, head.method, head, authority_host);
      r != HeadResult::kOk) {
    return r;
  }

  bool seen_host = false;
  bool seen_te = false;
  uint32_t lines = 0;
  const char* p = nl + 1;
  while (p < end) {
    const char* eol = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (eol == nullptr) return HeadResult::kBadHeader;  // FindHeadEnd guarantees one
    std::string_view hl(p, eol - p);
    p = eol + 1;
    if (!hl.empty() && hl.back() == '\r') hl.remove_suffix(1);
    if (hl.empty()) break;  // the empty line: end of the head
    if (++lines > options.max_header_lines) return HeadResult::kTooManyHeaders;
    if (IsOws(static_cast<uint8_t>(hl.front()))) return HeadResult::kObsoleteLineFolding;
    const size_t colon = hl.find(':');
    if (colon == std::string_view::npos || colon == 0) return HeadResult::kBadHeader;
    const std::string_view name = hl.substr(0, colon);
    // A token name, with no whitespace before the colon (RFC 9112, 5.1: such a request
    // must be rejected; proxies disagreeing on it is how requests get smuggled).
    for (char c : name) {
      if (!IsTchar(static_cast<uint8_t>(c))) return HeadResult::kBadHeader;
    }
    const std::string_view value = TrimOws(hl.substr(colon + 1));
    for (char c : value) {
      // Bare CR and NUL end a line for some servers: a second header they would see.
      if (c == '\r' || c == '\0') return HeadResult::kBadHeader;
    }

    if (EqualsIgnoreCase(name, options.identity_header)) {
      if (head.has_identity) return HeadResult::kDuplicateIdentity;
      if (value.size() > options.max_identity_bytes) return HeadResult::kIdentityTooLong;
      head.has_identity = !value.empty();
      head.identity = value;
      continue;
    }
    switch (name.size()) {
      case 4:
        if (EqualsIgnoreCase(name, "host")) {
          if (seen_host) return HeadResult::kDuplicateHost;
          seen_host = true;
          if (!authority_host) head.host = StripPort(value);
        }
        break;
      case 14:
        if (EqualsIgnoreCase(name, "content-length")) {
          uint64_t n = 0;
          if (!ParseDecimal(value, n)) return HeadResult::kBadContentLength;
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
          seen_te = true;
          head.chunked = EqualsIgnoreCase(LastCoding(value), "chunked");
        }
        break;
      default:
        break;
    }
  }
  if (seen_te) {
    if (!head.chunked) return HeadResult::kBadTransferEncoding;
    // Both framings at once is the classic smuggling vector (RFC 9112, 6.3): refuse it.
    if (head.has_content_length) return HeadResult::kContentLengthWithTransferEncoding;
  }
  return HeadResult::kOk;
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
