// The head parser (bit masks from SIMD compares, in three widths) against a plain
// byte-by-byte reference written from the same rules, over random heads built from
// pieces that hit every rule and every chunk boundary.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>

#include "dlb/packet/http.h"
#include "../../lib/packet/http_internal.h"

namespace dlb::packet {
namespace {

bool Lws(char c) { return c == ' ' || c == '\t'; }
char Low(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
bool IEq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Low(a[i]) != Low(b[i])) return false;
  }
  return true;
}
std::string_view Trim(std::string_view v) {
  while (!v.empty() && Lws(v.front())) v.remove_prefix(1);
  while (!v.empty() && Lws(v.back())) v.remove_suffix(1);
  return v;
}

struct Ref {
  HeadResult result = HeadResult::kIncomplete;
  uint32_t head_bytes = 0;
  std::string identity;
  uint64_t content_length = 0;
  bool chunked = false;
};

Ref Err(HeadResult r) {
  Ref ref;
  ref.result = r;
  return ref;
}

// The reference: find the end line by line, then check bytes, then parse lines.
Ref Reference(const std::string& s, const HeadOptions& o) {
  Ref ref;
  const size_t limit = std::min<size_t>(s.size(), o.max_head_bytes);
  size_t end = std::string::npos;
  for (size_t i = 1; i < limit; ++i) {
    if (s[i] != '\n') continue;
    if (s[i - 1] == '\n' || (i >= 2 && s[i - 1] == '\r' && s[i - 2] == '\n')) {
      end = i;
      break;
    }
  }
  if (end == std::string::npos) {
    ref.result = s.size() >= o.max_head_bytes ? HeadResult::kTooLarge : HeadResult::kIncomplete;
    return ref;
  }
  ref.head_bytes = static_cast<uint32_t>(end + 1);
  const size_t first_lf = s.find('\n');
  size_t bad = std::string::npos;
  for (size_t i = 0; i <= end; ++i) {
    if (s[i] == '\0' || (s[i] == '\r' && s[i + 1] != '\n')) {
      bad = i;
      break;
    }
  }
  if (bad != std::string::npos && bad < first_lf) {
    ref.result = HeadResult::kBadRequestLine;
    return ref;
  }
  RequestHead head;
  std::string line = s.substr(0, first_lf);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  // The request line: reuse the library's own for the line itself would not be
  // independent, so check only what the random pieces produce.
  const std::string kLines[] = {"GET / HTTP/1.1", "POST /p?q HTTP/1.0"};
  if (line != kLines[0] && line != kLines[1]) {
    ref.result = line.find(' ') == std::string::npos || line.find(' ') == 0 ? HeadResult::kNotHttp
                                                                            : HeadResult::kBadRequestLine;
    return ref;
  }
  if (bad != std::string::npos) {
    ref.result = HeadResult::kBadHeader;
    return ref;
  }
  bool seen_host = false, seen_te = false, has_cl = false, seen_id = false;
  uint32_t lines = 0;
  size_t pos = first_lf + 1;
  for (;;) {
    const size_t lf = s.find('\n', pos);
    std::string_view hl(s.data() + pos, lf - pos);
    if (!hl.empty() && hl.back() == '\r') hl.remove_suffix(1);
    if (lf == end) break;
    pos = lf + 1;
    if (++lines > o.max_header_lines) return Err(HeadResult::kTooManyHeaders);
    if (Lws(hl.front())) return Err(HeadResult::kObsoleteLineFolding);
    const size_t colon = hl.find(':');
    if (colon == std::string_view::npos || colon == 0) return Err(HeadResult::kBadHeader);
    const std::string_view name = hl.substr(0, colon);
    for (char c : name) {
      if (static_cast<uint8_t>(c) <= 0x20) return Err(HeadResult::kBadHeader);
    }
    const std::string_view v = Trim(hl.substr(colon + 1));
    if (IEq(name, o.identity_header)) {
      if (seen_id) return Err(HeadResult::kDuplicateIdentity);
      seen_id = true;
      if (v.size() > o.max_identity_bytes) return Err(HeadResult::kIdentityTooLong);
      for (char c : v) {
        if (static_cast<uint8_t>(c) < 0x20 || c == 0x7f) return Err(HeadResult::kBadIdentity);
      }
      ref.identity = std::string(v);
    } else if (IEq(name, "host")) {
      if (seen_host) return Err(HeadResult::kDuplicateHost);
      seen_host = true;
    } else if (IEq(name, "content-length")) {
      if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string_view::npos) {
        return Err(HeadResult::kBadContentLength);
      }
      const uint64_t n = std::stoull(std::string(v));
      if (has_cl && n != ref.content_length) return Err(HeadResult::kConflictingContentLength);
      has_cl = true;
      ref.content_length = n;
    } else if (IEq(name, "transfer-encoding")) {
      seen_te = true;
      const size_t comma = v.rfind(',');
      ref.chunked = IEq(Trim(comma == std::string_view::npos ? v : v.substr(comma + 1)), "chunked");
    }
  }
  if (seen_te && line == kLines[1]) return Err(HeadResult::kBadTransferEncoding);  // HTTP/1.0
  if (seen_te && !ref.chunked) return Err(HeadResult::kBadTransferEncoding);
  if (seen_te && has_cl) return Err(HeadResult::kContentLengthWithTransferEncoding);
  ref.result = HeadResult::kOk;
  return ref;
}

