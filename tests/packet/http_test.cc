#include "dlb/packet/http.h"
#include "dlb/path.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <random>
#include <set>
#include <string>

namespace dlb::packet {
namespace {

const uint8_t* U(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// The head's fields view `s`: callers keep it alive.
HeadResult ParseWhole(const std::string& s, RequestHead& h, HeadOptions o = {}) {
  uint32_t scan = 0;
  uint32_t n = 0;
  HeadResult r = FindHeadEnd(U(s), s.size(), o.max_head_bytes, scan, n);
  if (r != HeadResult::kOk) return r;
  return ParseRequestHead(U(s), n, o, h);
}

TEST(HttpTest, ParsesMethodPathHostIdentity) {
  const std::string s =
      "POST /v1/payments?x=1 HTTP/1.1\r\nHost: API.example.com:8443\r\nContent-Length: 12\r\n"
      "x-user-id: \t alice \r\nAccept: */*\r\n\r\n";
  RequestHead h;
  ASSERT_EQ(ParseWhole(s, h), HeadResult::kOk);
  EXPECT_EQ(h.method, Method::kPost);
  EXPECT_EQ(h.path, "/v1/payments");
  EXPECT_EQ(h.host, "API.example.com");
  EXPECT_EQ(h.identity, "alice");
  EXPECT_TRUE(h.has_identity);
  EXPECT_TRUE(h.has_content_length);
  EXPECT_EQ(h.content_length, 12u);
  EXPECT_EQ(h.head_bytes, s.size());
}

TEST(HttpTest, ConfigurableIdentityHeader) {
  HeadOptions o;
  o.identity_header = "X-Api-Key";
  RequestHead h;
  const std::string s = "GET / HTTP/1.1\r\nX-User-ID: a\r\nx-api-KEY: k1\r\n\r\n";
  ASSERT_EQ(ParseWhole(s, h, o), HeadResult::kOk);
  EXPECT_EQ(h.identity, "k1");
}

// Names compare case-insensitively for letters only: every case of a name matches, and
// bytes that differ from it by 0x20 without being letters ('^' and '~', '@' and '`',
// '[' and '{', '_' and DEL) do not. Lengths 3 to 17 cover the byte, half-word and
// word compares.
TEST(HttpTest, IdentityNameMatchesLettersCaseInsensitivelyOnly) {
  std::mt19937_64 rng(5);
  const std::string kNames[] = {"X~I", "X-Id", "X^User", "Api_Key", "X-User-ID", "X-Client-Id{1}",
                                "X-Authenticated-U"};
  for (const std::string& name : kNames) {
    HeadOptions o;
    o.identity_header = name;
    for (int trial = 0; trial < 50; ++trial) {
      std::string sent = name;
      for (char& c : sent) {
        if (std::isalpha(static_cast<unsigned char>(c)) && rng() % 2) c ^= 0x20;
      }
      RequestHead h;
      std::string s = "GET / HTTP/1.1\r\n";
      s += sent;
      const std::string value = std::to_string(trial);
      s += ": ";
      s += value;
      s += "\r\n\r\n";
      ASSERT_EQ(ParseWhole(s, h, o), HeadResult::kOk) << sent;
      EXPECT_EQ(h.identity, value) << sent;
    }
    for (size_t i = 0; i < name.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(name[i]);
      if (std::isalpha(c)) continue;
      std::string sent = name;
      sent[i] = static_cast<char>(c ^ 0x20);
      RequestHead h;
      std::string s = "GET / HTTP/1.1\r\n";
      s += sent;
      s += ": v\r\n\r\n";
      const HeadResult r = ParseWhole(s, h, o);
      if (r == HeadResult::kOk) {
        EXPECT_FALSE(h.has_identity) << sent;
      }
    }
  }
}

// The target may hold no byte <= 0x20 and no DEL, wherever it sits in the target.
TEST(HttpTest, ControlOrDelAnywhereInTheTargetIsRefused) {
  for (size_t len = 1; len <= 24; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (const char bad : {'\x01', '\t', '\x7f', '\x20'}) {
        std::string s = "GET /";
        s.append(len, 'a');
        s += " HTTP/1.1\r\nHost: a\r\n\r\n";
        s[5 + at] = bad;
        RequestHead h;
        EXPECT_NE(ParseWhole(s, h), HeadResult::kOk) << len << " " << at << " " << int(bad);
      }
      RequestHead h;
      std::string ok = "GET /";
      ok.append(len, '~');
      ok += " HTTP/1.1\r\nHost: a\r\n\r\n";
      EXPECT_EQ(ParseWhole(ok, h), HeadResult::kOk) << len;
    }
  }
}

TEST(HttpTest, AbsoluteFormAuthorityReplacesHost) {
  RequestHead h;
  const std::string s = "GET http://a.example:80/p/q?z HTTP/1.1\r\nHost: b.example\r\n\r\n";
  ASSERT_EQ(ParseWhole(s, h), HeadResult::kOk);
  EXPECT_EQ(h.host, "a.example");
  EXPECT_EQ(h.path, "/p/q");
}

TEST(HttpTest, BareLfLineEndsAreAccepted) {
  RequestHead h;
  const std::string s = "GET /a HTTP/1.0\nX-User-ID: u\n\n";
  ASSERT_EQ(ParseWhole(s, h), HeadResult::kOk);
  EXPECT_TRUE(h.http10);
  EXPECT_EQ(h.identity, "u");
}

TEST(HttpTest, FindHeadEndIsIncrementalByteByByte) {
  const std::string s = "GET / HTTP/1.1\r\nHost: h\r\nX-User-ID: bob\r\n\r\nNEXT";
  uint32_t scan = 0;
  uint32_t n = 0;
  for (size_t len = 1; len <= s.size(); ++len) {
    const HeadResult r = FindHeadEnd(U(s), len, 8192, scan, n);
    if (len < s.size() - 4) {
      ASSERT_EQ(r, HeadResult::kIncomplete) << len;
    } else {
      ASSERT_EQ(r, HeadResult::kOk) << len;
      EXPECT_EQ(n, s.size() - 4);
      break;
    }
  }
}

TEST(HttpTest, TooLargeHead) {
  std::string s = "GET / HTTP/1.1\r\nX-Pad: " + std::string(200, 'a') + "\r\n\r\n";
  uint32_t scan = 0;
  uint32_t n = 0;
  EXPECT_EQ(FindHeadEnd(U(s), s.size(), 100, scan, n), HeadResult::kTooLarge);
  scan = 0;
  EXPECT_EQ(FindHeadEnd(U(s), 99, 100, scan, n), HeadResult::kIncomplete);
}

TEST(HttpTest, RequestStart) {
  EXPECT_EQ(CheckRequestStart(U(std::string("GE")), 2), HeadResult::kIncomplete);
  EXPECT_EQ(CheckRequestStart(U(std::string("GET ")), 4), HeadResult::kOk);
  EXPECT_EQ(CheckRequestStart(U(std::string("\x16\x03\x01")), 3), HeadResult::kNotHttp);
  EXPECT_EQ(CheckRequestStart(U(std::string(" GET")), 4), HeadResult::kNotHttp);
  const std::string long_token(30, 'A');
  EXPECT_EQ(CheckRequestStart(U(long_token), long_token.size()), HeadResult::kNotHttp);
}

struct BadCase {
  const char* head;
  HeadResult want;
};

// RFC 9112, 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing (a server
// that ignores it on 1.0 reads the body as requests), whatever the coding.
TEST(HttpTest, Http10WithTransferEncodingIsMalformed) {
  RequestHead h;
  EXPECT_EQ(ParseWhole("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\nX-User-ID: eve\r\n\r\n", h),
            HeadResult::kBadTransferEncoding);
  EXPECT_EQ(ParseWhole("POST /x HTTP/1.0\r\nConnection: keep-alive\r\ntransfer-encoding: gzip, chunked\r\n\r\n", h),
            HeadResult::kBadTransferEncoding);
  EXPECT_EQ(ParseWhole("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", h), HeadResult::kOk);
  EXPECT_TRUE(h.chunked);
  EXPECT_EQ(ParseWhole("POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\n", h), HeadResult::kOk);
}

// Exactly one identity line: an empty first line does not let a second choose the user.
TEST(HttpTest, AnySecondIdentityLineIsADuplicate) {
  RequestHead h;
  for (const char* head : {"GET / HTTP/1.1\r\nX-User-ID:\r\nX-User-ID: victim\r\n\r\n",
                           "GET / HTTP/1.1\r\nX-User-ID:  \t\r\nx-user-id: victim\r\n\r\n",
                           "GET / HTTP/1.1\r\nX-User-ID: victim\r\nHost: a\r\nX-User-ID:\r\n\r\n",
                           "GET / HTTP/1.1\r\nX-User-ID:\r\nX-User-ID:\r\n\r\n"}) {
    EXPECT_EQ(ParseWhole(head, h), HeadResult::kDuplicateIdentity) << head;
  }
  EXPECT_EQ(ParseWhole("GET / HTTP/1.1\r\nX-User-ID:\r\n\r\n", h), HeadResult::kOk);
  EXPECT_FALSE(h.has_identity);
}

// Controls or DEL in the value are malformed (a backend that trims them would see one
// user where we see several); only SP and HTAB around the value are trimmed.
TEST(HttpTest, IdentityWithControlsIsMalformed) {
  RequestHead h;
  for (const std::string& v : {std::string("alice\x0b"), std::string("al\x01ice"), std::string("alice\x7f\xff"),
                              std::string("\x0c" "alice"), std::string("al\tice"), std::string("alice\x1b")}) {
    const std::string head = "GET / HTTP/1.1\r\nX-User-ID: " + v + "\r\n\r\n";
    EXPECT_EQ(ParseWhole(head, h), HeadResult::kBadIdentity) << ::testing::PrintToString(v);
  }
  const std::string spaced = "GET / HTTP/1.1\r\nX-User-ID: \t alice smith\t \r\n\r\n";
  EXPECT_EQ(ParseWhole(spaced, h), HeadResult::kOk);
  EXPECT_EQ(h.identity, "alice smith");
  const std::string utf8 = "GET / HTTP/1.1\r\nX-User-ID: \xc3\xa9lise\r\n\r\n";
  EXPECT_EQ(ParseWhole(utf8, h), HeadResult::kOk);
  EXPECT_EQ(h.identity, "\xc3\xa9lise");
}

// A path that cannot be normalized (dlb/path.h) is malformed; every other is kept as sent
// in head.path (rules normalize it).
TEST(HttpTest, PathThatCannotBeNormalizedIsMalformed) {
  RequestHead h;
  EXPECT_EQ(ParseWhole("GET /pay%4 HTTP/1.1\r\n\r\n", h), HeadResult::kBadPath);
  EXPECT_EQ(ParseWhole("GET http://h/%g0 HTTP/1.1\r\n\r\n", h), HeadResult::kBadPath);
  const std::string long_path = "GET /" + std::string(DLB_PATH_MAX_BYTES, 'a') + " HTTP/1.1\r\n\r\n";
  HeadOptions o;
  o.max_head_bytes = 2 * DLB_PATH_MAX_BYTES;
  EXPECT_EQ(ParseWhole(long_path, h, o), HeadResult::kBadPath);
  const std::string ok = "GET //x/../%70ay?a=%zz HTTP/1.1\r\n\r\n";
  EXPECT_EQ(ParseWhole(ok, h), HeadResult::kOk);
  EXPECT_EQ(h.path, "//x/../%70ay");
}

// head.path_normal (the parser's cheap test, then dlb_path_is_normal) says exactly
// whether the path is its own normalization: rules skip normalizing when it is set.
TEST(HttpTest, PathNormalFlagIsExact) {
  static const char* kPieces[] = {"/", "//", ".", "..", "%2e", "%70", "%3F", "a", "B", "pay", "-", "~", ".x"};
  std::mt19937 rng(20);
  int normal = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string path = "/";
    const int pieces = static_cast<int>(rng() % 6);
    for (int i = 0; i < pieces; ++i) path += kPieces[rng() % (sizeof kPieces / sizeof *kPieces)];
    const std::string head = "GET " + path + "?q HTTP/1.1\r\n\r\n";
    RequestHead h;
    ASSERT_EQ(ParseWhole(head, h), HeadResult::kOk) << path;
    const bool want = dlb_path_is_normal(reinterpret_cast<const dlb_path_u8*>(path.data()),
                                         static_cast<dlb_path_u32>(path.size()), 0) != 0;
    ASSERT_EQ(h.path_normal, want) << path;
    normal += want;
  }
  EXPECT_GT(normal, 2000);
  EXPECT_LT(normal, 18000);
}

TEST(HttpTest, EveryMalformedReason) {
  const BadCase cases[] = {
      {"\x16\x03 / HTTP/1.1\r\n\r\n", HeadResult::kNotHttp},
      {"GET /\r\n\r\n", HeadResult::kBadRequestLine},
      {"GET foo HTTP/1.1\r\n\r\n", HeadResult::kBadRequestLine},
      {"GET / HTTP/2.0\r\n\r\n", HeadResult::kBadVersion},
      {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", HeadResult::kBadHeader},
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", HeadResult::kBadHeader},
      {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", HeadResult::kBadHeader},
      {"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", HeadResult::kBadHeader},
      {"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", HeadResult::kObsoleteLineFolding},
      {"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", HeadResult::kBadContentLength},
      {"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", HeadResult::kBadContentLength},
      {"GET / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n", HeadResult::kBadContentLength},
      {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HeadResult::kConflictingContentLength},
      {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HeadResult::kBadTransferEncoding},
      {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
       HeadResult::kContentLengthWithTransferEncoding},
      {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", HeadResult::kDuplicateHost},
      {"GET / HTTP/1.1\r\nX-User-ID: a\r\nX-User-Id: b\r\n\r\n", HeadResult::kDuplicateIdentity},
      {"GET / HTTP/1.1\r\nX-User-ID: al\x01ice\r\n\r\n", HeadResult::kBadIdentity},
      {"GET /pay%zz HTTP/1.1\r\n\r\n", HeadResult::kBadPath},
  };
  std::set<HeadResult> seen;
  for (const BadCase& c : cases) {
    RequestHead h;
    EXPECT_EQ(ParseWhole(c.head, h), c.want) << c.head;
    seen.insert(c.want);
  }
  {
    HeadOptions o;
    o.max_identity_bytes = 4;
    RequestHead h;
    EXPECT_EQ(ParseWhole("GET / HTTP/1.1\r\nX-User-ID: 12345\r\n\r\n", h, o), HeadResult::kIdentityTooLong);
    seen.insert(HeadResult::kIdentityTooLong);
    EXPECT_EQ(ParseWhole("GET / HTTP/1.1\r\nX-User-ID: 1234\r\n\r\n", h, o), HeadResult::kOk);
  }
  {
    HeadOptions o;
    o.max_header_lines = 2;
    RequestHead h;
    EXPECT_EQ(ParseWhole("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", h, o), HeadResult::kTooManyHeaders);
    seen.insert(HeadResult::kTooManyHeaders);
  }
  seen.insert(HeadResult::kOk);
  seen.insert(HeadResult::kIncomplete);
  seen.insert(HeadResult::kTooLarge);  // FindHeadEnd's, tested above
  EXPECT_EQ(seen.size(), static_cast<size_t>(kHeadResultCount));
}

TEST(HttpTest, BareCrAndNulAreRefusedAtEveryPosition) {
  // Block boundaries of the 16-byte scan must not hide a bad byte.
  const std::string good = "GET /abcdefgh HTTP/1.1\r\nX-User-ID: someone\r\nAccept: */*\r\n\r\n";
  RequestHead h;
  ASSERT_EQ(ParseRequestHead(U(good), good.size(), HeadOptions{}, h), HeadResult::kOk);
  const size_t request_line_end = good.find('\r');
  for (size_t i = 0; i + 4 < good.size(); ++i) {
    if (good[i] == '\r' || good[i] == '\n') continue;
    for (char bad : {'\r', '\0'}) {
      std::string s = good;
      s[i] = bad;
      const HeadResult r = ParseRequestHead(U(s), s.size(), HeadOptions{}, h);
      EXPECT_TRUE(IsMalformedHead(r) || r == HeadResult::kNotHttp) << i << " " << int(bad) << " " << HeadResultName(r);
      if (i > request_line_end) {
        EXPECT_TRUE(r == HeadResult::kBadHeader) << i << " " << HeadResultName(r);
      }
    }
  }
}

TEST(HttpTest, BytesAfterTheHeadAreNotInspected) {
  std::string s = "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n";
  const size_t head = s.size();
  s += std::string("\0\r\0x", 4) + "GET";
  RequestHead h;
  ASSERT_EQ(ParseRequestHead(U(s), s.size(), HeadOptions{}, h), HeadResult::kOk);
  EXPECT_EQ(h.head_bytes, head);
}

TEST(HttpTest, IncompleteAndEarlyMalformed) {
  RequestHead h;
  const std::string partial = "GET / HTTP/1.1\r\nHost: a\r\n";
  EXPECT_EQ(ParseRequestHead(U(partial), partial.size(), HeadOptions{}, h), HeadResult::kIncomplete);
  const std::string bad = "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n";
  EXPECT_EQ(ParseRequestHead(U(bad), bad.size() - 2, HeadOptions{}, h), HeadResult::kIncomplete);
  EXPECT_EQ(ParseRequestHead(U(bad), bad.size(), HeadOptions{}, h), HeadResult::kBadHeader);
  HeadOptions o;
  o.max_head_bytes = 20;
  EXPECT_EQ(ParseRequestHead(U(partial), partial.size(), o, h), HeadResult::kTooLarge);
}

// The one-pass parse of a buffer equals finding the end first and parsing exactly it.
TEST(HttpTest, OnePassEqualsFindThenParse) {
  std::mt19937 rng(31);
  const char* pieces[] = {"GET / HTTP/1.1", "POST /p?q HTTP/1.0", "\r\n", "\n", "Host: h", "X-User-ID:  u1 ",
                          "Content-Length: 5", "Transfer-Encoding: chunked", "A: b", "\r", ":", " ", "x"};
  for (int trial = 0; trial < 20000; ++trial) {
    std::string s;
    const int n = 1 + rng() % 12;
    for (int i = 0; i < n; ++i) s += pieces[rng() % std::size(pieces)];
    RequestHead a;
    RequestHead b;
    const HeadResult one = ParseRequestHead(U(s), s.size(), HeadOptions{}, a);
    uint32_t scan = 0;
    uint32_t end = 0;
    const HeadResult found = FindHeadEnd(U(s), s.size(), 8192, scan, end);
    if (found != HeadResult::kOk) {
      EXPECT_TRUE(one == HeadResult::kIncomplete || IsMalformedHead(one) || one == HeadResult::kNotHttp) << s;
      continue;
    }
    const HeadResult two = ParseRequestHead(U(s), end, HeadOptions{}, b);
    ASSERT_EQ(one, two) << s;
    if (one == HeadResult::kOk) {
      EXPECT_EQ(a.head_bytes, end);
      EXPECT_EQ(a.identity, b.identity);
      EXPECT_EQ(a.content_length, b.content_length);
    }
  }
}

// Too many header lines in a head of several 64-byte chunks whose lines are all well
// formed: a fault in the lines within the bound is still named first.
TEST(HttpTest, TooManyHeaderLinesInALongHead) {
  HeadOptions o;
  o.max_header_lines = 5;
  const auto head = [](int lines, int duplicate_host_at) {
    std::string s = "GET /a/long/enough/path HTTP/1.1\r\n";
    for (int i = 0; i < lines; ++i) {
      s += i == 0 || i == duplicate_host_at ? "Host: h.example\r\n" : "X-Header-" + std::to_string(i) + ": some value\r\n";
    }
    return s + "\r\n";
  };
  RequestHead h;
  EXPECT_EQ(ParseWhole(head(5, -1), h, o), HeadResult::kOk);
  EXPECT_EQ(ParseWhole(head(6, -1), h, o), HeadResult::kTooManyHeaders);
  EXPECT_EQ(ParseWhole(head(12, -1), h, o), HeadResult::kTooManyHeaders);
  EXPECT_EQ(ParseWhole(head(12, 3), h, o), HeadResult::kDuplicateHost);
  EXPECT_EQ(ParseWhole(head(12, 7), h, o), HeadResult::kTooManyHeaders);
}

TEST(HttpTest, ChunkedTransferEncodingIsRecognised) {
  RequestHead h;
  const std::string s = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
  ASSERT_EQ(ParseWhole(s, h), HeadResult::kOk);
  EXPECT_TRUE(h.chunked);
}

ChunkedDecoder::Result FeedAll(ChunkedDecoder& d, const std::string& s, size_t& consumed) {
  return d.Feed(U(s), s.size(), consumed);
}

TEST(ChunkedTest, WholeBodyWithExtensionsAndTrailers) {
  const std::string body = "4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nGET";
  ChunkedDecoder d;
  size_t used = 0;
  ASSERT_EQ(FeedAll(d, body, used), ChunkedDecoder::Result::kDone);
  EXPECT_EQ(used, body.size() - 3);
}

TEST(ChunkedTest, ByteByByteEqualsWhole) {
  const std::string body = "a\r\n0123456789\r\n0\r\n\r\n";
  ChunkedDecoder d;
  for (size_t i = 0; i < body.size(); ++i) {
    size_t used = 0;
    const auto r = d.Feed(U(body) + i, 1, used);
    EXPECT_EQ(used, 1u);
    if (i + 1 < body.size()) {
      ASSERT_EQ(r, ChunkedDecoder::Result::kMore) << i;
    } else {
      EXPECT_EQ(r, ChunkedDecoder::Result::kDone);
    }
  }
}

TEST(ChunkedTest, RandomSplitsAgree) {
  std::mt19937 rng(7);
  const std::string body = "1f\r\n" + std::string(31, 'x') + "\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\n";
  for (int trial = 0; trial < 200; ++trial) {
    ChunkedDecoder d;
    size_t pos = 0;
    ChunkedDecoder::Result r = ChunkedDecoder::Result::kMore;
    while (pos < body.size() && r == ChunkedDecoder::Result::kMore) {
      const size_t n = std::min<size_t>(body.size() - pos, 1 + rng() % 7);
      size_t used = 0;
      r = d.Feed(U(body) + pos, n, used);
      pos += used;
    }
    ASSERT_EQ(r, ChunkedDecoder::Result::kDone);
    EXPECT_EQ(pos, body.size());
  }
}

TEST(ChunkedTest, MalformedBodies) {
  for (const char* bad : {"g\r\n", "\r\n", "5\r\nabcdeX", "1234567890abcdef0\r\n", "0\r\n\rX"}) {
    ChunkedDecoder d;
    size_t used = 0;
    EXPECT_EQ(d.Feed(U(bad), std::strlen(bad), used), ChunkedDecoder::Result::kError) << bad;
  }
}

}  // namespace
}  // namespace dlb::packet
