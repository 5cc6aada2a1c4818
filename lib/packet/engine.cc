// The packet engine's burst pipeline (engine.h): frames parsed and classified, client
// segments handed to their flow's stream (flow_table.h, stream.h), heads queued and
// decided in the shard together, verdicts settled per frame.
#include "dlb/packet/engine.h"

#include <cstring>

#include "dlb/packet/checksum.h"
#include "dlb/packet/client_address.h"
#include "dlb/packet/shard_sync.h"
#include "engine_context.h"
#include "flow.h"
#include "flow_table.h"
#include "stream.h"

namespace dlb::packet {

using internal::FlowSlot;
using internal::Phase;
using internal::ResponseSlot;
using internal::SeqBefore;
namespace flow_flags = internal::flow_flags;
namespace response_flags = internal::response_flags;

namespace {

// Heads decided together; a frame with more pipelined heads flushes mid-frame.
constexpr size_t kMaxEvents = 64;
// Frames whose first cache line is fetched ahead of parsing (as DPDK's l3fwd does).
constexpr uint16_t kFramePrefetchAhead = 4;
// Payload prefetched per client segment: the whole of a typical request head (400-1000
// bytes; bounded by the payload). Prefetching only the first 512 bytes left the tail of
// longer heads to demand misses: ~10 ns per head frame more in bench_packet.
constexpr uint32_t kPayloadPrefetchBytes = 1024;
constexpr uint32_t kPayloadPrefetchFrames = 2;

enum class EventKind : uint8_t {
  kDecide,         // a head with a key: decide it in the shard
  kLimitNoKey,     // no identity and the policy limits it
  kPolicyDrop,     // not HTTP / malformed / oversize under HeadPolicy::kDrop
  kPolicyReset,    // ... under HeadPolicy::kReset
  kHold,           // bytes after a CONNECT / Upgrade head wait for the server's answer
  kForwarded,      // a head passed undecided (on_missing_identity: pass): its response is due
};

struct Event {
  ShardProbe probe;
  uint32_t head_seq = 0;
  uint16_t frame = 0;
  uint16_t rule = 0;
  EventKind kind = EventKind::kDecide;
  IdentityKind identity_kind = IdentityKind::kHeader;
  uint16_t identity_len = 0;    // of Impl::identities[event]; > kSyncIdentityBytes: too long
  bool head_request = false;    // method HEAD: its response has no body
};

// Whose turn it is to send on a connection, for a refusal (429 or reset) of a client's
// head: the server's (responses to forwarded requests are owed, or the client has not
// acknowledged all the server sent), the engine's (its 429 is the next response), or
// nobody's (the server closed and the client has everything).
enum class Turn : uint8_t { kServer, kEngine, kClosed };

// What the engine remembers about a frame of the burst while its heads are undecided.
struct FrameState {
  FlowSlot* flow = nullptr;
  uint32_t seg_start = 0;     // stream seq of the segment's first payload byte
  uint32_t seg_end = 0;
  uint32_t stream_pos = 0;    // the server's next expected byte when the frame arrived
  bool stopped = false;       // a verdict other than forward: no more heads decided
  bool done = false;          // fully processed (its flow may be committed)
  bool committed = false;
  bool fin = false;
  uint16_t pending_events = 0;  // queued since the last flush
};

// Which side of a followed flow a frame is on (ProcessBurst, pass 1).
enum class Side : uint8_t { kNone, kClient, kServer };

}  // namespace

struct PacketEngine::Impl : internal::EngineContext {
  const RuleSet* rules = nullptr;
  ParseOptions parse_options;
  SipKey identity_key;
  SipKey address_key;  // a separate key: an identity header holding raw address bytes
                       // must not land in that address's bucket
  uint64_t service_ports[65536 / 64] = {};

  internal::FlowTable flows{*this};
  internal::StreamReader reader{*this, flows};
  BucketShard shard;

  // Burst scratch.
  const Frame* frames = nullptr;
  FrameResult* results = nullptr;
  FrameState state[kMaxBurst];
  uint64_t flow_hash[kMaxBurst] = {};
  Event events[kMaxEvents];
  size_t event_count = 0;
  uint64_t pending_frames = 0;  // frames with events queued since the last flush
  static_assert(kMaxBurst <= 64, "pending_frames holds one bit per frame of a burst");
  // Synced rules: the identity of each queued head, copied (the head's bytes may be
  // gone by the time it is decided) for the registration of a new bucket.
  CoreSync* sync = nullptr;
  uint8_t identities[kMaxEvents][kSyncIdentityBytes];
  uint16_t current = 0;  // the frame being streamed

  explicit Impl(BucketShard s) : shard(std::move(s)) {}

  bool IsServicePort(uint16_t port) const { return service_ports[port / 64] >> (port % 64) & 1; }

  // Whether a frame the engine cannot inspect (a fragment, a malformed frame) may carry
  // a service's bytes: TCP or an unknown protocol, to or from a service port or with
  // ports unknown.
  bool MayBeService(const PacketView& v) const {
    if (v.l4_protocol != 0 && v.l4_protocol != 6) return false;
    if (!v.has_ports) return true;
    return IsServicePort(v.dst_port) || IsServicePort(v.src_port);
  }

  // --- heads of the frame being streamed ------------------------------------------
  // The engine's side of the stream reader (internal::StreamSink), for frame `current`.

