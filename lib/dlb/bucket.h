// The bucket core: a leaky bucket implemented as GCRA (see docs/design.md, "Bucket
// semantics"). One integer of state per bucket, the theoretical arrival time (TAT).
//
// Time is integer nanoseconds from an injected clock. The emission interval
// T = 1/leak_rate is kept in fixed point with kFracBits fractional bits of a
// nanosecond, in 128-bit integers, so that every leak rate in [1e-6, 1e9] per second
// keeps T to a relative error below 1e-10 and nothing is lost or gained through
// truncation. Range argument: T <= 1e15 ns * 2^32 < 2^83, capacity <= 2^40, so
// C*T < 2^123; now <= 2^63 ns gives now_fp < 2^95; their sum fits in 128 bits.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "dlb/status.h"

namespace dlb {

__extension__ typedef unsigned __int128 u128;

inline constexpr int kFracBits = 32;
inline constexpr int64_t kMaxCapacity = int64_t{1} << 40;
inline constexpr double kMinLeakRatePerS = 0.0;   // 0 = never leaks (lifetime quota)
inline constexpr double kMaxLeakRatePerS = 1e9;
// A duration that never ends: retry_after / reset_after of a bucket that never leaks.
inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// What the caller asks for: capacity C (requests) and leak rate r (requests/second).
struct BucketSpec {
  int64_t capacity = 0;
  double leak_rate_per_s = 0.0;
};

// Validates a spec and a cost; the message names the offending parameter and value.
Status ValidateSpec(const BucketSpec& spec);
Status ValidateCost(const BucketSpec& spec, int64_t cost);

// A spec turned into integer fixed point once (floating point only here, as DPDK's
// rte_meter does when a config becomes a profile).
class BucketProfile {
 public:
  static StatusOr<BucketProfile> Make(const BucketSpec& spec);

  const BucketSpec& spec() const { return spec_; }
  bool leaks() const { return leaks_; }
  // T in ns << kFracBits. For a bucket that never leaks, the unit is one request and
  // time stands still (TAT is then a plain count of admitted requests).
  u128 interval_fp() const { return interval_fp_; }
  u128 capacity_fp() const { return capacity_fp_; }

 private:
  BucketSpec spec_;
  bool leaks_ = true;
  u128 interval_fp_ = 0;
  u128 capacity_fp_ = 0;
};

// The outcome of one request against one bucket.
struct Decision {
  bool allowed = false;
  double level = 0.0;           // requests in the bucket after the decision
  int64_t remaining = 0;        // floor(C - level)
  int64_t retry_after_ns = 0;   // 0 when allowed; kNever when it never will be
  int64_t reset_after_ns = 0;   // until the bucket is empty; kNever if it never leaks
};

// The state of one bucket: TAT in ns << kFracBits on the clock of whoever decides it.
// A zero state is a fresh, empty bucket.
struct BucketState {
  u128 tat_fp = 0;
};

// Decides a request of `cost` at time `now_ns` and updates `state` iff it is admitted.
// Preconditions (checked by ValidateCost, not here: this is the hot path): 1 <= cost
// <= capacity. A clock that steps backwards only makes the bucket look fuller: it
// never admits anything extra.
Decision Decide(const BucketProfile& profile, BucketState& state, int64_t now_ns, int64_t cost);

// The bucket as it stands at `now_ns`, without a request.
Decision Peek(const BucketProfile& profile, const BucketState& state, int64_t now_ns);

// Adds `cost` to the bucket unconditionally, saturating at a full bucket. Used to
// reconcile requests that were admitted elsewhere (for example during a store outage).
void Debit(const BucketProfile& profile, BucketState& state, int64_t now_ns, int64_t cost);

// Sets the bucket to hold `level` requests at `now_ns` (rounded up, at most full): a
// local copy of a level learned elsewhere (a Redis reply), as a fill relative to this
// clock, so no other clock's timestamp is ever compared with this one.
void SetLevel(const BucketProfile& profile, BucketState& state, int64_t now_ns, double level);

// Whether the bucket is empty at `now_ns` (its state may then be forgotten).
bool IsEmpty(const BucketProfile& profile, const BucketState& state, int64_t now_ns);

}  // namespace dlb
