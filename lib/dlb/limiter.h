// The library's entry points.
//
//   bool dlb::AllowRequest(user_id, capacity, leak_rate)  -- the one-line API
//   dlb::Limiter                                          -- options, decisions, batches
//
// A Limiter decides in one of three modes:
//   strict: one atomic server-side step in Redis per decision (batches are pipelined),
//           on the Redis clock; exact across every process that shares the Redis.
//   synced: decides against a lease of the global bucket taken in Redis (no Redis call)
//           and, when the lease is used up, by one strict call; a background thread
//           returns and renews the leases every `sync_interval` (lib/sync/sync_engine.h
//           states the protocol and its accuracy bound).
//   local:  an in-process bucket table on the monotonic clock; exact per process.
// A store call that fails (a missed deadline, a broken connection, a protocol error) is
// decided by the failure policy; evidence of an outage (redis/breaker.h: refused or
// reset connections, several deadlines missed in a row, a failure rate over a window)
// opens a circuit breaker, and the policy decides every call until a probe succeeds:
//   local  (default): an in-process bucket scaled by the fallback share, starting from
//           the level the store last reported for that bucket (every store reply
//           refreshes this local copy), never from a full bucket;
//   open:   admit;
//   closed: reject.
// Requests admitted by the local fallback are debited to Redis once on recovery.
// docs/failure-policy.md states what N processes can admit during an outage.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/clock.h"
#include "dlb/policy.h"
#include "dlb/status.h"

namespace dlb {

// Who decided a request.
enum class DecisionSource {
  kStore,           // Redis, atomically, on the Redis clock
  kLocal,           // the in-process table (mode local)
  kLease,           // mode synced, no Redis call: admitted against a lease of the global
                    // bucket, or rejected until the retry_after of a strict rejection
  kFallbackLocal,   // the in-process table because the store failed
  kFallbackOpen,    // admitted because the store failed and the policy is open
  kFallbackClosed,  // rejected because the store failed and the policy is closed
};
const char* DecisionSourceName(DecisionSource s);

struct LimitDecision : Decision {
  DecisionSource source = DecisionSource::kStore;
};

struct LimiterOptions {
  Mode mode = Mode::kStrict;
  // redis://[user[:password]@]host[:port][/db]  or  unix:///path/to.sock[?db=N]
  // Credentials may also come from DLB_REDIS_USER / DLB_REDIS_PASSWORD or `username`
  // and `password` below; the URL wins over the fields.
  std::string redis_url = "redis://127.0.0.1:6379";
  std::string username;
  std::string password;
  // Hard deadline of one store call (or one pipelined batch), connect included.
  std::chrono::microseconds deadline{2000};
  FailurePolicy on_store_failure = FailurePolicy::kLocal;
  // Fraction of each limit this process enforces on its own while the store is down.
  // 0 (default) = 1/N, N the live participants registered in Redis (every process
  // sharing the Redis announces itself with a TTL; the count is refreshed while the
  // store answers and kept while it does not); a value in (0, 1] wins over it.
  double fallback_share = 0.0;
  // Consecutive hard store failures (refused, reset, closed connection, protocol
  // error) that open the circuit breaker.
  int breaker_threshold = 3;
  // Consecutive missed deadlines across all callers, with no success in between and
  // over at least max(5 deadlines, 50 ms), that open it. A missed deadline alone is a
  // slow reply, not an outage.
  int breaker_timeouts_in_row = 16;
  // While open, a probe is let through after a back-off that doubles from min to max:
  // a store that answers again decides within about max.
  std::chrono::milliseconds breaker_backoff_min{10};
  std::chrono::milliseconds breaker_backoff_max{50};
  // Connections kept to Redis (callers beyond it wait, within their deadline).
  int max_connections = 64;
  // Buckets kept in the in-process table (mode local and the local fallback).
  size_t local_max_buckets = size_t{1} << 20;
  // Mode synced: how often leases are returned and renewed (one pipelined round trip).
  std::chrono::microseconds sync_interval{5000};
  // Clock of the in-process table; nullptr = CLOCK_MONOTONIC. Not owned.
  const Clock* clock = nullptr;
};

// Reads DLB_REDIS_URL, DLB_REDIS_USER, DLB_REDIS_PASSWORD, DLB_MODE,
// DLB_DEADLINE_US, DLB_ON_STORE_FAILURE, DLB_FALLBACK_SHARE, DLB_SYNC_INTERVAL_US over the defaults.
// DLB_CONFIG names a YAML file whose `redis:` and `limiter:` sections are read first.
// Starts from `base` (the library defaults unless given).
StatusOr<LimiterOptions> OptionsFromEnvironment(LimiterOptions base = {});

// Reads the `redis:` and `limiter:` sections of a YAML config over `base`. Errors name
// the file, the line and the field. Other sections (other forms' settings) are ignored.
StatusOr<LimiterOptions> LoadLimiterConfig(const std::string& path, LimiterOptions base = {});

// One request of a batch. `rule` names the bucket among a user's buckets; empty means
// a name derived from the spec, so the same (capacity, leak rate) is the same bucket.
struct LimitRequest {
  std::string_view user_id;
  BucketSpec spec;
  int64_t cost = 1;
  std::string_view rule = {};
};

// Counters since the limiter started; summed from per-thread stripes on read.
struct LimiterStats {
  uint64_t allowed = 0;
  uint64_t rejected = 0;
  uint64_t store_decisions = 0;
  uint64_t local_decisions = 0;
  uint64_t lease_decisions = 0;       // mode synced: decided locally, no Redis call
  uint64_t fallback_decisions = 0;    // decided by the failure policy
  uint64_t store_errors = 0;
  uint64_t store_timeouts = 0;
  uint64_t breaker_opens = 0;
  uint64_t reconciled_requests = 0;   // fallback admissions debited to Redis
  uint64_t fallback_overflow = 0;     // new keys refused because the table was full
  // Store latency histogram: bucket i counts calls with latency < kLatencyBoundsUs[i].
  static constexpr int kLatencyBuckets = 12;
  static constexpr int64_t kLatencyBoundsUs[kLatencyBuckets] = {
      50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, INT64_MAX};
  uint64_t store_latency_hist[kLatencyBuckets] = {};
  uint64_t store_latency_sum_us = 0;
  bool breaker_open = false;
  // Participants (strict and synced processes sharing the Redis) that announced
  // themselves within their TTL, as last read (0 = unknown): the N of the fallback share.
  int64_t live_participants = 0;
  // Store replies that refreshed the local copy of a bucket's level (the start of the
  // local fallback).
  uint64_t mirrored_levels = 0;
  // Mode synced: the longest time between two sync rounds (how long a lease was held).
  int64_t sync_max_gap_us = 0;
};

// The current level of a user's bucket (no request is made).
struct BucketInfo {
  Decision state;      // allowed = a request of cost 1 would be admitted now
  std::string key;     // the Redis key (strict mode) or the table key (local)
};

class Limiter {
 public:
  // Validates the options and, unless mode is local, connects to Redis (loading the
  // scripts) and announces this process as a participant, within
  // max(deadline, kStartDeadline): the first decision then costs one round trip. An
  // unreachable Redis is not an error here (the failure policy decides until it answers).
  static StatusOr<std::unique_ptr<Limiter>> Create(LimiterOptions options);
  static constexpr std::chrono::milliseconds kStartDeadline{250};
  virtual ~Limiter() = default;

