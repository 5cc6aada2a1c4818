// Global sync of the per-core shards: mode `synced` (and `strict`) for the packet engine
// (docs/design.md, "Accuracy modes", "Failure policy", "Appliance sync"; docs/appliance.md).
//
// Workers (one PacketEngine per core) never block and never call Redis. One control
// thread (the appliance's control lcore) owns a ShardSync for all the engines of the
// process and calls Round(now_ns) every sync interval I (default 5 ms) and ReturnAll()
// at shutdown. Each core is one participant of the lease protocol (it announces
// itself; N below counts live participants of every form).
//
// ## State per synced bucket per core
//
// The shard entry of a synced bucket has a SyncSlot beside it (shard.h, 16 bytes):
//   avail   (atomic int32): units the worker may admit: leased units (charged in Redis)
//           plus credit units (not charged yet); < 0: units owed (admitted by the
//           failure policy). kNotSynced: not tracked by the control thread.
//   demand  (atomic uint32, written by the worker only): requests seen, wrapping.
//   full_until_ns (atomic int64): until when Redis's ledger is known to hold no room
//           for this core's next request (below, "No false 429"); 0: not known full.
// The worker admits a request of cost n iff it can CAS avail from a >= n to a - n.
// The control thread never writes a slot it does not track. It knows what it last put
// into avail (lease L and credit K), so the worker's consumption since then is
// L + K - avail; units count as lease first. It takes units back with one CAS (keeping
// the part of the unused lease the next interval needs, and the unused credit, so that
// the worker is not left short while the round is in flight), adds grant + new credit
// - the credit kept with fetch_add (the credit kept is withdrawn if the round fails),
// and ends tracking with exchange(kNotSynced): from then on the worker owns
// the entry again (it may reuse it for another key). No ABA on a slot index: a slot is
// never reused or moved while tracked (BucketShard checks avail), and it is tracked
// from the moment its registration is popped until that exchange.
//
// New buckets: the worker knows a request's identity bytes only while it decides it.
// When a synced request finds its entry untracked (avail == kNotSynced), the worker
// sets avail to a credit of c0 = max(1, min(new_bucket_credit, floor(C / N))) units
// (default 1; none if c0 is less than the rule's cost) and pushes {slot, tag, rule, credit, identity} into its core's
// single-producer/single-consumer ring (preallocated; a full ring or an identity longer
// than kSyncIdentityBytes is counted and the request is decided by the share bucket
// below, the slot staying untracked: "stays local"). The control thread pops it,
// computes the Redis key (dlb::RedisKey(identity, rule name): the key the library and
// dlbctl use, so all forms share one bucket; an address identity is its text,
// "ip:192.0.2.1" / "ip:2001:db8::1") and tracks the slot.
//
// ## Round (control thread, every I)
//
// For each tracked bucket, with n = demand since the previous round:
//   target = min(C, ceil(headroom * n * cost) + cost) units if n > 0 (n counts the
//            requests that waited too: the lease grows with the demand; cost is the
//            rule's), else one request's cost if the bucket saw a request in the last
//            `standing_rounds` rounds (a standing unit: a user with less than one
//            request per core per interval is admitted at once; not more, as a unit
//            held while the ledger leaks may be admitted twice), else 0;
//   used   = L + K - avail; debit = max(0, used - L) (credit used, owed units);
//   keep   = min(unused lease, target) stays leased (no rejection while the round is
//            in flight); return = unused lease - keep; want = target - keep.
// Buckets with nothing to return, debit or ask for are not sent (their credit stays).
// The others go to Redis in pipelined round trips of EVALSHAs of the settle script
// (lib/redis/lease_script.h, sent by lib/redis/lease_round.h; `chunk` buckets per
// call): on Redis's clock, return
// (never below empty), debit (saturating at full), then grant = min(want, room). After
// the reply avail += grant + K', with the new credit
//   K' = min(max_credit, floor(floor(C - level) / N))   (0 for strict rules),
// this core's share of the room Redis reported (level after the step, N live
// participants): the N shares of all participants fit in the room. A bucket untouched
// for `idle_rounds_to_forget` rounds is settled a last time and untracked.
//
// ## A request that finds no lease and no credit: no false 429
//
// Redis reachable: limited only when local knowledge proves the global bucket has no
// room for it; otherwise it waits. The proof: the slot's last settle left Redis's
// ledger with room < cost (the lease just granted counted: the ledger is full), and
// this core's share of what has leaked since, r/N per second from the round's start,
// holds no room for the request: full_until_ns = t_round + (N * cost - (C - level)) * T.
// A request that finds no lease after full_until_ns claims one share (full_until_ns
// += N * cost * T) and waits, as does every such request when the ledger was not full.
// Limited: a 429 with Retry-After = full_until_ns - now (at least one emission
// interval). Waiting (BucketShard::Outcome::kWait, counted lease_waits): the engine
// refuses the head without an answer (drops its segment, or cuts it off a pipelined
// segment after the decided heads, counted lease_wait_drops) so that the client
// retransmits it; the demand it counted sizes the next lease, and RoundWanted() tells
// the control thread to run the round now. The retransmission is decided against the
// lease (or against the proof the round brought). Redis unreachable, or bucket untracked
// (ring full): the rule's on_store_failure, with `local` = the share bucket: the entry's
// own GCRA state with capacity max(C/N, 1) and leak rate r/N (C, r with cost n*N;
// BucketShard::AdmitShare). Admissions by the share bucket and by `open` of a tracked
// slot are owed (avail < 0) and charged once when Redis is back.
//
// ## Accuracy bound
//
// Notation as lib/sync/sync_engine.h: per user u, capacity C, leak rate r; H = the
// longest time a unit is held between its charge and its use (the longest gap between
// two rounds' snapshots of a slot, a standing unit's hold of up to standing_rounds
// intervals, plus the decision latency); l_{p,u} the lease core p holds
// (<= min(C, ceil(1.5 n) + 1), n its demand per round); K_{p,u} its credit (<= room/N
// at its last round); s_u the core slots created for u. Per user and per saturation
// episode (between two instants at which the exact bucket is empty, in which something
// was rejected), with Redis reachable:
//
//   over_u  <= ceil(r * H) + 1 + sum_p max_t K_{p,u}(t)     (+ c0 per slot created)
//   under_u <= sum_p max_t l_{p,u}(t) + ceil(r * H) + 1      (+ J_u)
//
// Leased admissions are charged before they are used (no over-admission against the
// Redis ledger), as in the library; the r*H term is a unit charged at one round and
// used up to H later. Waiting admits nothing: the over bound does not depend on it. Credits are the only admissions charged after the fact: a core
// holds at most floor(room/N) of them, granted when Redis had that room, so the credits
// of all N participants together fit in the room of their rounds; they overshoot only
// when others filled that room before the debits arrived (at most sum_p K per episode:
// near the limit K is 0; a credit kept through a round is part of the K it was granted
// as, and the uncharged credit of a core never exceeds the larger of two consecutive
// K). Under-admission is units leased but not used yet (returned at the next round);
// J_u counts requests limited while a core's demand jumped past its lease: since they
// wait instead, it is 0 here, and under_u is bounded by the leases alone.
//
// No false 429: a core answers 429 only while Redis's ledger, as of its last round,
// minus what leaked since (1/N of it its own), has no room. The ledger exceeds the exact
// bucket by the other participants' unused leases (sum_{q!=p} l_q), the debit delay
// of credit units (at most r*H) and the share of the leak left to others. So a request
// is rejected only while the exact bucket's room is below
//   cost + sum_{q!=p} max_t l_{q,u}(t) + ceil(r * H) + (N - 1) / N * r * (t - t_round)
// With one participant touching the user (N = 1, no other lease) that is cost + r*H:
// a request the exact bucket admits is not rejected but for a unit's debit delay.
// While Redis is unreachable the share buckets admit at most max(C/N, 1) + (r/N) t per
// core over an outage of length t, owed and charged once afterwards.
//
// Measured (tests/sync/sim.h, `dlb_sim --packet`: 2 appliances x 4 packet cores + 2
// library processes against one Redis and an exact oracle, I = 5 ms; heads that waited
// are sent again two intervals later): docs/performance.md, "Appliance sync accuracy",
// and docs/sync.md (with the false-reject figures); the gtest asserts the bound per user
// with the measured H, lease and credit peaks and slots created.
//
// Exactly once: every settle call carries (round key, round id) and Redis keeps its
// reply for a minute (lib/redis/lease_script.h). A round trip whose reply is lost is
// re-sent verbatim before anything else, so its returns and debits are applied once and
// its grants are learned. Requests admitted meanwhile on credit or by the failure
// policy stay in avail and go into a later round.
//
// Mode `strict` in the packet path: a worker cannot wait for Redis, so strict rules are
// synced rules without headroom (target = n * cost), without standing units and without
// credit (a new slot's first request waits and asks for a lease): every admission
// is charged in Redis before it is used. Near-exact for steady traffic; a burst is
// admitted one round late.
//
// Memory: 16 bytes of shard entry + 16 of SyncSlot per entry, at the shard's 0.8 load:
// 40 bytes per user per core. The control thread keeps ~100 bytes per tracked bucket
// (its Redis key and round state), off the data path. The shard is always created with
// sync slots (a reload may make any rule synced).
//
// Cost: one bucket operation in Redis per tracked bucket with something to settle per
// round (a few microseconds of Redis CPU, batched); idle tracked buckets cost nothing
// until they are forgotten.
//
// Use: create the engines, then ShardSync::Create (it attaches to them), call Round()
// once before the workers start (the first announce tells N), then every interval.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/packet/allocator.h"
#include "dlb/packet/rules.h"
#include "dlb/packet/shard.h"
#include "dlb/status.h"