  void Emit(EventKind kind, uint32_t head_seq, uint16_t rule, uint64_t key_hash) {
    Event& e = events[event_count++];
    e.kind = kind;
    e.frame = current;
    e.rule = rule;
    e.head_seq = head_seq;
    e.head_request = false;
    ++state[current].pending_events;
    pending_frames |= uint64_t{1} << current;
    if (kind == EventKind::kDecide) {
      e.probe = shard.Probe(key_hash, rules->rule(rule).bucket_key);
      // Once the sync layer holds entries, a new key of any rule may read the sync
      // slots of its lines (to skip held entries): fetch them too.
      if (shard.sync_engaged() || (sync != nullptr && rules->rule(rule).mode != Mode::kLocal)) {
        shard.PrefetchSynced(e.probe);
      } else {
        shard.Prefetch(e.probe);
      }
    }
  }

  // After an event: decide everything when the event array is full. Returns whether
  // the current frame may go on.
  bool AfterEmit() {
    if (event_count == kMaxEvents) Flush();
    return !state[current].stopped;
  }

  // A head that cannot be decided (not HTTP, malformed, too large, no buffer for it, a
  // conflicting retransmission) starting at `head_seq`, refused by `policy` (kDrop or
  // kReset).
  void Refuse(HeadPolicy policy, uint32_t head_seq) {
    Emit(policy == HeadPolicy::kReset ? EventKind::kPolicyReset : EventKind::kPolicyDrop, head_seq, 0, 0);
    AfterEmit();
  }

  // Client bytes from `seq` on wait for the server's answer to CONNECT / Upgrade.
  void Hold(uint32_t seq) {
    Emit(EventKind::kHold, seq, 0, 0);
    AfterEmit();
  }

  // The segment is dropped unread (out of order): the client retransmits it.
  void DropFrame() {
    results[current].verdict = Verdict::kDrop;
    state[current].stopped = true;
  }
  bool FrameStopped() const { return state[current].stopped; }
  bool FramePending() const { return state[current].pending_events > 0; }
  const PacketView& FrameView() const { return results[current].view; }

  // Keeps the identity of the event just queued, when its rule is decided through sync.
  void KeepIdentity(uint16_t rule, IdentityKind kind, const void* data, size_t len) {
    if (sync == nullptr || rules->rule(rule).mode == Mode::kLocal) return;
    Event& e = events[event_count - 1];
    e.identity_kind = kind;
    if (len > kSyncIdentityBytes) {
      e.identity_len = kSyncIdentityBytes + 1;
      return;
    }
    e.identity_len = static_cast<uint16_t>(len);
    std::memcpy(identities[event_count - 1], data, len);
  }

  // The client a head without identity is keyed by: the packet's source address, the
  // flow's PROXY header, or behind trusted proxies the one they name in X-Forwarded-For
  // (client_address.h; with both, X-Forwarded-For: docs/identity.md).
  bool ClientAddressOf(const RequestHead& head, const PacketView& v, ClientAddress& a) const {
    if (config.trusted_proxies == 0) {
      if (flows.has_proxy_clients()) {
        a = flows.ProxyClientOf(*state[current].flow);
        return true;
      }
      a.ip_version = v.ip_version == 4 ? 4 : 6;
      std::memcpy(a.bytes, v.src_addr, a.size());
      return true;
    }
    return ForwardedClientAddress(reinterpret_cast<const uint8_t*>(head.method_token.data()), head.head_bytes,
                                  config.trusted_proxies, a);
  }

  // A complete head starting at `head_seq` (its leading empty lines included, so that a
  // limited head behind CRLFs that start its segment is answered directly, not deferred
  // behind a cut): pick its rule and key, queue its decision.
  bool OnHead(const RequestHead& head, uint32_t head_seq) {
    ++counters.heads;
    ++results[current].heads;
    const uint16_t rule = rules->Match(head);
    const bool head_request = head.method == Method::kHead;
    if (head.has_identity) {
      Emit(EventKind::kDecide, head_seq, rule, SipHash13(identity_key, head.identity.data(), head.identity.size()));
      events[event_count - 1].head_request = head_request;
      KeepIdentity(rule, IdentityKind::kHeader, head.identity.data(), head.identity.size());
      return AfterEmit();
    }
    ++counters.identity_missing;
    switch (config.on_missing_identity) {
      case MissingIdentityPolicy::kSourceIp: {
        ClientAddress a;
        if (!ClientAddressOf(head, results[current].view, a)) {
          ++counters.identity_no_client_address;
          Emit(EventKind::kLimitNoKey, head_seq, rule, 0);
          return AfterEmit();
        }
        ++counters.identity_source_ip;
        Emit(EventKind::kDecide, head_seq, rule, SipHash13(address_key, a.bytes, a.size()));
        events[event_count - 1].head_request = head_request;
        KeepIdentity(rule, a.ip_version == 4 ? IdentityKind::kIpv4 : IdentityKind::kIpv6, a.bytes, a.size());
        return AfterEmit();
      }
      case MissingIdentityPolicy::kLimit:
        Emit(EventKind::kLimitNoKey, head_seq, rule, 0);
        return AfterEmit();
      case MissingIdentityPolicy::kPass:
        ++counters.identity_missing_passed;
        Emit(EventKind::kForwarded, head_seq, rule, 0);
        events[event_count - 1].head_request = head_request;
        return AfterEmit();
    }
    return true;
  }

  // --- decisions ------------------------------------------------------------------

  // Undoes a dropped frame's effect on its flow (StreamReader::Rewind): back to
  // `head_seq` in `phase`, nothing of the frame consumed.
  void Rollback(FrameState& fs, uint32_t head_seq, Phase phase = Phase::kHead) {
    reader.Rewind(*fs.flow, head_seq, phase, fs.seg_start, fs.seg_end, fs.stream_pos);
  }

