// Leases of the global buckets: the `synced` accuracy mode (docs/design.md, "Accuracy modes").
//
// A participant is one library process, one appliance core or one XDP host. It decides
// most requests locally, in nanoseconds, against units of the global bucket that it
// has already charged in Redis, and talks to Redis once per sync interval for all of
// its active buckets. No DPDK or hiredis type appears here, so the packet shards' control
// lcore and the XDP agent can drive the same engine.
//
// ## Lease protocol
//
// A lease is pre-charging. At each sync (default every I = 5 ms) the participant sends,
// for every active bucket, in one pipelined round trip (EVALSHA of the lease script,
// up to `chunk` buckets per call; lib/redis/lease_script.h, sent by the round client
// lib/redis/lease_round.h):
//   return = the units of its previous lease it did not use,
//   want   = ceil(headroom * demand) + 1, at most C   (headroom 1.5),
// where demand is the requests this participant saw for the bucket since the previous
// round (admitted or not; about rate * I). Buckets with fewer than
// `min_demand_for_lease` requests in the interval get no lease: each of their requests
// is one strict call, so cold users cost no lease and hold nothing back. Redis, in one
// atomic step on its own clock, gives the units back (TAT -= return*T, never below
// now) and charges grant = min(want, floor(C - level)) units: all that fits. Near the
// limit the room is small, so leases shrink to single requests and to zero.
// Between syncs TryAdmit() admits against the lease without any Redis call. A request
// that finds no lease is decided by one strict call (the bucket script's take op, an
// exact decision), and its demand sizes the next lease. A strict call that rejects
// tells how long until a request fits (retry_after); until then, and at least until
// about the next sync (min(I, the time half the bucket takes to drain)), or until a
// sync brings a lease, further requests for that bucket are rejected locally, so users
// far over their limit cost no Redis call per request: the room that leaks meanwhile
// is taken by the next lease (the delay is inside the H of the bound; room from
// another participant's refund is inside its lease term).
// While a sync is in flight the old lease is already given back, so requests
// meanwhile take the strict path.
// Only amounts cross the wire, never a participant's timestamp.
//
// Per-bucket scheduling. A round syncs a bucket when it has no lease and wants one,
// when its lease is short of one round's demand (or a request found it short), and
// otherwise every `stride` rounds (a lease that saw no demand goes back then). Hot
// buckets (a round's demand >= hot_demand, default 32) and contended ones (level above
// C/2 at the last sync, or a strict rejection since) have stride 1: every round, as
// before. A colder bucket gets the largest power of two k <= max_stride (8) with
// k x demand <= hot_demand, and its lease covers k rounds:
//   want = ceil(headroom * demand_per_round * k) + 1, at most C.
// So with many moderately active users a round carries about 1/k of them, and a unit
// of a strided lease is held up to k rounds (H below is per bucket).
//
// Resets and outages. A round first reads the reset log (redis/script.h: a sorted set
// of reset bucket keys scored by a sequence number) in a small round trip of its own,
// and drops (neither uses nor returns) its lease of every bucket reset since its last
// read, or of every bucket if it missed entries: a reset holds for every participant
// from its next round on (within one round gap of the reset). That read is also the
// circuit breaker's probe: it charges nothing, so a probe that times out on a stalled
// server and runs when the server resumes is harmless. A round trip that fails or
// misses its deadline has an unknown fate: its leases are dropped, never re-sent and
// never returned again (a grant that did run leaks away in Redis: under-admission
// only, never a unit returned or charged twice).
//
// Participants announce themselves (EVALSHA of the announce script: a sorted set
// dlb:participants scored by expiry on the Redis clock) every ttl/3, so live
// participants can be counted; the library's local failure policy enforces 1/N of
// each limit while Redis is down.
//
// ## Accuracy bound
//
// Notation: P participants; for user u: capacity C_u, leak rate r_u; I the sync
// interval; l_{p,u} the lease participant p holds for u; H the longest time a unit
// can sit between its charge in Redis and the moment a request is decided with it:
//   H_u = k_u x (longest time between two sync rounds, >= I) + (longest decision latency)
// where k_u is u's stride (1 for hot and contended buckets, at most max_stride = 8
// for buckets with a round's demand under hot_demand and level at most C/2): a unit
// is charged after the snapshot of one round that syncs u and used or given back by
// the next such round. SyncStats::max_gap_ns measures the first term directly (the
// longest time between two snapshots that synced the same bucket). At the default 5 ms
// on an idle machine H is about I plus a Redis round trip for hot buckets, 8 I for cold.
//
// Over-admission against the Redis ledger is zero: every admitted unit was charged in
// Redis before it was admitted, by the same GCRA step as a strict take, and unused
// units are refunded only down to an empty bucket. Against an exact single bucket
// that sees every request at the moment it was decided (the simulation's oracle), a
// unit may be used up to H after it was charged, while the ledger already leaked for
// it. Per user and per saturation episode (a stretch between two instants at which
// the exact bucket is empty, in which some request was rejected):
//
//   over_u  <= ceil(r_u * H) + 1
//
// Under-admission comes from units charged but not (yet) used: while p holds l_{p,u},
// others may find the bucket full. A refund gives the room back at the next round;
// over a saturated episode the total admitted is the room charged minus what is held
// at its end, and the strict path's rejection hold-off (at most one interval) shifts
// use of room by less than H, so per user and per episode:
//
//   under_u <= sum_p max_t l_{p,u}(t) + ceil(r_u * H) + 1
//   l_{p,u} <= min(C_u, ceil(1.5 * n_{p,u} * k_u) + 1),   n_{p,u} * k_u <= hot_demand if k_u > 1
//
// where n_{p,u} is the demand p saw for u in one round period (about rate_{p,u} * I),
// and l = 0 when n < 2. A strided lease is at most 1.5 x hot_demand + 1 (49) units and
// only held while the bucket is at most half full, so near the limit the terms are the
// stride-1 ones. So near the limit it is P x (1.5 x rate x I + 1) requests per
// user at most, never more than one bucket per participant, and 0 for users whose
// per-participant rate is under 2 / I (400/s at 5 ms): those are decided strictly.
// The "+ 1" terms absorb one request in flight at an episode's edge.
//
// A participant that crashes never returns its lease: its units stay charged and
// leak away at r_u (under-admission only, gone after l / r_u seconds). The simulation
// (tests/sync/sim.h) measures both sides against the oracle, and its gtest asserts
// these bounds per user with H and the lease peaks it measured.
//
// Cost: one bucket operation (a few microseconds of Redis CPU, in batched EVALSHAs)
// per synced bucket per round (about active / k for cold buckets), plus the reset log
// read (three small commands). With many active buckets a round takes longer than I:
// rounds then stretch, leases grow with the demand of the longer period, and H grows
// with them (the bound is stated in the measured H).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/status.h"

