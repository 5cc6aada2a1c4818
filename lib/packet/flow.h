// Internal to the engine: the per-core flow table slots and the reassembly pool.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dlb/packet/allocator.h"
#include "dlb/packet/http.h"
#include "response.h"

namespace dlb::packet::internal {

// Whether sequence number a is before b in the 32-bit sequence space of a TCP stream.
inline bool SeqBefore(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

enum class Phase : uint8_t {
  kHead,         // at (or inside) a request head starting at next_seq
  kBody,         // skipping body_remaining bytes of a Content-Length body
  kChunked,      // following a chunked body
  kPassthrough,  // not HTTP (or a tunnel): forwarded, no longer inspected
  kClosed,       // rejected or reset: the server side is gone, client segments dropped
  kAwaitSwitch,  // a CONNECT or Upgrade request went to the server: new client bytes are
                 // held back (dropped, the client retransmits) until the server's status
                 // line says whether the connection switches protocols
  kProxyHeader, // at the flow's start, where a PROXY protocol header must be
                 // (PacketConfig::proxy_protocol); then kHead
  kRefused,      // lost track (a stalled head's buffer was reclaimed), or refused while
                 // responses were owed: the next client segment resets the connection
                 // once no response is owed (dropped until then); next_seq is the
                 // server's next byte
};

// The 5-tuple of a client->server flow (the protocol is always TCP), hashed with
// SipHash under the engine's key (IPv6; IPv4 flows hash a 12-byte form, see FlowHash).
struct FlowKey {
  uint8_t client_addr[16];
  uint8_t server_addr[16];
  uint16_t client_port;
  uint16_t server_port;
  uint8_t ip_version;
  uint8_t pad[3];
};
static_assert(sizeof(FlowKey) == 40);

namespace flow_flags {
inline constexpr uint8_t kPending = 1;  // holds undecided heads of the current burst
inline constexpr uint8_t kResetDeferred = 2;  // kRefused by a reset that waits for the
                                              // responses owed (not a stalled head)
inline constexpr uint8_t kFinished = 4; // the client sent FIN: kept briefly so that a
                                        // retransmitted last segment is not decided again;
                                        // next_seq is then the sequence number after the FIN
inline constexpr uint8_t kSeenHead = 8; // a request head was decided on this connection
inline constexpr uint8_t kAwaitConnect = 16;  // kAwaitSwitch for a CONNECT (a 2xx switches),
                                              // not an Upgrade (a 101 switches)
inline constexpr uint8_t kServerHole = 32;  // body bytes were forwarded ahead of a gap:
                                            // the server lacks [hole_start, hole_end)
                                            // (ResponseSlot) and holds what follows out
                                            // of order
inline constexpr uint8_t kProxyDone = 64;  // the flow's PROXY header was read: a rollback
                                           // to kHead stays after it
}  // namespace flow_flags

// One flow, one cache line. The key is not stored: the slot keeps the full 64-bit keyed
// hash (two live flows agree on it with probability ~2^-64 per pair) and the client
// port as a cheap second check.
struct alignas(64) FlowSlot {
  uint64_t hash = 0;              // 0: free
  int64_t last_seen_ns = 0;
  uint64_t body_remaining = 0;    // kBody
  ChunkedDecoder chunked;         // kChunked
  uint32_t next_seq = 0;          // first stream byte not yet consumed (a head's start in kHead)
  uint32_t buf_seq = 0;           // stream seq of reassembly buffer byte 0 (== next_seq
                                  // between frames: the buffer holds one partial head)
  int32_t buffer = -1;            // reassembly buffer index, -1: none
  uint32_t scan_from = 0;         // FindHeadEnd progress past next_seq
  uint16_t client_port = 0;
  Phase phase = Phase::kHead;
  uint8_t flags = 0;
  uint8_t responses_due = 0;      // requests forwarded whose responses have not ended
                                  // (ResponseSlot); kMaxResponsesDue: the count is lost
};
static_assert(sizeof(FlowSlot) == 64);

inline constexpr uint8_t kMaxResponsesDue = 64;  // one bit each in ResponseSlot::head_bits

namespace response_flags {
inline constexpr uint8_t kKnown = 1;      // next_seq holds the server's stream position
inline constexpr uint8_t kServerFin = 2;  // the server's FIN was seen (next_seq is past it)
}  // namespace response_flags

// The servers' side of a flow, beside its FlowSlot (the same index in a table of its
// own): where the server's stream is and where its responses end. Kept apart so that
// admitted heads, the common case, never touch it (except HEAD requests); read by the
// servers' segments and by a refusal that must wait for its turn.
struct alignas(64) ResponseSlot {
  ResponseFramer framer;
  uint64_t head_bits = 0;  // bit i: the i-th response due answers a HEAD request
  uint32_t next_seq = 0;   // the server's next sequence number, as far as seen
  uint32_t hole_start = 0; // flow_flags::kServerHole: the client's bytes the server lacks
  uint32_t hole_end = 0;
  uint8_t flags = 0;       // response_flags
};
static_assert(sizeof(ResponseSlot) == 64);

// Fixed-size reassembly buffers, each with a presence bitmap (one bit per byte). A
// buffer holds the bytes of one partial head that the server already has (segments
// ahead of a gap are dropped, never held), so its bytes are contiguous from offset 0;
// the engine compares a retransmission's overlap with them and refuses a conflict.
// Each buffer records its flow and when it was taken, so that buffers held by stalled
// heads can be reclaimed long before the flow's idle timeout.
class ReassemblyPool {
 public:
  bool Init(Allocator& allocator, uint32_t count, uint32_t buffer_bytes);
  void Destroy();
  ~ReassemblyPool() { Destroy(); }

  int32_t Acquire(FlowSlot* owner, int64_t now_ns);  // -1 when none is free
  void Release(int32_t index);
  FlowSlot* Owner(int32_t index) const { return owner_[index]; }
  int64_t SinceNs(int32_t index) const { return since_ns_[index]; }
  void SetSinceNs(int32_t index, int64_t now_ns) { since_ns_[index] = now_ns; }
  uint32_t count() const { return count_; }
  uint8_t* Data(int32_t index) { return data_ + size_t(index) * bytes_; }
  // Copies src[0, len) to offset `off` where bytes are absent; off + len <= bytes().
  void Write(int32_t index, uint32_t off, const uint8_t* src, uint32_t len);
  // The first absent offset at or after `from` (bytes() if none).
  uint32_t ContiguousEnd(int32_t index, uint32_t from) const;
  bool AnyFrom(int32_t index, uint32_t from) const;
  void Clear(int32_t index, uint32_t from, uint32_t to);
  // Drops the first n bytes (n < bytes()): offset n becomes offset 0.
  void ShiftLeft(int32_t index, uint32_t n);

  uint32_t bytes() const { return bytes_; }
  size_t free_count() const { return free_top_; }
  size_t memory_bytes() const { return size_t(count_) * (bytes_ + bytes_ / 8 + 4 + 16); }

 private:
  uint64_t* Bits(int32_t index) const { return bits_ + size_t(index) * words_; }

  Allocator* allocator_ = nullptr;
  uint8_t* data_ = nullptr;
  uint64_t* bits_ = nullptr;
  int32_t* free_ = nullptr;   // stack of free indices
  FlowSlot** owner_ = nullptr;  // per buffer: the flow holding it, nullptr when free
  int64_t* since_ns_ = nullptr; // per buffer: when its current head started
  uint32_t free_top_ = 0;
  uint32_t count_ = 0;
  uint32_t bytes_ = 0;        // a multiple of 64
  uint32_t words_ = 0;        // bytes_ / 64
};

}  // namespace dlb::packet::internal
