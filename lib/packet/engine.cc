#include "dlb/packet/engine.h"

#include <cstring>
#include <new>

#include "dlb/packet/checksum.h"
#include "dlb/packet/client_address.h"
#include "dlb/packet/proxy_protocol.h"
#include "dlb/packet/shard_sync.h"
#include "flow.h"

namespace dlb::packet {

using internal::FlowKey;
using internal::FlowSlot;
using internal::Phase;
using internal::ResponseSlot;
namespace flow_flags = internal::flow_flags;
namespace response_flags = internal::response_flags;

namespace {

// Flows are looked up in a window of this many consecutive slots (bounded probing);
// a full window means no room for a new flow, never a longer search.
constexpr uint32_t kFlowProbeSlots = 8;
// Heads decided together; a frame with more pipelined heads flushes mid-frame.
constexpr size_t kMaxEvents = 64;
// Frames whose first cache line is fetched ahead of parsing (as DPDK's l3fwd does).
constexpr uint16_t kFramePrefetchAhead = 4;
// Payload prefetched per client segment: the whole of a typical request head (400-1000
// bytes; bounded by the payload). Prefetching only the first 512 bytes left the tail of
// longer heads to demand misses: ~10 ns per head frame more in bench_packet.
constexpr uint32_t kPayloadPrefetchBytes = 1024;
constexpr uint32_t kPayloadPrefetchFrames = 2;
// How long a flow is remembered after the client's FIN: covers retransmissions of the
// last segment (several RTOs), short enough to free slots of busy servers quickly.
constexpr int64_t kFinLingerNs = 10'000'000'000;

inline bool SeqBefore(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

// A standard method, one space, and the start of a target.
inline bool StartsWithKnownMethod(const uint8_t* p, uint32_t len) {
  uint32_t n = 0;
  while (n < len && n < 8 && p[n] != ' ') ++n;
  if (n + 1 >= len || p[n] != ' ') return false;
  if (MethodFromToken(std::string_view(reinterpret_cast<const char*>(p), n)) == Method::kOther) {
    return false;
  }
  const uint8_t t = p[n + 1];
  return t == '/' || t == '*' || (t >= 'a' && t <= 'z') || (t >= 'A' && t <= 'Z');
}

// Whether a head (request line to the empty line) has an Upgrade header field. Looked
// for in the first head of a connection only.
inline bool HasUpgradeField(const uint8_t* p, uint32_t len) {
  static constexpr char kName[] = "upgrade:";
  for (uint32_t i = 0; i + 9 < len; ++i) {
    if (p[i] != '\n') continue;
    uint32_t k = 0;
    while (k < 8 && (p[i + 1 + k] | 0x20) == kName[k]) ++k;  // ':' | 0x20 == ':'
    if (k == 8) return true;
  }
  return false;
}

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

}  // namespace

struct PacketEngine::Impl {
  PacketConfig config;
  const RuleSet* rules = nullptr;
  Allocator* allocator = nullptr;
  HeadOptions head_options;
  ParseOptions parse_options;
  SipKey flow_key;
  SipKey identity_key;
  SipKey address_key;  // a separate key: an identity header holding raw address bytes
                       // must not land in that address's bucket
  uint64_t service_ports[65536 / 64] = {};

  FlowSlot* flows = nullptr;
  ResponseSlot* responses = nullptr;  // beside flows: the same index
  ClientAddress* proxy_clients = nullptr;  // beside flows, with proxy_protocol on: the
                                           // client each flow's PROXY header named
  uint32_t flow_mask = 0;
  size_t live_flows = 0;
  internal::ReassemblyPool pool;
  BucketShard shard;
  EngineCounters counters;

  // Burst scratch.
  int64_t now_ns = 0;
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
  int64_t next_reclaim_scan_ns = 0;  // ReclaimStalledHeads: not before this time

  explicit Impl(BucketShard s) : shard(std::move(s)) {}
  ~Impl() {
    if (flows != nullptr) allocator->Free(flows);
    if (responses != nullptr) allocator->Free(responses);
    if (proxy_clients != nullptr) allocator->Free(proxy_clients);
  }

  ResponseSlot& ResponseOf(const FlowSlot& f) { return responses[&f - flows]; }
  const ResponseSlot& ResponseOf(const FlowSlot& f) const { return responses[&f - flows]; }

  bool IsServicePort(uint16_t port) const { return service_ports[port / 64] >> (port % 64) & 1; }

  // Whether a frame the engine cannot inspect (a fragment, a malformed frame) may carry
  // a service's bytes: TCP or an unknown protocol, to or from a service port or with
  // ports unknown.
  bool MayBeService(const PacketView& v) const {
    if (v.l4_protocol != 0 && v.l4_protocol != 6) return false;
    if (!v.has_ports) return true;
    return IsServicePort(v.dst_port) || IsServicePort(v.src_port);
  }

  // --- flow table -----------------------------------------------------------------

