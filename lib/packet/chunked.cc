// A chunked body followed across segments (chunked.h).
#include "dlb/packet/chunked.h"

#include <cstring>

namespace dlb::packet {

namespace {

// Bounds: chunk sizes below 2^60 (15 hex digits); extension and trailer lines below
// 8 KiB each, so that a peer cannot make the decoder scan forever without data.
constexpr uint8_t kMaxSizeDigits = 15;
constexpr uint16_t kMaxLineBytes = 8192;

inline int HexDigit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool ChunkedDecoder::OnSizeByte(uint8_t c) {
  if (const int digit = HexDigit(c); digit >= 0) {
    if (++size_digits_ > kMaxSizeDigits) return false;
    remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
    return true;
  }
  if (size_digits_ == 0) return false;
  if (c == ';' || c == ' ' || c == '\t') {
    state_ = State::kExtension;
    line_bytes_ = 0;
  } else if (c == '\r') {
    state_ = State::kSizeLf;
  } else if (c == '\n') {
    state_ = AfterSizeLine();
  } else {
    return false;
  }
  return true;
}

bool ChunkedDecoder::SkipLine(const uint8_t* data, size_t len, size_t& i, State after) {
  const void* nl = std::memchr(data + i, '\n', len - i);
  const size_t n = nl ? static_cast<size_t>(static_cast<const uint8_t*>(nl) - (data + i)) : len - i;
  if (line_bytes_ + n > kMaxLineBytes) return false;
  line_bytes_ = static_cast<uint16_t>(line_bytes_ + n);
  i += n;
  if (nl) {
    ++i;
    state_ = after;
  }
  return true;
}

ChunkedDecoder::Result ChunkedDecoder::Feed(const uint8_t* data, size_t len, size_t& consumed) {
  size_t i = 0;
  while (i < len) {
    const uint8_t c = data[i];
    switch (state_) {
      case State::kSize:
        if (!OnSizeByte(c)) return Result::kError;
        ++i;
        break;
      case State::kExtension:
        if (!SkipLine(data, len, i, AfterSizeLine())) return Result::kError;
        break;
      case State::kSizeLf:
        if (c != '\n') return Result::kError;
        ++i;
        state_ = AfterSizeLine();
        break;
      case State::kData: {
        const size_t n = len - i < remaining_ ? len - i : static_cast<size_t>(remaining_);
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
      case State::kDataLf:
        // The chunk's line end: CRLF, or a bare LF (kDataCr only).
        ++i;
        if (c == '\r' && state_ == State::kDataCr) {
          state_ = State::kDataLf;
        } else if (c == '\n') {
          state_ = State::kSize;
          size_digits_ = 0;
        } else {
          return Result::kError;
        }
        break;
      case State::kTrailerStart:
        ++i;
        if (c == '\n') return Done(i, consumed);
        state_ = c == '\r' ? State::kTrailerEndLf : State::kTrailerLine;
        line_bytes_ = 1;
        break;
      case State::kTrailerLine:
        if (!SkipLine(data, len, i, State::kTrailerStart)) return Result::kError;
        break;
      case State::kTrailerEndLf:
        // "\r" then something: a trailer line that starts with CR is malformed.
        if (c != '\n') return Result::kError;
        return Done(i + 1, consumed);
    }
  }
  consumed = len;
  return Result::kMore;
}

}  // namespace dlb::packet
