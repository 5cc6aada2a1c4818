// Store faults: redis-server killed, stopped (SIGSTOP) and its scripts flushed while a
// Limiter is deciding. Decisions go on under the failure policy, every call returns
// within its deadline (plus a margin for scheduling on a loaded machine: this is the
// correctness bound of the deadline, not a benchmark), and the store takes over again
// once it is back.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>
#include <string>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kMarginNs = 50'000'000;
constexpr milliseconds kRecoveryBound{5000};

DecisionSource FallbackSourceOf(FailurePolicy p) {
  switch (p) {
    case FailurePolicy::kLocal: return DecisionSource::kFallbackLocal;
    case FailurePolicy::kOpen: return DecisionSource::kFallbackOpen;
    case FailurePolicy::kClosed: return DecisionSource::kFallbackClosed;
  }
  return DecisionSource::kStore;
}

// A Limiter whose every Decide is timed, with the fallback admissions counted per
// bucket (what reconciliation must debit to Redis).
class TimedLimiter {
 public:
  explicit TimedLimiter(LimiterOptions o) {
    auto l = Limiter::Create(o);
    if (!l.ok()) throw std::runtime_error(l.status().ToString());
    limiter_ = std::move(*l);
  }

  LimitDecision Decide(const std::string& user, const BucketSpec& spec) {
    const int64_t t0 = MonoNowNs();
    auto d = limiter_->Decide(user, spec);
    const int64_t took = MonoNowNs() - t0;
    if (took > max_call_ns_) max_call_ns_ = took;
    ++calls_;
    if (!d.ok()) throw std::runtime_error("Decide failed: " + d.status().ToString());
    if (d->source == DecisionSource::kFallbackLocal && d->allowed) {
      const std::string key = RedisKey(user, RuleNameForSpec(spec.capacity, spec.leak_rate_per_s));
      auto& [n, cap] = fallback_admitted_[key];
      ++n;
      cap = spec.capacity;
    }
    return *d;
  }

  // Decides for `user` until the store decides, within `bound`; true if it did.
  bool DecideUntilStore(const std::string& user, const BucketSpec& spec, milliseconds bound) {
    const int64_t end = MonoNowNs() + std::chrono::nanoseconds(bound).count();
    while (MonoNowNs() < end) {
      if (Decide(user, spec).source == DecisionSource::kStore) return true;
    }
    return false;
  }

  // What reconciliation owes Redis: per bucket, the fallback admissions capped at C.
  uint64_t ExpectedReconciled() const {
    uint64_t total = 0;
    for (const auto& [key, nc] : fallback_admitted_) total += std::min<uint64_t>(nc.first, nc.second);
    return total;
  }

  Limiter& limiter() { return *limiter_; }
  int64_t max_call_ns() const { return max_call_ns_; }
  uint64_t calls() const { return calls_; }

 private:
  std::unique_ptr<Limiter> limiter_;
  int64_t max_call_ns_ = 0;
  uint64_t calls_ = 0;
  std::map<std::string, std::pair<uint64_t, int64_t>> fallback_admitted_;
};

LimiterOptions FaultOptions(const RedisServer& server, FailurePolicy policy, milliseconds deadline) {
  LimiterOptions o;
  o.redis_url = server.Url();
  o.deadline = deadline;
  o.on_store_failure = policy;
  o.breaker_threshold = 3;
  o.breaker_backoff_min = milliseconds(10);
  o.breaker_backoff_max = milliseconds(100);
  return o;
}

const BucketSpec kWarmSpec{.capacity = 1000, .leak_rate_per_s = 1000};
const BucketSpec kOutageSpec{.capacity = 5, .leak_rate_per_s = 1e-6};
const BucketSpec kReconSpec{.capacity = 10, .leak_rate_per_s = 1e-6};

class KilledServer : public ::testing::TestWithParam<FailurePolicy> {};

