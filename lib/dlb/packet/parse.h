// L2-L4 parsing of one frame: Ethernet II with up to two VLAN tags (802.1Q, QinQ),
// IPv4 with options, IPv6 with a bounded chain of extension headers, TCP with options.
// Every read is checked against the frame length first; a malformed frame yields a
// named reason instead of a read out of bounds. No allocation, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dlb::packet {

// The outcome of parsing a frame. Reasons from kFirstMalformed on mean the frame is
// malformed (counted under the reason's name, forwarded or dropped per config); the
// ones before it classify well-formed traffic that the engine does not inspect.
#define DLB_PARSE_RESULTS(X)                                   \
  X(kTcp, "tcp")                       /* parsed to the payload */ \
  X(kNotIp, "not_ip")                  /* ARP, LLDP, ... */     \
  X(kNotTcp, "not_tcp")                /* ICMP, UDP, ... */     \
  X(kIpv4Fragment, "ipv4_fragment")                             \
  X(kIpv6Fragment, "ipv6_fragment")                             \
  X(kTruncatedEthernet, "truncated_ethernet")                   \
  X(kTruncatedVlan, "truncated_vlan")                           \
  X(kTooManyVlanTags, "too_many_vlan_tags")                     \
  X(kTruncatedIpv4, "truncated_ipv4")                           \
  X(kBadIpv4Version, "bad_ipv4_version")                        \
  X(kBadIpv4HeaderLength, "bad_ipv4_header_length")             \
  X(kBadIpv4TotalLength, "bad_ipv4_total_length")               \
  X(kTruncatedIpv6, "truncated_ipv6")                           \
  X(kBadIpv6Version, "bad_ipv6_version")                        \
  X(kBadIpv6PayloadLength, "bad_ipv6_payload_length")          \
  X(kTruncatedIpv6Extension, "truncated_ipv6_extension")        \
  X(kIpv6ExtensionChainTooLong, "ipv6_extension_chain_too_long") \
  X(kTruncatedTcp, "truncated_tcp")                             \
  X(kBadTcpDataOffset, "bad_tcp_data_offset")                   \
  X(kBadTcpOption, "bad_tcp_option")

enum class ParseResult : uint8_t {
#define DLB_X(name, str) name,
  DLB_PARSE_RESULTS(DLB_X)
#undef DLB_X
};
inline constexpr int kParseResultCount = 0
#define DLB_X(name, str) +1
    DLB_PARSE_RESULTS(DLB_X)
#undef DLB_X
    ;
inline constexpr ParseResult kFirstMalformed = ParseResult::kTruncatedEthernet;

// "truncated_ipv4": the metric label of a result.
const char* ParseResultName(ParseResult r);
inline bool IsMalformed(ParseResult r) { return r >= kFirstMalformed; }
inline bool IsFragment(ParseResult r) {
  return r == ParseResult::kIpv4Fragment || r == ParseResult::kIpv6Fragment;
}

inline constexpr int kMaxVlanTags = 2;  // 802.1Q, or QinQ (802.1ad outer + 802.1Q inner)

namespace tcp_flags {
inline constexpr uint8_t kFin = 0x01;
inline constexpr uint8_t kSyn = 0x02;
inline constexpr uint8_t kRst = 0x04;
inline constexpr uint8_t kPsh = 0x08;
inline constexpr uint8_t kAck = 0x10;
}  // namespace tcp_flags

// Offsets into the frame and the header fields the engine needs, in host byte order.
// Addresses are kept as 16 bytes; IPv4 addresses occupy the first 4.
struct PacketView {
  uint32_t l3_offset = 0;       // after Ethernet and VLAN tags
  uint32_t l4_offset = 0;       // after the IP header and its options / extensions
  uint32_t payload_offset = 0;  // after the TCP header and its options
  uint32_t payload_bytes = 0;   // TCP payload, bounded by the IP length (not the frame:
                                // Ethernet padding of short frames is not payload)
  uint16_t ether_type = 0;      // of the IP header (0x0800 / 0x86dd)
  uint8_t vlan_count = 0;
  uint8_t ip_version = 0;       // 4 or 6
  uint8_t tcp_flags = 0;
  uint8_t ttl = 0;              // hop limit for IPv6
  uint8_t l4_protocol = 0;      // the IP protocol once known (6: TCP), also for fragments
                                // and malformed frames; 0 before
  bool has_ports = false;       // src_port / dst_port read (also for a first fragment or
                                // a malformed TCP header that has them)
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 0;
  uint8_t src_addr[16] = {};
  uint8_t dst_addr[16] = {};
};

struct ParseOptions {
  // Extension headers followed before giving up (hop-by-hop, routing, destination
  // options, AH); a bound, so that a crafted chain cannot keep a core busy.
  uint8_t max_ipv6_extension_headers = 8;
};

// Parses `frame` (`frame_bytes` long). Fills `view` as far as parsing got; all of it is
// meaningful only for ParseResult::kTcp.
ParseResult ParseFrame(const uint8_t* frame, size_t frame_bytes, const ParseOptions& options,
                       PacketView& view);

// Big-endian loads; the caller has checked the bounds.
inline uint16_t LoadBe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t LoadBe32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
inline void StoreBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void StoreBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace dlb::packet
