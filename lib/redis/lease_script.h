// Leases: the Redis side of `synced` mode (the protocol is described in
// lib/sync/sync_engine.h). Two scripts, both on the Redis clock (TIME inside the
// script), both replicated by effects:
//
//   lease:    EVALSHA <sha> <k> <key_1..key_k> (<capacity> <interval_ns> <return> <want>) x k
//     For each bucket, in one atomic step: give back `return` unused units
//     (TAT -= return*T, never below now: units that leaked while held are gone), then
//     charge grant = min(want, floor(C - level)) units (all that fits, possibly 0).
//     Same storage as the strict script (TAT in epoch ns as text, SET .. PXAT, the
//     count for a bucket that never leaks), so strict and synced participants share
//     one bucket. Reply: [now_us, (granted, level) x k], level as %.17g text.
//     Guarded by the reset log: EVALSHA <sha> <k+1> <key_1..key_k> dlb:resets
//     (...) x k <seq>: a bucket reset after sequence <seq> (the caller's last read of
//     the log, redis/script.h) gets nothing back (what the caller holds was charged
//     in the bucket that was deleted), and the reply carries, per bucket, a third
//     element: that reset's sequence, or 0. Standalone and Sentinel only (the log is
//     one key: on Cluster it is on another slot).
//
//   announce: EVALSHA <sha> 1 dlb:participants <participant_id> <ttl_ms>
//     ZADD with score now_ms + ttl_ms, drops the expired entries and replies ZCARD:
//     the number of live participants. Expiry is computed on the Redis clock, so
//     participants never send timestamps.
//
//   settle:   EVALSHA <sha> <k+1> <round_key> <key_1..key_k> <round_id> <ttl_ms>
//                     (<capacity> <interval_ns> <return> <debit> <want>) x k
//     The lease step with a debit and exactly-once replay, for participants that admit
//     on credit (the packet shards' control thread, lib/dlb/packet/shard_sync.h). Per
//     bucket: give back `return` (as lease), then charge `debit` units admitted
//     without a lease, saturating at a full bucket (as the bucket script's debit op),
//     then grant. The call is keyed by (round_key, round_id): the first execution
//     stores its reply in round_key (PX ttl_ms) and a repeat of the same round_id
//     returns that reply and changes nothing, so a call whose reply was lost (deadline,
//     broken connection) is re-sent verbatim: it is applied exactly once, and its
//     grants are learned either way. Reply: as the lease script's.
//
// A multi-bucket lease or settle call names keys of many users: on Redis Cluster it
// must be split per slot, which the lease round (lease_round.h) does.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/status.h"
#include "redis/connection.h"

namespace dlb::redis {

std::string_view LeaseScript();
extern const std::string_view kAnnounceScript;
const std::string& LeaseScriptSha();
const std::string& AnnounceScriptSha();

inline constexpr std::string_view kParticipantsKey = "dlb:participants";

struct LeaseItem {
  std::string_view key;
  BucketSpec spec;
  int64_t return_units = 0;   // unused units of the previous lease
  int64_t want_units = 0;     // units asked for now
};

struct LeaseGrant {
  int64_t granted_units = 0;
  double level = 0.0;         // requests in the bucket after the step
  int64_t reset_seq = 0;      // guarded calls: the bucket's reset after the caller's read, or 0
};

// The settle script (above): text and SHA1.
std::string_view SettleScript();
const std::string& SettleScriptSha();

struct SettleItem {
  std::string_view key;
  BucketSpec spec;
  int64_t return_units = 0;   // unused leased units given back
  int64_t debit_units = 0;    // units admitted on credit, charged now
  int64_t want_units = 0;     // units asked for now
};
// Appends one EVALSHA of the settle script over `items` (at least one), keyed by
// (round_key, round_id); replies are parsed with ParseLeaseReply(r, items.size()).
void AppendSettleCall(CommandWriter& w, std::string_view round_key, int64_t round_id, int64_t ttl_ms,
                      std::span<const SettleItem> items);

// Appends one EVALSHA of the lease script over `items` (at least one); guarded by the
// reset log when `resets_after_seq` >= 0 (the last sequence the caller read).
void AppendLeaseCall(CommandWriter& w, std::span<const LeaseItem> items, int64_t resets_after_seq = -1);
// Parses the reply of a lease call over `n` buckets into `out` (appended).
Status ParseLeaseReply(const redisReply* r, size_t n, std::vector<LeaseGrant>* out, bool guarded = false);

void AppendAnnounceCall(CommandWriter& w, std::string_view participant_id, int64_t ttl_ms);
// The number of live participants.
StatusOr<int64_t> ParseAnnounceReply(const redisReply* r);

}  // namespace dlb::redis