namespace dlb {
namespace redis {
class Breaker;
class Pool;
struct LeaseTrip;
struct SettleItem;
struct TripReply;
}

namespace sync {

struct SyncOptions {
  // How often the caller runs Sync(): the I of the bound.
  std::chrono::microseconds interval{5000};
  // Deadline of one sync round trip (a pipeline of up to `calls_per_round_trip` calls).
  std::chrono::microseconds deadline{5000};
  // A lease covers headroom x the last interval's demand, plus one request.
  double headroom = 1.5;
  // Buckets with less demand than this in an interval get no lease.
  int64_t min_demand_for_lease = 2;
  // Per-bucket scheduling: a bucket whose demand per round is under hot_demand and
  // whose level is at most half its capacity is synced every `stride` rounds (a power
  // of two up to max_stride, the largest with demand x stride <= hot_demand), with a
  // lease sized for them; earlier if its lease runs short. 1 = every bucket every round.
  double hot_demand = 32;
  int max_stride = 8;
  // Buckets per EVALSHA, and EVALSHAs per pipelined round trip.
  size_t chunk = 256;
  size_t calls_per_round_trip = 16;
  // Empty = a random id. Announced with this TTL every ttl/3.
  std::string participant_id;
  std::chrono::milliseconds participant_ttl{3000};
  // A bucket with no demand and no lease for this many syncs is forgotten.
  int idle_syncs_to_forget = 200;
  // Buckets tracked at most; past it new buckets are not leased (each of their
  // requests is a strict call: slower, never less exact).
  size_t max_buckets = size_t{1} << 20;
  // Called from Sync() when its round trip closed the shared breaker (the store is back:
  // the owner reconciles what its failure policy admitted) or opened it (with the
  // failure). May be empty.
  std::function<void()> on_breaker_closed;
  std::function<void(const Status&)> on_breaker_opened;
};

struct SyncStats {
  uint64_t misses = 0;              // found no lease (went to the strict path)
  uint64_t syncs = 0;
  uint64_t sync_failures = 0;       // round trips that failed or were refused
  uint64_t redis_calls = 0;         // EVALSHA calls sent by Sync() and ReturnAll()
  uint64_t bucket_ops = 0;          // buckets leased or returned in those calls
  uint64_t granted_units = 0;
  uint64_t returned_units = 0;
  uint64_t dropped_units = 0;       // leases lost to a failed sync (left to leak) or a reset
  uint64_t reset_drops = 0;         // leases dropped because the reset log named their bucket
  int64_t live_participants = 0;    // 0 until the first announce succeeded
  // Longest time between two snapshots that synced the same bucket: a unit is charged
  // after one and used or given back by the next, so this bounds how long a lease is
  // held (the H of the bound, with the caller's own decision latency).
  int64_t max_gap_ns = 0;
  size_t active_buckets = 0;
};

class SyncEngine {
 public:
  // `pool` must have redis::LeaseScript() and redis::kAnnounceScript loaded; `breaker`
  // (shared with the caller's strict path, may be null) gates the round trips. Neither
  // is owned.
  SyncEngine(SyncOptions options, redis::Pool* pool, redis::Breaker* breaker);
  ~SyncEngine();
  SyncEngine(const SyncEngine&) = delete;
  SyncEngine& operator=(const SyncEngine&) = delete;

