// The client address a head without identity is keyed by (on_missing_identity:
// source_ip). Directly connected clients: the packet's source address. Behind trusted
// proxies (PacketConfig::trusted_proxies = N >= 1) that address is the last proxy's, so
// the client is read from X-Forwarded-For: each trusted proxy appends the address it
// received from, so the N-th address from the right of the last X-Forwarded-For line
// is the client as the first trusted proxy saw it; anything left of it was written by
// the client and is not trusted. docs/identity.md has the deployment rules.
// No allocation, no exceptions: called per head.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dlb::packet {

struct ClientAddress {
  uint8_t ip_version = 0;   // 4 or 6
  uint8_t bytes[16] = {};   // network order; 4 bytes for IPv4
  size_t size() const { return ip_version == 4 ? 4 : 16; }
};

// The address of one X-Forwarded-For element, OWS trimmed: IPv4 ("192.0.2.1", also
// with ":port"), IPv6 ("2001:db8::1", also "[2001:db8::1]" with or without ":port").
// An IPv4-mapped IPv6 address is its IPv4 address, as the client's own packets give
// it. False for anything else ("unknown", obfuscated identifiers, garbage).
bool ParseForwardedAddress(std::string_view element, ClientAddress& out);

// The client address from the head data[0, head_bytes) (a complete head, as parsed):
// the `hops`-th element from the right of its last X-Forwarded-For line (hops >= 1).
// False when there is no such line, it has fewer elements, or the element is not an
// address: the caller then has no client address.
bool ForwardedClientAddress(const uint8_t* data, size_t head_bytes, unsigned hops, ClientAddress& out);

}  // namespace dlb::packet
