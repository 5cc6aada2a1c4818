#include "dlb/packet/parse.h"

#include <cstring>

namespace dlb::packet {
namespace {

constexpr size_t kEthernetBytes = 14;
constexpr size_t kVlanTagBytes = 4;
constexpr size_t kIpv4MinBytes = 20;
constexpr size_t kIpv6Bytes = 40;
constexpr size_t kTcpMinBytes = 20;

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint16_t kEtherQinQ = 0x88a8;
constexpr uint16_t kEtherQinQLegacy = 0x9100;

constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kIpv6HopByHop = 0;
constexpr uint8_t kIpv6Routing = 43;
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6Auth = 51;
constexpr uint8_t kIpv6DestOpts = 60;
constexpr uint8_t kIpv6Mobility = 135;
constexpr uint8_t kIpv6Hip = 139;
constexpr uint8_t kIpv6Shim6 = 140;

inline bool IsVlan(uint16_t type) {
  return type == kEtherVlan || type == kEtherQinQ || type == kEtherQinQLegacy;
}

// Walks the TCP options in [p, end): each option other than EOL / NOP carries a length
// byte >= 2 that must stay inside the header.
inline bool TcpOptionsValid(const uint8_t* p, const uint8_t* end) {
  // What Linux sends on an established connection: NOP, NOP, timestamps (10 bytes).
  static constexpr uint8_t kNopNopTimestamps[4] = {1, 1, 8, 10};
  if (end - p == 12 && std::memcmp(p, kNopNopTimestamps, 4) == 0) return true;
  while (p < end) {
    const uint8_t kind = p[0];
    if (kind == 0) return true;  // end of option list; the rest is padding
    if (kind == 1) {
      ++p;
      continue;
    }
    if (end - p < 2) return false;
    const uint8_t len = p[1];
    if (len < 2 || len > end - p) return false;
    p += len;
  }
  return true;
}

}  // namespace

const char* ParseResultName(ParseResult r) {
  switch (r) {
#define DLB_X(name, str) \
  case ParseResult::name: return str;
    DLB_PARSE_RESULTS(DLB_X)
#undef DLB_X
  }
  return "unknown";
}

ParseResult ParseFrame(const uint8_t* frame, size_t frame_bytes, const ParseOptions& options,
                       PacketView& v) {
  v.l4_protocol = 0;
  v.has_ports = false;
  if (frame_bytes < kEthernetBytes) return ParseResult::kTruncatedEthernet;
  size_t off = 12;
  uint16_t type = LoadBe16(frame + off);
  off += 2;
  v.vlan_count = 0;
  while (IsVlan(type)) {
    if (v.vlan_count == kMaxVlanTags) return ParseResult::kTooManyVlanTags;
    if (frame_bytes - off < kVlanTagBytes) return ParseResult::kTruncatedVlan;
    type = LoadBe16(frame + off + 2);
    off += kVlanTagBytes;
    ++v.vlan_count;
  }
  v.l3_offset = static_cast<uint32_t>(off);
  v.ether_type = type;

  const uint8_t* ip = frame + off;
  const size_t avail = frame_bytes - off;
  size_t ip_end;  // frame offset one past the IP datagram (Ethernet padding excluded)
  size_t l4;
  uint8_t proto;
  if (type == kEtherIpv4) {
    if (avail < kIpv4MinBytes) return ParseResult::kTruncatedIpv4;
    if ((ip[0] >> 4) != 4) return ParseResult::kBadIpv4Version;
    const size_t ihl_bytes = size_t{ip[0] & 0x0fu} * 4;
    if (ihl_bytes < kIpv4MinBytes) return ParseResult::kBadIpv4HeaderLength;
    const size_t total = LoadBe16(ip + 2);
    if (total < ihl_bytes || total > avail) return ParseResult::kBadIpv4TotalLength;
    // IHL <= total <= avail: the options are inside the frame.
    v.ip_version = 4;
    v.ttl = ip[8];
    std::memcpy(v.src_addr, ip + 12, 4);
    std::memcpy(v.dst_addr, ip + 16, 4);
    std::memset(v.src_addr + 4, 0, 12);
    std::memset(v.dst_addr + 4, 0, 12);
    const uint16_t frag = LoadBe16(ip + 6);
    proto = ip[9];
    v.l4_protocol = proto;
    if ((frag & 0x3fffu) != 0) {  // MF or an offset
      // A first fragment shows its ports (the policy applies to service ports only).
      if ((frag & 0x1fffu) == 0 && proto == kProtoTcp && total - ihl_bytes >= 4) {
        v.src_port = LoadBe16(ip + ihl_bytes);
        v.dst_port = LoadBe16(ip + ihl_bytes + 2);
        v.has_ports = true;
      }
      return ParseResult::kIpv4Fragment;
    }
    l4 = off + ihl_bytes;
    ip_end = off + total;
  } else if (type == kEtherIpv6) {
    if (avail < kIpv6Bytes) return ParseResult::kTruncatedIpv6;
    if ((ip[0] >> 4) != 6) return ParseResult::kBadIpv6Version;
    const size_t payload = LoadBe16(ip + 4);
    // A zero payload length announces a jumbogram (hop-by-hop option); not on our links.
    if (payload == 0 || payload > avail - kIpv6Bytes) return ParseResult::kBadIpv6PayloadLength;
    v.ip_version = 6;
    v.ttl = ip[7];
    std::memcpy(v.src_addr, ip + 8, 16);
    std::memcpy(v.dst_addr, ip + 24, 16);
    ip_end = off + kIpv6Bytes + payload;
    l4 = off + kIpv6Bytes;
    proto = ip[6];
    for (int n = 0;; ++n) {
      if (proto == kProtoTcp) break;
      size_t ext_bytes;
      if (proto == kIpv6Fragment) {
        // The fragment header: next header, reserved, offset (13 bits) and flags.
        if (ip_end - l4 >= 8) {
          v.l4_protocol = frame[l4];
          if ((LoadBe16(frame + l4 + 2) >> 3) == 0 && frame[l4] == kProtoTcp && ip_end - l4 >= 12) {
            v.src_port = LoadBe16(frame + l4 + 8);
            v.dst_port = LoadBe16(frame + l4 + 10);
            v.has_ports = true;
          }
        }
        return ParseResult::kIpv6Fragment;
      }
      if (proto == kIpv6HopByHop || proto == kIpv6Routing || proto == kIpv6DestOpts ||
          proto == kIpv6Mobility || proto == kIpv6Hip || proto == kIpv6Shim6 ||
          proto == kIpv6Auth) {
        if (n == options.max_ipv6_extension_headers) {
          return ParseResult::kIpv6ExtensionChainTooLong;
        }
        if (ip_end - l4 < 2) return ParseResult::kTruncatedIpv6Extension;
        // AH counts 4-octet units minus 2, the others 8-octet units minus 1 (RFC 4302,
        // RFC 8200).
        ext_bytes = proto == kIpv6Auth ? (size_t{frame[l4 + 1]} + 2) * 4
                                       : (size_t{frame[l4 + 1]} + 1) * 8;
        if (ext_bytes > ip_end - l4) return ParseResult::kTruncatedIpv6Extension;
        proto = frame[l4];
        l4 += ext_bytes;
        continue;
      }
      return ParseResult::kNotTcp;  // UDP, ICMPv6, ESP, no next header, ...
    }
  } else {
    return ParseResult::kNotIp;
  }
  v.l4_protocol = proto;
  if (proto != kProtoTcp) return ParseResult::kNotTcp;

  v.l4_offset = static_cast<uint32_t>(l4);
  const uint8_t* tcp = frame + l4;
  if (ip_end - l4 >= 4) {
    v.src_port = LoadBe16(tcp);
    v.dst_port = LoadBe16(tcp + 2);
    v.has_ports = true;
  }
  if (ip_end - l4 < kTcpMinBytes) return ParseResult::kTruncatedTcp;
  const size_t doff_bytes = static_cast<size_t>(tcp[12] >> 4) * 4;
  if (doff_bytes < kTcpMinBytes || doff_bytes > ip_end - l4) return ParseResult::kBadTcpDataOffset;
  if (!TcpOptionsValid(tcp + kTcpMinBytes, tcp + doff_bytes)) return ParseResult::kBadTcpOption;
  v.seq = LoadBe32(tcp + 4);
  v.ack = LoadBe32(tcp + 8);
  v.tcp_flags = tcp[13];
  v.window = LoadBe16(tcp + 14);
  v.payload_offset = static_cast<uint32_t>(l4 + doff_bytes);
  v.payload_bytes = static_cast<uint32_t>(ip_end - l4 - doff_bytes);
  return ParseResult::kTcp;
}

}  // namespace dlb::packet