  enum class Admit : uint8_t {
    kAdmitted,   // charged against the lease
    kRejected,   // a strict call rejected this bucket and its retry_after has not passed
    kNoLease,    // known bucket, lease short of `cost`: decide otherwise
    kUnknown,    // bucket not tracked yet: decide otherwise, then call Track()
  };
  struct Verdict {
    double level = 0.0;            // as Redis reported it at the last sync or strict call
    int64_t retry_after_ns = 0;    // kRejected: until the strict call's retry_after
  };
  // Never blocks on Redis (a stripe mutex held for a few nanoseconds). `key` is the
  // caller's 64-bit keyed hash of the bucket; `now_ns` its monotonic clock.
  Admit TryAdmit(uint64_t key, int64_t cost, int64_t now_ns, Verdict* verdict = nullptr);

  // After a strict call rejected a request of a tracked bucket: reject locally until
  // now_ns + retry_after_ns unless a sync brings a lease first.
  void NoteRejected(uint64_t key, int64_t now_ns, int64_t retry_after_ns, double level);

  // Starts tracking a bucket that TryAdmit() reported kUnknown; `cost` is that request's
  // demand. Allocates (cold path, once per bucket). False if max_buckets are tracked.
  bool Track(uint64_t key, std::string_view redis_key, const BucketSpec& spec, int64_t cost);

  // For a reset: while the returned lock is held no round runs, so the caller can
  // Forget() a bucket and delete it in Redis without a lease granted before the delete
  // surviving it here. Other participants drop theirs at their next round (the reset
  // log, redis/script.h), which the caller appends to after the delete.
  std::unique_lock<std::mutex> LockRounds() { return std::unique_lock<std::mutex>(sync_mu_); }
  // Drops a bucket's local state; its lease is forgotten, not returned.
  void Forget(uint64_t key);

  // One sync round: return unused units and take new leases for every active bucket.
  // Run by the caller's control thread every interval; only one at a time.
  Status Sync();
  // Gives every lease back and leaves the participant set (at shutdown).
  Status ReturnAll();

  SyncStats Stats() const;
  // The largest lease this bucket was granted (for the simulation's bound).
  int64_t PeakLease(uint64_t key) const;
  int64_t live_participants() const { return live_participants_.load(std::memory_order_relaxed); }
  const SyncOptions& options() const { return opts_; }
  const std::string& participant_id() const { return opts_.participant_id; }

 private:
  struct Entry;
  struct Stripe;
  struct Item;
  Status RoundTrip(bool returning_all);
  void Snapshot(bool returning_all, bool refuse, int64_t now, std::vector<Item>* items,
                std::vector<redis::SettleItem>* asks);
  int64_t NextLease(Entry& e, bool returning_all, int64_t now, int rounds, double rate);
  Status Exchange(const std::vector<Item>& items, const std::vector<redis::SettleItem>& asks, bool returning_all,
                  int64_t now, bool* any_success);
  void ApplyGrants(const std::vector<Item>& items, const std::vector<redis::SettleItem>& asks,
                   const redis::LeaseTrip& trip, const redis::TripReply& r, Status* failure);
  Status ReadResets(int64_t deadline_ns);
  void DropLeases(const std::vector<std::string>& keys, const std::vector<int64_t>& seqs, bool all);

  SyncOptions opts_;
  redis::Pool* const pool_;
  redis::Breaker* const breaker_;
  std::unique_ptr<Stripe[]> stripes_;
  std::mutex sync_mu_;
  int64_t last_sync_ns_ = 0;
  uint64_t round_ = 0;
  int64_t reset_seq_ = -1;          // last reset log sequence read; -1 before the first read
  bool reset_log_readable_ = false; // the last read parsed (an ACL may deny the sorted-set commands)
  std::atomic<int64_t> max_gap_ns_{0};
  std::atomic<size_t> tracked_{0};
  int64_t last_announce_ns_ = 0;
  std::atomic<int64_t> live_participants_{0};
  struct Counters;
  std::unique_ptr<Counters> counters_;
};

}  // namespace sync
}  // namespace dlb
