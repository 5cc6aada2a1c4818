#include "dlb/packet/reject.h"

#include <charconv>
#include <cstring>
#include <string_view>

namespace dlb::packet {
namespace {

constexpr uint8_t kDefaultTtl = 64;
constexpr uint16_t kReplyWindow = 8192;
constexpr size_t kTcpBytes = 20;

// Appends into a fixed buffer; once out of room it stays failed.
class Appender {
 public:
  Appender(char* out, size_t cap) : p_(out), end_(out + cap) {}
  Appender& operator<<(std::string_view s) {
    if (ok_ && static_cast<size_t>(end_ - p_) >= s.size()) {
      std::memcpy(p_, s.data(), s.size());
      p_ += s.size();
    } else {
      ok_ = false;
    }
    return *this;
  }
  Appender& operator<<(int64_t v) {
    if (!ok_) return *this;
    auto r = std::to_chars(p_, end_, v);
    if (r.ec != std::errc()) {
      ok_ = false;
    } else {
      p_ = r.ptr;
    }
    return *this;
  }
  bool ok() const { return ok_; }
  char* pos() const { return p_; }

 private:
  char* p_;
  char* end_;
  bool ok_ = true;
};

// TCP checksum over the pseudo-header (RFC 793 / RFC 8200, 8.1) and the segment.
uint16_t TcpChecksum(int ip_version, const uint8_t* src, const uint8_t* dst, const uint8_t* tcp,
                     size_t tcp_bytes) {
  uint32_t sum = 0;
  const size_t addr_bytes = ip_version == 4 ? 4 : 16;
  sum = ChecksumAdd(sum, src, addr_bytes);
  sum = ChecksumAdd(sum, dst, addr_bytes);
  sum += 6;  // protocol / next header
  sum += static_cast<uint32_t>(tcp_bytes);
  sum = ChecksumAdd(sum, tcp, tcp_bytes);
  return ChecksumFold(sum);
}

// Writes L2 + IP + TCP headers and copies `payload`. `to_client` reverses the
// direction of the original client->server frame.
size_t BuildSegment(const uint8_t* frame, const PacketView& v, bool to_client, uint32_t seq,
                    uint32_t ack, uint8_t flags, const uint8_t* payload, size_t payload_bytes,
                    uint8_t* out, size_t out_bytes) {
  const size_t l2 = v.l3_offset;
  const size_t ip_bytes = v.ip_version == 4 ? 20 : 40;
  const size_t total = l2 + ip_bytes + kTcpBytes + payload_bytes;
  if (total > out_bytes || (v.ip_version != 4 && v.ip_version != 6)) return 0;
  // L2: the original header with its VLAN tags; MACs swapped toward the client.
  std::memcpy(out, frame, l2);
  if (to_client) {
    std::memcpy(out, frame + 6, 6);
    std::memcpy(out + 6, frame, 6);
  }
  const uint8_t* src = to_client ? v.dst_addr : v.src_addr;
  const uint8_t* dst = to_client ? v.src_addr : v.dst_addr;
  uint8_t* ip = out + l2;
  const size_t l4_bytes = kTcpBytes + payload_bytes;
  if (v.ip_version == 4) {
    ip[0] = 0x45;
    ip[1] = 0;
    StoreBe16(ip + 2, static_cast<uint16_t>(ip_bytes + l4_bytes));
    StoreBe16(ip + 4, 0);
    StoreBe16(ip + 6, 0x4000);  // DF
    ip[8] = kDefaultTtl;
    ip[9] = 6;
    StoreBe16(ip + 10, 0);
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, dst, 4);
    StoreBe16(ip + 10, ChecksumFold(ChecksumAdd(0, ip, 20)));
  } else {
    StoreBe32(ip, 0x60000000);
    StoreBe16(ip + 4, static_cast<uint16_t>(l4_bytes));
    ip[6] = 6;
    ip[7] = kDefaultTtl;
    std::memcpy(ip + 8, src, 16);
    std::memcpy(ip + 24, dst, 16);
  }
  uint8_t* tcp = ip + ip_bytes;
  StoreBe16(tcp, to_client ? v.dst_port : v.src_port);
  StoreBe16(tcp + 2, to_client ? v.src_port : v.dst_port);
  StoreBe32(tcp + 4, seq);
  StoreBe32(tcp + 8, ack);
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  StoreBe16(tcp + 14, (flags & tcp_flags::kRst) ? 0 : kReplyWindow);
  StoreBe16(tcp + 16, 0);
  StoreBe16(tcp + 18, 0);
  if (payload_bytes > 0) std::memcpy(tcp + kTcpBytes, payload, payload_bytes);
  StoreBe16(tcp + 16, TcpChecksum(v.ip_version, src, dst, tcp, l4_bytes));
  return total;
}

// The end of the client's segment in sequence space: what the reply acknowledges.
uint32_t ClientSegmentEnd(const PacketView& v) {
  uint32_t end = v.seq + v.payload_bytes;
  if (v.tcp_flags & tcp_flags::kSyn) ++end;
  if (v.tcp_flags & tcp_flags::kFin) ++end;
  return end;
}

}  // namespace

