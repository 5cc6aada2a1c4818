#include "dlb/bucket.h"

#include <cmath>
#include <cstdio>

namespace dlb {
namespace {

constexpr u128 kOneNsFp = u128{1} << kFracBits;

inline u128 NowFp(const BucketProfile& p, int64_t now_ns) {
  // Time stands still for a bucket that never leaks; a negative clock reads as 0.
  if (!p.leaks() || now_ns <= 0) return 0;
  return static_cast<u128>(now_ns) << kFracBits;
}

inline int64_t CeilNs(u128 fp) {
  u128 ns = (fp + kOneNsFp - 1) >> kFracBits;
  return ns > static_cast<u128>(kNever - 1) ? kNever - 1 : static_cast<int64_t>(ns);
}

// Fills level / remaining / reset_after from the bucket's fill `diff` (TAT - now).
inline void Describe(const BucketProfile& p, u128 diff, Decision& d) {
  const u128 t = p.interval_fp();
  // Whole requests and the fraction apart: dividing the two u128 values as doubles
  // can round a full bucket (diff == C*T) to a level one ulp above C.
  const u128 whole = diff / t;
  const u128 frac = diff - whole * t;
  d.level = static_cast<double>(whole) + static_cast<double>(frac) / static_cast<double>(t);
  const u128 cap = p.capacity_fp();
  // floor(C - level) == C - ceil(level) for integer C.
  d.remaining = diff >= cap ? 0
                            : p.spec().capacity - static_cast<int64_t>(whole) - (frac != 0);
  if (diff == 0) {
    d.reset_after_ns = 0;
  } else {
    d.reset_after_ns = p.leaks() ? CeilNs(diff) : kNever;
  }
}

}  // namespace

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kUnavailable: return "Unavailable";
    case StatusCode::kDeadlineExceeded: return "DeadlineExceeded";
    case StatusCode::kProtocol: return "Protocol";
    case StatusCode::kInternal: return "Internal";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status ValidateSpec(const BucketSpec& spec) {
  char buf[160];
  if (spec.capacity < 1 || spec.capacity > kMaxCapacity) {
    std::snprintf(buf, sizeof buf, "capacity must be an integer in [1, 2^40], got %lld",
                  static_cast<long long>(spec.capacity));
    return Status::InvalidArgument(buf);
  }
  const double r = spec.leak_rate_per_s;
  if (std::isnan(r) || std::isinf(r)) {
    std::snprintf(buf, sizeof buf, "leak_rate must be finite, got %g", r);
    return Status::InvalidArgument(buf);
  }
  if (r < 0) {
    std::snprintf(buf, sizeof buf, "leak_rate must be >= 0 requests/s, got %g", r);
    return Status::InvalidArgument(buf);
  }
  if (r != 0 && (r < 1e-6 || r > kMaxLeakRatePerS)) {
    std::snprintf(buf, sizeof buf,
                  "leak_rate must be 0 or in [1e-6, 1e9] requests/s, got %g", r);
    return Status::InvalidArgument(buf);
  }
  return Status::Ok();
}

Status ValidateCost(const BucketSpec& spec, int64_t cost) {
  if (cost < 1 || cost > spec.capacity) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "cost must be in [1, capacity=%lld], got %lld",
                  static_cast<long long>(spec.capacity), static_cast<long long>(cost));
    return Status::InvalidArgument(buf);
  }
  return Status::Ok();
}

StatusOr<BucketProfile> BucketProfile::Make(const BucketSpec& spec) {
  if (Status s = ValidateSpec(spec); !s.ok()) return s;
  BucketProfile p;
  p.spec_ = spec;
  if (spec.leak_rate_per_s == 0) {
    p.leaks_ = false;
    p.interval_fp_ = kOneNsFp;
  } else {
    // long double keeps 64 mantissa bits: T_fp up to 2^83 is rounded to within
    // 2^-64 relative, far below one request over any realistic horizon.
    const long double t = 1e9L * static_cast<long double>(kOneNsFp) /
                          static_cast<long double>(spec.leak_rate_per_s);
    p.interval_fp_ = static_cast<u128>(t + 0.5L);
    if (p.interval_fp_ == 0) p.interval_fp_ = 1;
  }
  p.capacity_fp_ = p.interval_fp_ * static_cast<u128>(spec.capacity);
  return p;
}

Decision Decide(const BucketProfile& p, BucketState& state, int64_t now_ns, int64_t cost) {
  const u128 now = NowFp(p, now_ns);
  const u128 base = state.tat_fp > now ? state.tat_fp : now;
  const u128 diff = base - now;
  const u128 want = diff + p.interval_fp() * static_cast<u128>(cost);
  Decision d;
  if (want <= p.capacity_fp()) {
    state.tat_fp = now + want;
    d.allowed = true;
    Describe(p, want, d);
    return d;
  }
  Describe(p, diff, d);
  d.retry_after_ns = p.leaks() ? CeilNs(want - p.capacity_fp()) : kNever;
  return d;
}

Decision Peek(const BucketProfile& p, const BucketState& state, int64_t now_ns) {
  const u128 now = NowFp(p, now_ns);
  const u128 diff = state.tat_fp > now ? state.tat_fp - now : 0;
  Decision d;
  d.allowed = diff + p.interval_fp() <= p.capacity_fp();
  Describe(p, diff, d);
  if (!d.allowed) {
    d.retry_after_ns = p.leaks() ? CeilNs(diff + p.interval_fp() - p.capacity_fp()) : kNever;
  }
  return d;
}

void Debit(const BucketProfile& p, BucketState& state, int64_t now_ns, int64_t cost) {
  // Any cost >= C fills the bucket; clamping first keeps cost * T within 128 bits
  // (it would wrap for cost > ~2^46 at the slowest rate). A count below 1 adds nothing.
  if (cost < 1) return;
  if (cost > p.spec().capacity) cost = p.spec().capacity;
  const u128 now = NowFp(p, now_ns);
  const u128 diff = state.tat_fp > now ? state.tat_fp - now : 0;
  u128 want = diff + p.interval_fp() * static_cast<u128>(cost);
  if (want > p.capacity_fp()) want = p.capacity_fp();
  if (want > diff) state.tat_fp = now + want;
}

void SetLevel(const BucketProfile& p, BucketState& state, int64_t now_ns, double level) {
  u128 fill = p.capacity_fp();
  if (!(level >= 0)) {
    fill = 0;
  } else if (level < static_cast<double>(p.spec().capacity)) {
    // long double keeps the 64 bits of T_fp; ceil so the copy is never emptier.
    const long double f = std::ceil(static_cast<long double>(level) * static_cast<long double>(p.interval_fp()));
    if (f < static_cast<long double>(p.capacity_fp())) fill = static_cast<u128>(f);
  }
  state.tat_fp = NowFp(p, now_ns) + fill;
}

bool IsEmpty(const BucketProfile& p, const BucketState& state, int64_t now_ns) {
  return state.tat_fp <= NowFp(p, now_ns);
}

}  // namespace dlb