  // The keyed hash of a flow's 4-tuple, seen from either direction. An IPv4 flow hashes
  // a 12-byte key (one SipHash block and the tail), an IPv6 flow the 40-byte FlowKey:
  // SipHash mixes in the length, so the two forms cannot collide with each other.
  uint64_t FlowHash(const PacketView& v, bool client_to_server) const {
    const uint8_t* c = client_to_server ? v.src_addr : v.dst_addr;
    const uint8_t* s = client_to_server ? v.dst_addr : v.src_addr;
    const uint16_t client_port = client_to_server ? v.src_port : v.dst_port;
    const uint16_t server_port = client_to_server ? v.dst_port : v.src_port;
    uint64_t h;
    if (v.ip_version == 4) {
      uint32_t k[3];
      std::memcpy(&k[0], c, 4);
      std::memcpy(&k[1], s, 4);
      k[2] = uint32_t{client_port} | uint32_t{server_port} << 16;
      h = SipHash13(flow_key, k, sizeof k);
    } else {
      FlowKey k;
      std::memset(&k, 0, sizeof k);
      std::memcpy(k.client_addr, c, 16);
      std::memcpy(k.server_addr, s, 16);
      k.client_port = client_port;
      k.server_port = server_port;
      k.ip_version = v.ip_version;
      h = SipHash13(flow_key, &k, sizeof k);
    }
    return h == 0 ? 1 : h;
  }

  void ReleaseBuffer(FlowSlot& f) {
    if (f.buffer >= 0) {
      pool.Release(f.buffer);
      f.buffer = -1;
    }
  }

  void Erase(FlowSlot& f) {
    ReleaseBuffer(f);
    f.hash = 0;
    f.flags = 0;
    --live_flows;
  }

  bool Expired(const FlowSlot& f) const {
    const int64_t timeout = (f.flags & flow_flags::kFinished) && kFinLingerNs < config.flow_idle_timeout_ns
                                ? kFinLingerNs
                                : config.flow_idle_timeout_ns;
    return now_ns - f.last_seen_ns > timeout;
  }

  FlowSlot* FindFlow(uint64_t hash, uint16_t client_port) {
    for (uint32_t i = 0; i < kFlowProbeSlots; ++i) {
      FlowSlot& f = flows[(hash + i) & flow_mask];
      if (f.hash == hash && f.client_port == client_port) return &f;
    }
    return nullptr;
  }

  // The flow's slot, a new one (when `create`), or nullptr. Expired flows met on the
  // way are freed: the timeout is enforced lazily, where the slots are touched anyway.
  FlowSlot* FindOrCreateFlow(uint64_t hash, uint16_t client_port, bool create, bool& created) {
    created = false;
    FlowSlot* free_slot = nullptr;
    for (uint32_t i = 0; i < kFlowProbeSlots; ++i) {
      FlowSlot& f = flows[(hash + i) & flow_mask];
      if (f.hash != 0 && Expired(f) && !(f.flags & flow_flags::kPending)) {
        ++counters.flows_expired;
        Erase(f);
      }
      if (f.hash == hash && f.client_port == client_port) return &f;
      if (f.hash == 0 && free_slot == nullptr) free_slot = &f;
    }
    if (!create) return nullptr;
    if (free_slot == nullptr) {
      ++counters.flow_table_full;
      return nullptr;
    }
    *free_slot = FlowSlot();
    ResponseOf(*free_slot) = ResponseSlot();
    free_slot->hash = hash;
    free_slot->client_port = client_port;
    ++live_flows;
    ++counters.flows_created;
    created = true;
    return free_slot;
  }

  // --- stream ---------------------------------------------------------------------

  // The server's next expected byte as far as the engine knows: past the partial head
  // held in the buffer, if any (the server has those bytes).
  uint32_t StreamPos(const FlowSlot& f) const {
    return f.buffer >= 0 ? f.buf_seq + pool.ContiguousEnd(f.buffer, f.next_seq - f.buf_seq) : f.next_seq;
  }

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

