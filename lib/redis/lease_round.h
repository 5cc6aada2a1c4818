// One lease round with Redis: the calls of the lease or settle script
// (lease_script.h) over a participant's buckets, built, sent and parsed here for all
// three participants (lib/sync/sync_engine.cc, lib/packet/shard_sync.cc,
// lib/xdp/xdp_sync.cc), which only turn their state into items and apply the grants.
//
// Items go into calls of at most `chunk` buckets in the caller's order. A call is
// atomic over its keys and Redis Cluster runs it only when they share a slot, so on
// Cluster the items are first stably sorted by key slot and a call never crosses a slot
// (one user's rules share one: the key's hash tag); that costs calls, not atomicity.
// Settle calls carry (round key, round id): the round key `dlb:round:<participant>:<n>`
// numbers the round's calls and on Cluster takes the hash tag of the call's buckets
// (SettleRoundKey, slot.h). Calls go in trips, one pipeline each (one per node on
// Cluster, Pool::Call), with the caller's own commands (announce, ZREM) first in the
// first trip or last in the last one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/status.h"
#include "redis/connection.h"
#include "redis/lease_script.h"

namespace dlb::redis {

class Pool;

enum class RoundScript : uint8_t {
  kLease,   // the lease script (debit_units is not sent)
  kSettle,  // the settle script, keyed by (round key, round id)
};

struct LeaseRoundOptions {
  RoundScript script = RoundScript::kSettle;
  bool cluster = false;  // group the items by key slot
  size_t chunk = 256;    // buckets per call, at least 1
  // A trip is complete when a call brings its commands (the leading ones included) to
  // this many; the trailing commands go on top of the last trip.
  size_t calls_per_trip = std::numeric_limits<size_t>::max();
  // kLease: guarded by the reset log when >= 0 (the last sequence the caller read).
  int64_t resets_after_seq = -1;
  // kSettle: the participant named in the round keys, the round's id, and how long
  // Redis keeps a call's reply for a re-send.
  std::string participant_id{};
  int64_t round_id = 0;
  int64_t reply_ttl_ms = 0;
};

// The commands of one pipelined round trip and the items their calls carry. Sent again
// verbatim, a trip of settle calls is applied once.
struct LeaseTrip {
  std::vector<std::string> cmds;
  std::vector<size_t> items_per_call;  // per command; 0 for one of the caller's own
  std::vector<size_t> items;           // the caller's item indices, in call order
  bool guarded = false;                // lease calls whose replies carry reset sequences
};

struct LeaseResult {
  size_t index = 0;  // the item's position in the caller's list
  size_t call = 0;   // its command in the trip (TripReply::calls)
  LeaseGrant grant;  // all zero when its call failed
};

struct TripReply {
  Status status;                   // the round trip itself; nothing below when not ok
  std::vector<Reply> replies;      // one per command, the caller's own included
  std::vector<Status> calls;       // per command: its reply parsed (ok for the caller's own)
  std::vector<LeaseResult> items;  // one per item, in the caller's order
};

// Builds the trips of one round: one Run() or Plan() per object.
class LeaseRound {
 public:
  // The key of candidate `i` (asked for on Cluster only, before any item).
  using KeyFn = std::function<std::string_view(size_t i)>;
  // The item of candidate `i`, asked for when the round reaches it (false: nothing to send).
  using ItemFn = std::function<bool(size_t i, SettleItem* item)>;
  // Takes each trip as soon as it is complete; false ends the round: no item is asked for
  // after it.
  using TripFn = std::function<bool(LeaseTrip trip)>;

  explicit LeaseRound(LeaseRoundOptions options);

  // A command of the caller's: first in the first trip (and counted in it), or last in
  // the last trip (even a trip of no call).
  void Lead(std::string cmd);
  void Trail(std::string cmd);

  // Goes through `n` candidates (on Cluster in slot order), asking for each one's item
  // only when the trips before it are taken, so that a trip that failed leaves the later
  // candidates untouched (on Cluster too: a new slot closes the call first).
  void Run(size_t n, const KeyFn& key_of, const ItemFn& item_of, const TripFn& take);
  // The trips over `items`, all known beforehand.
  std::vector<LeaseTrip> Plan(std::span<const SettleItem> items);

 private:
  void CloseCall();
  bool TripFull() const { return trip_.cmds.size() >= opts_.calls_per_trip; }
  bool Emit(const TripFn& take);

  const LeaseRoundOptions opts_;
  std::vector<std::string> trailing_;
  LeaseTrip trip_;
  std::vector<SettleItem> call_;  // the call being filled
  std::vector<size_t> call_items_;
  uint16_t call_slot_ = 0;
  size_t calls_ = 0;  // calls written so far (the round keys' numbers)
};

// The caller's own commands: the announce (lease_script.h) and leaving the participant
// set (ZREM, at shutdown).
std::string AnnounceCommand(std::string_view participant_id, int64_t ttl_ms);
std::string LeaveCommand(std::string_view participant_id);

// Sends `trip` on one pipeline (Pool::Call) before `deadline_ns` and parses its calls'
// replies; the caller's own commands' replies are left to it.
TripReply SendTrip(Pool& pool, const LeaseTrip& trip, int64_t deadline_ns);

}  // namespace dlb::redis