class HeadReferenceTest : public ::testing::TestWithParam<internal::HeadScanner> {
 protected:
  void SetUp() override {
    if (!internal::ForceHeadScanner(GetParam())) GTEST_SKIP() << "CPU lacks this scanner";
  }
  void TearDown() override { internal::ForceHeadScanner(internal::HeadScanner::kAuto); }
};

TEST_P(HeadReferenceTest, AgreesWithTheReferenceOnRandomHeads) {
  std::mt19937 rng(1234);
  const char* pieces[] = {"\r\n", "\n", "\r", "Host: h", "host:x", "X-User-ID: u1 ", "x-user-id:\tu2",
                          "Content-Length: 5", "Content-Length: 6", "Transfer-Encoding: chunked",
                          "Transfer-Encoding: gzip", "A: b", ":", " ", "\t", "x", "Bad Name: v",
                          "<NUL>", "Name\x01: v", "Long-Header: ",
                          "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz", "Z(z): 1"};
  const size_t piece_count = std::size(pieces);
  HeadOptions o;
  o.max_head_bytes = 1024;
  o.max_identity_bytes = 8;
  o.max_header_lines = 20;
  int ok = 0;
  for (int trial = 0; trial < 60000; ++trial) {
    std::string s = rng() % 2 ? "GET / HTTP/1.1\r\n" : "POST /p?q HTTP/1.0\n";
    if (rng() % 50 == 0) s = "GET  / HTTP/1.1\r\n";
    const int n = static_cast<int>(rng() % 24);
    for (int i = 0; i < n; ++i) {
      const size_t k = rng() % piece_count;
      if (k == 17) {
        s.push_back('\0');
      } else {
        s += pieces[k];
      }
      if (rng() % 3 == 0) s += "\r\n";
    }
    if (rng() % 4 != 0) s += "\r\n\r\n";
    if (rng() % 3 == 0) s += std::string(rng() % 80, 'q');  // bytes after the head
    const Ref want = Reference(s, o);
    RequestHead got;
    const HeadResult r = ParseRequestHead(reinterpret_cast<const uint8_t*>(s.data()), s.size(), o, got);
    ASSERT_EQ(HeadResultName(r), std::string(HeadResultName(want.result))) << ::testing::PrintToString(s);
    if (r == HeadResult::kOk) {
      ++ok;
      ASSERT_EQ(got.head_bytes, want.head_bytes) << ::testing::PrintToString(s);
      ASSERT_EQ(std::string(got.identity), want.identity);
      ASSERT_EQ(got.content_length, want.content_length);
      ASSERT_EQ(got.chunked, want.chunked);
    }
  }
  EXPECT_GT(ok, 1000) << "too few valid heads to be a useful comparison";
}

// The request line, written from RFC 9112 section 3 as the parser applies it.
struct RefLine {
  HeadResult result = HeadResult::kOk;
  std::string method_token, target, path, host;
  bool http10 = false;
};

bool RefTchar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string RefStripPort(std::string_view h) {
  if (!h.empty() && h[0] == '[') {
    const size_t close = h.find(']');
    return std::string(close == std::string_view::npos ? h : h.substr(0, close + 1));
  }
  return std::string(h.substr(0, h.find(':')));
}