  void Close(FrameState& fs) {
    flows.ReleaseBuffer(*fs.flow);
    fs.flow->phase = Phase::kClosed;
  }

  // One rule for every form (dlb/retry_after.h, computed when the rule compiled).
  static dlb::Decision NoKeyDecision(const CompiledRule& r) { return NoBucketDecision(r); }

  // Cuts the frame at `seq` (forwarding what precedes it, decided bytes) or drops it when
  // nothing new precedes it.
  static void CutOrDrop(const FrameState& fs, uint32_t seq, FrameResult& res) {
    if (SeqBefore(fs.seg_start, seq) && SeqBefore(fs.stream_pos, seq)) {
      res.verdict = Verdict::kForwardPrefix;
      res.forward_bytes = seq - fs.seg_start;
    } else {
      res.verdict = Verdict::kDrop;
    }
  }

  // A head went to the server: its response is now owed on the flow.
  void Forwarded(FlowSlot& f, bool head_request) {
    if (f.responses_due >= internal::kMaxResponsesDue) {
      // Deeper pipelining than followed: the count no longer says when the server is
      // done, so no 429 is sent on this connection any more (refusals wait for its close).
      ResponseSlot& r = flows.ResponseOf(f);
      if (!r.framer.lost()) ++counters.response_framing_lost;
      r.framer.SetLost();
      return;
    }
    if (head_request) flows.ResponseOf(f).head_bits |= uint64_t{1} << f.responses_due;
    ++f.responses_due;
  }

  // Whose turn it is to send to the client on the flow of a client segment (`v`: its
  // ACK says what the client has of the server's stream).
  Turn TurnOf(const FlowSlot& f, const PacketView& v) const {
    const ResponseSlot& r = flows.ResponseOf(f);
    if (!(r.flags & response_flags::kKnown)) {
      // Nothing of the server's stream seen yet: its first byte is the client's ACK.
      return f.responses_due == 0 ? Turn::kEngine : Turn::kServer;
    }
    if (!(v.tcp_flags & tcp_flags::kAck) || SeqBefore(v.ack, r.next_seq)) return Turn::kServer;
    if (r.flags & response_flags::kServerFin) return Turn::kClosed;
    if (f.responses_due > 0 || r.framer.lost() || !r.framer.AtResponseStart()) return Turn::kServer;
    return Turn::kEngine;
  }

  void Flush() {
    for (size_t i = 0; i < event_count; ++i) {
      const Event& e = events[i];
      FrameState& fs = state[e.frame];
      if (fs.stopped) continue;
      FrameResult& res = results[e.frame];
      switch (e.kind) {
        case EventKind::kDecide:
        case EventKind::kLimitNoKey: Decide(e, fs, res); break;
        case EventKind::kForwarded: Forwarded(*fs.flow, e.head_request); break;
        case EventKind::kPolicyDrop:
        case EventKind::kHold:
          Rollback(fs, e.head_seq, e.kind == EventKind::kHold ? Phase::kAwaitSwitch : Phase::kHead);
          CutOrDrop(fs, e.head_seq, res);
          fs.stopped = true;
          break;
        case EventKind::kPolicyReset: PolicyReset(e, fs, res); break;
      }
    }
    event_count = 0;
    // Only frames with queued events wait for a flush (a frame whose flow has none
    // pending is committed when processed).
    for (uint64_t m = pending_frames; m != 0; m &= m - 1) {
      const uint16_t i = static_cast<uint16_t>(__builtin_ctzll(m));
      state[i].pending_events = 0;
      if (state[i].done && !state[i].committed) Commit(i);
    }
    pending_frames = 0;
  }

  // A head refused by a reset (kPolicyReset).
  void PolicyReset(const Event& e, FrameState& fs, FrameResult& res) {
    if (TurnOf(*fs.flow, res.view) == Turn::kServer) {
      // A reset now would cut short a response owed to a request the server
      // already has. The refused bytes are dropped (what precedes them, decided, goes
      // on) and the flow is refused: its next segments are dropped until the
      // responses are through, then the connection is reset (ClientSegment).
      ++counters.resets_deferred;
      CutOrDrop(fs, e.head_seq, res);
      FlowSlot& f = *fs.flow;
      flows.ReleaseBuffer(f);
      f.next_seq = res.verdict == Verdict::kForwardPrefix ? e.head_seq : fs.stream_pos;
      f.phase = Phase::kRefused;
      f.flags |= flow_flags::kResetDeferred;
      fs.stopped = true;
      return;
    }
    ++counters.resets;
    Close(fs);
    res.verdict = Verdict::kReset;
    res.reset_seq = fs.stream_pos;
    fs.stopped = true;
  }

  // A head with a rule to apply (kDecide, kLimitNoKey): admitted, or limited and acted
  // on, or left for its retransmission while a lease is asked for.
  void Decide(const Event& e, FrameState& fs, FrameResult& res) {
    const CompiledRule& rule = rules->rule(e.rule);
    dlb::Decision d;
    const BucketShard::Outcome outcome = Admit(e, rule, d);
    if (outcome == BucketShard::Outcome::kWait) {
      // Synced rule, no lease yet, the global bucket not known full: never a 429.
      // The head is refused unanswered (its segment dropped, or cut off after the
      // decided heads before it) and decided again, against the lease asked for,
      // when the client retransmits it. A shadow rule never acts.
      ++counters.lease_wait_drops;
      if (rule.action == Action::kShadow) return;
      Rollback(fs, e.head_seq);
      CutOrDrop(fs, e.head_seq, res);
      fs.stopped = true;
      return;
    }
    if (outcome != BucketShard::Outcome::kLimited) {
      ++counters.allowed;
      Forwarded(*fs.flow, e.head_request);
      return;
    }
    Limit(e, rule, d, fs, res);
  }

