// The Redis script against the local bucket core, and the script's stored state (TTL).
//
// The script returns the Redis time it decided at (now_us), so every Redis decision
// can be replayed into dlb::Decide at the same instant: both must then agree.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>

#include "dlb/bucket.h"
#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis/connection.h"
#include "redis/script.h"
#include "redis/url.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kSecondNs = 1'000'000'000;

// Calls the bucket script directly over one dlb::redis::Connection.
class ScriptCaller {
 public:
  explicit ScriptCaller(RedisServer& server) {
    auto ep = redis::ParseUrl(server.Url());
    if (!ep.ok()) throw std::runtime_error(ep.status().ToString());
    auto conn = redis::Connection::Open(*ep, MonoNowNs() + 2 * kSecondNs);
    if (!conn.ok()) throw std::runtime_error(conn.status().ToString());
    conn_ = std::move(*conn);
    std::string load;
    redis::CommandWriter(load).Begin(3).Arg("SCRIPT").Arg("LOAD").Arg(redis::BucketScript());
    std::vector<redis::Reply> replies;
    Status s = conn_->Exchange(load, 1, MonoNowNs() + 2 * kSecondNs, &replies);
    if (!s.ok()) throw std::runtime_error(s.ToString());
  }

  redis::ScriptResult Call(std::string_view key, redis::BucketOp op, const BucketSpec& spec,
                           int64_t cost) {
    std::string req;
    redis::CommandWriter w(req);
    redis::AppendBucketCall(w, redis::BucketScriptSha(), key, op, spec, cost);
    std::vector<redis::Reply> replies;
    Status s = conn_->Exchange(req, 1, MonoNowNs() + 2 * kSecondNs, &replies);
    if (!s.ok()) throw std::runtime_error(s.ToString());
    auto parsed = redis::ParseBucketReply(replies[0].get());
    if (!parsed.ok()) throw std::runtime_error(parsed.status().ToString());
    return *parsed;
  }

 private:
  std::unique_ptr<redis::Connection> conn_;
};

// Durations agree within rounding: the script rounds up in double arithmetic on ns,
// the core in fixed point with 2^-32 ns.
void ExpectDurationNear(int64_t redis_ns, int64_t local_ns, const std::string& what) {
  if (local_ns >= kNever - 1 || redis_ns >= kNever - 1) {
    EXPECT_EQ(redis_ns >= kNever - 1, local_ns >= kNever - 1) << what;
    return;
  }
  const double tol = 2.0 + 1e-9 * static_cast<double>(std::abs(local_ns));
  EXPECT_NEAR(static_cast<double>(redis_ns), static_cast<double>(local_ns), tol) << what;
}

// The script stores TAT rounded up to a whole ns when T >= 1 ms (see
// lib/redis/script.h); the local replica of the bucket does the same so that the two
// sequences stay comparable step by step, and any other difference still shows.
void RoundLikeTheScript(const BucketProfile& p, BucketState& s) {
  const u128 one_ns = u128{1} << kFracBits;
  if (p.leaks() && p.interval_fp() >= (u128{1'000'000} << kFracBits)) {
    s.tat_fp = (s.tat_fp + one_ns - 1) / one_ns * one_ns;
  }
}

struct SpecCase {
  BucketSpec spec;
  const char* name;
};