RefLine ReferenceLine(const std::string& line, const std::string& host_header) {
  RefLine ref;
  const auto err = [](HeadResult r) {
    RefLine e;
    e.result = r;
    return e;
  };
  for (char c : line) {
    if (c == '\0' || c == '\r') return err(HeadResult::kBadRequestLine);
  }
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string::npos || sp1 == 0 || sp1 > 24) return err(HeadResult::kNotHttp);
  for (size_t i = 0; i < sp1; ++i) {
    if (!RefTchar(line[i])) return err(HeadResult::kNotHttp);
  }
  ref.method_token = line.substr(0, sp1);
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return err(HeadResult::kBadRequestLine);
  ref.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1" || version == "HTTP/1.0") {
    ref.http10 = version == "HTTP/1.0";
  } else {
    return err(version.rfind("HTTP/", 0) == 0 ? HeadResult::kBadVersion : HeadResult::kBadRequestLine);
  }
  for (char c : ref.target) {
    if (static_cast<uint8_t>(c) <= 0x20 || c == 0x7f) return err(HeadResult::kBadRequestLine);
  }
  ref.host = host_header;
  const std::string& t = ref.target;
  if (t.empty()) return err(HeadResult::kBadRequestLine);
  if (t[0] == '/') {
    ref.path = t.substr(0, t.find('?'));
  } else if (t == "*") {
    ref.path = "*";
  } else if (const size_t scheme = t.find("://"); scheme != std::string::npos && scheme > 0) {
    const std::string rest = t.substr(scheme + 3);
    const size_t path_start = rest.find_first_of("/?");
    ref.host = RefStripPort(std::string_view(rest).substr(0, path_start));
    if (path_start == std::string::npos || rest[path_start] == '?') {
      ref.path = "/";
    } else {
      const std::string p = rest.substr(path_start);
      ref.path = p.substr(0, p.find('?'));
    }
  } else if (ref.method_token == "CONNECT") {
    ref.host = RefStripPort(t);
    ref.path = "";
  } else {
    return err(HeadResult::kBadRequestLine);
  }
  return ref;
}

