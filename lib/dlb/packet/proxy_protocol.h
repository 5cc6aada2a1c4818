// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a TLS
// terminator can put at the start of every connection it opens to the servers: the
// address and port of the client it received the connection from. With
// PacketConfig::proxy_protocol on, the engine reads it from the first bytes of every
// client flow and keys heads without identity by its source address (docs/identity.md);
// the header itself goes on to the server, which is configured to expect it.
// No allocation, no exceptions: called at the start of each flow.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dlb/packet/client_address.h"
#include "dlb/packet/config.h"

namespace dlb::packet {

// Version 1: "PROXY TCP4|TCP6|UNKNOWN ...\r\n", at most this many bytes with the CRLF.
inline constexpr size_t kProxyV1MaxBytes = 107;
// Version 2: a 12-byte signature, version/command, family, a 16-bit length, then the
// addresses and TLVs (16 + length bytes in all).
inline constexpr size_t kProxyV2FixedBytes = 16;

enum class ProxyResult : uint8_t {
  kOk,          // a complete header of header.bytes bytes
  kIncomplete,  // a valid prefix: more bytes are needed
  kMissing,     // the bytes do not start with the signature of an accepted version
  kMalformed,   // a signature of an accepted version (or the wrong version's), then
                // something the specification does not allow
  kTooLong,     // a version 2 header longer than the caller's bound
};

struct ProxyHeader {
  uint32_t bytes = 0;      // the header's length: the first byte after it starts the stream
  bool local = false;      // v2 LOCAL, v2 PROXY with an unspecified family, v1 UNKNOWN: no
                           // address given; the connection's own source is the client
  ClientAddress source;    // !local: the client's address (IPv4-mapped IPv6 as IPv4)
};

// Parses the header at data[0, len). `max_bytes` bounds the header (a v2 header's TLVs
// included): a longer one is kTooLong, and so is anything still incomplete at
// `max_bytes` bytes, whatever the version. `accept` is kV1, kV2 or kAny (kOff: always kMissing).
ProxyResult ParseProxyHeader(const uint8_t* data, size_t len, ProxyProtocol accept, size_t max_bytes,
                             ProxyHeader& out);

// Whether data[0, len) starts like a PROXY header of either version, as a stream that
// must not hold one is checked for: "PROXY " or, once leading CRLFs are skipped as
// before a request line, the rest of the version 2 signature ("\0\r\nQUIT\n").
bool LooksLikeProxyHeader(const uint8_t* data, size_t len);

}  // namespace dlb::packet
