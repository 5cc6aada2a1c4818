// The packet engine of one core: from a burst of frames to a verdict per frame.
//
//   1. parse L2-L4 of every frame, hash the flows of client segments, prefetch their
//      flow slots;
//   2. follow each client->server TCP stream: find request heads at request boundaries,
//      reassemble heads split over segments, skip bodies (Content-Length or chunked);
//      for each head match a rule, hash the identity (SipHash, keyed) and prefetch its
//      shard lines;
//   3. decide all heads of the burst in the shard, in order;
//   4. turn decisions into verdicts: forward, drop, reject (429 to the client, RST to
//      the server) or reset.
//
// The engine owns no NIC and no threads: the appliance (DPDK) feeds it byte buffers and
// acts on the verdicts with the frame builders of reject.h (the XDP form has its own
// program, ebpf/, with the same meanings: docs/xdp.md). All memory is taken at Create; ProcessBurst never allocates, never throws.
// One engine per worker core; nothing in it is shared or locked.
//
//   auto engine = PacketEngine::Create(config, rules, hugepage_allocator, key, now_ns);
//   for (;;) {
//     n = rx_burst(client_port, mbufs, PacketEngine::kMaxBurst);
//     for (i < n) frames[i] = {data(mbufs[i]), len(mbufs[i])};
//     engine->ProcessBurst(frames, n, now_ns, results);
//     for (i < n) switch (results[i].verdict) {
//       case kForward: tx to the server side; break;
//       case kDrop: free; break;
//       case kReject: BuildClientReject(frame, results[i].view, rules.rule(results[i].rule),
//                                       results[i].decision, ...) -> client side;
//                     BuildServerReset(frame, results[i].view, results[i].reset_seq, ...)
//                                       -> server side; free; break;
//       case kReset: BuildClientReset(...) -> client; BuildServerReset(...) -> server; free;
//     }
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>

#include "dlb/packet/allocator.h"
#include "dlb/packet/config.h"
#include "dlb/packet/http.h"
#include "dlb/packet/parse.h"
#include "dlb/packet/rules.h"
#include "dlb/packet/shard.h"
#include "dlb/siphash.h"
#include "dlb/status.h"

