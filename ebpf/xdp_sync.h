// The XDP host as one participant of the global buckets (lib/sync/sync_engine.h has the
// protocol and its bound). Every interval the agent, for every user bucket of a synced
// rule that the program touched:
//   1. collects atomically (control program) the unused lease, the demand seen and the
//      debt (units admitted by the local bucket while no lease was there);
//   2. in one pipelined round trip of lease-script calls returns the unused units and
//      asks for debt + ceil(1.5 * demand) + 1 units (at most C) on the Redis clock;
//   3. grants the program what exceeds the debt and, when Redis had no room, holds
//      the bucket (reject locally) until the first unit can fit.
// Units admitted from the local bucket are charged at the next round (reconciled once);
// what Redis has no room for stays debt and is charged first by the following rounds
// (never forgiven), and holds the user meanwhile. Participants announce themselves; the
// program's local bucket is 1/N of each limit, and every grant sets it to the global
// level Redis reported scaled to that share, so it never admits what the global bucket
// has no room for (a local bucket refilling on its own would add up to 1/N of the rate
// on top of the leases).
//
// Three consecutive failed rounds mark the store down (the program applies each rule's
// on_store_failure); the next successful round clears it and charges the debt.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "dlb/status.h"
#include "redis/pool.h"
#include "xdp_config.h"
#include "xdp_program.h"

namespace dlb::xdp {

struct SyncOptions {
  std::chrono::microseconds interval{5000};
  std::chrono::microseconds deadline{5000};
  std::string participant_id;   // empty: a random one
  std::chrono::milliseconds participant_ttl{3000};
  int failures_to_open = 3;
  // Users idle this long (no lease, no debt) are removed from the program's map.
  std::chrono::seconds idle_to_forget{60};
};

struct SyncStats {
  uint64_t rounds = 0;
  uint64_t failed_rounds = 0;
  uint64_t bucket_ops = 0;
  uint64_t granted_units = 0;
  uint64_t returned_units = 0;
  uint64_t debt_units = 0;
  uint64_t over_admitted_units = 0;   // debt Redis had no room for at a round (carried to
                                      // the next; counted at each round it is carried)
  uint64_t dropped_units = 0;         // leases collected by a round that failed
  uint64_t forgotten_users = 0;
  int64_t live_participants = 0;
  bool store_down = false;
};

class XdpSync {
 public:
  XdpSync(SyncOptions options, redis::Pool* pool, XdpProgram* program, XdpTables* tables);
  // One round (see above). Returns the round trip's status; store-down transitions
  // are logged once each.
  Status Round();
  // Gives every lease back (at shutdown).
  Status ReturnAll();
  const SyncStats& stats() const { return stats_; }
  // Called when the live participant count changed (the caller re-pushes the tables).
  bool share_changed() { bool c = share_changed_; share_changed_ = false; return c; }

 private:
  Status RunRound(bool returning_all);

  SyncOptions opts_;
  redis::Pool* pool_;
  XdpProgram* program_;
  XdpTables* tables_;
  SyncStats stats_;
  int consecutive_failures_ = 0;
  int64_t last_announce_ns_ = 0;
  bool share_changed_ = false;
};

}  // namespace dlb::xdp