// Request lines of every form, known and unknown methods, targets with '?', DEL and
// controls, versions right and wrong, lines that end within the first 64 bytes of a
// head and lines that run past them, in heads shorter and longer than 64 bytes.
TEST_P(HeadReferenceTest, RequestLinesAgreeWithTheReference) {
  std::mt19937 rng(99);
  const char* methods[] = {"GET",  "HEAD", "POST", "PUT",      "DELETE", "PATCH", "OPTIONS", "CONNECT",
                           "TRACE", "get", "PURGE", "M-SEARCH", "GETS",   "GE",    "ABCDEFGHI",
                           "ABCDEFGHIJKLMNOPQRSTUVWXY", "GE(T", "G\x7f", "", "G\tET", "POST\x01"};
  const char* targets[] = {"/", "/a?b", "/v1/search?q=shoes", "/x/y/z", "*", "http://h.example:8080/p?q",
                           "https://[::1]:443", "http://a.example?x", "h.example:443", "/p\x7f", "/p\x01q",
                           "", "/?", "?x", "/a\tb", "/q?\x7f", "x://", "/0123456789abcdefghijklmnopqrstuvwxyz"
                           "0123456789abcdefghijklmnopqrstuvwxyz", "\x7f/", "/\r", "/\0x"};
  const char* versions[] = {"HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "http/1.1", "HTTP/1.10", "", "HTTP/1"};
  const char* seps[] = {" ", " ", " ", "  ", "\t"};
  int ok = 0;
  for (int trial = 0; trial < 40000; ++trial) {
    // Mostly the pieces of a valid line, so that both outcomes are common.
    const auto pick = [&](size_t valid, size_t all) { return rng() % 4 != 0 ? rng() % valid : rng() % all; };
    std::string line = methods[pick(9, std::size(methods))];
    line += seps[rng() % std::size(seps)];
    const size_t ti = rng() % std::size(targets);
    line += ti == std::size(targets) - 1 ? std::string("/\0x", 3) : std::string(targets[ti]);
    if (rng() % 4 == 0) line += std::string(rng() % 50, 'p');
    line += seps[rng() % std::size(seps)];
    line += versions[pick(2, std::size(versions))];
    std::string head = line + (rng() % 2 ? "\r\n" : "\n") + "Host: h.example:80\r\n";
    if (rng() % 2) head += "Accept: " + std::string(rng() % 100, 'a') + "\r\n";
    head += "\r\n";
    // A NUL or CR in the line is the line's fault only when no LF came first.
    const RefLine want = ReferenceLine(line, "h.example");
    RequestHead got;
    const HeadResult r = ParseRequestHead(reinterpret_cast<const uint8_t*>(head.data()), head.size(), HeadOptions(), got);
    ASSERT_EQ(HeadResultName(r), std::string(HeadResultName(want.result))) << ::testing::PrintToString(head);
    if (r != HeadResult::kOk) continue;
    ++ok;
    EXPECT_EQ(got.method_token, want.method_token) << ::testing::PrintToString(head);
    EXPECT_EQ(got.method, MethodFromToken(want.method_token));
    EXPECT_EQ(got.target, want.target) << ::testing::PrintToString(head);
    EXPECT_EQ(got.path, want.path) << ::testing::PrintToString(head);
    EXPECT_EQ(got.host, want.host) << ::testing::PrintToString(head);
    EXPECT_EQ(got.http10, want.http10);
  }
  EXPECT_GT(ok, 2000) << "too few valid lines to be a useful comparison";
}

// Every identity name length below 64 (the scanners find the lines whose name may be
// the identity's by their distance from a line start), with names of the other lengths
// looked at (4, 14, 17) and of neighbouring lengths around it, anywhere in heads long
// enough to cross several chunks.
TEST_P(HeadReferenceTest, IdentityNamesOfEveryLength) {
  std::mt19937 rng(99);
  const char* const kOthers[] = {"Host: h.example", "Content-Length: 3", "Transfer-Encoding: chunked",
                                 "Accept: */*", "X-Forwarded-Proto: https", "Accept-Charset: utf-8"};
  int found = 0;
  for (size_t n = 1; n < 64; ++n) {
    std::string name;
    for (size_t i = 0; i < n; ++i) name += static_cast<char>('a' + (i * 7 + n) % 26);
    HeadOptions o;
    o.identity_header = name;
    o.max_identity_bytes = 64;
    for (int trial = 0; trial < 120; ++trial) {
      // The reference knows two request lines; a first header line of random length
      // moves the rest against the chunk boundaries.
      std::string s = rng() % 2 ? "GET / HTTP/1.1\r\n" : "POST /p?q HTTP/1.0\n";
      s += "F: " + std::string(rng() % 90, 'f') + "\r\n";
      const int lines = static_cast<int>(rng() % 12);
      const int id_at = static_cast<int>(rng() % (lines + 1));
      for (int i = 0; i <= lines; ++i) {
        if (i == id_at && rng() % 8 != 0) {
          std::string sent = name;
          if (rng() % 2) sent[rng() % n] ^= 0x20;                 // another case
          if (rng() % 6 == 0) sent.erase(rng() % n, 1);           // one byte shorter
          if (rng() % 6 == 0) sent.insert(rng() % n, 1, 'q');     // one byte longer
          s += sent + ":" + std::string(rng() % 2, ' ') + "id" + std::to_string(trial) + "\r\n";
        }
        if (i < lines) {
          if (rng() % 3 == 0) {
            s += kOthers[rng() % std::size(kOthers)];
          } else {
            s += std::string(1 + rng() % 30, 'h') + ": " + std::string(rng() % 60, 'v');
          }
          s += rng() % 5 == 0 ? "\n" : "\r\n";
        }
      }
      s += "\r\n";
      if (rng() % 2) s += std::string(rng() % 70, 'b');
      const Ref want = Reference(s, o);
      RequestHead got;
      const HeadResult r = ParseRequestHead(reinterpret_cast<const uint8_t*>(s.data()), s.size(), o, got);
      ASSERT_EQ(HeadResultName(r), std::string(HeadResultName(want.result))) << n << " " << ::testing::PrintToString(s);
      if (r == HeadResult::kOk) {
        ASSERT_EQ(std::string(got.identity), want.identity) << n << " " << ::testing::PrintToString(s);
        ASSERT_EQ(got.content_length, want.content_length) << n << " " << ::testing::PrintToString(s);
        ASSERT_EQ(got.chunked, want.chunked) << n << " " << ::testing::PrintToString(s);
        if (!want.identity.empty()) ++found;
      }
    }
  }
  EXPECT_GT(found, 2000) << "too few heads with an identity to be a useful comparison";
}

// Heads of 3 to 7 KiB: the lines to visit lie in chunks on both sides of the 64th (the
// parser tracks which chunks hold them in one 64-bit word, up to the 64th).
TEST_P(HeadReferenceTest, LongHeadsAcrossTheSixtyFourthChunk) {
  std::mt19937 rng(64);
  HeadOptions o;
  o.max_head_bytes = 8192;
  o.max_header_lines = 200;
  int found = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string s = rng() % 2 ? "GET / HTTP/1.1\r\n" : "POST /p?q HTTP/1.0\n";
    const int lines = 40 + static_cast<int>(rng() % 60);
    const int id_at = static_cast<int>(rng() % (lines + 1));
    const int host_at = static_cast<int>(rng() % (lines + 1));
    for (int i = 0; i <= lines; ++i) {
      if (i == id_at) s += "X-User-ID: u" + std::to_string(trial) + "\r\n";
      if (i == host_at) s += "Host: h" + std::to_string(trial) + "\r\n";
      if (i < lines) s += "L" + std::to_string(i) + ": " + std::string(30 + rng() % 80, 'v') + "\r\n";
    }
    if (rng() % 4 == 0) s += "Content-Length: 12\r\n";
    s += "\r\n";
    const Ref want = Reference(s, o);
    RequestHead got;
    const HeadResult r = ParseRequestHead(reinterpret_cast<const uint8_t*>(s.data()), s.size(), o, got);
    ASSERT_EQ(HeadResultName(r), std::string(HeadResultName(want.result))) << s.size();
    if (r == HeadResult::kOk) {
      ASSERT_EQ(std::string(got.identity), want.identity) << s.size() << " " << id_at;
      ASSERT_EQ(std::string(got.host), "h" + std::to_string(trial)) << s.size() << " " << host_at;
      ASSERT_EQ(got.content_length, want.content_length);
      if (s.size() > 4096) ++found;
    }
  }
  EXPECT_GT(found, 50) << "too few heads past 4 KiB to be a useful comparison";
}

