// Accuracy simulation of the synced mode against an exact single-bucket oracle.
//
// K participants share one real Redis: `appliances` x `cores_per_appliance` appliance
// cores (each its own sync::SyncEngine, the cores of one appliance driven by one
// control thread, as the appliance's control lcore does, with strict calls on a miss)
// and `library_processes` dlb::Limiters in synced mode (their own sync threads). Each
// participant is a thread that offers requests at its pattern's rate.
//
// In mode strict every participant calls the bucket script directly and stamps each
// decision with the Redis time it was decided at (the script returns it): the oracle
// then runs on the clock that decided, and the bound is zero over, zero under.
//
// In mode synced every decision is stamped with CLOCK_MONOTONIC when it returns and, after the run,
// all decisions are fed in stamp order to dlb::Decide, one exact bucket per user on
// that one clock. Everything runs on one machine, so CLOCK_MONOTONIC and Redis's
// clock (TIME, CLOCK_REALTIME) advance at the same rate; they differ only in origin,
// which a bucket never sees. Per user: over = max(0, admitted - oracle_admitted),
// under = max(0, oracle_admitted - admitted), summed over users.
//
// With `packet_cores` the appliance cores are packet engines instead (mode synced
// only): each core a dlb::packet::PacketEngine fed one request head per frame on a
// keep-alive connection (rule action shadow, so a limited head leaves the connection
// open; the engine's counters tell the decision), the cores of one appliance driven by
// one dlb::packet::ShardSync whose Round() the appliance's control thread calls every
// interval. A head a core refused while it waited for a lease (lease_waits) is not a
// decision: the participant sends it again two sync intervals later (a client's TCP
// retransmits it) and the decision it then gets is the one stamped. Their bound
// (lib/dlb/packet/shard_sync.h) adds, per user, the credit of each core slot created
// (new_bucket_credit, 1) and per episode the cores' peak room credits (measured,
// ShardSync::PeakCredit) to the over side, and to the under side the requests a core
// limited in the first round of a slot. false_rejects counts the requests rejected
// (not for a store failure) that the oracle admitted.
//
// The bound checked per user (lib/sync/sync_engine.h), per saturation episode:
//   over  <= ceil(r * H) + 1
//   under <= sum_p lease_peak_p + ceil(r * H) + 1   (+ 1 per store failure)
// with H = the longest time between two sync rounds of any participant + the
// longest single decision (it covers stamping delays) and lease_peak_p measured per
// appliance core (SyncEngine::PeakLease) and taken as C for the library processes
// (their tables are not exposed). The "+ 1" absorbs one request in flight at the edge
// of an episode. An episode is a stretch of the user's requests between two moments
// at which the oracle's bucket was empty, in which somebody rejected something.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dlb/limiter.h"

namespace dlb::sim {

// kWithin: users that stay within their limit, from every participant: the exact bucket
// admits (nearly) all, so a rejection is a false one.
enum class Pattern { kUniform, kHotUser, kSpread, kOnOff, kManyUsers, kWithin };
inline constexpr Pattern kAllPatterns[] = {Pattern::kUniform, Pattern::kHotUser, Pattern::kSpread,
                                           Pattern::kOnOff, Pattern::kManyUsers, Pattern::kWithin};
const char* PatternName(Pattern p);

struct SimOptions {
  std::string redis_url;
  Mode mode = Mode::kSynced;            // kSynced or kStrict (every participant)
  std::chrono::microseconds sync_interval{5000};
  int appliances = 2;
  int cores_per_appliance = 4;
  int library_processes = 2;
  double duration_s = 2.0;
  double load_scale = 1.0;              // multiplies every offered rate and leak rate
  uint64_t seed = 1;
  // Appliance cores as packet engines driven by ShardSync (mode synced).
  bool packet_cores = false;
  int standing_rounds = -1;             // packet cores: ShardSyncOptions' (-1: its default)
};

struct SimResult {
  std::string pattern;
  uint64_t requests = 0;
  uint64_t admitted = 0;
  uint64_t oracle_admitted = 0;
  uint64_t over = 0;
  uint64_t under = 0;
  uint64_t over_bound = 0;              // sum over users of their bounds
  uint64_t under_bound = 0;
  uint64_t users_over_bound = 0;        // users whose over or under exceeded their bound
  uint64_t lease_decisions = 0;         // no Redis call
  uint64_t store_decisions = 0;         // one strict call
  uint64_t failed_decisions = 0;        // store failures (rejected by the simulation)
  uint64_t lease_redis_calls = 0;       // EVALSHAs of the lease script
  uint64_t lease_bucket_ops = 0;
  int64_t h_ns = 0;
  uint64_t registrations = 0;           // packet cores: new slots handed to ShardSync
  uint64_t credit_admitted = 0;
  uint64_t no_lease_limited = 0;
  uint64_t first_round_limited = 0;     // of which in a slot's first round
  // Requests we rejected (not for a store failure) that the oracle admitted.
  uint64_t false_rejects = 0;
  uint64_t packet_false_rejects = 0;    // of which by packet cores
  uint64_t packet_decisions = 0;
  // Packet cores: heads refused unanswered while a core waited for a lease (each sent
  // again two sync intervals later and decided then).
  uint64_t lease_waits = 0;
  uint64_t waited_requests = 0;         // distinct requests among them
  double seconds = 0;
  double over_pct() const { return oracle_admitted ? 100.0 * double(over) / double(oracle_admitted) : 0; }
  double under_pct() const { return oracle_admitted ? 100.0 * double(under) / double(oracle_admitted) : 0; }
};

SimResult Run(Pattern pattern, const SimOptions& options);
std::string Describe(const SimResult& r);

}  // namespace dlb::sim