  // A head that cannot be decided (not HTTP, malformed, too large), starting at
  // `head_seq`.
  void HeadPolicyEvent(FlowSlot& f, HeadPolicy policy, uint32_t head_seq) {
    switch (policy) {
      case HeadPolicy::kForward:
        f.phase = Phase::kPassthrough;
        return;
      case HeadPolicy::kDrop:
        Emit(EventKind::kPolicyDrop, head_seq, 0, 0);
        AfterEmit();
        return;
      case HeadPolicy::kReset:
        Emit(EventKind::kPolicyReset, head_seq, 0, 0);
        AfterEmit();
        return;
    }
  }

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
      if (proxy_clients != nullptr) {
        a = proxy_clients[state[current].flow - flows];
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

  // Frees the buffers of partial heads that started more than partial_head_timeout_ns
  // ago. Those heads can no longer be decided, so their flows are refused (reset) at
  // their next segment; until then the server holds an incomplete head, which it does
  // not execute. A scan of the pool, only when it is empty and at most four times per
  // timeout, so that an attacker who keeps it empty cannot make every segment pay for
  // a scan.
  bool ReclaimStalledHeads() {
    if (now_ns < next_reclaim_scan_ns) return false;
    next_reclaim_scan_ns = now_ns + config.partial_head_timeout_ns / 4;
    bool freed = false;
    for (uint32_t b = 0; b < pool.count(); ++b) {
      FlowSlot* owner = pool.Owner(static_cast<int32_t>(b));
      if (owner == nullptr || (owner->flags & flow_flags::kPending) ||
          now_ns - pool.SinceNs(static_cast<int32_t>(b)) <= config.partial_head_timeout_ns) {
        continue;
      }
      owner->next_seq = StreamPos(*owner);
      ReleaseBuffer(*owner);
      owner->phase = Phase::kRefused;
      ++counters.stalled_heads_reclaimed;
      freed = true;
    }
    return freed;
  }

  // Keeps an incomplete head that arrived in the packet itself: copied into a buffer at
  // offset 0 (buf_seq = the head's start).
  void StashHead(FlowSlot& f, const uint8_t* p, uint32_t len, uint32_t head_seq) {
    f.buffer = pool.Acquire(&f, now_ns);
    if (f.buffer < 0 && ReclaimStalledHeads()) f.buffer = pool.Acquire(&f, now_ns);
    if (f.buffer < 0) {
      // Forwarding the partial head would let it complete undecided: the segment is
      // dropped (heads before it in the segment go on) and the client retransmits it.
      ++counters.reassembly_buffers_exhausted;
      Emit(EventKind::kPolicyDrop, head_seq, 0, 0);
      AfterEmit();
      return;
    }
    f.buf_seq = f.next_seq;
    const uint32_t n = len < pool.bytes() ? len : pool.bytes();
    pool.Write(f.buffer, 0, p, n);
  }

  // Consumes contiguous stream bytes p[0, len) that start at f.next_seq.
  void Consume(FlowSlot& f, const uint8_t* p, uint32_t len, bool from_buffer) {
    while (len > 0) {
      switch (f.phase) {
        case Phase::kBody: {
          const uint32_t n = f.body_remaining < len ? static_cast<uint32_t>(f.body_remaining) : len;
          f.next_seq += n;
          p += n;
          len -= n;
          f.body_remaining -= n;
          if (f.body_remaining == 0) {
            f.phase = Phase::kHead;
            f.scan_from = 0;
          }
          break;
        }
        case Phase::kChunked: {
          size_t used = 0;
          const ChunkedDecoder::Result r = f.chunked.Feed(p, len, used);
          f.next_seq += static_cast<uint32_t>(used);
          p += used;
          len -= static_cast<uint32_t>(used);
          if (r == ChunkedDecoder::Result::kDone) {
            f.phase = Phase::kHead;
            f.scan_from = 0;
          } else if (r == ChunkedDecoder::Result::kError) {
            ++counters.malformed_chunked;
            HeadPolicyEvent(f, config.on_malformed_head, f.next_seq);
            return;
          }
          break;
        }
        case Phase::kProxyHeader:
          if (!ConsumeProxyHeader(f, p, len, from_buffer)) return;
          break;
        case Phase::kHead: {
          const uint32_t head_seq = f.next_seq;
          if (f.scan_from == 0) {
            // Empty lines before a request line are ignored (RFC 9112, 2.2); clients
            // send a stray CRLF after a body.
            while (len > 0 && (*p == '\r' || *p == '\n')) {
              ++p;
              --len;
              ++f.next_seq;
            }
            if (len == 0) return;
          }
          RequestHead head;
          HeadResult r;
          if (!from_buffer) {
            // The common case, a whole head in one segment: one pass finds and parses it.
            // Anything but a head is then told apart as before: what does not start like
            // a request is not HTTP, whatever the parser said about the rest.
            r = ParseRequestHead(p, len, head_options, head);
            if (r != HeadResult::kOk && CheckRequestStart(p, len) == HeadResult::kNotHttp) {
              r = HeadResult::kNotHttp;
            }
          } else {
            r = CheckRequestStart(p, len);
            if (r == HeadResult::kOk) {
              // A head growing in the buffer: find its end incrementally (a head sent a
              // byte at a time stays linear), parse it once complete.
              uint32_t head_bytes = 0;
              r = FindHeadEnd(p, len, config.max_head_bytes, f.scan_from, head_bytes);
              if (r == HeadResult::kOk) r = ParseRequestHead(p, head_bytes, head_options, head);
            }
          }
          if (r != HeadResult::kOk && r != HeadResult::kIncomplete && LooksLikeProxyHeader(p, len)) {
            // A PROXY header where none may be (not configured, or a second one): a
            // client naming its own address, or a stream the engine no longer follows.
            // Refused, whatever on_not_http says: a server that reads the header would
            // execute requests the engine passed through undecided.
            ++counters.proxy_header_unexpected;
            HeadPolicyEvent(f, RefusalPolicy(config.on_malformed_head), head_seq);
            return;
          }
          if (r == HeadResult::kNotHttp) {
            ++counters.not_http;
            if (f.flags & flow_flags::kSeenHead) {
              // Not a request where one must start: the server frames this stream in a
              // way the engine did not follow (or someone hopes it does). Refused;
              // on_not_http is for connections that never were HTTP.
              ++counters.desync_resets;
              HeadPolicyEvent(f, HeadPolicy::kReset, head_seq);
            } else {
              HeadPolicyEvent(f, config.on_not_http, head_seq);
            }
            return;
          }
          if (r == HeadResult::kTooLarge) {
            ++counters.oversize_heads;
            HeadPolicyEvent(f, config.on_oversize_head, head_seq);
            return;
          }
          if (r == HeadResult::kIncomplete) {
            if (!from_buffer) StashHead(f, p, len, head_seq);
            return;
          }
          const uint32_t head_bytes = head.head_bytes;
          if (r != HeadResult::kOk) {
            ++counters.malformed_heads;
            ++counters.malformed_head[static_cast<int>(r)];
            HeadPolicyEvent(f, config.on_malformed_head, head_seq);
            return;
          }
          const bool first = !(f.flags & flow_flags::kSeenHead);
          if (!OnHead(head, head_seq)) return;  // a flush stopped this frame (and rolled f back)
          f.flags |= flow_flags::kSeenHead;
          // A tunnel (CONNECT) or another protocol (Upgrade) follows only if the server
          // agrees. Followed for the first request of a connection, whose answer is the
          // server's first status line; later ones stay HTTP (if the server switches
          // anyway, the next client bytes are not a request: a desync, refused).
          const bool await_switch =
              first && !head.chunked && head.content_length == 0 &&
              (head.method == Method::kConnect || HasUpgradeField(p, head_bytes));
          f.next_seq += head_bytes;
          p += head_bytes;
          len -= head_bytes;
          f.scan_from = 0;
          if (await_switch) {
            f.phase = Phase::kAwaitSwitch;
            f.flags = static_cast<uint8_t>(head.method == Method::kConnect
                                               ? (f.flags | flow_flags::kAwaitConnect)
                                               : (f.flags & ~flow_flags::kAwaitConnect));
            return;
          }
          if (head.chunked) {
            f.phase = Phase::kChunked;
            f.chunked.Reset();
          } else if (head.content_length > 0) {
            f.phase = Phase::kBody;
            f.body_remaining = head.content_length;
          }
          break;
        }
        case Phase::kPassthrough:
        case Phase::kClosed:
        case Phase::kAwaitSwitch:
        case Phase::kRefused:
          return;
      }
    }
  }

  // A refusal that must not forward: kForward (passthrough) would let what follows
  // reach the server undecided, so it counts as kReset.
  static HeadPolicy RefusalPolicy(HeadPolicy p) { return p == HeadPolicy::kForward ? HeadPolicy::kReset : p; }

  // The PROXY header at the flow's start, p[0, len) at f.next_seq. Returns whether the
  // bytes after it are to be read as heads (kHead, p and len moved past the header);
  // otherwise the header is incomplete (held) or refused (a policy event is queued).
  bool ConsumeProxyHeader(FlowSlot& f, const uint8_t*& p, uint32_t& len, bool from_buffer) {
    ProxyHeader h;
    switch (ParseProxyHeader(p, len, config.proxy_protocol, config.max_head_bytes, h)) {
      case ProxyResult::kOk:
        break;
      case ProxyResult::kIncomplete:
        if (!from_buffer) StashHead(f, p, len, f.next_seq);
        return false;
      case ProxyResult::kMissing:
        ++counters.proxy_header_missing;
        HeadPolicyEvent(f, RefusalPolicy(config.on_malformed_head), f.next_seq);
        return false;
      case ProxyResult::kMalformed:
        ++counters.proxy_header_malformed;
        HeadPolicyEvent(f, RefusalPolicy(config.on_malformed_head), f.next_seq);
        return false;
      case ProxyResult::kTooLong:
        ++counters.proxy_header_too_long;
        HeadPolicyEvent(f, RefusalPolicy(config.on_malformed_head), f.next_seq);
        return false;
    }
    ClientAddress& client = proxy_clients[&f - flows];
    if (h.local) {
      // No address in the header: the connection's own source is the client.
      ++counters.proxy_headers_local;
      const PacketView& v = results[current].view;
      client.ip_version = v.ip_version == 4 ? 4 : 6;
      std::memset(client.bytes, 0, sizeof client.bytes);
      std::memcpy(client.bytes, v.src_addr, client.size());
    } else {
      ++counters.proxy_headers;
      client = h.source;
    }
    // The header goes on to the server, which expects it; heads start after it.
    f.flags |= flow_flags::kProxyDone;
    f.phase = Phase::kHead;
    f.scan_from = 0;
    f.next_seq += h.bytes;
    p += h.bytes;
    len -= h.bytes;
    return true;
  }

  // New client bytes of a flow waiting for the server's answer to CONNECT / Upgrade
  // (from `seq` on) are held back: cut off or dropped, retransmitted by the client.
  void HoldForSwitch(uint32_t seq) {
    ++counters.switch_held_segments;
    Emit(EventKind::kHold, seq, 0, 0);
    AfterEmit();
  }

  // A segment's payload p[0, len) at stream seq `seq`.
  void Stream(FlowSlot& f, const uint8_t* p, uint32_t len, uint32_t seq) {
    FrameState& fs = state[current];
    if (f.phase == Phase::kPassthrough) return;
    const uint32_t pos = fs.stream_pos;
    const uint32_t end = seq + len;
    if (SeqBefore(pos, seq)) {
      ++counters.out_of_order_segments;
      if (f.phase == Phase::kBody && f.buffer < 0 && !(f.flags & flow_flags::kServerHole) &&
          uint64_t{seq - f.next_seq} + len <= f.body_remaining) {
        // Ahead of order inside a Content-Length body: the bytes in between are body,
        // whatever they are, and so is this segment; no head can start before the
        // body's end, which stays where it is. The server has a hole before this
        // segment until the client retransmits the bytes in between: remembered, so
        // that nothing past the body is decided while the server could only queue it
        // out of order (where a longer copy with other bytes may replace it).
        ResponseSlot& side = ResponseOf(f);
        side.hole_start = pos;
        side.hole_end = seq;
        f.flags |= flow_flags::kServerHole;
        const uint32_t reach = end - f.next_seq;
        f.next_seq = end;
        f.body_remaining -= reach;
        if (f.body_remaining == 0) {
          f.phase = Phase::kHead;
          f.scan_from = 0;
        }
        return;
      }
      // Bytes after a gap must not reach the server before the gap's bytes are
      // decided: a limited head in the gap would otherwise be followed by bytes the
      // server already has. Dropped, never consumed; the client retransmits them.
      ++counters.out_of_order_dropped;
      results[current].verdict = Verdict::kDrop;
      fs.stopped = true;
      return;
    }
    if (SeqBefore(seq, pos)) {
      ++counters.retransmitted_segments;
      if (f.flags & flow_flags::kServerHole) {
        // A retransmission from the hole's start fills it (from there on).
        ResponseSlot& side = ResponseOf(f);
        if (!SeqBefore(side.hole_start, seq) && SeqBefore(side.hole_start, end)) {
          side.hole_start = end;
          if (!SeqBefore(side.hole_start, side.hole_end)) f.flags &= static_cast<uint8_t>(~flow_flags::kServerHole);
        }
      }
      // The overlap with bytes of the partial head the server holds must be the same
      // bytes: Linux may keep either copy, so a conflict means the engine cannot know
      // what the server reads.
      if (f.buffer >= 0) {
        const uint32_t from = SeqBefore(seq, f.buf_seq) ? f.buf_seq : seq;
        const uint32_t to = SeqBefore(end, pos) ? end : pos;
        if (SeqBefore(from, to) &&
            std::memcmp(pool.Data(f.buffer) + (from - f.buf_seq), p + (from - seq), to - from) != 0) {
          ++counters.conflicting_overlaps;
          Emit(EventKind::kPolicyReset, f.next_seq, 0, 0);
          AfterEmit();
          return;
        }
      }
      if (!SeqBefore(pos, end)) return;  // nothing new
      p += pos - seq;
      len = end - pos;
      seq = pos;
    }
    if ((f.flags & flow_flags::kServerHole) &&
        !(f.phase == Phase::kBody && uint64_t{end - f.next_seq} <= f.body_remaining)) {
      // Past the body while the server still has a hole in it: dropped as out of
      // order, retransmitted by the client once the hole is filled.
      ++counters.out_of_order_dropped;
      results[current].verdict = Verdict::kDrop;
      fs.stopped = true;
      return;
    }
    if (f.phase == Phase::kAwaitSwitch) {
      HoldForSwitch(seq);
      return;
    }
    if (f.buffer < 0) {
      Consume(f, p, len, false);
      if (f.phase == Phase::kAwaitSwitch && f.next_seq != seq + len) HoldForSwitch(f.next_seq);
      return;
    }
    // Appended to the held partial head. A segment larger than the room left is taken
    // in pieces: the held head ends in the first, what follows is consumed as usual.
    uint32_t off = seq - f.buf_seq;
    for (;;) {
      const uint32_t room = pool.bytes() - off;
      const uint32_t n = len < room ? len : room;
      pool.Write(f.buffer, off, p, n);
      const uint32_t start = f.next_seq - f.buf_seq;
      Consume(f, pool.Data(f.buffer) + start, off + n - start, true);
      p += n;
      len -= n;
      seq += n;
      if (fs.stopped) return;
      if (f.phase == Phase::kAwaitSwitch) {
        if (f.next_seq != seq + len) HoldForSwitch(f.next_seq);
        return;
      }
      if (len == 0 || f.phase == Phase::kPassthrough) return;
      if ((f.phase == Phase::kHead || f.phase == Phase::kProxyHeader) && f.next_seq == f.buf_seq) {
        return;  // a policy event is queued
      }
      // The buffer is about to change: heads queued from it are decided first, so that
      // a rollback never needs bytes that left the buffer.
      if (fs.pending_events > 0) {
        Flush();
        if (fs.stopped) return;
      }
      if (f.next_seq == seq) {
        // All held bytes consumed: the rest is read from the packet.
        ReleaseBuffer(f);
        Consume(f, p, len, false);
        if (f.phase == Phase::kAwaitSwitch && f.next_seq != seq + len) HoldForSwitch(f.next_seq);
        return;
      }
      // A new partial head at next_seq: moved to the buffer's start.
      const uint32_t shift = f.next_seq - f.buf_seq;
      pool.ShiftLeft(f.buffer, shift);
      f.buf_seq = f.next_seq;
      pool.SetSinceNs(f.buffer, now_ns);
      off = seq - f.buf_seq;
    }
  }

  // --- decisions ------------------------------------------------------------------

  // Undoes a dropped frame's effect on its flow: back to `head_seq` (the dropped head's
  // start) in `phase`; the bytes this frame added to the buffer are forgotten (the
  // client retransmits them), so nothing of a dropped frame counts as consumed.
  void Rollback(FrameState& fs, uint32_t head_seq, Phase phase = Phase::kHead) {
    FlowSlot& f = *fs.flow;
    // Back before the flow's PROXY header (a refused one): it is still to be read.
    f.phase = phase == Phase::kHead && proxy_clients != nullptr && !(f.flags & flow_flags::kProxyDone)
                  ? Phase::kProxyHeader
                  : phase;
    f.next_seq = head_seq;
    f.scan_from = 0;
    f.body_remaining = 0;
    f.chunked.Reset();
    if (f.buffer < 0) return;
    uint32_t from = SeqBefore(fs.seg_start, fs.stream_pos) ? fs.stream_pos : fs.seg_start;
    if (SeqBefore(from, f.buf_seq)) from = f.buf_seq;
    if (SeqBefore(from, fs.seg_end) && from - f.buf_seq < pool.bytes()) {
      pool.Clear(f.buffer, from - f.buf_seq, fs.seg_end - f.buf_seq);
    }
    // A head before the buffer's start means the buffer holds only this frame's bytes.
    if (SeqBefore(head_seq, f.buf_seq) || !pool.AnyFrom(f.buffer, 0)) ReleaseBuffer(f);
  }

  void Close(FrameState& fs) {
    ReleaseBuffer(*fs.flow);
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
      ResponseSlot& r = ResponseOf(f);
      if (!r.framer.lost()) ++counters.response_framing_lost;
      r.framer.SetLost();
      return;
    }
    if (head_request) ResponseOf(f).head_bits |= uint64_t{1} << f.responses_due;
    ++f.responses_due;
  }

