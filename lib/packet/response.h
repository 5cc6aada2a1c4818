// Internal to the engine: the servers' side of a flow. The engine follows the
// responses a server sends on a connection far enough to know where each one ends, so
// that a 429 goes out only where it is the next response: never in the sequence space
// of a response to a request it admitted, never with an RST that would cut such a
// response short (docs/appliance-integrity.md, "The reject path").
#pragma once

#include <cstdint>

#include "dlb/packet/http.h"

namespace dlb::packet::internal {

// Finds where HTTP/1.1 responses end in a server's byte stream, fed in order, across
// segments, without buffering: status line and header fields are read a byte at a time
// (only Content-Length and Transfer-Encoding matter), bodies are skipped by length or
// by their chunk framing. Anything it cannot follow for certain (a malformed head, both
// or repeated length fields, a 101, a tunnel) makes it lost, for good: the engine then
// never sends a 429 on the connection (docs/appliance-integrity.md).
class ResponseFramer {
 public:
  enum class Result : uint8_t { kOk, kLost };

  // Consumes data[0, len). `due`: responses still owed on the connection, lowered by
  // one for each final response that ends here. `head_bits`: bit i set when the i-th
  // response owed answers a HEAD request (it has no body, RFC 9110 9.3.2); shifted as
  // responses end.
  Result Feed(const uint8_t* data, uint32_t len, uint8_t& due, uint64_t& head_bits);
  // The server's FIN: a body delimited by the close ends there.
  void Close(uint8_t& due, uint64_t& head_bits);
  // Between responses (nothing of one read yet): a 429 placed here is not inside one.
  bool AtResponseStart() const { return state_ == State::kStatusLine && line_pos_ == 0; }
  bool lost() const { return state_ == State::kLost; }
  void SetLost() { state_ = State::kLost; }
  void Reset() { *this = ResponseFramer(); }

 private:
  enum class State : uint8_t {
    kStatusLine,   // "HTTP/1.x NNN ..." up to its LF
    kLineStart,    // a header field line or the empty line that ends the head
    kName,         // a field name, matched against the two that frame a body
    kLengthValue,  // Content-Length digits
    kTeValue,      // Transfer-Encoding: is "chunked" its last coding?
    kSkipLine,     // another field's value
    kHeadEndLf,    // the LF of the empty line
    kBody,         // body_ bytes left
    kChunked,
    kUntilClose,   // no length: the body ends when the server closes
    kClosed,       // after the server's FIN
    kLost,
  };
  void EndLine();
  Result EndHead(uint8_t& due, uint64_t& head_bits);
  static void ResponseDone(uint8_t& due, uint64_t& head_bits);

  uint64_t body_ = 0;            // kBody: bytes left; while reading a head: Content-Length
  ChunkedDecoder chunked_;
  uint16_t status_ = 0;
  uint16_t line_pos_ = 0;        // bytes of the current line (saturating)
  State state_ = State::kStatusLine;
  uint8_t name_ = 0;             // kName: candidates still matching (kMatch*)
  uint8_t te_token_ = 0;         // kTeValue: bytes of "chunked" matched, kNoMatch if not
  uint8_t head_flags_ = 0;       // kHas* of the head being read
};

}  // namespace dlb::packet::internal