TEST_P(KilledServer, DecisionsGoOnByPolicyWithinDeadlineAndStoreResumesAfterRestart) {
  const FailurePolicy policy = GetParam();
  const milliseconds deadline{20};
  RedisServer server;
  TimedLimiter tl(FaultOptions(server, policy, deadline));
  ASSERT_TRUE(tl.DecideUntilStore("warm-user", kWarmSpec, kRecoveryBound));

  server.Kill();
  // The outage: a bucket hammered for 300 ms and one asked exactly 4 times.
  uint64_t outage_calls = 0, outage_admitted = 0;
  const int64_t end = MonoNowNs() + 300'000'000;
  while (MonoNowNs() < end) {
    const LimitDecision d = tl.Decide("outage-user", kOutageSpec);
    ASSERT_EQ(d.source, FallbackSourceOf(policy)) << DecisionSourceName(d.source);
    ++outage_calls;
    outage_admitted += d.allowed;
  }
  for (int i = 0; i < 4; ++i) {
    const LimitDecision d = tl.Decide("recon-user", kReconSpec);
    ASSERT_EQ(d.source, FallbackSourceOf(policy));
  }
  switch (policy) {
    case FailurePolicy::kLocal: EXPECT_EQ(outage_admitted, 5u); break;   // the limit, locally
    case FailurePolicy::kOpen: EXPECT_EQ(outage_admitted, outage_calls); break;
    case FailurePolicy::kClosed: EXPECT_EQ(outage_admitted, 0u); break;
  }
  LimiterStats s = tl.limiter().Stats();
  EXPECT_TRUE(s.breaker_open);
  EXPECT_GE(s.breaker_opens, 1u);
  EXPECT_GE(s.store_errors, 1u);
  EXPECT_EQ(s.reconciled_requests, 0u);

  server.Restart();
  ASSERT_TRUE(tl.DecideUntilStore("probe-user", kWarmSpec, kRecoveryBound))
      << "the store did not decide again within " << kRecoveryBound.count() << " ms";
  EXPECT_FALSE(tl.limiter().Stats().breaker_open);

  if (policy == FailurePolicy::kLocal) {
    // Admissions made during the outage are debited to Redis once.
    const uint64_t expected = tl.ExpectedReconciled();
    EXPECT_TRUE(WaitFor([&] { return tl.limiter().Stats().reconciled_requests >= expected; },
                        kRecoveryBound));
    // More store traffic must not reconcile anything again.
    for (int i = 0; i < 20; ++i) tl.Decide("probe-user", kWarmSpec);
    EXPECT_EQ(tl.limiter().Stats().reconciled_requests, expected);
    auto info = tl.limiter().Inspect("recon-user", kReconSpec);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_NEAR(info->state.level, 4.0, 1e-3);
    EXPECT_EQ(info->state.remaining, 6);
    // The bucket used up locally is full in Redis as well.
    const LimitDecision after = tl.Decide("outage-user", kOutageSpec);
    EXPECT_EQ(after.source, DecisionSource::kStore);
    EXPECT_FALSE(after.allowed);
  } else {
    EXPECT_EQ(tl.limiter().Stats().reconciled_requests, 0u);
    const std::string key = RedisKey("recon-user", RuleNameForSpec(kReconSpec.capacity,
                                                                   kReconSpec.leak_rate_per_s));
    EXPECT_EQ(server.Command({"EXISTS", key}).integer, 0);
  }
  EXPECT_LT(tl.max_call_ns(), std::chrono::nanoseconds(deadline).count() + kMarginNs)
      << "slowest of " << tl.calls() << " calls";
}

INSTANTIATE_TEST_SUITE_P(Policies, KilledServer,
                         ::testing::Values(FailurePolicy::kLocal, FailurePolicy::kOpen,
                                           FailurePolicy::kClosed),
                         [](const auto& p) { return std::string(FailurePolicyName(p.param)); });

class StoppedServer : public ::testing::TestWithParam<FailurePolicy> {};

TEST_P(StoppedServer, DeadlineHoldsWhileRedisIsSilent) {
  const FailurePolicy policy = GetParam();
  // The library's default deadline (2 ms): the one a gateway runs with.
  const milliseconds deadline{2};
  RedisServer server;
  TimedLimiter tl(FaultOptions(server, policy, deadline));
  ASSERT_TRUE(tl.DecideUntilStore("warm-user", kWarmSpec, kRecoveryBound));

  server.Stop();
  const int64_t end = MonoNowNs() + 300'000'000;
  uint64_t calls = 0;
  while (MonoNowNs() < end) {
    const LimitDecision d = tl.Decide("silent-user", kOutageSpec);
    ASSERT_EQ(d.source, FallbackSourceOf(policy)) << DecisionSourceName(d.source);
    ++calls;
  }
  const LimiterStats s = tl.limiter().Stats();
  EXPECT_GE(s.store_timeouts, 1u);
  EXPECT_TRUE(s.breaker_open);
  EXPECT_GT(calls, 100u);   // the breaker keeps most calls off the silent store

  server.Cont();
  EXPECT_TRUE(tl.DecideUntilStore("probe-user", kWarmSpec, kRecoveryBound));
  EXPECT_LT(tl.max_call_ns(), std::chrono::nanoseconds(deadline).count() + kMarginNs)
      << "slowest of " << tl.calls() << " calls";
}

INSTANTIATE_TEST_SUITE_P(Policies, StoppedServer,
                         ::testing::Values(FailurePolicy::kLocal, FailurePolicy::kOpen,
                                           FailurePolicy::kClosed),
                         [](const auto& p) { return std::string(FailurePolicyName(p.param)); });

TEST(KilledServerLocalShare, FallbackEnforcesThisProcesssShareOfTheLimit) {
  RedisServer server;
  LimiterOptions o = FaultOptions(server, FailurePolicy::kLocal, milliseconds(20));
  o.fallback_share = 0.5;   // two gateway processes share the limit
  TimedLimiter tl(o);
  ASSERT_TRUE(tl.DecideUntilStore("warm-user", kWarmSpec, kRecoveryBound));
  server.Kill();
  int admitted = 0;
  for (int i = 0; i < 30; ++i) {
    const LimitDecision d = tl.Decide("share-user", kReconSpec);
    ASSERT_EQ(d.source, DecisionSource::kFallbackLocal);
    admitted += d.allowed;
  }
  EXPECT_EQ(admitted, 5);   // half of C = 10
}