  // Whose turn it is to send to the client on the flow of a client segment (`v`: its
  // ACK says what the client has of the server's stream).
  Turn TurnOf(const FlowSlot& f, const PacketView& v) const {
    const ResponseSlot& r = ResponseOf(f);
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
      if (e.kind == EventKind::kPolicyDrop || e.kind == EventKind::kHold) {
        Rollback(fs, e.head_seq, e.kind == EventKind::kHold ? Phase::kAwaitSwitch : Phase::kHead);
        CutOrDrop(fs, e.head_seq, res);
        fs.stopped = true;
        continue;
      }
      if (e.kind == EventKind::kForwarded) {
        Forwarded(*fs.flow, e.head_request);
        continue;
      }
      if (e.kind == EventKind::kPolicyReset) {
        if (TurnOf(*fs.flow, res.view) == Turn::kServer) {
          // A reset now would cut short a response owed to a request the server
          // already has. The refused bytes are dropped (what precedes them, decided, goes
          // on) and the flow is refused: its next segments are dropped until the
          // responses are through, then the connection is reset (ClientSegment).
          ++counters.resets_deferred;
          CutOrDrop(fs, e.head_seq, res);
          FlowSlot& f = *fs.flow;
          ReleaseBuffer(f);
          f.next_seq = res.verdict == Verdict::kForwardPrefix ? e.head_seq : fs.stream_pos;
          f.phase = Phase::kRefused;
          f.flags |= flow_flags::kResetDeferred;
          fs.stopped = true;
          continue;
        }
        ++counters.resets;
        Close(fs);
        res.verdict = Verdict::kReset;
        res.reset_seq = fs.stream_pos;
        fs.stopped = true;
        continue;
      }
      const CompiledRule& rule = rules->rule(e.rule);
      dlb::Decision d;
      bool limited;
      if (e.kind == EventKind::kLimitNoKey) {
        ++counters.identity_missing_limited;
        d = NoKeyDecision(rule);
        limited = true;
      } else if (const auto outcome =
                     sync != nullptr && rule.mode != Mode::kLocal
                         ? sync->Admit(shard, e.probe, e.rule, rule, now_ns, e.identity_kind,
                                       identities[&e - events], e.identity_len, d)
                         : shard.Admit(e.probe, rule.profile, now_ns, rule.cost, d);
                 outcome != BucketShard::Outcome::kTableFull) {
        if (outcome == BucketShard::Outcome::kWait) {
          // Synced rule, no lease yet, the global bucket not known full: never a 429.
          // The head is refused unanswered (its segment dropped, or cut off after the
          // decided heads before it) and decided again, against the lease asked for,
          // when the client retransmits it. A shadow rule never acts.
          ++counters.lease_wait_drops;
          if (rule.action == Action::kShadow) continue;
          Rollback(fs, e.head_seq);
          if (SeqBefore(fs.seg_start, e.head_seq) && SeqBefore(fs.stream_pos, e.head_seq)) {
            res.verdict = Verdict::kForwardPrefix;
            res.forward_bytes = e.head_seq - fs.seg_start;
          } else {
            res.verdict = Verdict::kDrop;
          }
          fs.stopped = true;
          continue;
        }
        limited = outcome == BucketShard::Outcome::kLimited;
      } else {
        ++counters.shard_table_full;
        if (rule.on_table_full == OverflowPolicy::kAllow) {
          ++counters.shard_table_full_allowed;
          limited = false;
        } else {
          ++counters.shard_table_full_limited;
          d = NoKeyDecision(rule);
          limited = true;
        }
      }
      if (!limited) {
        ++counters.allowed;
        Forwarded(*fs.flow, e.head_request);
        continue;
      }
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
        continue;
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
          fs.stopped = true;
          break;
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
      if (f->phase == Phase::kPassthrough || StreamPos(*f) == fs.seg_end) {
        // The client is done sending: nothing more to decide. The slot lingers (until
        // kFinLingerNs, or the RST / new SYN of the 4-tuple) so that a retransmission
        // of this segment is not taken for a new connection and decided again.
        ++counters.flows_closed;
        ReleaseBuffer(*f);
        f->phase = Phase::kPassthrough;
        f->flags |= flow_flags::kFinished;
        f->next_seq = fs.seg_end + 1;
        return;
      }
      ++counters.fins_ignored;
    }
    if (f->buffer < 0) return;
    if (f->phase != Phase::kHead && f->phase != Phase::kBody && f->phase != Phase::kChunked &&
        f->phase != Phase::kProxyHeader) {
      ReleaseBuffer(*f);
      return;
    }
    const uint32_t shift = f->next_seq - f->buf_seq;
    if (shift >= pool.bytes() || !pool.AnyFrom(f->buffer, shift)) {
      ReleaseBuffer(*f);
      return;
    }
    if (shift > 0) {
      pool.ShiftLeft(f->buffer, shift);
      f->buf_seq = f->next_seq;
      pool.SetSinceNs(f->buffer, now_ns);  // a new head started
    }
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
    return seq == StreamPos(f);
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