namespace dlb {
namespace redis {
class Pool;
}

namespace packet {

class PacketEngine;

inline constexpr size_t kSyncIdentityBytes = 256;

enum class IdentityKind : uint8_t { kHeader, kIpv4, kIpv6 };

// A newly tracked synced bucket, from a worker to the control thread.
struct SyncRegistration {
  uint32_t slot = 0;
  uint32_t tag = 0;
  uint16_t rule = 0;
  IdentityKind kind = IdentityKind::kHeader;
  uint8_t reserved = 0;
  uint16_t identity_len = 0;
  uint16_t reserved2 = 0;
  int32_t credit = 0;
  uint8_t identity[kSyncIdentityBytes];
};

// Worker-side counters of one core (written by the worker only, relaxed).
#define DLB_SYNC_WORKER_COUNTERS(X)                                                       \
  X(lease_admitted, "lease_admitted")       /* against a lease */                        \
  X(credit_admitted, "credit_admitted")     /* a new bucket's credit */                  \
  X(no_lease_limited, "no_lease_limited")   /* no lease, Redis full at the last round */ \
  X(lease_waits, "lease_waits")             /* no lease, not known full: asked, head refused */ \
  X(registrations, "registrations")         /* new buckets handed to the control thread */ \
  X(ring_full, "ring_full")                 /* registration refused: ring full */        \
  X(identity_too_long, "identity_too_long") /* registration refused: identity too long */ \
  X(share_admitted, "share_admitted")       /* share bucket (local policy, untracked) */ \
  X(share_limited, "share_limited")                                                      \
  X(open_admitted, "open_admitted")         /* store down, policy open */                \
  X(closed_limited, "closed_limited")       /* store down, policy closed */

// The channel between one worker core and the control thread: the registration ring
// and what the control thread publishes to the worker.
class CoreSync {
 public:
  CoreSync(SyncRegistration* ring, size_t ring_entries, int core);