TEST(StoreAgreement, RandomSequenceOverRedisMatchesLocalCore) {
  RedisServer server;
  ScriptCaller caller(server);
  const SpecCase cases[] = {
      {{.capacity = 5, .leak_rate_per_s = 100}, "C5_r100"},
      {{.capacity = 10, .leak_rate_per_s = 3}, "C10_r3_fractionalT"},
      {{.capacity = 4, .leak_rate_per_s = 0}, "C4_r0"},
      {{.capacity = 20, .leak_rate_per_s = 1000}, "C20_r1000"},
      {{.capacity = 3, .leak_rate_per_s = 7}, "C3_r7_fractionalT"},
      {{.capacity = 50, .leak_rate_per_s = 12345.678}, "C50_r12345.678"},
  };
  std::mt19937_64 rng(20240531);
  int compared = 0, admitted = 0, rejected = 0, boundary = 0;
  for (const SpecCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto profile = BucketProfile::Make(c.spec);
    ASSERT_TRUE(profile.ok()) << profile.status().ToString();
    const std::string key = RedisKey(std::string("agree-") + c.name, "r");
    BucketState local;
    std::uniform_int_distribution<int64_t> cost_dist(1, std::min<int64_t>(c.spec.capacity, 4));
    // Mostly back-to-back calls (so buckets fill up), sometimes a pause of a few ms.
    std::uniform_int_distribution<int> gap_us(0, 4000);
    std::bernoulli_distribution pause(0.3);
    for (int step = 0; step < 80; ++step) {
      const int64_t cost = cost_dist(rng);
      if (pause(rng)) std::this_thread::sleep_for(std::chrono::microseconds(gap_us(rng)));
      const redis::ScriptResult r = caller.Call(key, redis::BucketOp::kTake, c.spec, cost);
      const int64_t now_ns = r.now_us * 1000;
      // How far this request lies from the admission boundary in the core's own
      // representation; within a nanosecond the two representations (decimal ns with
      // 6 fractional digits vs 2^-32 ns) may legitimately round to different sides.
      const u128 now_fp = profile->leaks() ? static_cast<u128>(now_ns) << kFracBits : 0;
      const u128 base = local.tat_fp > now_fp ? local.tat_fp : now_fp;
      const u128 want = base - now_fp + profile->interval_fp() * static_cast<u128>(cost);
      const u128 cap = profile->capacity_fp();
      const u128 margin = want > cap ? want - cap : cap - want;
      const bool at_boundary = profile->leaks() && margin < (u128{1} << kFracBits);

      const BucketState before = local;
      const Decision d = Decide(*profile, local, now_ns, cost);
      const std::string what = "step " + std::to_string(step) + " cost " + std::to_string(cost);
      if (at_boundary && d.allowed != r.allowed) {
        // Follow Redis so that the rest of the sequence stays comparable.
        ++boundary;
        local = before;
        if (r.allowed) local.tat_fp = base + profile->interval_fp() * static_cast<u128>(cost);
        RoundLikeTheScript(*profile, local);
        continue;
      }
      RoundLikeTheScript(*profile, local);
      ++compared;
      ASSERT_EQ(r.allowed, d.allowed) << what;
      EXPECT_EQ(r.decision.remaining, d.remaining) << what;
      EXPECT_NEAR(r.decision.level, d.level, 1e-6) << what;
      ExpectDurationNear(r.decision.retry_after_ns, d.retry_after_ns, what + " retry_after");
      ExpectDurationNear(r.decision.reset_after_ns, d.reset_after_ns, what + " reset_after");
      (d.allowed ? admitted : rejected)++;
    }
  }
  // The sequence must exercise both outcomes, and boundary cases must stay rare.
  EXPECT_GT(admitted, 50);
  EXPECT_GT(rejected, 50);
  EXPECT_LE(boundary, 2);
  EXPECT_GE(compared, 470);
}

TEST(StoreAgreement, PeekAndDebitMatchLocalCore) {
  RedisServer server;
  ScriptCaller caller(server);
  const BucketSpec spec{.capacity = 10, .leak_rate_per_s = 3};
  auto profile = BucketProfile::Make(spec);
  ASSERT_TRUE(profile.ok());
  const std::string key = RedisKey("agree-peek-debit", "r");
  BucketState local;
  // Debits saturate at a full bucket; peeks report without changing anything.
  const int64_t debits[] = {3, 4, 5, 1};
  for (int64_t n : debits) {
    const redis::ScriptResult dr = caller.Call(key, redis::BucketOp::kDebit, spec, n);
    Debit(*profile, local, dr.now_us * 1000, n);
    const redis::ScriptResult pr = caller.Call(key, redis::BucketOp::kPeek, spec, 1);
    const Decision p = Peek(*profile, local, pr.now_us * 1000);
    EXPECT_EQ(pr.allowed, p.allowed);
    EXPECT_EQ(pr.decision.remaining, p.remaining);
    EXPECT_NEAR(pr.decision.level, p.level, 1e-6);
    ExpectDurationNear(pr.decision.retry_after_ns, p.retry_after_ns, "retry_after");
    ExpectDurationNear(pr.decision.reset_after_ns, p.reset_after_ns, "reset_after");
  }
  EXPECT_LE(caller.Call(key, redis::BucketOp::kPeek, spec, 1).decision.level, 10.0);
}

TEST(StoreAgreement, TinyLeakRateRejectsSecondRequestForAThousandSeconds) {
  RedisServer server;
  ScriptCaller caller(server);
  const BucketSpec spec{.capacity = 1, .leak_rate_per_s = 0.001};
  const std::string key = RedisKey("slow-user", "r");
  const redis::ScriptResult first = caller.Call(key, redis::BucketOp::kTake, spec, 1);
  ASSERT_TRUE(first.allowed);
  const redis::ScriptResult second = caller.Call(key, redis::BucketOp::kTake, spec, 1);
  ASSERT_FALSE(second.allowed);
  EXPECT_EQ(second.decision.remaining, 0);
  // The truth on the Redis clock: one emission interval (1000 s) after the first
  // admission. Never shorter; longer only by the script's ns rounding.
  const int64_t truth_ns = 1000 * kSecondNs - (second.now_us - first.now_us) * 1000;
  EXPECT_GE(second.decision.retry_after_ns, truth_ns);
  EXPECT_LE(second.decision.retry_after_ns, truth_ns + 1);
}

