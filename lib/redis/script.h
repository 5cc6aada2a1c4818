// The one atomic server-side step of the Redis protocol, shared by every form.
//
//   EVALSHA <sha> <k> <key_1..key_k> <op> (<capacity> <interval_ns> <cost>) x k
//
// op: take  -- admit iff every bucket has room for its cost, then charge them all
//              (all or nothing, so the buckets of one request are one decision);
//     takeby -- a take with one more argument, not_after_us: if the server's TIME is
//       past it when the script runs, nothing is charged and all_allowed is 3 (the
//       caller gave up waiting: a late take must not use room others wait for);
//     peek  -- report, change nothing;
//     debit -- charge unconditionally, saturating at a full bucket (reconciliation);
//     debitonce -- a debit that runs at most once per marker:
//       EVALSHA <sha> <k+1> <key_1..key_k> <marker> debitonce (..) x k <marker_ttl_ms>
//       sets <marker> (SET NX PX) in the same atomic step; if the marker was already
//       there the call only reports (a batch re-sent after a timeout whose first send
//       ran) and all_allowed is 2. It saturates at twice the capacity, not at a full
//       bucket: requests a failure policy admitted while the store admitted others are
//       a debt that later rejections pay back (the level may then exceed C).
// interval_ns is T = 1e9 / leak_rate in nanoseconds (%.17g, fractions kept), "0" for
// a bucket that never leaks. Time is the Redis server's TIME, read inside the
// script: the only clock that decides a shared bucket. The stored value is TAT in
// epoch nanoseconds as decimal text, rounded up: to whole nanoseconds when T >= 1 ms
// (an integer, which Redis keeps inside the object: 72 bytes per bucket; rounding
// costs under 1e-6 of the leak rate), else with up to 6 fractional digits, so that
// fast leak rates lose nothing visible through truncation either. A bucket that never
// leaks stores its count. Writes
// are SET .. PXAT (absolute expiry), so replicas and AOF replays keep the master's
// expiry rather than recomputing one from their own clocks; the key expires when the
// bucket has drained.
//
// Reply: [all_allowed, now_us, (level, remaining, retry_after_ns, reset_after_ns) x k]
// with now, level and the durations as decimal text and -1 for "never".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/status.h"
#include "redis/connection.h"

namespace dlb::redis {

// The bucket script's text.
std::string_view BucketScript();
// `body` after the shared prelude (TIME read, TAT parsing and formatting): other
// scripts that read or write a bucket's TAT are built with it.
std::string WithTatPrelude(std::string_view body);
// SHA1 of BucketScript() in hex, computed locally, so EVALSHA works before any load.
const std::string& BucketScriptSha();
// SHA1 of any script text in hex, as Redis names it for EVALSHA.
std::string ScriptSha(std::string_view script);

enum class BucketOp { kTake, kPeek, kDebit };

// Appends one EVALSHA of `op` on one bucket; a kTake with not_after_us > 0 is a takeby.
void AppendBucketCall(CommandWriter& w, std::string_view sha, std::string_view key,
                      BucketOp op, const BucketSpec& spec, int64_t cost, int64_t not_after_us = 0);

struct ScriptResult {
  bool allowed = false;
  bool duplicate = false;   // debitonce: the marker was set already, nothing charged
  bool late = false;        // takeby: past not_after_us, nothing charged
  int64_t now_us = 0;
  Decision decision;
};

// One debitonce of one bucket: `marker_key` must share the bucket key's hash tag (the
// bucket key plus a suffix does).
void AppendDebitOnceCall(CommandWriter& w, std::string_view key, std::string_view marker_key,
                         const BucketSpec& spec, int64_t cost, int64_t marker_ttl_ms);

// The reset log, so that a reset reaches the leases other participants hold:
//   Limiter::Reset deletes the bucket and then, if synced participants are live
//   (kParticipantsKey exists), appends its key (EVALSHA of
//   ResetLogScript(): ZADD with the next sequence number, the log trimmed to `keep`
//   entries, the highest trimmed sequence kept as the score of the member "");
//   each sync round first reads the entries after the last sequence it saw (plain
//   commands, no script to load) and drops its lease of every key listed, or of every
//   key if it missed entries (trimmed, or the log is gone: the store was lost).
inline constexpr std::string_view kResetLogKey = "dlb:resets";
std::string_view ResetLogScript();
const std::string& ResetLogScriptSha();
// With `and_delete`, the bucket is deleted in the same atomic step (not on Cluster).
void AppendResetLogCall(CommandWriter& w, std::string_view bucket_key, int64_t keep, bool and_delete = false);
// Appends the three commands of one read (ZRANGE top, ZSCORE floor, ZRANGEBYSCORE).
void AppendResetLogRead(std::vector<std::string>* cmds, int64_t after_seq, int64_t limit);
struct ResetLogRead {
  int64_t max_seq = 0;     // highest sequence in the log (0: empty or gone)
  int64_t floor_seq = 0;   // highest sequence trimmed away
  std::vector<std::string> keys;   // bucket keys reset after `after_seq`
  std::vector<int64_t> seqs;       // the sequence of each key's latest reset
};
// Parses the three replies of AppendResetLogRead.
Status ParseResetLogRead(const Reply* replies, ResetLogRead* out);

// Parses the reply of a one-bucket call; NOSCRIPT is reported as kUnavailable with
// IsNoScript() true so that the caller reloads and retries.
StatusOr<ScriptResult> ParseBucketReply(const redisReply* r);
bool IsNoScript(const redisReply* r);

}  // namespace dlb::redis