  // The shard's answer for a head (through the sync layer for a synced rule), `d` set
  // when limited. Never kTableFull: a head without a key, or whose new key finds the
  // shard full, is admitted or limited by its rule's policy.
  BucketShard::Outcome Admit(const Event& e, const CompiledRule& rule, dlb::Decision& d) {
    if (e.kind == EventKind::kLimitNoKey) {
      ++counters.identity_missing_limited;
      d = NoKeyDecision(rule);
      return BucketShard::Outcome::kLimited;
    }
    const BucketShard::Outcome outcome =
        sync != nullptr && rule.mode != Mode::kLocal
            ? sync->Admit(shard, e.probe, e.rule, rule, now_ns, e.identity_kind, identities[&e - events],
                          e.identity_len, d)
            : shard.Admit(e.probe, rule.profile, now_ns, rule.cost, d);
    if (outcome != BucketShard::Outcome::kTableFull) return outcome;
    ++counters.shard_table_full;
    if (rule.on_table_full == OverflowPolicy::kAllow) {
      ++counters.shard_table_full_allowed;
      return BucketShard::Outcome::kAllowed;
    }
    ++counters.shard_table_full_limited;
    d = NoKeyDecision(rule);
    return BucketShard::Outcome::kLimited;
  }

  // A limited head (decision `d`): its rule's action.
  void Limit(const Event& e, const CompiledRule& rule, const dlb::Decision& d, FrameState& fs,
             FrameResult& res) {
    ++counters.limited;
    if (rule.action != Action::kShadow && SeqBefore(fs.seg_start, e.head_seq) &&
        SeqBefore(fs.stream_pos, e.head_seq)) {
      // Pipelined: decided bytes of this segment precede the limited head. They go on
      // (the frame cut before the head); the head and what follows are left for the
      // client to retransmit, and the retransmitted head, now first in its segment,
      // is decided again (rejected or dropped there if still limited).
      ++counters.deferred_heads;
      Rollback(fs, e.head_seq);
      res.verdict = Verdict::kForwardPrefix;
      res.forward_bytes = e.head_seq - fs.seg_start;
      fs.stopped = true;
      return;
    }
    switch (rule.action) {
      case Action::kShadow:
        ++counters.shadow_limited;
        Forwarded(*fs.flow, e.head_request);
        break;
      case Action::kDrop:
        ++counters.dropped;
        Rollback(fs, e.head_seq);
        res.verdict = Verdict::kDrop;
        fs.stopped = true;
        break;
      case Action::kReject:
        Reject(e, d, fs, res);
        fs.stopped = true;
        break;
    }
  }

  // A limited head of a kReject rule: a 429 if it is the engine's turn to answer.
  void Reject(const Event& e, const dlb::Decision& d, FrameState& fs, FrameResult& res) {
    switch (TurnOf(*fs.flow, res.view)) {
      case Turn::kServer:
        // Not the next response: a 429 now would take the place of a response
        // owed to an admitted request (the client's ACK lags behind it), and the
        // RST would cut that response short. The head is dropped, never
        // forwarded, and decided again when the client retransmits it.
        ++counters.rejects_deferred;
        Rollback(fs, e.head_seq);
        res.verdict = Verdict::kDrop;
        break;
      case Turn::kEngine:
        ++counters.rejected;
        Close(fs);
        res.verdict = Verdict::kReject;
        res.rule = e.rule;
        res.decision = d;
        res.reset_seq = fs.stream_pos;
        break;
      case Turn::kClosed:
        // The server closed after its last response, which the client has: no
        // 429 can follow a FIN, so the connection is reset.
        ++counters.rejected;
        ++counters.rejects_after_server_close;
        ++counters.resets;
        Close(fs);
        res.verdict = Verdict::kReset;
        res.reset_seq = fs.stream_pos;
        break;
    }
  }

  // Settles a frame's flow once its verdict is known: FIN ends the flow, consumed bytes
  // leave the reassembly buffer.
  void Commit(uint16_t i) {
    FrameState& fs = state[i];
    fs.committed = true;
    FlowSlot* f = fs.flow;
    if (f == nullptr) return;
    f->flags &= static_cast<uint8_t>(~flow_flags::kPending);
    if (fs.fin && results[i].verdict == Verdict::kForward && !(f->flags & flow_flags::kFinished)) {
      // Linux takes a FIN in order only: it ends the stream where the stream is, with
      // nothing undecided before it. A FIN elsewhere changes nothing.
      if (f->phase == Phase::kPassthrough || flows.StreamPos(*f) == fs.seg_end) {
        // The client is done sending: nothing more to decide. The slot lingers (until
        // kFinLingerNs, or the RST / new SYN of the 4-tuple) so that a retransmission
        // of this segment is not taken for a new connection and decided again.
        ++counters.flows_closed;
        flows.ReleaseBuffer(*f);
        f->phase = Phase::kPassthrough;
        f->flags |= flow_flags::kFinished;
        f->next_seq = fs.seg_end + 1;
        return;
      }
      ++counters.fins_ignored;
    }
    if (f->buffer >= 0) reader.Settle(*f);
  }

