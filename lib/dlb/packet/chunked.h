// Chunked transfer coding (RFC 9112, 7.1): where a chunked request body ends, for the
// engine's flows, which skip bodies to find the next request head.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dlb::packet {

// A chunked body (RFC 9112, 7.1) followed byte by byte across segments: finds where the
// body, including its trailer section, ends. Chunk data is skipped, never copied.
class ChunkedDecoder {
 public:
  enum class Result : uint8_t { kMore, kDone, kError };
  // Consumes from data[0, len); `consumed` is the count used. kDone: the body ended
  // after `consumed` bytes; kMore: all consumed, more needed; kError: malformed.
  Result Feed(const uint8_t* data, size_t len, size_t& consumed);
  void Reset() { *this = ChunkedDecoder(); }

 private:
  enum class State : uint8_t {
    kSize, kExtension, kSizeLf, kData, kDataCr, kDataLf, kTrailerStart, kTrailerLine, kTrailerEndLf
  };
  // The state after a chunk-size line: the chunk's data, or the trailer after the last.
  State AfterSizeLine() const { return remaining_ == 0 ? State::kTrailerStart : State::kData; }
  // One byte of a chunk-size line; false: malformed.
  bool OnSizeByte(uint8_t c);
  // Skips to the end of an extension or trailer line (bounded), then goes to `after`.
  bool SkipLine(const uint8_t* data, size_t len, size_t& i, State after);
  Result Done(size_t used, size_t& consumed) {
    consumed = used;
    Reset();
    return Result::kDone;
  }

  State state_ = State::kSize;
  uint8_t size_digits_ = 0;
  uint16_t line_bytes_ = 0;   // extension or trailer bytes on this line (bounded)
  uint64_t remaining_ = 0;    // chunk size being read, then chunk data left
};

}  // namespace dlb::packet