namespace dlb::packet {

class CoreSync;

// Per-core counters: plain integers bumped by the owning core only; the metrics layer
// sums them over cores at scrape time. The list is declared once; names are the
// Prometheus names without the dlb_packet_ prefix and _total suffix.
#define DLB_ENGINE_COUNTERS(X)                                                   \
  X(frames, "frames")                                                            \
  X(client_segments, "client_segments")                                          \
  X(server_segments, "server_segments")                                          \
  X(fragments_dropped, "fragments_dropped")                                      \
  X(malformed_frames_dropped, "malformed_frames_dropped")                        \
  X(heads, "heads")                                                              \
  X(allowed, "allowed")                                                          \
  X(limited, "limited")                                                          \
  X(rejected, "rejected")                                                        \
  X(dropped, "dropped")                                                          \
  X(shadow_limited, "shadow_limited")                                            \
  X(identity_missing, "identity_missing")                                        \
  X(identity_source_ip, "identity_source_ip")                                    \
  X(identity_no_client_address, "identity_no_client_address")                    \
  X(identity_missing_passed, "identity_missing_passed")                          \
  X(identity_missing_limited, "identity_missing_limited")                        \
  X(shard_table_full, "shard_table_full")                                        \
  X(shard_table_full_allowed, "shard_table_full_allowed")                        \
  X(shard_table_full_limited, "shard_table_full_limited")                        \
  X(not_http, "not_http")                                                        \
  X(oversize_heads, "oversize_heads")                                            \
  X(malformed_heads, "malformed_heads")                                          \
  X(malformed_chunked, "malformed_chunked")                                      \
  X(resets, "resets")                                                            \
  X(flows_created, "flows_created")                                              \
  X(flows_closed, "flows_closed")                                                \
  X(flows_expired, "flows_expired")                                              \
  X(flow_table_full, "flow_table_full")                                          \
  X(flow_table_full_syns_dropped, "flow_table_full_syns_dropped")                \
  X(untracked_segments_reset, "untracked_segments_reset")                        \
  X(untracked_segments_dropped, "untracked_segments_dropped")                    \
  X(syns_ignored, "syns_ignored")                                                \
  X(fins_ignored, "fins_ignored")                                                \
  X(rsts_ignored, "rsts_ignored")                                                \
  X(data_after_fin_dropped, "data_after_fin_dropped")                            \
  X(retransmitted_segments, "retransmitted_segments")                            \
  X(conflicting_overlaps, "conflicting_overlaps")                                \
  X(out_of_order_segments, "out_of_order_segments")                              \
  X(out_of_order_dropped, "out_of_order_dropped")                                \
  X(reassembly_buffers_exhausted, "reassembly_buffers_exhausted")                \
  X(stalled_heads_reclaimed, "stalled_heads_reclaimed")                          \
  X(stalled_heads_reset, "stalled_heads_reset")                                  \
  X(closed_flow_segments_dropped, "closed_flow_segments_dropped")                \
  X(deferred_heads, "deferred_heads")                                            \
  X(desync_resets, "desync_resets")                                              \
  X(proxy_headers, "proxy_headers")                                              \
  X(proxy_headers_local, "proxy_headers_local")                                  \
  X(proxy_header_missing, "proxy_header_missing")                                \
  X(proxy_header_malformed, "proxy_header_malformed")                            \
  X(proxy_header_too_long, "proxy_header_too_long")                              \
  X(proxy_header_unexpected, "proxy_header_unexpected")                          \
  X(switch_held_segments, "switch_held_segments")                                \
  X(protocol_switches, "protocol_switches")                                      \
  X(protocol_switches_refused, "protocol_switches_refused")                      \
  X(lease_wait_drops, "lease_wait_drops")                                        \
  X(bad_checksums, "bad_checksums")                                              \
  X(no_ack_segments_dropped, "no_ack_segments_dropped")                          \
  X(rejects_deferred, "rejects_deferred")                                        \
  X(rejects_after_server_close, "rejects_after_server_close")                    \
  X(resets_deferred, "resets_deferred")                                          \
  X(response_framing_lost, "response_framing_lost")

struct EngineCounters {
#define DLB_X(field, name) uint64_t field = 0;
  DLB_ENGINE_COUNTERS(DLB_X)
#undef DLB_X
  uint64_t parse[kParseResultCount] = {};
  uint64_t malformed_head[kHeadResultCount] = {};
};

// Calls f(name, value) for every counter, parse and head reasons included
// ("parse_truncated_ipv4", "head_bad_header").
template <typename F>
void ForEachCounter(const EngineCounters& c, F&& f) {
#define DLB_X(field, name) f(name, c.field);
  DLB_ENGINE_COUNTERS(DLB_X)
#undef DLB_X
  char buf[64];
  for (int i = 0; i < kParseResultCount; ++i) {
    std::snprintf(buf, sizeof buf, "parse_%s", ParseResultName(static_cast<ParseResult>(i)));
    f(static_cast<const char*>(buf), c.parse[i]);
  }
  for (int i = 0; i < kHeadResultCount; ++i) {
    std::snprintf(buf, sizeof buf, "head_%s", HeadResultName(static_cast<HeadResult>(i)));
    f(static_cast<const char*>(buf), c.malformed_head[i]);
  }
}

enum class Verdict : uint8_t {
  kForward,  // send the frame on unchanged
  kDrop,     // free the frame
  kReject,   // free the frame; send BuildClientReject to the client and
             // BuildServerReset (seq = reset_seq) to the server
  kReset,    // free the frame; send BuildServerReset (seq = reset_seq) to the server and
             // BuildClientReset to the client
  kForwardPrefix,  // cut the frame to its first `forward_bytes` of payload
                   // (TruncatePayload) and send that on; the rest is retransmitted
};
// Pipelined heads: a verdict is per frame. When a segment carries several request heads
// and a later one is limited under `reject` or `drop`, the bytes before it (earlier heads,
// already decided and charged, and their bodies) are forwarded: kForwardPrefix cuts the
// frame right before the limited head. The server acknowledges only those bytes, so the
// client's TCP retransmits the rest; the flow is rolled back to the limited head, which
// then starts its segment and is decided again: rejected (429 after the server's
// responses to the earlier requests, with the right sequence numbers) or dropped if still
// limited, forwarded if the bucket leaked meanwhile. A limited head that starts its
// segment gets kReject / kDrop directly.
const char* VerdictName(Verdict v);

// What the NIC found of a frame's checksums, where it checked them (DPDK:
// RTE_MBUF_F_RX_IP_CKSUM_* and RTE_MBUF_F_RX_L4_CKSUM_*). What it did not check
// (kUnknown: af_packet, most virtual NICs) the engine verifies in software.
enum class RxChecksum : uint8_t { kUnknown, kGood, kBad };

struct Frame {
  const uint8_t* data = nullptr;
  uint32_t bytes = 0;
  RxChecksum ip_checksum = RxChecksum::kUnknown;
  RxChecksum l4_checksum = RxChecksum::kUnknown;
};

// The port a burst arrived on, when the caller knows it. Segments are then told apart
// by their port of arrival as well as their TCP ports: a client cannot pass a crafted
// segment off as the server's (an RST that ends a flow, a status line that opens a
// tunnel). A segment that claims the other side is forwarded untouched.
enum class Arrival : uint8_t {
  kEither,      // by TCP ports alone (one port carries both directions)
  kClientPort,  // from the clients' side
  kServerPort,  // from the servers' side
};

struct FrameResult {
  Verdict verdict = Verdict::kForward;
  ParseResult parse = ParseResult::kNotIp;
  uint16_t rule = 0;                 // kReject: the rule that limited the request
  uint16_t heads = 0;                // request heads that completed in this frame
  uint32_t reset_seq = 0;            // kReject / kReset: the server's next expected byte
  uint32_t forward_bytes = 0;        // kForwardPrefix: payload bytes to keep
  dlb::Decision decision;            // kReject: the limiting decision
  PacketView view;                   // valid when parse == kTcp
};

class PacketEngine {
 public:
  static constexpr size_t kMaxBurst = 32;