  // Worker: decides a request of a synced or strict rule in `shard` (created
  // with_sync). Never blocks. `identity` is copied only when the bucket is new.
  BucketShard::Outcome Admit(BucketShard& shard, const ShardProbe& probe, uint16_t rule_index,
                             const CompiledRule& rule, int64_t now_ns, IdentityKind kind,
                             const uint8_t* identity, size_t identity_len, dlb::Decision& limited);

  // Control thread.
  bool Pop(SyncRegistration* out);
  // Whether a request waited for a lease since the last call (which clears it): the
  // control thread may run its round at once instead of at the next interval.
  bool TakeRoundWanted() {
    return round_wanted_.load(std::memory_order_relaxed) && round_wanted_.exchange(false, std::memory_order_acq_rel);
  }
  void SetStoreDown(bool down) { store_down_.store(down, std::memory_order_release); }
  void SetParticipants(int32_t n) { participants_.store(n < 1 ? 1 : n, std::memory_order_relaxed); }
  void SetNewBucketCredit(int32_t units) { new_bucket_credit_ = units < 1 ? 1 : units; }
  bool store_down() const { return store_down_.load(std::memory_order_acquire); }
  int core() const { return core_; }

  struct Counters {
#define DLB_X(field, name) std::atomic<uint64_t> field{0};
    DLB_SYNC_WORKER_COUNTERS(DLB_X)
#undef DLB_X
  };
  const Counters& counters() const { return counters_; }