TEST(StoreAgreement, TinyLeakRateThroughLimiterRetriesAfterAboutAThousandSeconds) {
  RedisServer server;
  LimiterOptions o;
  o.redis_url = server.Url();
  o.deadline = milliseconds(1000);
  auto limiter = Limiter::Create(o);
  ASSERT_TRUE(limiter.ok()) << limiter.status().ToString();
  const BucketSpec spec{.capacity = 1, .leak_rate_per_s = 0.001};
  const int64_t t0 = MonoNowNs();
  auto first = (*limiter)->Decide("slow-user", spec);
  auto second = (*limiter)->Decide("slow-user", spec);
  const int64_t span_ns = MonoNowNs() - t0;
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->source, DecisionSource::kStore);
  EXPECT_EQ(second->source, DecisionSource::kStore);
  EXPECT_TRUE(first->allowed);
  EXPECT_FALSE(second->allowed);
  // Both Redis instants lie within [t0, t0 + span]: the truth is at least 1000 s minus
  // the span, and never more than 1000 s.
  EXPECT_GE(second->retry_after_ns, 1000 * kSecondNs - span_ns);
  EXPECT_LE(second->retry_after_ns, 1000 * kSecondNs + 1);
  EXPECT_NEAR(static_cast<double>(second->reset_after_ns), 1000.0 * kSecondNs, 1e9);
}

TEST(StoreTtl, KeyExpiresWhenTheBucketHasDrained) {
  RedisServer server;
  ScriptCaller caller(server);
  // 50 requests at 10/s drain in 5 s.
  const BucketSpec spec{.capacity = 100, .leak_rate_per_s = 10};
  const std::string key = RedisKey("ttl-user", "r");
  const redis::ScriptResult r = caller.Call(key, redis::BucketOp::kTake, spec, 50);
  ASSERT_TRUE(r.allowed);
  const RedisValue pttl = server.Command({"PTTL", key});
  ASSERT_EQ(pttl.type, RedisValue::Type::kInteger) << pttl.Describe();
  // Set at r.now_us to expire 5000 ms (+1 ms rounding) later; read a little after.
  EXPECT_LE(pttl.integer, 5002);
  EXPECT_GT(pttl.integer, 4500);
  EXPECT_NEAR(static_cast<double>(r.decision.reset_after_ns), 5.0 * kSecondNs, 1e3);
  // The absolute expiry is the drain instant on the Redis clock, to the millisecond.
  const RedisValue at = server.Command({"PEXPIRETIME", key});
  ASSERT_EQ(at.type, RedisValue::Type::kInteger) << at.Describe();
  const double drain_ms = (static_cast<double>(r.now_us) + 5e6) / 1e3;
  EXPECT_GE(static_cast<double>(at.integer), drain_ms - 1);
  EXPECT_LE(static_cast<double>(at.integer), drain_ms + 2);
}

TEST(StoreTtl, IdleBucketVanishes) {
  RedisServer server;
  ScriptCaller caller(server);
  // 10 requests at 1000/s drain in 10 ms.
  const BucketSpec spec{.capacity = 10, .leak_rate_per_s = 1000};
  const std::string key = RedisKey("vanishing-user", "r");
  ASSERT_TRUE(caller.Call(key, redis::BucketOp::kTake, spec, 10).allowed);
  ASSERT_EQ(server.Command({"EXISTS", key}).integer, 1);
  EXPECT_TRUE(WaitFor([&] { return server.Command({"EXISTS", key}).integer == 0; },
                      milliseconds(3000)));
  // Gone means empty: a full burst is admitted again.
  EXPECT_TRUE(caller.Call(key, redis::BucketOp::kTake, spec, 10).allowed);
}

TEST(StoreTtl, NeverLeakingBucketHasNoExpiry) {
  RedisServer server;
  ScriptCaller caller(server);
  const BucketSpec spec{.capacity = 3, .leak_rate_per_s = 0};
  const std::string key = RedisKey("quota-user", "r");
  ASSERT_TRUE(caller.Call(key, redis::BucketOp::kTake, spec, 2).allowed);
  EXPECT_EQ(server.Command({"PTTL", key}).integer, -1);   // a lifetime quota stays
  EXPECT_EQ(server.Command({"GET", key}).str, "2");
}

TEST(StoreTtl, RejectedRequestDoesNotExtendTheExpiry) {
  RedisServer server;
  ScriptCaller caller(server);
  const BucketSpec spec{.capacity = 2, .leak_rate_per_s = 1};
  const std::string key = RedisKey("reject-ttl-user", "r");
  ASSERT_TRUE(caller.Call(key, redis::BucketOp::kTake, spec, 2).allowed);
  const long long at = server.Command({"PEXPIRETIME", key}).integer;
  const std::string value = server.Command({"GET", key}).str;
  ASSERT_FALSE(caller.Call(key, redis::BucketOp::kTake, spec, 1).allowed);
  EXPECT_EQ(server.Command({"PEXPIRETIME", key}).integer, at);
  EXPECT_EQ(server.Command({"GET", key}).str, value);
}

}  // namespace
}  // namespace dlb::testing