uint32_t ChecksumAdd(uint32_t sum, const uint8_t* data, size_t len) {
  uint64_t s = sum;
  size_t i = 0;
  for (; i + 1 < len; i += 2) s += uint32_t{data[i]} << 8 | data[i + 1];
  if (i < len) s += uint32_t{data[i]} << 8;
  while (s >> 32) s = (s & 0xffffffffu) + (s >> 32);
  return static_cast<uint32_t>(s);
}

uint16_t ChecksumFold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

int64_t RetryAfterSeconds(int64_t retry_after_ns) {
  if (retry_after_ns >= dlb::kNever - 1) return kMaxRetryAfterS;
  if (retry_after_ns <= 0) return 1;
  const int64_t s = (retry_after_ns + 999'999'999) / 1'000'000'000;
  return s > kMaxRetryAfterS ? kMaxRetryAfterS : s;
}

size_t FormatRejectResponse(const CompiledRule& rule, const dlb::Decision& d, char* out,
                            size_t capacity) {
  const int64_t retry_s = RetryAfterSeconds(d.retry_after_ns);
  const int64_t remaining = d.remaining < 0 ? 0 : d.remaining;
  // The body first (its length goes into the head), right after the head's room.
  char body[160];
  Appender b(body, sizeof body);
  b << "{\"error\":\"too_many_requests\",\"rule\":\"" << std::string_view(rule.name)
    << "\",\"retry_after_s\":" << retry_s << "}\n";
  if (!b.ok()) return 0;
  const int64_t body_bytes = b.pos() - body;
  Appender a(out, capacity);
  // RateLimit's t: seconds until this request would pass, the same as Retry-After, so
  // that a client reading either waits long enough (the draft leaves t to the policy).
  a << "HTTP/1.1 429 Too Many Requests\r\n"
    << "Content-Type: application/json\r\n"
    << "Content-Length: " << body_bytes << "\r\n"
    << "Retry-After: " << retry_s << "\r\n"
    << "RateLimit-Policy: " << std::string_view(rule.policy_header) << "\r\n"
    << "RateLimit: \"" << std::string_view(rule.name) << "\";r=" << remaining << ";t=" << retry_s
    << "\r\n"
    << "Connection: close\r\n"
    << "\r\n"
    << std::string_view(body, static_cast<size_t>(body_bytes));
  return a.ok() ? static_cast<size_t>(a.pos() - out) : 0;
}

size_t BuildClientReject(const uint8_t* frame, const PacketView& v, const CompiledRule& rule,
                         const dlb::Decision& decision, uint8_t* out, size_t out_bytes) {
  char response[kMaxBuiltFrameBytes];
  const size_t n = FormatRejectResponse(rule, decision, response, sizeof response);
  if (n == 0) return 0;
  return BuildSegment(frame, v, true, v.ack, ClientSegmentEnd(v),
                      tcp_flags::kFin | tcp_flags::kPsh | tcp_flags::kAck,
                      reinterpret_cast<const uint8_t*>(response), n, out, out_bytes);
}

size_t BuildServerReset(const uint8_t* frame, const PacketView& v, uint32_t seq, uint8_t* out,
                        size_t out_bytes) {
  return BuildSegment(frame, v, false, seq, v.ack, tcp_flags::kRst | tcp_flags::kAck, nullptr, 0,
                      out, out_bytes);
}

size_t BuildClientReset(const uint8_t* frame, const PacketView& v, uint8_t* out, size_t out_bytes) {
  return BuildSegment(frame, v, true, v.ack, ClientSegmentEnd(v), tcp_flags::kRst | tcp_flags::kAck,
                      nullptr, 0, out, out_bytes);
}

size_t TruncatePayload(uint8_t* frame, const PacketView& v, uint32_t keep_payload_bytes) {
  if (keep_payload_bytes >= v.payload_bytes || (v.ip_version != 4 && v.ip_version != 6)) return 0;
  uint8_t* ip = frame + v.l3_offset;
  uint8_t* tcp = frame + v.l4_offset;
  const size_t l4_bytes = v.payload_offset - v.l4_offset + keep_payload_bytes;
  if (v.ip_version == 4) {
    StoreBe16(ip + 2, static_cast<uint16_t>(v.l4_offset - v.l3_offset + l4_bytes));
    const size_t ihl_bytes = size_t{ip[0] & 0x0fu} * 4;
    StoreBe16(ip + 10, 0);
    StoreBe16(ip + 10, ChecksumFold(ChecksumAdd(0, ip, ihl_bytes)));
  } else {
    // The payload length covers the extension headers too.
    StoreBe16(ip + 4, static_cast<uint16_t>(v.l4_offset - v.l3_offset - 40 + l4_bytes));
  }
  tcp[13] = static_cast<uint8_t>(tcp[13] & ~tcp_flags::kFin);
  StoreBe16(tcp + 16, 0);
  const uint8_t* src = v.ip_version == 4 ? ip + 12 : ip + 8;
  const uint8_t* dst = v.ip_version == 4 ? ip + 16 : ip + 24;
  StoreBe16(tcp + 16, TcpChecksum(v.ip_version, src, dst, tcp, l4_bytes));
  return v.payload_offset + keep_payload_bytes;
}

}  // namespace dlb::packet