  // --- one client segment ---------------------------------------------------------

  // RFC 5961 3.2, as Linux: an RST ends the connection only at the receiver's next
  // expected sequence number. Flows the engine no longer follows byte by byte
  // (passthrough, closed, refused) take any RST: losing them refuses, never admits.
  bool RstAcceptable(const FlowSlot& f, uint32_t seq) const {
    if (f.flags & flow_flags::kFinished) return seq == f.next_seq || seq == f.next_seq - 1;
    if (f.phase == Phase::kPassthrough || f.phase == Phase::kClosed || f.phase == Phase::kRefused) {
      return true;
    }
    return seq == flows.StreamPos(f);
  }

  // Data of a connection without a flow: where its heads start is unknown.
  void RefuseUntracked(FrameResult& res) {
    if (config.on_untracked_flow == HeadPolicy::kDrop) {
      ++counters.untracked_segments_dropped;
      res.verdict = Verdict::kDrop;
      return;
    }
    ++counters.untracked_segments_reset;
    ++counters.resets;
    res.verdict = Verdict::kReset;
    res.reset_seq = res.view.seq;
  }

  // Pass 2 for a client segment: an RST ends its flow; other segments find (or, with a
  // SYN, start) their flow, and their payload is read in its stream.
  void ClientSegment(uint16_t i) {
    FrameResult& res = results[i];
    const PacketView& v = res.view;
    FrameState& fs = state[i];
    if (v.tcp_flags & tcp_flags::kRst) {
      ClientRst(i);
      return;
    }
    FlowSlot* f = ClientFlow(i);
    if (f == nullptr) return;
    uint32_t seq = v.seq;
    // Data on a SYN (TCP Fast Open) follows the SYN's sequence number.
    if (v.tcp_flags & tcp_flags::kSyn) seq += 1;
    fs.flow = f;
    if (EndedFlowSegment(*f, i, seq)) return;
    fs.fin = v.tcp_flags & tcp_flags::kFin;
    fs.seg_start = seq;
    fs.seg_end = seq + v.payload_bytes;
    fs.stream_pos = flows.StreamPos(*f);
    if (v.payload_bytes > 0) {
      current = i;
      reader.Read(*this, *f, frames[i].data + v.payload_offset, v.payload_bytes, seq, fs.stream_pos);
      if (fs.pending_events > 0) f->flags |= flow_flags::kPending;
    }
    fs.done = true;
    if (!(f->flags & flow_flags::kPending)) Commit(i);
  }

  // A client's RST: it ends the flow where Linux would take it.
  void ClientRst(uint16_t i) {
    const PacketView& v = results[i].view;
    const uint64_t hash = flow_hash[i];
    if (FlowSlot* f = flows.Find(hash, v.src_port)) {
      if (f->flags & flow_flags::kPending) {
        Flush();  // an earlier frame of this flow in the burst is settled first
        f = flows.Find(hash, v.src_port);
      }
      if (f != nullptr) {
        if (RstAcceptable(*f, v.seq)) {
          if (!(f->flags & flow_flags::kFinished)) ++counters.flows_closed;
          flows.Erase(*f);
        } else {
          ++counters.rsts_ignored;  // forwarded: the server answers a challenge ACK
        }
      }
    }
    state[i].done = state[i].committed = true;
  }

  // The flow of client segment `i` (not an RST), started afresh by a SYN. nullptr when
  // there is none to follow (no slot, or a SYN that changes nothing): the frame is then
  // settled.
  FlowSlot* ClientFlow(uint16_t i) {
    FrameResult& res = results[i];
    const PacketView& v = res.view;
    FrameState& fs = state[i];
    const bool syn = v.tcp_flags & tcp_flags::kSyn;
    const uint64_t hash = flow_hash[i];
    // Only a SYN starts a flow: the engine must see a connection from its start to know
    // where its heads begin.
    bool fresh = false;
    FlowSlot* f = flows.FindOrCreate(hash, v.src_port, syn, fresh);
    if (f != nullptr && (f->flags & flow_flags::kPending)) {
      // An earlier frame of this flow in the burst must be settled first (its verdict
      // may roll the flow back, close it, or end it with its FIN).
      Flush();
      f = flows.FindOrCreate(hash, v.src_port, syn, fresh);
    }
    if (f == nullptr) {
      fs.done = fs.committed = true;
      if (syn) {
        // No slot: the connection would run untracked. The client retries the SYN, by
        // when idle flows may have expired.
        ++counters.flow_table_full_syns_dropped;
        res.verdict = Verdict::kDrop;
      } else if (v.payload_bytes > 0) {
        RefuseUntracked(res);
      }
      return nullptr;
    }
    if (syn && !fresh && !(f->flags & flow_flags::kFinished) && f->phase != Phase::kClosed) {
      // RFC 5961 4.2, as Linux: a SYN on a synchronized connection changes nothing (the
      // server answers a challenge ACK). A new connection on the 4-tuple comes after
      // the old one's FIN or RST.
      ++counters.syns_ignored;
      fs.done = fs.committed = true;
      return nullptr;
    }
    f->last_seen_ns = now_ns;
    if (syn) {
      // A new connection (or a reused 4-tuple): the stream starts after the SYN.
      flows.Renew(*f);
      f->last_seen_ns = now_ns;
      f->next_seq = v.seq + 1;
      if (flows.has_proxy_clients()) f->phase = Phase::kProxyHeader;
    }
    return f;
  }

