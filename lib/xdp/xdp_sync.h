// The XDP host as one participant of the global buckets (lib/sync/sync_engine.h has the
// protocol and its bound). Every interval the agent, for every user bucket of a synced
// rule that the program touched:
//   1. collects atomically (control program) the unused lease, the demand seen and the
//      debt (units admitted by the local bucket while no lease was there);
//   2. in one pipelined round trip of settle-script calls (lib/redis/lease_round.h)
//      returns the unused units and asks for debt + ceil(1.5 * demand) + 1 units (at
//      most C) on the Redis clock;
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
// Exactly once: the units a round collected (returned lease, debt) are in Redis only
// once its reply is known. Every settle call carries (round key, round id); Redis keeps
// its reply for `round_reply_ttl` and a repeat of the same id returns that reply and
// changes nothing. A round whose reply did not arrive (deadline, broken connection,
// Redis stopped) stays pending and the next Round() re-sends it verbatim before it
// collects anything new: its returns and its debt are applied once and its grants are
// learned, never dropped nor charged twice. Heads admitted meanwhile by the local
// bucket are debt in the program and go into a later round. The reply must still be in
// Redis when the re-send arrives: a round applied by Redis and then unreachable for
// longer than `round_reply_ttl` would be applied again (a Redis restart without
// persistence forgets the buckets and the replies alike).
//
// Redis Cluster: a settle call is atomic over its keys, so on a Cluster the buckets go
// by key slot, a call never crosses a slot and its round key takes the hash tag of its
// buckets (one user's keys share one tag): lib/redis/lease_round.h, as for the other
// participants.
//
// Three consecutive failed round trips mark the store down (the program applies each
// rule's on_store_failure); the next successful one clears it and charges the debt.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dlb/status.h"
#include "redis/lease_round.h"
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
  // How long Redis keeps a round's reply for an exact re-send.
  std::chrono::milliseconds round_reply_ttl{60000};
  size_t chunk = 256;   // buckets per settle call
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
  uint64_t resent_rounds = 0;         // round trips re-sent after a lost reply
  uint64_t resent_calls = 0;          // settle and announce calls in them
  uint64_t redis_calls = 0;           // calls sent (re-sends included)
  uint64_t discarded_rounds = 0;      // rounds Redis refused with an error reply
  uint64_t forgotten_users = 0;
  int64_t live_participants = 0;
  bool store_down = false;
};

class XdpSync {
 public:
  XdpSync(SyncOptions options, redis::Pool* pool, XdpProgram* program, XdpTables* tables);
  // One round (see above): first the re-send of a round whose reply was lost, then a
  // new round. Returns the round trip's status; store-down transitions are logged once
  // each.
  Status Round();
  // Gives every lease back (at shutdown), after the re-send of a pending round.
  Status ReturnAll();
  // A round whose reply was lost waits for its re-send.
  bool round_pending() const { return pending_ != nullptr; }
  const SyncStats& stats() const { return stats_; }
  // Called when the live participant count changed (the caller re-pushes the tables).
  bool share_changed() { bool c = share_changed_; share_changed_ = false; return c; }
  // Whether a user's `waited` mark (dlb_xdp_user) is recent enough that the round keeps
  // a lease for its retransmitted head (3 s).
  static bool WaitedRecently(uint64_t waited, int64_t now_ns);

 private:
  struct Item {
    dlb_xdp_user_key key;
    uint32_t rule;
    int64_t returned;     // unused lease given back
    int64_t debt;         // units admitted by the local bucket, charged first
    int64_t want_lease;   // new lease asked for beyond the debt
  };
  // One round trip: its calls (sent again verbatim when the reply is lost) and what
  // they carry, in the order of their results.
  struct Trip {
    redis::LeaseTrip calls;
    std::vector<Item> items;
    bool returning_all = false;
    int64_t collected_ns = 0;
  };

  Status RunRound(bool returning_all);
  // Forgets the users of local rules whose bucket has drained and who were not seen for
  // idle_to_forget (the lease round never collects them). At most once a second: it
  // reads every user of the table.
  void ForgetDrainedLocalUsers(int64_t now_ns);
  // Sends `trip`; on success applies its replies, else keeps it for a re-send.
  Status Send(std::unique_ptr<Trip> trip);
  Status Fail(std::unique_ptr<Trip> trip, Status cause);
  // Gives the debt of the buckets whose call Redis refused back to the program.
  void ReturnRefusedDebt(const Trip& trip, const redis::TripReply& r, const Status& refusal);
  Status Apply(const Trip& trip, const redis::TripReply& r);

  SyncOptions opts_;
  redis::Pool* pool_;
  XdpProgram* program_;
  XdpTables* tables_;
  SyncStats stats_;
  int consecutive_failures_ = 0;
  int64_t last_announce_ns_ = 0;
  int64_t last_local_sweep_ns_ = 0;
  bool share_changed_ = false;
  std::unique_ptr<Trip> pending_;
  uint64_t round_base_ = 0;
  uint64_t round_seq_ = 0;
};

}  // namespace dlb::xdp
