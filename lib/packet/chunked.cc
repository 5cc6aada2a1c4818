// A chunked body followed across segments (chunked.h).
#include "dlb/packet/chunked.h"

#include <cstring>

namespace dlb::packet {

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
