#include "dlb/packet/proxy_protocol.h"

#include <arpa/inet.h>

#include <cstring>
#include <string_view>

#include "address_text.h"

namespace dlb::packet {
namespace {

constexpr uint8_t kV2Signature[12] = {'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
constexpr char kV1Signature[] = "PROXY ";
constexpr size_t kV1SignatureBytes = sizeof kV1Signature - 1;

// Whether data[0, len) and sig[0, sig_len) agree on their common prefix.
bool PrefixMatches(const uint8_t* data, size_t len, const void* sig, size_t sig_len) {
  return std::memcmp(data, sig, len < sig_len ? len : sig_len) == 0;
}

// An IPv4-mapped IPv6 address is the IPv4 client it stands for (a terminator listening
// on IPv6 writes its IPv4 clients so): one client, one bucket, however it is written.
void Unmap(ClientAddress& a) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (a.ip_version == 6 && std::memcmp(a.bytes, kMapped, sizeof kMapped) == 0) {
    std::memmove(a.bytes, a.bytes + 12, 4);
    std::memset(a.bytes + 4, 0, 12);
    a.ip_version = 4;
  }
}

// A port as the specification writes it: decimal, 0 to 65535, no sign, no leading zero.
bool ValidPort(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v <= 65535;
}

// Splits off the next field, which must end in one SP.
bool NextField(std::string_view& rest, std::string_view& field) {
  const size_t sp = rest.find(' ');
  if (sp == std::string_view::npos || sp == 0) return false;
  field = rest.substr(0, sp);
  rest.remove_prefix(sp + 1);
  return true;
}

ProxyResult ParseV1(const uint8_t* data, size_t len, ProxyHeader& out) {
  // The line ends at the first CRLF, whose LF is at most the 107th byte; a lone CR or
  // LF is not a line end (the specification requires CRLF).
  constexpr size_t kMaxCr = kProxyV1MaxBytes - 2;  // the CR's last possible offset
  const size_t scan = len < kMaxCr + 1 ? len : kMaxCr + 1;
  size_t cr = 0;
  while (cr < scan && data[cr] != '\r' && data[cr] != '\n') ++cr;
  if (cr == scan) return len > kMaxCr ? ProxyResult::kMalformed : ProxyResult::kIncomplete;
  if (data[cr] == '\n') return ProxyResult::kMalformed;
  if (cr + 1 == len) return ProxyResult::kIncomplete;
  if (data[cr + 1] != '\n') return ProxyResult::kMalformed;
  // US-ASCII text only: a NUL would end what inet_pton reads ("192.0.2.1\0junk"), so a
  // field with one would pass for a different one than the server reads.
  for (size_t i = kV1SignatureBytes; i < cr; ++i) {
    if (data[i] < 0x20 || data[i] > 0x7e) return ProxyResult::kMalformed;
  }
  out.bytes = static_cast<uint32_t>(cr + 2);
  std::string_view rest(reinterpret_cast<const char*>(data) + kV1SignatureBytes, cr - kV1SignatureBytes);
  // UNKNOWN: whatever follows up to the CRLF is ignored (the specification's rule).
  if (rest.substr(0, 7) == "UNKNOWN" && (rest.size() == 7 || rest[7] == ' ')) {
    out.local = true;
    return ProxyResult::kOk;
  }
  std::string_view proto, src, dst, sport;
  if (!NextField(rest, proto) || !NextField(rest, src) || !NextField(rest, dst) || !NextField(rest, sport)) {
    return ProxyResult::kMalformed;
  }
  const std::string_view dport = rest;  // the last field ends at the CRLF
  int af;
  if (proto == "TCP4") {
    af = AF_INET;
  } else if (proto == "TCP6") {
    af = AF_INET6;
  } else {
    return ProxyResult::kMalformed;
  }
  uint8_t dst_bytes[16];
  if (!ParseAddressText(af, src, out.source.bytes) || !ParseAddressText(af, dst, dst_bytes) ||
      !ValidPort(sport) || !ValidPort(dport)) {
    return ProxyResult::kMalformed;
  }
  out.local = false;
  out.source.ip_version = af == AF_INET ? 4 : 6;
  if (af == AF_INET) std::memset(out.source.bytes + 4, 0, 12);
  Unmap(out.source);
  return ProxyResult::kOk;
}

ProxyResult ParseV2(const uint8_t* data, size_t len, size_t max_bytes, ProxyHeader& out) {
  if (len < kProxyV2FixedBytes) return ProxyResult::kIncomplete;
  const uint8_t ver_cmd = data[12];
  const uint8_t family = data[13];
  const size_t body = size_t{data[14]} << 8 | data[15];
  if ((ver_cmd >> 4) != 2 || (ver_cmd & 0x0f) > 1) return ProxyResult::kMalformed;
  const size_t total = kProxyV2FixedBytes + body;
  if (total > max_bytes) return ProxyResult::kTooLong;
  if (len < total) return ProxyResult::kIncomplete;
  out.bytes = static_cast<uint32_t>(total);
  // LOCAL (a health check of the proxy's own), and PROXY with the family unspecified
  // (a protocol the proxy does not describe): the connection's own endpoints count,
  // and the block is skipped unread, as the specification says.
  if ((ver_cmd & 0x0f) == 0 || family == 0x00) {
    out.local = true;
    return ProxyResult::kOk;
  }
  // UDP or UNIX sockets (or an unknown family) are not clients of a TCP service behind
  // this appliance.
  if (family != 0x11 && family != 0x21) return ProxyResult::kMalformed;
  const size_t addresses = family == 0x11 ? 12 : 36;
  // Checked before the addresses are read: they must lie inside the header.
  if (body < addresses) return ProxyResult::kMalformed;
  if (family == 0x11) {  // TCP over IPv4
    out.source.ip_version = 4;
    std::memcpy(out.source.bytes, data + 16, 4);
    std::memset(out.source.bytes + 4, 0, 12);
  } else {  // TCP over IPv6
    out.source.ip_version = 6;
    std::memcpy(out.source.bytes, data + 16, 16);
  }
  // The TLVs after the addresses are skipped, but they must tile the rest exactly:
  // a TLV that overruns the header means the sender and we disagree on its end.
  size_t off = kProxyV2FixedBytes + addresses;
  while (off < total) {
    if (total - off < 3) return ProxyResult::kMalformed;
    const size_t value = size_t{data[off + 1]} << 8 | data[off + 2];
    if (total - off - 3 < value) return ProxyResult::kMalformed;
    off += 3 + value;
  }
  out.local = false;
  Unmap(out.source);
  return ProxyResult::kOk;
}

}  // namespace

ProxyResult ParseProxyHeader(const uint8_t* data, size_t len, ProxyProtocol accept, size_t max_bytes,
                             ProxyHeader& out) {
  out = ProxyHeader();
  if (accept == ProxyProtocol::kOff) return ProxyResult::kMissing;
  if (len == 0) return ProxyResult::kIncomplete;
  const bool v1 = accept == ProxyProtocol::kV1 || accept == ProxyProtocol::kAny;
  const bool v2 = accept == ProxyProtocol::kV2 || accept == ProxyProtocol::kAny;
  const bool like_v1 = PrefixMatches(data, len, kV1Signature, kV1SignatureBytes);
  const bool like_v2 = PrefixMatches(data, len, kV2Signature, sizeof kV2Signature);
  // The two signatures differ in their first byte, so at most one is a candidate.
  ProxyResult r;
  if (like_v1) {
    // A version not accepted is still a PROXY header: malformed here, not missing.
    r = len < kV1SignatureBytes ? ProxyResult::kIncomplete
        : v1                    ? ParseV1(data, len, out)
                                : ProxyResult::kMalformed;
  } else if (like_v2) {
    r = len < sizeof kV2Signature ? ProxyResult::kIncomplete
        : v2                      ? ParseV2(data, len, max_bytes, out)
                                  : ProxyResult::kMalformed;
  } else {
    return ProxyResult::kMissing;
  }
  // What the caller can hold is the bound for either version: a header still
  // incomplete there never completes, and one that ends beyond it is refused too, so
  // that the verdict does not depend on how the header was segmented.
  if (r == ProxyResult::kIncomplete && len >= max_bytes) return ProxyResult::kTooLong;
  if (r == ProxyResult::kOk && out.bytes > max_bytes) return ProxyResult::kTooLong;
  return r;
}

bool LooksLikeProxyHeader(const uint8_t* data, size_t len) {
  if (len >= kV1SignatureBytes && std::memcmp(data, kV1Signature, kV1SignatureBytes) == 0) return true;
  size_t skip = 0;
  while (skip < len && skip < 4 && (data[skip] == '\r' || data[skip] == '\n')) ++skip;
  static constexpr size_t kTail = sizeof kV2Signature - 4;  // "\0\r\nQUIT\n"
  return len - skip >= kTail && std::memcmp(data + skip, kV2Signature + 4, kTail) == 0;
}

}  // namespace dlb::packet