  // Decides one request. Errors only for invalid arguments; a store failure is decided
  // by the failure policy (DecisionSource says so).
  virtual StatusOr<LimitDecision> Decide(std::string_view user_id, const BucketSpec& spec,
                                         int64_t cost = 1, std::string_view rule = {}) = 0;

  // Decides many requests in one pipelined round trip; one result per request, in order.
  virtual std::vector<StatusOr<LimitDecision>> DecideBatch(
      std::span<const LimitRequest> requests) = 0;

  // Reads a bucket without changing it. Store errors are returned, not decided.
  virtual StatusOr<BucketInfo> Inspect(std::string_view user_id, const BucketSpec& spec,
                                       std::string_view rule = {}) = 0;
  // Forgets a bucket (it becomes fresh and empty).
  virtual Status Reset(std::string_view user_id, const BucketSpec& spec,
                       std::string_view rule = {}) = 0;

  virtual LimiterStats Stats() const = 0;
  // Why the store last failed (OK if it never did): for tools that report a fallback
  // decision as an error.
  virtual Status LastStoreError() const = 0;
  virtual const LimiterOptions& options() const = 0;
};

// The mission's entry point: one request of cost 1 for `user_id` against a bucket of
// `capacity` requests leaking `leak_rate` requests per second. Uses a process-wide
// Limiter configured from the environment (and from DLB_CONFIG when set). Throws
// std::invalid_argument for invalid arguments; never throws for store failures.
bool AllowRequest(std::string_view user_id, int capacity, double leak_rate);

// The process-wide limiter behind AllowRequest (created on first use). Call it once at
// start-up to connect before the first request, so that no request pays for it.
Limiter& DefaultLimiter();

}  // namespace dlb