  void ClientSegment(uint16_t i) {
    FrameResult& res = results[i];
    const PacketView& v = res.view;
    FrameState& fs = state[i];
    const uint8_t flags = v.tcp_flags;
    const bool syn = flags & tcp_flags::kSyn;
    const bool rst = flags & tcp_flags::kRst;
    const bool fin = flags & tcp_flags::kFin;
    const uint64_t hash = flow_hash[i];

    if (rst) {
      if (FlowSlot* f = FindFlow(hash, v.src_port)) {
        if (f->flags & flow_flags::kPending) {
          Flush();  // an earlier frame of this flow in the burst is settled first
          f = FindFlow(hash, v.src_port);
        }
        if (f != nullptr) {
          if (RstAcceptable(*f, v.seq)) {
            if (!(f->flags & flow_flags::kFinished)) ++counters.flows_closed;
            Erase(*f);
          } else {
            ++counters.rsts_ignored;  // forwarded: the server answers a challenge ACK
          }
        }
      }
      fs.done = fs.committed = true;
      return;
    }
    // Only a SYN starts a flow: the engine must see a connection from its start to know
    // where its heads begin.
    bool fresh = false;
    FlowSlot* f = FindOrCreateFlow(hash, v.src_port, syn, fresh);
    if (f != nullptr && (f->flags & flow_flags::kPending)) {
      // An earlier frame of this flow in the burst must be settled first (its verdict
      // may roll the flow back, close it, or end it with its FIN).
      Flush();
      f = FindOrCreateFlow(hash, v.src_port, syn, fresh);
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
      return;
    }
    if (syn && !fresh && !(f->flags & flow_flags::kFinished) && f->phase != Phase::kClosed) {
      // RFC 5961 4.2, as Linux: a SYN on a synchronized connection changes nothing (the
      // server answers a challenge ACK). A new connection on the 4-tuple comes after
      // the old one's FIN or RST.
      ++counters.syns_ignored;
      fs.done = fs.committed = true;
      return;
    }
    f->last_seen_ns = now_ns;
    uint32_t seq = v.seq;
    if (syn) {
      // A new connection (or a reused 4-tuple): the stream starts after the SYN.
      ReleaseBuffer(*f);
      const FlowSlot old = *f;
      *f = FlowSlot();
      ResponseOf(*f) = ResponseSlot();
      f->hash = old.hash;
      f->client_port = old.client_port;
      f->last_seen_ns = now_ns;
      f->next_seq = seq + 1;
      if (proxy_clients != nullptr) f->phase = Phase::kProxyHeader;
      seq += 1;  // data on a SYN (TCP Fast Open) follows the SYN's sequence number
    }
    fs.flow = f;
    if (f->phase == Phase::kClosed) {
      ++counters.closed_flow_segments_dropped;
      res.verdict = Verdict::kDrop;
      if (fin) Erase(*f);
      fs.flow = nullptr;
      fs.done = fs.committed = true;
      return;
    }
    if (f->phase == Phase::kRefused) {
      if (TurnOf(*f, v) == Turn::kServer) {
        ++counters.resets_deferred;  // responses owed: the reset waits for them
        res.verdict = Verdict::kDrop;
        fs.flow = nullptr;
        fs.done = fs.committed = true;
        return;
      }
      if (!(f->flags & flow_flags::kResetDeferred)) ++counters.stalled_heads_reset;
      ++counters.resets;
      res.verdict = Verdict::kReset;
      res.reset_seq = f->next_seq;
      f->phase = Phase::kClosed;
      fs.flow = nullptr;
      fs.done = fs.committed = true;
      return;
    }
    if (f->flags & flow_flags::kFinished) {
      // Bytes past the FIN: Linux discards them, and so they are never decided.
      if (v.payload_bytes > 0 && SeqBefore(f->next_seq - 1, seq + v.payload_bytes)) {
        ++counters.data_after_fin_dropped;
        res.verdict = Verdict::kDrop;
      }
      fs.flow = nullptr;
      fs.done = fs.committed = true;
      return;
    }
    fs.fin = fin;
    fs.seg_start = seq;
    fs.seg_end = seq + v.payload_bytes;
    fs.stream_pos = StreamPos(*f);
    if (v.payload_bytes > 0) {
      current = i;
      Stream(*f, frames[i].data + v.payload_offset, v.payload_bytes, seq);
      if (fs.pending_events > 0) f->flags |= flow_flags::kPending;
    }
    fs.done = true;
    if (!(f->flags & flow_flags::kPending)) Commit(i);
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
    FlowSlot* f = FindFlow(hash, v.dst_port);
    if (f == nullptr) return;
    if (f->flags & flow_flags::kPending) {
      Flush();
      f = FindFlow(hash, v.dst_port);  // the flush may have ended it
      if (f == nullptr) return;
    }
    if (v.tcp_flags & tcp_flags::kRst) {
      if (!(f->flags & flow_flags::kFinished)) ++counters.flows_closed;
      Erase(*f);
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
    ResponseSlot& r = ResponseOf(f);
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
      FrameResult& res = out[i];
      res.verdict = Verdict::kForward;
      res.heads = 0;
      state[i] = FrameState();
      state[i].done = state[i].committed = true;
      ++counters.frames;
      const ParseResult pr = ParseFrame(in[i].data, in[i].bytes, parse_options, res.view);
      res.parse = pr;
      ++counters.parse[static_cast<int>(pr)];
      if (pr != ParseResult::kTcp) {
        if (!MayBeService(res.view)) continue;
        if (IsFragment(pr) && config.on_fragment == FramePolicy::kDrop) {
          ++counters.fragments_dropped;
          res.verdict = Verdict::kDrop;
        } else if (IsMalformed(pr) && config.on_malformed_frame == FramePolicy::kDrop) {
          ++counters.malformed_frames_dropped;
          res.verdict = Verdict::kDrop;
        }
        continue;
      }
      const PacketView& v = res.view;
      if (IsServicePort(v.dst_port) && arrival != Arrival::kServerPort) {
        ++counters.client_segments;
        // A pure ACK changes nothing we track: no lookup at all.
        if (v.payload_bytes == 0 &&
            !(v.tcp_flags & (tcp_flags::kSyn | tcp_flags::kFin | tcp_flags::kRst))) {
          continue;
        }
        if (!(v.tcp_flags & (tcp_flags::kAck | tcp_flags::kSyn | tcp_flags::kRst))) {
          // Data or FIN without ACK: Linux discards it (tcp_rcv_state_process), so it
          // must not move the stream either.
          ++counters.no_ack_segments_dropped;
          res.verdict = Verdict::kDrop;
          continue;
        }
        flow_hash[i] = FlowHash(v, true);
        __builtin_prefetch(&flows[flow_hash[i] & flow_mask], 1, 3);
        client_mask |= 1u << i;
        state[i].done = state[i].committed = false;
      } else if (IsServicePort(v.src_port) && arrival != Arrival::kClientPort) {
        ++counters.server_segments;
        if (v.payload_bytes > 0 || (v.tcp_flags & (tcp_flags::kSyn | tcp_flags::kFin | tcp_flags::kRst))) {
          flow_hash[i] = FlowHash(v, false);
          const size_t slot = flow_hash[i] & flow_mask;
          __builtin_prefetch(&flows[slot], 1, 3);
          __builtin_prefetch(&responses[slot], 1, 3);
          server_mask |= 1u << i;
        }
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
  impl->allocator = &allocator;
  impl->head_options = HeadOptions{.identity_header = impl->config.identity_header,
                                   .max_identity_bytes = config.max_identity_bytes,
                                   .max_head_bytes = config.max_head_bytes,
                                   .max_header_lines = config.max_header_lines};
  impl->parse_options.max_ipv6_extension_headers = config.max_ipv6_extension_headers;
  // Three keys derived from one: flows, identities and addresses hash apart.
  impl->flow_key = SipKey{sip_key.k0 ^ 0x666c6f77ULL, sip_key.k1};
  impl->identity_key = SipKey{sip_key.k0, sip_key.k1 ^ 0x6964656eULL};
  impl->address_key = SipKey{sip_key.k0 ^ 0x61646472ULL, sip_key.k1 ^ 0x61646472ULL};
  for (uint16_t port : config.service_ports) impl->service_ports[port / 64] |= uint64_t{1} << (port % 64);

  // Flow slots: a power of two with room to spare, so that the 8-slot window rarely
  // fills before max_flows are live.
  uint32_t slots = 16;
  while (slots < config.max_flows + config.max_flows / 2) slots <<= 1;
  impl->flows = static_cast<FlowSlot*>(allocator.Allocate(size_t(slots) * sizeof(FlowSlot), 64));
  if (impl->flows == nullptr) return Status::Unavailable("flow table: allocation failed");
  for (uint32_t i = 0; i < slots; ++i) new (&impl->flows[i]) FlowSlot();
  impl->flow_mask = slots - 1;
  impl->responses = static_cast<ResponseSlot*>(allocator.Allocate(size_t(slots) * sizeof(ResponseSlot), 64));
  if (impl->responses == nullptr) return Status::Unavailable("response table: allocation failed");
  for (uint32_t i = 0; i < slots; ++i) new (&impl->responses[i]) ResponseSlot();
  if (config.proxy_protocol != ProxyProtocol::kOff) {
    impl->proxy_clients = static_cast<ClientAddress*>(allocator.Allocate(size_t(slots) * sizeof(ClientAddress), 64));
    if (impl->proxy_clients == nullptr) return Status::Unavailable("PROXY client table: allocation failed");
    for (uint32_t i = 0; i < slots; ++i) new (&impl->proxy_clients[i]) ClientAddress();
  }
  if (!impl->pool.Init(allocator, config.reassembly_buffers, config.max_head_bytes)) {
    return Status::Unavailable("reassembly pool: allocation failed");
  }
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
size_t PacketEngine::active_flows() const { return impl_->live_flows; }
size_t PacketEngine::free_reassembly_buffers() const { return impl_->pool.free_count(); }
size_t PacketEngine::memory_bytes() const {
  return (size_t(impl_->flow_mask) + 1) *
             (sizeof(FlowSlot) + sizeof(ResponseSlot) + (impl_->proxy_clients != nullptr ? sizeof(ClientAddress) : 0)) +
         impl_->pool.memory_bytes() +
         impl_->shard.memory_bytes();
}

}  // namespace dlb::packet