 private:
  static void Bump(std::atomic<uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  bool Push(uint32_t slot, uint32_t tag, uint16_t rule, int32_t credit, IdentityKind kind,
            const uint8_t* identity, size_t identity_len);
  BucketShard::Outcome Failed(BucketShard& shard, size_t slot, SyncSlot& s, const CompiledRule& rule,
                              int64_t now_ns, dlb::Decision& limited);
  static void NoLease(const CompiledRule& rule, dlb::Decision& limited);
  BucketShard::Outcome Wait();

  // Ring indices on their own lines: head written by the worker, tail by the control
  // thread.
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) std::atomic<bool> store_down_{false};
  std::atomic<bool> round_wanted_{false};  // set by the worker, cleared by the control thread
  std::atomic<int32_t> participants_{1};
  int32_t new_bucket_credit_ = 1;  // set before the workers start
  SyncRegistration* const ring_;
  const uint64_t mask_;
  const int core_;
  alignas(64) Counters counters_;
};

struct ShardSyncOptions {
  // How often the caller runs Round(): the I of the bound.
  std::chrono::microseconds interval{5000};
  // Deadline of one round trip (a pipeline of up to `calls_per_round_trip` calls).
  std::chrono::microseconds deadline{5000};
  double headroom = 1.5;
  // A bucket that saw a request in this many recent rounds keeps one leased unit (0:
  // none), so that a user with less than one request per core per interval is admitted
  // at once instead of after a round.
  int standing_rounds = 100;
  // A tracked bucket with nothing to settle for this many rounds is untracked.
  int idle_rounds_to_forget = 200;
  size_t chunk = 256;
  size_t calls_per_round_trip = 16;
  // Participant ids are "<participant_prefix>:<core>"; empty = a random prefix. Each
  // core is announced with this TTL every ttl/3.
  std::string participant_prefix;
  std::chrono::milliseconds participant_ttl{3000};
  // Live participants assumed until the first announce reply (the share and credit).
  int32_t initial_participants = 1;
  // The credit of a new slot: min(this, max(1, floor(C / N))) units, admitted before the
  // control thread knows the bucket. Every unit of it is a possible over-admission (it
  // is charged afterwards); 1 lets a new user in at once.
  int32_t new_bucket_credit = 1;
  // The credit published after a round: floor(floor(C - level) / N) units per core,
  // at most this many (level as Redis reported it after the round; N live
  // participants). 0 disables it.
  int64_t max_credit = int64_t{1} << 20;
  size_t ring_entries = 4096;           // per core, a power of two
  // Breaker: this many failed round trips in a row mark the store down; retried with
  // an exponential back-off between these bounds.
  int failure_threshold = 2;
  std::chrono::microseconds backoff_min{10000};
  std::chrono::microseconds backoff_max{1000000};
  // How long Redis keeps a round's reply for an exact re-send.
  std::chrono::milliseconds round_reply_ttl{60000};
  // Record each bucket's peak lease (the simulation's bound); costs a map lookup per
  // grant.
  bool record_peaks = false;
};

struct ShardSyncStats {
  uint64_t rounds = 0;
  uint64_t round_failures = 0;       // round trips that failed or were refused
  uint64_t resent_calls = 0;         // settle calls re-sent after a lost reply
  uint64_t redis_calls = 0;          // EVALSHAs sent (settle and announce)
  uint64_t bucket_ops = 0;           // buckets settled in those calls
  uint64_t granted_units = 0;
  uint64_t returned_units = 0;
  uint64_t debited_units = 0;        // credit and failure-policy admissions charged
  uint64_t tracked_total = 0;        // buckets tracked
  uint64_t forgotten = 0;            // buckets untracked after idling
  uint64_t rejected_registrations = 0;  // unknown rule or mode local by now
  int64_t live_participants = 0;     // 0 until the first announce succeeded
  int64_t max_gap_ns = 0;            // longest time between two rounds' snapshots
  int64_t last_round_ns = 0;         // duration of the last Round()
  size_t tracked = 0;
  bool store_down = false;
  // Sums of the workers' counters.
#define DLB_X(field, name) uint64_t field = 0;
  DLB_SYNC_WORKER_COUNTERS(DLB_X)
#undef DLB_X
};

class ShardSync {
 public:
  // `engines` (one per worker core; they must outlive this, and be stopped when it is
  // destroyed: it detaches from them) get their CoreSync attached. `pool` must load redis::SettleScript() and redis::kAnnounceScript; `rules`
  // is the rule set the engines decide with (SetRules on a reload). The rings come from
  // `allocator`. Nothing is owned but the rings and the tracking state.
  static StatusOr<std::unique_ptr<ShardSync>> Create(ShardSyncOptions options, redis::Pool* pool,
                                                     const RuleSet* rules,
                                                     std::span<PacketEngine* const> engines,
                                                     Allocator& allocator);
  ~ShardSync();
  ShardSync(const ShardSync&) = delete;
  ShardSync& operator=(const ShardSync&) = delete;

