// HTTP/1.1 request heads, parsed from byte spans that the caller has checked (RFC 9112;
// chunked bodies: chunked.h). The parser never copies: the fields are views into the
// span, valid as long as the span is. No allocation, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dlb/packet/chunked.h"

namespace dlb::packet {

enum class Method : uint8_t { kOther, kGet, kHead, kPost, kPut, kDelete, kPatch, kOptions, kConnect, kTrace };
inline constexpr int kMethodCount = 10;
// "GET" for Method::kGet; "" for kOther.
const char* MethodName(Method m);
// The method for a token ("GET" -> kGet; anything unknown -> kOther). Case-sensitive,
// as methods are (RFC 9110, 9.1).
Method MethodFromToken(std::string_view token);

// The outcome of looking at a head. kOk and kIncomplete are not errors; kNotHttp means
// the bytes at a request boundary do not start a request line; the rest name why a
// complete head is malformed (a metric label each).
#define DLB_HEAD_RESULTS(X)                                                  \
  X(kOk, "ok")                                                               \
  X(kIncomplete, "incomplete")                                               \
  X(kNotHttp, "not_http")                                                    \
  X(kTooLarge, "too_large")                                                  \
  X(kBadRequestLine, "bad_request_line")                                     \
  X(kBadVersion, "bad_version")                                              \
  X(kBadHeader, "bad_header")                                                \
  X(kObsoleteLineFolding, "obsolete_line_folding")                           \
  X(kTooManyHeaders, "too_many_headers")                                     \
  X(kBadContentLength, "bad_content_length")                                 \
  X(kConflictingContentLength, "conflicting_content_length")                 \
  X(kBadTransferEncoding, "bad_transfer_encoding")                           \
  X(kContentLengthWithTransferEncoding, "content_length_with_transfer_encoding") \
  X(kDuplicateHost, "duplicate_host")                                        \
  X(kDuplicateIdentity, "duplicate_identity")                                \
  X(kIdentityTooLong, "identity_too_long")                                  \
  X(kBadIdentity, "bad_identity")                                            \
  X(kBadPath, "bad_path")

enum class HeadResult : uint8_t {
#define DLB_X(name, str) name,
  DLB_HEAD_RESULTS(DLB_X)
#undef DLB_X
};
inline constexpr int kHeadResultCount = 0
#define DLB_X(name, str) +1
    DLB_HEAD_RESULTS(DLB_X)
#undef DLB_X
    ;
const char* HeadResultName(HeadResult r);
inline bool IsMalformedHead(HeadResult r) { return r >= HeadResult::kBadRequestLine; }

struct HeadOptions {
  // The identity header's name, compared case-insensitively. Must be a token.
  std::string_view identity_header = "X-User-ID";
  // Identity values longer than this (after trimming) make the head malformed: the
  // bound keeps a crafted ID from costing more than a bounded hash.
  uint32_t max_identity_bytes = 256;
  // Heads longer than this (request line to the empty line inclusive) are kTooLarge.
  uint32_t max_head_bytes = 8192;
  // More header lines than this make the head malformed.
  uint32_t max_header_lines = 128;
};

struct RequestHead {
  Method method = Method::kOther;
  std::string_view method_token;
  std::string_view target;     // as sent
  std::string_view path;       // the target's path: up to '?' (origin or absolute form;
                               // a static "/" for an absolute form without a path)
  std::string_view host;       // Host header, or the absolute-form authority; port and
                               // case as sent, port removed
  std::string_view identity;   // the identity header's value, OWS trimmed; empty if absent
  bool has_identity = false;
  bool path_normal = false;    // path is its own normalization (dlb/path.h): set by the
                               // parser so that rules need not check it again
  bool http10 = false;
  bool chunked = false;        // Transfer-Encoding ends in "chunked"
  bool has_content_length = false;
  uint64_t content_length = 0;
  uint32_t head_bytes = 0;     // request line through the empty line
};

// Looks for the end of a head in data[0, len): the empty line that ends it (CRLF CRLF,
// or bare LF line ends, which servers such as nginx accept: missing them would let a
// head through undecided). `scan_from` carries progress between calls on a growing span
// so that a head delivered one byte at a time costs O(n), not O(n^2); start it at 0.
// Returns kOk with `head_bytes` set, kIncomplete, or kTooLarge once `max_head_bytes`
// are buffered without an end.
HeadResult FindHeadEnd(const uint8_t* data, size_t len, uint32_t max_head_bytes,
                       uint32_t& scan_from, uint32_t& head_bytes);

// Whether data[0, len) can still be the start of a request line: a method token of at
// most 24 characters followed by a space. kNotHttp as soon as it cannot, kIncomplete
// while undecided, kOk once the method and its space are seen. Used to give up on a
// flow that is not HTTP before buffering anything.
HeadResult CheckRequestStart(const uint8_t* data, size_t len);

// Parses the head at the start of data[0, len): up to its empty line, which also sets
// head.head_bytes (bytes after it are not looked at). kIncomplete when no empty line
// is within len; kTooLarge when none is within max_head_bytes.
HeadResult ParseRequestHead(const uint8_t* data, size_t len, const HeadOptions& options,
                            RequestHead& head);

}  // namespace dlb::packet