  // A segment (at `seq`) of a flow whose stream is no longer read: closed, refused, or
  // past the client's FIN. Settled here; returns whether it was one.
  bool EndedFlowSegment(FlowSlot& f, uint16_t i, uint32_t seq) {
    FrameResult& res = results[i];
    const PacketView& v = res.view;
    FrameState& fs = state[i];
    if (f.phase == Phase::kClosed) {
      ++counters.closed_flow_segments_dropped;
      res.verdict = Verdict::kDrop;
      if (v.tcp_flags & tcp_flags::kFin) flows.Erase(f);
      fs.flow = nullptr;
      fs.done = fs.committed = true;
      return true;
    }
    if (f.phase == Phase::kRefused) {
      if (TurnOf(f, v) == Turn::kServer) {
        ++counters.resets_deferred;  // responses owed: the reset waits for them
        res.verdict = Verdict::kDrop;
        fs.flow = nullptr;
        fs.done = fs.committed = true;
        return true;
      }
      if (!(f.flags & flow_flags::kResetDeferred)) ++counters.stalled_heads_reset;
      ++counters.resets;
      res.verdict = Verdict::kReset;
      res.reset_seq = f.next_seq;
      f.phase = Phase::kClosed;
      fs.flow = nullptr;
      fs.done = fs.committed = true;
      return true;
    }
    if (f.flags & flow_flags::kFinished) {
      // Bytes past the FIN: Linux discards them, and so they are never decided.
      if (v.payload_bytes > 0 && SeqBefore(f.next_seq - 1, seq + v.payload_bytes)) {
        ++counters.data_after_fin_dropped;
        res.verdict = Verdict::kDrop;
      }
      fs.flow = nullptr;
      fs.done = fs.committed = true;
      return true;
    }
    return false;
  }