  // One round for all engines (control thread; `now_ns` monotonic). Errors are the
  // round trip's; the workers never see them except through the failure policy.
  Status Round(int64_t now_ns);
  // Whether a worker has waited for a lease since the last call (cleared by it): the
  // control thread should run Round() now rather than at the next interval, so that
  // the retransmitted head finds its lease.
  bool RoundWanted();
  // Settles every tracked bucket a last time (leases returned, credit charged) and
  // untracks it. At shutdown, after the workers stopped.
  Status ReturnAll(int64_t now_ns);
  // After the engines' rules were swapped: tracked buckets follow their rule by name
  // (a moved rule keeps its buckets and Redis keys; a removed one's are released).
  void SetRules(const RuleSet* rules);

  ShardSyncStats Stats() const;
  // The largest lease the cores held for this Redis key, summed over cores
  // (options.record_peaks).
  int64_t PeakLease(std::string_view redis_key) const;
  // The largest credit the cores held for this key, summed over cores (record_peaks).
  int64_t PeakCredit(std::string_view redis_key) const;
  CoreSync& core(size_t i);
  size_t cores() const;

  struct Impl;

 private:
  explicit ShardSync(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// --- worker side, inline: the data path ---------------------------------------------

inline BucketShard::Outcome CoreSync::Wait() {
  Bump(counters_.lease_waits);
  // One store per wait at most (a flag already set is only read): the control thread
  // reads it after every sleep step and then runs the round early.
  if (!round_wanted_.load(std::memory_order_relaxed)) round_wanted_.store(true, std::memory_order_release);
  return BucketShard::Outcome::kWait;
}

inline BucketShard::Outcome CoreSync::Admit(BucketShard& shard, const ShardProbe& probe,
                                            uint16_t rule_index, const CompiledRule& rule,
                                            int64_t now_ns, IdentityKind kind,
                                            const uint8_t* identity, size_t identity_len,
                                            dlb::Decision& limited) {
  bool fresh = false;
  const int64_t idx = shard.Claim(probe, now_ns, fresh);
  if (idx < 0) return BucketShard::Outcome::kTableFull;
  SyncSlot& s = shard.sync_slot(static_cast<size_t>(idx));
  s.demand.store(s.demand.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  const int32_t cost = static_cast<int32_t>(std::min<int64_t>(rule.cost, int64_t{1} << 30));
  int32_t a = s.avail.load(std::memory_order_acquire);
  while (a >= cost) {
    if (s.avail.compare_exchange_weak(a, a - cost, std::memory_order_acq_rel, std::memory_order_acquire)) {
      Bump(counters_.lease_admitted);
      return BucketShard::Outcome::kAllowed;
    }
  }
  if (a == kNotSynced) {
    // New to the control thread: hand it over with a credit (none for strict rules).
    const int32_t n = participants_.load(std::memory_order_relaxed);
    int64_t credit = 0;
    if (rule.mode != Mode::kStrict && !store_down()) {
      const int64_t c = rule.profile.spec().capacity;
      credit = std::min<int64_t>(c / n, new_bucket_credit_);
      if (credit < 1) credit = 1;
      // A credit that cannot pay for the request is not given (it would be charged
      // as used at the next round).
      if (credit < cost) credit = 0;
    }
    s.demand.store(1, std::memory_order_relaxed);
    const int32_t start = credit >= cost ? static_cast<int32_t>(credit) - cost : 0;
    // The slot is published before the registration: once popped, the control thread
    // may change avail at any time. Nothing is known of the new key's global bucket.
    shard.EngageSync();
    s.full_until_ns.store(0, std::memory_order_relaxed);
    s.avail.store(start, std::memory_order_release);
    if (!Push(static_cast<uint32_t>(idx), probe.tag, rule_index, static_cast<int32_t>(credit), kind,
              identity, identity_len)) {
      s.avail.store(kNotSynced, std::memory_order_release);
      return Failed(shard, static_cast<size_t>(idx), s, rule, now_ns, limited);
    }
    if (credit >= cost) {
      Bump(counters_.credit_admitted);
      return BucketShard::Outcome::kAllowed;
    }
    if (store_down()) return Failed(shard, static_cast<size_t>(idx), s, rule, now_ns, limited);
    return Wait();
  }
  if (store_down()) return Failed(shard, static_cast<size_t>(idx), s, rule, now_ns, limited);
  // No lease left. Limited only if Redis reported the bucket full at this slot's last
  // round and this core's share of what has leaked since (1/N of it) holds no room for
  // the request: full_until_ns is when it will. Otherwise the shortage may be this
  // core's, not the user's: claim that room (the next claim one share later), ask (the
  // demand counted above sizes the next lease) and wait.
  int64_t full_until = s.full_until_ns.load(std::memory_order_acquire);
  for (;;) {
    if (full_until > now_ns) {
      Bump(counters_.no_lease_limited);
      NoLease(rule, limited);
      if (limited.retry_after_ns != dlb::kNever && full_until - now_ns > limited.retry_after_ns) {
        limited.retry_after_ns = full_until - now_ns;
      }
      return BucketShard::Outcome::kLimited;
    }
    if (full_until == 0) return Wait();  // not known full
    const dlb::u128 share = rule.profile.interval_fp() * static_cast<dlb::u128>(rule.cost) *
                            static_cast<dlb::u128>(participants_.load(std::memory_order_relaxed));
    const int64_t step = static_cast<int64_t>(std::min<dlb::u128>(share >> dlb::kFracBits, dlb::u128{1} << 60)) + 1;
    if (s.full_until_ns.compare_exchange_weak(full_until, full_until + step, std::memory_order_acq_rel,
                                              std::memory_order_acquire)) {
      return Wait();
    }
  }
}

}  // namespace packet
}  // namespace dlb
