// Verification of the IPv4 header and TCP checksums of a parsed frame. Linux drops a
// segment whose checksum is wrong; a segment the engine read but the server dropped
// would let a later segment with other bytes at the same sequence numbers pass as a
// retransmission of bytes already decided. So the engine reads only segments whose
// checksums hold (or that the NIC said were good).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dlb/packet/parse.h"

namespace dlb::packet {

// The 16-bit ones' complement sum (RFC 1071) of data[0, len), not complemented, in the
// byte order of the host: compare it, or a sum of such sums, only with values that do
// not depend on byte order (0xffff: the checksum of the covered bytes holds).
uint16_t OnesComplementSum(const uint8_t* data, size_t len);

// Whether the IPv4 header checksum of `frame` holds (true for IPv6, which has none).
// `view` is the frame's ParseFrame result (kTcp).
bool IpHeaderChecksumValid(const uint8_t* frame, const PacketView& view);

// Whether the TCP checksum holds, over the pseudo-header (RFC 9293 3.1; RFC 8200 8.1
// for IPv6, with the addresses of the IPv6 header), the TCP header and the payload.
bool TcpChecksumValid(const uint8_t* frame, const PacketView& view);

}  // namespace dlb::packet