  // The status code of a response starting at p[0, len) ("HTTP/1.1 200 ..."), 0 if none.
  static int StatusCode(const uint8_t* p, uint32_t len) {
    if (len < 13 || std::memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') return 0;
    int code = 0;
    for (int k = 9; k < 12; ++k) {
      if (p[k] < '0' || p[k] > '9') return 0;
      code = code * 10 + (p[k] - '0');
    }
    return p[12] == ' ' || p[12] == '\r' ? code : 0;
  }

  // The servers' segments of a tracked flow: its RST ends the flow; its bytes are
  // followed to where each response ends (ResponseSlot); a status line answers a
  // CONNECT / Upgrade the flow waits on. The segments themselves pass untouched.
  void ServerSegment(uint16_t i) {
    const PacketView& v = results[i].view;
    FrameState& fs = state[i];
    fs.done = fs.committed = true;
    const uint64_t hash = flow_hash[i];
    FlowSlot* f = flows.Find(hash, v.dst_port);
    if (f == nullptr) return;
    if (f->flags & flow_flags::kPending) {
      Flush();
      f = flows.Find(hash, v.dst_port);  // the flush may have ended it
      if (f == nullptr) return;
    }
    if (v.tcp_flags & tcp_flags::kRst) {
      if (!(f->flags & flow_flags::kFinished)) ++counters.flows_closed;
      flows.Erase(*f);
      return;
    }
    const uint8_t* payload = frames[i].data + v.payload_offset;
    FollowResponses(*f, v, payload);
    if (f->phase != Phase::kAwaitSwitch) return;
    const int status = StatusCode(payload, v.payload_bytes);
    if (status == 0 || (status >= 100 && status < 200 && status != 101)) {
      return;  // not a status line, or an interim answer: the final one is still to come
    }
    const bool connect = f->flags & flow_flags::kAwaitConnect;
    if (connect ? status >= 200 && status < 300 : status == 101) {
      ++counters.protocol_switches;
      f->phase = Phase::kPassthrough;
    } else {
      // Refused: the connection goes on with HTTP requests.
      ++counters.protocol_switches_refused;
      f->phase = Phase::kHead;
      f->scan_from = 0;
    }
  }

  // Moves the server's side of `f` by a server segment: its SYN-ACK sets where the
  // stream starts, its bytes are framed in order, its FIN ends the last response.
  void FollowResponses(FlowSlot& f, const PacketView& v, const uint8_t* payload) {
    ResponseSlot& r = flows.ResponseOf(f);
    uint32_t seq = v.seq;
    if (v.tcp_flags & tcp_flags::kSyn) {
      if (!(r.flags & response_flags::kKnown)) {
        r.next_seq = seq + 1;
        r.flags |= response_flags::kKnown;
      }
      seq += 1;
    }
    uint32_t len = v.payload_bytes;
    if (!(r.flags & response_flags::kKnown)) {
      // The SYN-ACK went by unseen: a stream is taken up only at a status line.
      if (len == 0) return;
      r.flags |= response_flags::kKnown;
      r.next_seq = seq;
      if (StatusCode(payload, len) == 0) LoseResponses(r);
    }
    const uint32_t end = seq + len;
    if (SeqBefore(r.next_seq, seq)) {
      // Bytes missing before this segment (lost between the server and here): the
      // framing cannot resume after a gap. The client is then told nothing more by the
      // engine on this connection; only the server's close ends its turn.
      LoseResponses(r);
      r.next_seq = end;
    } else if (SeqBefore(seq, end) && SeqBefore(r.next_seq, end)) {
      const uint32_t skip = r.next_seq - seq;  // already framed (a retransmission)
      if (!r.framer.lost() &&
          r.framer.Feed(payload + skip, len - skip, f.responses_due, r.head_bits) ==
              internal::ResponseFramer::Result::kLost) {
        ++counters.response_framing_lost;
      }
      r.next_seq = end;
    }
    if ((v.tcp_flags & tcp_flags::kFin) && r.next_seq == end && !(r.flags & response_flags::kServerFin)) {
      r.next_seq = end + 1;
      r.flags |= response_flags::kServerFin;
      r.framer.Close(f.responses_due, r.head_bits);
    }
  }

  void LoseResponses(ResponseSlot& r) {
    if (r.framer.lost()) return;
    ++counters.response_framing_lost;
    r.framer.SetLost();
  }

  // Whether a segment the engine is about to read has checksums Linux accepts: the
  // NIC's verdict where it gave one, else verified here. A failed one is counted; the
  // caller drops the frame (the sender retransmits a segment that was only damaged).
  bool ChecksumsHold(const Frame& frame, const PacketView& v) {
    if (!config.verify_checksums) return true;
    const bool ok = (frame.ip_checksum == RxChecksum::kUnknown ? IpHeaderChecksumValid(frame.data, v)
                                                                : frame.ip_checksum == RxChecksum::kGood) &&
                    (frame.l4_checksum == RxChecksum::kUnknown ? TcpChecksumValid(frame.data, v)
                                                                : frame.l4_checksum == RxChecksum::kGood);
    if (!ok) ++counters.bad_checksums;
    return ok;
  }

  void PrefetchPayload(uint16_t i) {
    const PacketView& v = results[i].view;
    const uint8_t* payload = frames[i].data + v.payload_offset;
    const uint32_t n = v.payload_bytes < kPayloadPrefetchBytes ? v.payload_bytes : kPayloadPrefetchBytes;
    for (uint32_t off = 0; off < n; off += 64) __builtin_prefetch(payload + off);
  }

  void ProcessBurst(const Frame* in, size_t count, int64_t now, FrameResult* out, Arrival arrival) {
    if (count > kMaxBurst) {
      for (size_t i = kMaxBurst; i < count; ++i) out[i] = FrameResult();
      count = kMaxBurst;
    }
    now_ns = now;
    frames = in;
    results = out;
    event_count = 0;
    pending_frames = 0;
    uint32_t client_mask = 0;
    uint32_t server_mask = 0;

    // Pass 1: parse, classify, hash flows and prefetch their slots. Frames are
    // prefetched a few ahead (their headers), and the payload of every client segment
    // once its offset is known, so that pass 2 reads heads from L1/L2, not from L3.
    for (uint16_t i = 0; i < count && i < kFramePrefetchAhead; ++i) __builtin_prefetch(in[i].data);
    for (uint16_t i = 0; i < count; ++i) {
      if (size_t{i} + kFramePrefetchAhead < count) __builtin_prefetch(in[i + kFramePrefetchAhead].data);
      switch (Classify(i, arrival)) {
        case Side::kClient: client_mask |= 1u << i; break;
        case Side::kServer: server_mask |= 1u << i; break;
        case Side::kNone: break;
      }
    }
    // Pass 2: follow the streams, queue heads (their shard lines prefetched). The
    // payloads of the next client segments are fetched while this one is parsed: a few
    // ahead only, since every line in flight holds a miss buffer, and the shard
    // prefetches of the heads must not wait behind a burst's worth of payload.
    uint32_t ahead = client_mask;
    for (uint32_t k = 0; k < kPayloadPrefetchFrames && ahead != 0; ++k) {
      PrefetchPayload(static_cast<uint16_t>(__builtin_ctz(ahead)));
      ahead &= ahead - 1;
    }
    for (uint16_t i = 0; i < count; ++i) {
      if (client_mask >> i & 1) {
        if (ahead != 0) {
          PrefetchPayload(static_cast<uint16_t>(__builtin_ctz(ahead)));
          ahead &= ahead - 1;
        }
        // Checksums are verified here, not in pass 1: the payload has been prefetched
        // by now (in pass 1 every frame's payload was a demand miss).
        if (!ChecksumsHold(in[i], out[i].view)) {
          out[i].verdict = Verdict::kDrop;
          state[i].done = state[i].committed = true;
          continue;
        }
        ClientSegment(i);
      } else if (server_mask >> i & 1) {
        if (!ChecksumsHold(in[i], out[i].view)) {
          out[i].verdict = Verdict::kDrop;
          continue;
        }
        ServerSegment(i);
      }
    }
    // Pass 3: decide, act, settle flows.
    Flush();
  }

  // Pass 1 for frame `i`: parsed and counted, its verdict set where the frame is not
  // followed; a segment whose flow is followed has its flow hashed and its slot
  // prefetched. Returns which side of a flow it is on (kNone: not followed).
  Side Classify(uint16_t i, Arrival arrival) {
    FrameResult& res = results[i];
    res.verdict = Verdict::kForward;
    res.heads = 0;
    state[i] = FrameState();
    state[i].done = state[i].committed = true;
    ++counters.frames;
    const ParseResult pr = ParseFrame(frames[i].data, frames[i].bytes, parse_options, res.view);
    res.parse = pr;
    ++counters.parse[static_cast<int>(pr)];
    if (pr != ParseResult::kTcp) {
      if (!MayBeService(res.view)) return Side::kNone;
      if (IsFragment(pr) && config.on_fragment == FramePolicy::kDrop) {
        ++counters.fragments_dropped;
        res.verdict = Verdict::kDrop;
      } else if (IsMalformed(pr) && config.on_malformed_frame == FramePolicy::kDrop) {
        ++counters.malformed_frames_dropped;
        res.verdict = Verdict::kDrop;
      }
      return Side::kNone;
    }
    const PacketView& v = res.view;
    if (IsServicePort(v.dst_port) && arrival != Arrival::kServerPort) {
      ++counters.client_segments;
      // A pure ACK changes nothing we track: no lookup at all.
      if (v.payload_bytes == 0 && !(v.tcp_flags & (tcp_flags::kSyn | tcp_flags::kFin | tcp_flags::kRst))) {
        return Side::kNone;
      }
      if (!(v.tcp_flags & (tcp_flags::kAck | tcp_flags::kSyn | tcp_flags::kRst))) {
        // Data or FIN without ACK: Linux discards it (tcp_rcv_state_process), so it
        // must not move the stream either.
        ++counters.no_ack_segments_dropped;
        res.verdict = Verdict::kDrop;
        return Side::kNone;
      }
      flow_hash[i] = flows.Hash(v, true);
      flows.Prefetch(flow_hash[i]);
      state[i].done = state[i].committed = false;
      return Side::kClient;
    }
    if (IsServicePort(v.src_port) && arrival != Arrival::kClientPort) {
      ++counters.server_segments;
      if (v.payload_bytes > 0 || (v.tcp_flags & (tcp_flags::kSyn | tcp_flags::kFin | tcp_flags::kRst))) {
        flow_hash[i] = flows.Hash(v, false);
        flows.PrefetchWithResponse(flow_hash[i]);
        return Side::kServer;
      }
    }
    return Side::kNone;
  }
};

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kForward: return "forward";
    case Verdict::kDrop: return "drop";
    case Verdict::kForwardPrefix: return "forward_prefix";
    case Verdict::kReject: return "reject";
    case Verdict::kReset: return "reset";
  }
  return "?";
}

