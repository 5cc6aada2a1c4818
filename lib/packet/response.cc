#include "response.h"

#include <cstring>

namespace dlb::packet::internal {
namespace {

constexpr char kContentLength[] = "content-length";
constexpr char kTransferEncoding[] = "transfer-encoding";
constexpr char kChunked[] = "chunked";
constexpr uint16_t kLengthLen = sizeof kContentLength - 1;
constexpr uint16_t kTeLen = sizeof kTransferEncoding - 1;
constexpr uint8_t kChunkedLen = sizeof kChunked - 1;

constexpr uint8_t kMatchLength = 1;
constexpr uint8_t kMatchTe = 2;

constexpr uint8_t kHasLength = 1;
constexpr uint8_t kHasTe = 2;
constexpr uint8_t kTeChunked = 4;     // the last coding of the last TE line is chunked
constexpr uint8_t kDigits = 8;        // kLengthValue: digits read
constexpr uint8_t kValueEnded = 16;   // OWS after the value's last token
constexpr uint8_t kNoMatch = 0xff;
// Content-Length beyond this is refused (lost), so that the sum never overflows.
constexpr uint64_t kMaxLength = uint64_t{1} << 60;
// A head longer than this is not followed (lost): no server sends one.
constexpr uint32_t kMaxResponseHeadBytes = 65535;

inline uint8_t Lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c | 0x20) : c; }
inline bool Ows(uint8_t c) { return c == ' ' || c == '\t'; }

}  // namespace

void ResponseFramer::ResponseDone(uint8_t& due, uint64_t& head_bits) {
  // A final response nobody asked for (a 408 before closing) owes nothing.
  if (due > 0) --due;
  head_bits >>= 1;
}

void ResponseFramer::EndLine() {
  line_pos_ = 0;
  state_ = State::kLineStart;
}

ResponseFramer::Result ResponseFramer::EndHead(uint8_t& due, uint64_t& head_bits) {
  const uint16_t s = status_;
  const uint8_t h = head_flags_;
  status_ = 0;
  head_flags_ = 0;
  line_pos_ = 0;
  if (s >= 100 && s < 200) {
    // 101 switches protocols: nothing after it is HTTP. Other 1xx are interim: the
    // final response follows.
    if (s == 101) return SetLost(), Result::kLost;
    body_ = 0;
    state_ = State::kStatusLine;
    return Result::kOk;
  }
  if ((h & kHasLength) && (h & kHasTe)) return SetLost(), Result::kLost;
  const bool no_body = (head_bits & 1) || s == 204 || s == 304;
  if (no_body) {
    body_ = 0;
    state_ = State::kStatusLine;
    ResponseDone(due, head_bits);
    return Result::kOk;
  }
  if (h & kHasTe) {
    if (h & kTeChunked) {
      chunked_.Reset();
      state_ = State::kChunked;
    } else {
      state_ = State::kUntilClose;  // RFC 9112 6.3, item 4 for a response
    }
    return Result::kOk;
  }
  if (h & kHasLength) {
    if (body_ == 0) {
      state_ = State::kStatusLine;
      ResponseDone(due, head_bits);
    } else {
      state_ = State::kBody;
    }
    return Result::kOk;
  }
  state_ = State::kUntilClose;
  return Result::kOk;
}