// Host values of every length up to 40 bytes, with a port or none, bracketed or not,
// the ':' or ']' at every position (the port is found eight bytes at a time).
TEST_P(HeadReferenceTest, HostPortsAtEveryPosition) {
  std::mt19937 rng(80);
  int checked = 0;
  for (size_t n = 0; n <= 40; ++n) {
    for (int trial = 0; trial < 40; ++trial) {
      std::string value;
      // obs-text too: bytes above 0x7f are allowed in a value and must not look like ':'.
      for (size_t i = 0; i < n; ++i) value += static_cast<char>("abcxyz019.-\xfa\xba\xff"[rng() % 14]);
      if (n > 0 && trial % 4 == 1) value[rng() % n] = ':';
      if (n > 1 && trial % 4 == 2) {
        value[0] = '[';
        value[1 + rng() % (n - 1)] = ']';
      }
      if (n > 2 && trial % 4 == 3) value[rng() % n] = ':', value[rng() % n] = ':';
      const std::string head = "GET / HTTP/1.1\r\nHost: " + value + "\r\n\r\n";
      RequestHead got;
      ASSERT_EQ(ParseRequestHead(reinterpret_cast<const uint8_t*>(head.data()), head.size(), HeadOptions{}, got),
                HeadResult::kOk)
          << value;
      ASSERT_EQ(std::string(got.host), RefStripPort(value)) << value;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 41 * 40);
}

// Identity names of 64 bytes and more are found by another route than shorter ones.
TEST_P(HeadReferenceTest, LongIdentityNames) {
  std::mt19937 rng(7);
  for (size_t n : {63u, 64u, 65u, 100u, 130u}) {
    std::string name;
    for (size_t i = 0; i < n; ++i) name += static_cast<char>('a' + i % 26);
    HeadOptions o;
    o.identity_header = name;
    for (int trial = 0; trial < 200; ++trial) {
      std::string head = "GET / HTTP/1.1\r\n";
      const int before = static_cast<int>(rng() % 5);
      for (int i = 0; i < before; ++i) head += "H" + std::to_string(i) + ": " + std::string(rng() % 70, 'v') + "\r\n";
      std::string sent = name;
      if (rng() % 2) sent[rng() % n] ^= 0x20;  // another case of a letter
      const bool other = rng() % 4 == 0;
      if (other) sent[rng() % n] = '-';         // another name of the same length
      head += sent + ": id" + std::to_string(trial) + "\r\n";
      if (rng() % 2) head += "Accept: " + std::string(rng() % 90, 'a') + "\r\n";
      head += "\r\n";
      RequestHead got;
      ASSERT_EQ(ParseRequestHead(reinterpret_cast<const uint8_t*>(head.data()), head.size(), o, got),
                HeadResult::kOk);
      EXPECT_EQ(got.has_identity, !other) << n << " " << head;
      EXPECT_EQ(std::string(got.identity), other ? "" : "id" + std::to_string(trial)) << n << " " << head;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Scanners, HeadReferenceTest,
                         ::testing::Values(internal::HeadScanner::kSse2, internal::HeadScanner::kAvx2,
                                           internal::HeadScanner::kAvx512));

}  // namespace
}  // namespace dlb::packet
