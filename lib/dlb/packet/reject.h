// The frames the engine's verdicts ask for, built from the client segment that caused
// them (parsed into a PacketView): a 429 response with FIN to the client, RSTs to the
// server or the client. L2 headers and VLAN tags are kept (MACs swapped toward the
// client); IP headers are fresh (no options or extension headers); checksums are
// complete (no offload assumed). Write into caller memory; no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dlb/bucket.h"
#include "dlb/packet/parse.h"
#include "dlb/packet/rules.h"
#include "dlb/retry_after.h"

namespace dlb::packet {

// Room for any frame built here: L2 with two tags, IPv6, TCP, and the response.
inline constexpr size_t kMaxBuiltFrameBytes = 1024;
// Retry-After for a bucket that never leaks (a spent quota): one year, the longest
// value clients are known to honour sensibly.
inline constexpr int64_t kMaxRetryAfterS = static_cast<int64_t>(DLB_RETRY_AFTER_MAX_S);

// Whole seconds, rounded up, never 0 for a limited request: a too-short Retry-After
// only brings the next request back to be rejected again.
int64_t RetryAfterSeconds(int64_t retry_after_ns);

// The HTTP response: status line, Retry-After, RateLimit-Policy, RateLimit,
// Connection: close, and a short JSON body. Returns its length, or 0 if `capacity` is
// too small.
size_t FormatRejectResponse(const CompiledRule& rule, const dlb::Decision& decision, char* out,
                            size_t capacity);

// 429 + FIN from the server's address to the client: seq = the client's ACK (the
// server's next byte), ack = the end of the client's segment. Returns the frame length,
// 0 if it does not fit in `out_bytes`.
size_t BuildClientReject(const uint8_t* frame, const PacketView& view, const CompiledRule& rule,
                         const dlb::Decision& decision, uint8_t* out, size_t out_bytes);

// RST+ACK from the client's address to the server with sequence number `seq` (the
// server's next expected byte: FrameResult::reset_seq), so the server accepts it
// (RFC 5961: an RST off rcv_nxt only draws a challenge ACK).
size_t BuildServerReset(const uint8_t* frame, const PacketView& view, uint32_t seq, uint8_t* out,
                        size_t out_bytes);

// RST+ACK from the server's address to the client (seq = the client's ACK).
size_t BuildClientReset(const uint8_t* frame, const PacketView& view, uint8_t* out,
                        size_t out_bytes);

// Cuts a client->server frame, in place, to the first `keep_payload_bytes` of its TCP
// payload (Verdict::kForwardPrefix: the heads before a limited one go on, the rest is
// left for the client to retransmit). Rewrites the IPv4 total length and header
// checksum or the IPv6 payload length, clears FIN (it would sit past the cut) and
// recomputes the TCP checksum; IP options, extension headers and TCP options are kept.
// Returns the new frame length, or 0 if `keep_payload_bytes` is not below the payload.
size_t TruncatePayload(uint8_t* frame, const PacketView& view, uint32_t keep_payload_bytes);

// RFC 1071 checksum helpers, exposed for tests that verify frames independently.
uint32_t ChecksumAdd(uint32_t sum, const uint8_t* data, size_t len);
uint16_t ChecksumFold(uint32_t sum);

}  // namespace dlb::packet
