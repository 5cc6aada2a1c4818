// The one atomic server-side step of the Redis protocol, shared by every form.
//
//   EVALSHA <sha> <k> <key_1..key_k> <op> (<capacity> <interval_ns> <cost>) x k
//
// op: take  -- admit iff every bucket has room for its cost, then charge them all
//              (all or nothing, so the buckets of one request are one decision);
//     peek  -- report, change nothing;
//     debit -- charge unconditionally, saturating at a full bucket (reconciliation).
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

// Appends one EVALSHA of `op` on one bucket.
void AppendBucketCall(CommandWriter& w, std::string_view sha, std::string_view key,
                      BucketOp op, const BucketSpec& spec, int64_t cost);

struct ScriptResult {
  bool allowed = false;
  int64_t now_us = 0;
  Decision decision;
};

// Parses the reply of a one-bucket call; NOSCRIPT is reported as kUnavailable with
// IsNoScript() true so that the caller reloads and retries.
StatusOr<ScriptResult> ParseBucketReply(const redisReply* r);
bool IsNoScript(const redisReply* r);

}  // namespace dlb::redis