  // `rules` must outlive the engine. `sip_key` keys the flow and identity hashes (one
  // random key per process, SipKey::Random()); `now_ns` is the engine's clock at start
  // (the shard epoch).
  static StatusOr<std::unique_ptr<PacketEngine>> Create(const PacketConfig& config,
                                                        const RuleSet& rules,
                                                        Allocator& allocator,
                                                        const SipKey& sip_key, int64_t now_ns);
  ~PacketEngine();
  PacketEngine(const PacketEngine&) = delete;
  PacketEngine& operator=(const PacketEngine&) = delete;

  // Decides a burst of at most kMaxBurst frames (the rest are forwarded unexamined) at
  // `now_ns` (monotonic, >= the start time), all arrived on `arrival`. results[i]
  // belongs to frames[i].
  void ProcessBurst(const Frame* frames, size_t count, int64_t now_ns, FrameResult* results,
                    Arrival arrival = Arrival::kEither);

  // Replaces the rule set (a reload), called by the thread that calls ProcessBurst,
  // between bursts: no decision is pending then. `rules` must outlive the engine or the
  // next SetRules. Buckets are keyed by rule name (CompiledRule::bucket_key), as in
  // Redis: a rule that keeps its name keeps its users' buckets wherever it moves (a
  // changed capacity or leak rate applies to the existing TATs); a renamed rule starts
  // with empty buckets.
  void SetRules(const RuleSet& rules);

  const EngineCounters& counters() const;
  const ShardCounters& shard_counters() const;
  const BucketShard& shard() const;
  size_t active_flows() const;
  size_t free_reassembly_buffers() const;
  size_t memory_bytes() const;  // flows, reassembly pool and shard

  // Synced and strict rules are decided against leases of the global bucket through
  // `sync` (shard_sync.h; ShardSync::Create attaches it, before the first burst). Without
  // one they are decided in the shard alone, as local rules.
  void AttachSync(CoreSync* sync);

  struct Impl;

 private:
  explicit PacketEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlb::packet