// Threads deciding while the server dies and comes back, with fewer connections than
// threads: callers waiting for a connection are bound by the same deadline, nothing
// crashes (the sanitizer build runs this too), and the store takes over again.
TEST(KilledServerManyThreads, DeadlineHoldsForCallersWaitingForAConnection) {
  const milliseconds deadline{20};
  RedisServer server;
  LimiterOptions o = FaultOptions(server, FailurePolicy::kLocal, deadline);
  o.max_connections = 2;
  auto l = Limiter::Create(o);
  ASSERT_TRUE(l.ok());
  Limiter& limiter = **l;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> max_call_ns{0};
  std::atomic<uint64_t> errors{0}, store{0}, fallback{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      const std::string user = "mt-user-" + std::to_string(t);
      while (!stop.load()) {
        const int64_t t0 = MonoNowNs();
        auto d = limiter.Decide(user, kWarmSpec);
        const int64_t took = MonoNowNs() - t0;
        int64_t prev = max_call_ns.load();
        while (took > prev && !max_call_ns.compare_exchange_weak(prev, took)) {
        }
        if (!d.ok()) {
          errors.fetch_add(1);
        } else if (d->source == DecisionSource::kStore) {
          store.fetch_add(1);
        } else {
          fallback.fetch_add(1);
        }
      }
    });
  }
  EXPECT_TRUE(WaitFor([&] { return store.load() > 100; }, kRecoveryBound));
  server.Stop();
  const uint64_t fallback_before = fallback.load();
  EXPECT_TRUE(WaitFor([&] { return fallback.load() > fallback_before + 100; }, kRecoveryBound));
  server.Cont();
  server.Kill();
  const uint64_t fallback_killed = fallback.load();
  EXPECT_TRUE(WaitFor([&] { return fallback.load() > fallback_killed + 100; }, kRecoveryBound));
  server.Restart();
  const uint64_t store_before = store.load();
  EXPECT_TRUE(WaitFor([&] { return store.load() > store_before + 100; }, kRecoveryBound));
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_LT(max_call_ns.load(), std::chrono::nanoseconds(deadline).count() + kMarginNs);
}

TEST(KilledServerInspect, InspectReportsTheStoreErrorWithinTheDeadline) {
  const milliseconds deadline{20};
  RedisServer server;
  TimedLimiter tl(FaultOptions(server, FailurePolicy::kLocal, deadline));
  server.Kill();
  const int64_t t0 = MonoNowNs();
  auto info = tl.limiter().Inspect("inspect-user", kReconSpec);
  const int64_t took = MonoNowNs() - t0;
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().code(), StatusCode::kInvalidArgument) << info.status().ToString();
  EXPECT_LT(took, std::chrono::nanoseconds(deadline).count() + kMarginNs);
}

TEST(ScriptFlush, NextDecisionsReloadTheScriptWithoutFallbackOrDoubleCharge) {
  RedisServer server;
  LimiterOptions o;
  o.redis_url = server.Url();
  o.deadline = std::chrono::seconds(2);
  auto l = Limiter::Create(o);
  ASSERT_TRUE(l.ok());
  Limiter& limiter = **l;
  const BucketSpec spec{.capacity = 5, .leak_rate_per_s = 1e-6};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(limiter.Decide("flush-user", spec)->allowed);

  ASSERT_EQ(server.Command("SCRIPT FLUSH").str, "OK");
  ASSERT_EQ(server.Command({"SCRIPT", "EXISTS", "0000000000000000000000000000000000000000"})
                .elements.size(), 1u);
  // Two more fit, and only two: a request that met NOSCRIPT was not charged.
  for (int i = 0; i < 2; ++i) {
    auto d = limiter.Decide("flush-user", spec);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->source, DecisionSource::kStore);
    EXPECT_TRUE(d->allowed) << "request " << 3 + i;
  }
  auto over = limiter.Decide("flush-user", spec);
  ASSERT_TRUE(over.ok());
  EXPECT_EQ(over->source, DecisionSource::kStore);
  EXPECT_FALSE(over->allowed);

  // A pipelined batch that meets NOSCRIPT as a whole.
  ASSERT_EQ(server.Command("SCRIPT FLUSH").str, "OK");
  std::vector<LimitRequest> batch;
  for (int i = 0; i < 6; ++i) batch.push_back({.user_id = "flush-batch-user", .spec = spec, .cost = 1, .rule = {}});
  const auto results = limiter.DecideBatch(batch);
  int admitted = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->source, DecisionSource::kStore);
    admitted += r->allowed;
  }
  EXPECT_EQ(admitted, 5);
  const LimiterStats s = limiter.Stats();
  EXPECT_EQ(s.fallback_decisions, 0u);
  EXPECT_EQ(s.store_errors, 0u);
  EXPECT_EQ(s.store_decisions, 12u);
}

}  // namespace
}  // namespace dlb::testing