StatusOr<std::unique_ptr<PacketEngine>> PacketEngine::Create(const PacketConfig& config,
                                                             const RuleSet& rules,
                                                             Allocator& allocator,
                                                             const SipKey& sip_key,
                                                             int64_t now_ns) {
  if (config.max_head_bytes < 64 || config.max_head_bytes > 65536) {
    return Status::InvalidArgument("max_head_bytes must be in [64, 65536]");
  }
  if (config.max_flows == 0 || config.max_flows > (1u << 26)) {
    return Status::InvalidArgument("max_flows must be in [1, 2^26]");
  }
  if (config.identity_header.empty()) {
    return Status::InvalidArgument("identity_header must not be empty");
  }
  if (config.flow_idle_timeout_ns <= 0) {
    return Status::InvalidArgument("flow_idle_timeout_ns must be > 0");
  }
  if (config.partial_head_timeout_ns <= 0) {
    return Status::InvalidArgument("partial_head_timeout_ns must be > 0");
  }
  if (config.on_untracked_flow == HeadPolicy::kForward) {
    return Status::InvalidArgument("on_untracked_flow must be drop or reset");
  }
  if (rules.size() == 0) return Status::InvalidArgument("no rules compiled");
  // Sync slots always (8 bytes per entry): a reload may turn any rule synced.
  auto shard = BucketShard::Create(allocator, config.shard_users, now_ns, /*with_sync=*/true);
  if (!shard.ok()) return shard.status();
  auto impl = std::make_unique<Impl>(std::move(shard).value());
  impl->config = config;
  impl->rules = &rules;
  impl->head_options = HeadOptions{.identity_header = impl->config.identity_header,
                                   .max_identity_bytes = config.max_identity_bytes,
                                   .max_head_bytes = config.max_head_bytes,
                                   .max_header_lines = config.max_header_lines};
  impl->parse_options.max_ipv6_extension_headers = config.max_ipv6_extension_headers;
  // Three keys derived from one: flows, identities and addresses hash apart.
  const SipKey flow_key{sip_key.k0 ^ 0x666c6f77ULL, sip_key.k1};
  impl->identity_key = SipKey{sip_key.k0, sip_key.k1 ^ 0x6964656eULL};
  impl->address_key = SipKey{sip_key.k0 ^ 0x61646472ULL, sip_key.k1 ^ 0x61646472ULL};
  for (uint16_t port : config.service_ports) impl->service_ports[port / 64] |= uint64_t{1} << (port % 64);
  if (Status s = impl->flows.Init(allocator, flow_key); !s.ok()) return s;
  return std::unique_ptr<PacketEngine>(new PacketEngine(std::move(impl)));
}

PacketEngine::PacketEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PacketEngine::~PacketEngine() = default;

void PacketEngine::ProcessBurst(const Frame* frames, size_t count, int64_t now_ns,
                                FrameResult* results, Arrival arrival) {
  impl_->ProcessBurst(frames, count, now_ns, results, arrival);
}

void PacketEngine::SetRules(const RuleSet& rules) { impl_->rules = &rules; }

void PacketEngine::AttachSync(CoreSync* sync) { impl_->sync = sync; }

const EngineCounters& PacketEngine::counters() const { return impl_->counters; }
const ShardCounters& PacketEngine::shard_counters() const { return impl_->shard.counters(); }
const BucketShard& PacketEngine::shard() const { return impl_->shard; }
size_t PacketEngine::active_flows() const { return impl_->flows.live(); }
size_t PacketEngine::free_reassembly_buffers() const { return impl_->flows.pool().free_count(); }
size_t PacketEngine::memory_bytes() const {
  return impl_->flows.memory_bytes() + impl_->shard.memory_bytes();
}

}  // namespace dlb::packet