ResponseFramer::Result ResponseFramer::Feed(const uint8_t* data, uint32_t len, uint8_t& due,
                                            uint64_t& head_bits) {
  static constexpr char kPrefix[] = "HTTP/1.";
  uint32_t i = 0;
  while (i < len) {
    const uint8_t c = data[i];
    switch (state_) {
      case State::kStatusLine: {
        // HTTP/1.x SP 3DIGIT (SP reason | CRLF)
        const uint16_t pos = line_pos_;
        bool ok;
        if (pos < 7) ok = c == static_cast<uint8_t>(kPrefix[pos]);
        else if (pos == 7) ok = c >= '0' && c <= '9';
        else if (pos == 8) ok = c == ' ';
        else if (pos < 12) ok = c >= '0' && c <= '9';
        else if (pos == 12) ok = c == ' ' || c == '\r' || c == '\n';
        else ok = true;
        if (!ok) return SetLost(), Result::kLost;
        if (pos >= 9 && pos < 12) status_ = static_cast<uint16_t>(status_ * 10 + (c - '0'));
        if (pos >= 12 && c == '\n') {
          EndLine();
          ++i;
          break;
        }
        if (pos >= 12) {
          // The reason phrase: up to its LF at once.
          const void* nl = std::memchr(data + i, '\n', len - i);
          const uint32_t n = nl ? static_cast<uint32_t>(static_cast<const uint8_t*>(nl) - data) - i : len - i;
          if (uint32_t{line_pos_} + n > kMaxResponseHeadBytes) return SetLost(), Result::kLost;
          line_pos_ = static_cast<uint16_t>(line_pos_ + n);
          i += n;
          if (nl) {
            EndLine();
            ++i;
          }
          break;
        }
        ++line_pos_;
        ++i;
        break;
      }
      case State::kLineStart:
        if (c == '\r') {
          state_ = State::kHeadEndLf;
        } else if (c == '\n') {
          if (EndHead(due, head_bits) == Result::kLost) return Result::kLost;
        } else if (Ows(c) || c == ':') {
          return SetLost(), Result::kLost;  // obs-fold or an empty name
        } else {
          name_ = kMatchLength | kMatchTe;
          line_pos_ = 0;
          state_ = State::kName;
          continue;  // the byte is the name's first
        }
        ++i;
        break;
      case State::kHeadEndLf:
        if (c != '\n') return SetLost(), Result::kLost;
        ++i;
        if (EndHead(due, head_bits) == Result::kLost) return Result::kLost;
        break;
      case State::kName: {
        if (c == ':') {
          ++i;
          if ((name_ & kMatchLength) && line_pos_ == kLengthLen) {
            if (head_flags_ & kHasLength) return SetLost(), Result::kLost;  // repeated
            head_flags_ |= kHasLength;
            body_ = 0;
            state_ = State::kLengthValue;
          } else if ((name_ & kMatchTe) && line_pos_ == kTeLen) {
            // A later Transfer-Encoding line continues the list: its last coding counts.
            head_flags_ = static_cast<uint8_t>((head_flags_ | kHasTe) & ~(kTeChunked | kValueEnded));
            te_token_ = 0;
            state_ = State::kTeValue;
          } else {
            state_ = State::kSkipLine;
          }
          break;
        }
        if (c == '\n' || c == '\r' || Ows(c)) return SetLost(), Result::kLost;  // no colon
        const uint8_t l = Lower(c);
        if (line_pos_ >= kLengthLen || l != static_cast<uint8_t>(kContentLength[line_pos_])) name_ &= ~kMatchLength;
        if (line_pos_ >= kTeLen || l != static_cast<uint8_t>(kTransferEncoding[line_pos_])) name_ &= ~kMatchTe;
        ++i;
        if (name_ == 0) {
          state_ = State::kSkipLine;
          break;
        }
        ++line_pos_;
        break;
      }
      case State::kLengthValue:
        if (c >= '0' && c <= '9') {
          if (head_flags_ & kValueEnded) return SetLost(), Result::kLost;  // "1 2"
          body_ = body_ * 10 + (c - '0');
          if (body_ > kMaxLength) return SetLost(), Result::kLost;
          head_flags_ |= kDigits;
        } else if (Ows(c)) {
          if (head_flags_ & kDigits) head_flags_ |= kValueEnded;
        } else if (c == '\r' || c == '\n') {
          if (!(head_flags_ & kDigits)) return SetLost(), Result::kLost;
          head_flags_ &= static_cast<uint8_t>(~(kDigits | kValueEnded));
          state_ = State::kSkipLine;
          continue;  // the line ends there
        } else {
          return SetLost(), Result::kLost;  // a list, a sign, anything else
        }
        ++i;
        break;
      case State::kTeValue:
        if (c == '\r' || c == '\n') {
          if (te_token_ == kChunkedLen) head_flags_ |= kTeChunked;
          head_flags_ &= static_cast<uint8_t>(~kValueEnded);
          state_ = State::kSkipLine;
          continue;
        }
        if (c == ',') {
          te_token_ = 0;
          head_flags_ &= static_cast<uint8_t>(~kValueEnded);
        } else if (Ows(c)) {
          if (te_token_ != 0) head_flags_ |= kValueEnded;
        } else if ((head_flags_ & kValueEnded) || te_token_ == kNoMatch || te_token_ >= kChunkedLen ||
                   Lower(c) != static_cast<uint8_t>(kChunked[te_token_])) {
          te_token_ = kNoMatch;
        } else {
          ++te_token_;
        }
        ++i;
        break;
      case State::kSkipLine: {
        const void* nl = std::memchr(data + i, '\n', len - i);
        if (nl == nullptr) {
          i = len;
          break;
        }
        i = static_cast<uint32_t>(static_cast<const uint8_t*>(nl) - data) + 1;
        EndLine();
        break;
      }
      case State::kBody: {
        const uint64_t n = len - i < body_ ? len - i : body_;
        i += static_cast<uint32_t>(n);
        body_ -= n;
        if (body_ == 0) {
          state_ = State::kStatusLine;
          ResponseDone(due, head_bits);
        }
        break;
      }
      case State::kChunked: {
        size_t used = 0;
        const ChunkedDecoder::Result r = chunked_.Feed(data + i, len - i, used);
        i += static_cast<uint32_t>(used);
        if (r == ChunkedDecoder::Result::kError) return SetLost(), Result::kLost;
        if (r == ChunkedDecoder::Result::kDone) {
          state_ = State::kStatusLine;
          line_pos_ = 0;
          ResponseDone(due, head_bits);
        }
        break;
      }
      case State::kUntilClose:
        return Result::kOk;
      case State::kClosed:
      case State::kLost:
        return SetLost(), Result::kLost;  // bytes after the FIN, or lost before
    }
  }
  return Result::kOk;
}

void ResponseFramer::Close(uint8_t& due, uint64_t& head_bits) {
  if (state_ == State::kLost) return;
  if (state_ == State::kUntilClose) ResponseDone(due, head_bits);
  // A response cut short by the close is over too: nothing more comes on this
  // connection. What the client sends after the FIN is refused, never answered.
  state_ = State::kClosed;
}

}  // namespace dlb::packet::internal
