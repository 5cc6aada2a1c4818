// Internal to the engine: the per-core flow table. Client->server connections are found
// by the keyed hash of their 4-tuple in a bounded window of slots; beside each FlowSlot
// sit its ResponseSlot and (with the PROXY protocol) the client its header named, and
// the table owns the reassembly buffers its flows hold. Idle flows are freed lazily,
// where a lookup meets them. The per-segment calls are inline: the engine is built
// without LTO.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dlb/packet/allocator.h"
#include "dlb/packet/client_address.h"
#include "dlb/packet/parse.h"
#include "dlb/siphash.h"
#include "dlb/status.h"
#include "engine_context.h"
#include "flow.h"

namespace dlb::packet::internal {

// Flows are looked up in a window of this many consecutive slots (bounded probing);
// a full window means no room for a new flow, never a longer search.
inline constexpr uint32_t kFlowProbeSlots = 8;
// How long a flow is remembered after the client's FIN: covers retransmissions of the
// last segment (several RTOs), short enough to free slots of busy servers quickly.
inline constexpr int64_t kFinLingerNs = 10'000'000'000;

class FlowTable {
 public:
  // Reads the idle timeout from ctx.config and the clock from ctx.now_ns; counts flows
  // created, expired and refused for want of a slot in ctx.counters.
  explicit FlowTable(EngineContext& ctx) : ctx_(ctx) {}
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Takes all the table's memory from `allocator` (which must outlive the table): slots
  // for ctx.config.max_flows flows, their response sides, their PROXY clients (with
  // proxy_protocol on) and the reassembly pool. Flows hash under `flow_key`.
  Status Init(Allocator& allocator, const SipKey& flow_key);

  // The keyed hash of a flow's 4-tuple, seen from either direction. An IPv4 flow hashes
  // a 12-byte key (one SipHash block and the tail), an IPv6 flow the 40-byte FlowKey:
  // SipHash mixes in the length, so the two forms cannot collide with each other.
  uint64_t Hash(const PacketView& v, bool client_to_server) const {
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
      h = SipHash13(flow_key_, k, sizeof k);
    } else {
      FlowKey k;
      std::memset(&k, 0, sizeof k);
      std::memcpy(k.client_addr, c, 16);
      std::memcpy(k.server_addr, s, 16);
      k.client_port = client_port;
      k.server_port = server_port;
      k.ip_version = v.ip_version;
      h = SipHash13(flow_key_, &k, sizeof k);
    }
    return h == 0 ? 1 : h;
  }

  // The first slot of a flow's window, fetched ahead of its lookup (with its response
  // side for a server segment).
  void Prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_], 1, 3); }
  void PrefetchWithResponse(uint64_t hash) const {
    const size_t slot = hash & mask_;
    __builtin_prefetch(&slots_[slot], 1, 3);
    __builtin_prefetch(&responses_[slot], 1, 3);
  }

  FlowSlot* Find(uint64_t hash, uint16_t client_port) {
    for (uint32_t i = 0; i < kFlowProbeSlots; ++i) {
      FlowSlot& f = slots_[(hash + i) & mask_];
      if (f.hash == hash && f.client_port == client_port) return &f;
    }
    return nullptr;
  }

  // The flow's slot, a new one (when `create`), or nullptr. Expired flows met on the
  // way are freed: the timeout is enforced lazily, where the slots are touched anyway.
  FlowSlot* FindOrCreate(uint64_t hash, uint16_t client_port, bool create, bool& created) {
    created = false;
    FlowSlot* free_slot = nullptr;
    for (uint32_t i = 0; i < kFlowProbeSlots; ++i) {
      FlowSlot& f = slots_[(hash + i) & mask_];
      if (f.hash != 0 && Expired(f) && !(f.flags & flow_flags::kPending)) {
        ++ctx_.counters.flows_expired;
        Erase(f);
      }
      if (f.hash == hash && f.client_port == client_port) return &f;
      if (f.hash == 0 && free_slot == nullptr) free_slot = &f;
    }
    if (!create) return nullptr;
    if (free_slot == nullptr) {
      ++ctx_.counters.flow_table_full;
      return nullptr;
    }
    Reset(*free_slot, hash, client_port);
    ++live_;
    ++ctx_.counters.flows_created;
    created = true;
    return free_slot;
  }

  // A new connection on the flow's 4-tuple: everything but its key starts afresh.
  void Renew(FlowSlot& f) {
    ReleaseBuffer(f);
    Reset(f, f.hash, f.client_port);
  }

  void Erase(FlowSlot& f) {
    ReleaseBuffer(f);
    f.hash = 0;
    f.flags = 0;
    --live_;
  }

  void ReleaseBuffer(FlowSlot& f) {
    if (f.buffer >= 0) {
      pool_.Release(f.buffer);
      f.buffer = -1;
    }
  }

  // The server's next expected byte as far as the engine knows: past the partial head
  // held in the buffer, if any (the server has those bytes).
  uint32_t StreamPos(const FlowSlot& f) const {
    return f.buffer >= 0 ? f.buf_seq + pool_.ContiguousEnd(f.buffer, f.next_seq - f.buf_seq) : f.next_seq;
  }

  ResponseSlot& ResponseOf(const FlowSlot& f) { return responses_[&f - slots_]; }
  const ResponseSlot& ResponseOf(const FlowSlot& f) const { return responses_[&f - slots_]; }

  // With proxy_protocol on: the client each flow's PROXY header named.
  bool has_proxy_clients() const { return proxy_clients_ != nullptr; }
  ClientAddress& ProxyClientOf(const FlowSlot& f) { return proxy_clients_[&f - slots_]; }
  const ClientAddress& ProxyClientOf(const FlowSlot& f) const { return proxy_clients_[&f - slots_]; }

  ReassemblyPool& pool() { return pool_; }
  const ReassemblyPool& pool() const { return pool_; }
  size_t live() const { return live_; }
  size_t memory_bytes() const;

 private:
  bool Expired(const FlowSlot& f) const {
    const int64_t idle_ns = ctx_.config.flow_idle_timeout_ns;
    const int64_t timeout =
        (f.flags & flow_flags::kFinished) && kFinLingerNs < idle_ns ? kFinLingerNs : idle_ns;
    return ctx_.now_ns - f.last_seen_ns > timeout;
  }

  void Reset(FlowSlot& f, uint64_t hash, uint16_t client_port) {
    f = FlowSlot();
    ResponseOf(f) = ResponseSlot();
    f.hash = hash;
    f.client_port = client_port;
  }

  EngineContext& ctx_;
  Allocator* allocator_ = nullptr;
  SipKey flow_key_;
  FlowSlot* slots_ = nullptr;
  ResponseSlot* responses_ = nullptr;       // beside slots_: the same index
  ClientAddress* proxy_clients_ = nullptr;  // beside slots_, with proxy_protocol on
  uint32_t mask_ = 0;
  size_t live_ = 0;
  ReassemblyPool pool_;
};

}  // namespace dlb::packet::internal
