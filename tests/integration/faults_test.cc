// Store faults: redis-server killed, stopped (SIGSTOP), restarted empty, cut off by a
// proxy that black-holes traffic, and its scripts flushed while a Limiter is deciding.
// Decisions go on under the failure policy, every call returns within its deadline
// (plus a margin for scheduling on a loaded machine: this is the correctness bound of
// the deadline, not a benchmark), the store takes over again once it is back, and what
// the local fallback admitted is in Redis exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <tuple>
#include <thread>
#include <vector>
#include <string>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis/script.h"
#include "redis_server.h"
#include "tcp_blackhole.h"

namespace dlb::testing {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kMarginNs = 50'000'000;
// Six threads on a shared 2-core machine: one of them can lose the CPU for longer.
constexpr int64_t kManyThreadsMarginNs = 250'000'000;
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
  uint64_t FallbackAdmitted() const {
    uint64_t total = 0;
    for (const auto& [key, nc] : fallback_admitted_) total += nc.first;
    return total;
  }

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
  // Three missed deadlines in a row (over the silence span) open it too: these tests
  // are about what the policy does once it is open, so the faults start soon.
  o.breaker_timeouts_in_row = 3;
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
    // Admissions made during the outage are debited to Redis once: at least what each
    // bucket owes (its fallback admissions up to C; a bucket whose admissions span two
    // debit batches owes more, up to C per batch), never more than was admitted.
    const uint64_t expected = tl.ExpectedReconciled();
    EXPECT_TRUE(WaitFor([&] { return tl.limiter().Stats().reconciled_requests >= expected; },
                        kRecoveryBound));
    // Settled: nothing more lands for 300 ms.
    uint64_t last = tl.limiter().Stats().reconciled_requests;
    int64_t still_since = MonoNowNs();
    EXPECT_TRUE(WaitFor(
        [&] {
          const uint64_t now = tl.limiter().Stats().reconciled_requests;
          if (now != last) {
            last = now;
            still_since = MonoNowNs();
          }
          return MonoNowNs() - still_since > 300'000'000;
        },
        kRecoveryBound));
    EXPECT_LE(tl.limiter().Stats().reconciled_requests, tl.FallbackAdmitted());
    // More store traffic must not reconcile anything again (what the policy decides
    // among it, on a loaded host, is debited as its own).
    const uint64_t landed = tl.limiter().Stats().reconciled_requests;
    const uint64_t admitted_before = tl.FallbackAdmitted();
    for (int i = 0; i < 20; ++i) tl.Decide("probe-user", kWarmSpec);
    EXPECT_LE(tl.limiter().Stats().reconciled_requests - landed, tl.FallbackAdmitted() - admitted_before);
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
  EXPECT_LT(max_call_ns.load(), std::chrono::nanoseconds(deadline).count() + kManyThreadsMarginNs);
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

// ---- the fault matrix: both Redis modes x every failure policy x four faults --------

enum class Fault { kKill, kStop5s, kRestartEmpty, kBlackHole };

const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kKill: return "kill";
    case Fault::kStop5s: return "stop5s";
    case Fault::kRestartEmpty: return "restart_empty";
    case Fault::kBlackHole: return "black_hole";
  }
  return "?";
}

using MatrixParam = std::tuple<Mode, FailurePolicy, Fault>;

class FaultMatrix : public ::testing::TestWithParam<MatrixParam> {};

// A quota that leaks 1e-6/s: Redis's level is the count of what was charged.
const BucketSpec kQuotaSpec{.capacity = 1000, .leak_rate_per_s = 1e-6};

// The measured user is new when the fault starts, so nothing of it is in flight then:
// every one of its requests is decided by the policy (or by the store once it is back),
// and afterwards Redis must hold exactly what was admitted by the store, by leases and,
// under `local`, by the fallback (reconciled once: a debit batch re-sent after a timeout
// finds its marker). Calls that time out before the breaker opens belong to other users
// (their takes may still run when a stopped server resumes: their fate is unknown).
TEST_P(FaultMatrix, PolicyWithinDeadlineAndExactlyOnceReconciliation) {
  const auto [mode, policy, fault] = GetParam();
  const milliseconds deadline{20};
  RedisServer server;
  std::unique_ptr<TcpBlackhole> proxy;
  if (fault == Fault::kBlackHole) proxy = std::make_unique<TcpBlackhole>(server.port());
  LimiterOptions o = FaultOptions(server, policy, deadline);
  if (proxy) o.redis_url = proxy->Url();
  o.mode = mode;
  o.sync_interval = std::chrono::microseconds(2000);
  auto tl = std::make_unique<TimedLimiter>(o);
  ASSERT_TRUE(tl->DecideUntilStore("warm-user", kWarmSpec, kRecoveryBound));
  // A hot user, so that in mode synced leases are held when the fault starts.
  for (int i = 0; i < 2000; ++i) tl->Decide("hot-user", kWarmSpec);

  const std::string user = "measured-" + std::string(FaultName(fault));
  std::map<DecisionSource, uint64_t> admitted_by;
  uint64_t decided = 0;
  auto decide_measured = [&] {
    const LimitDecision d = tl->Decide(user, kQuotaSpec);
    ++decided;
    if (d.allowed) ++admitted_by[d.source];
    return d;
  };
  // Trips the breaker with requests of other users (their calls time out or fail).
  auto trip = [&] {
    int i = 0;
    return WaitFor([&] {
      tl->Decide("trip-user-" + std::to_string(i++), kWarmSpec);
      return tl->limiter().Stats().breaker_open;
    }, kRecoveryBound, milliseconds(1));
  };

  const int64_t fault_start = MonoNowNs();
  switch (fault) {
    case Fault::kKill:
      server.Kill();
      ASSERT_TRUE(trip());
      while (MonoNowNs() < fault_start + 300'000'000) {
        EXPECT_EQ(decide_measured().source, FallbackSourceOf(policy));
      }
      server.Restart();
      break;
    case Fault::kStop5s:
      server.Stop();
      ASSERT_TRUE(trip());
      while (MonoNowNs() < fault_start + 5'000'000'000) {
        EXPECT_EQ(decide_measured().source, FallbackSourceOf(policy));
        std::this_thread::sleep_for(milliseconds(2));
      }
      server.Cont();
      break;
    case Fault::kBlackHole:
      proxy->BlackHole();
      ASSERT_TRUE(trip());
      while (MonoNowNs() < fault_start + 500'000'000) {
        EXPECT_EQ(decide_measured().source, FallbackSourceOf(policy));
      }
      EXPECT_GT(proxy->discarded_bytes(), 0u);
      proxy->Heal();
      break;
    case Fault::kRestartEmpty:
      // Pooled connections are dead now: the first calls fail and the policy decides
      // them, possibly without the breaker opening; the rest go to the new server.
      server.Restart();
      for (int i = 0; i < 40; ++i) decide_measured();
      break;
  }
  ASSERT_TRUE(tl->DecideUntilStore("probe-user", kWarmSpec, kRecoveryBound))
      << "the store did not decide again within " << kRecoveryBound.count() << " ms";
  if (fault != Fault::kRestartEmpty) {
    EXPECT_GT(decided, 0u);
    EXPECT_GE(tl->limiter().Stats().breaker_opens, 1u);
  }
  switch (policy) {
    case FailurePolicy::kLocal:
      EXPECT_LE(admitted_by[DecisionSource::kFallbackLocal], static_cast<uint64_t>(kQuotaSpec.capacity));
      if (fault == Fault::kKill || fault == Fault::kStop5s || fault == Fault::kBlackHole) {
        EXPECT_GT(admitted_by[DecisionSource::kFallbackLocal], 0u);
      }
      break;
    case FailurePolicy::kOpen: EXPECT_EQ(admitted_by[DecisionSource::kFallbackLocal], 0u); break;
    case FailurePolicy::kClosed: EXPECT_EQ(admitted_by[DecisionSource::kFallbackOpen], 0u); break;
  }
  const uint64_t expected_reconciled = policy == FailurePolicy::kLocal ? tl->ExpectedReconciled() : 0;
  EXPECT_TRUE(WaitFor([&] { return tl->limiter().Stats().reconciled_requests >= expected_reconciled; },
                      kRecoveryBound));
  // A bucket that leaks can be admitted more than C times locally over several
  // batches, each capped at C: between the sum of the caps and every admission. The
  // measured user's level below is the exact check.
  EXPECT_LE(tl->limiter().Stats().reconciled_requests,
            policy == FailurePolicy::kLocal ? tl->FallbackAdmitted() : 0);
  EXPECT_LT(tl->max_call_ns(), std::chrono::nanoseconds(deadline).count() + kMarginNs)
      << "slowest of " << tl->calls() << " calls";
  // Shutdown gives the leases back, so Redis holds exactly what was admitted.
  tl.reset();
  const uint64_t expected_level = admitted_by[DecisionSource::kStore] + admitted_by[DecisionSource::kLease] +
                                  admitted_by[DecisionSource::kFallbackLocal];
  LimiterOptions po;
  po.redis_url = server.Url();
  po.deadline = std::chrono::seconds(2);
  auto peek = Limiter::Create(po);
  ASSERT_TRUE(peek.ok());
  auto info = (*peek)->Inspect(user, kQuotaSpec);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_NEAR(info->state.level, static_cast<double>(expected_level), 0.01)
      << "store " << admitted_by[DecisionSource::kStore] << ", lease " << admitted_by[DecisionSource::kLease]
      << ", fallback " << admitted_by[DecisionSource::kFallbackLocal] << " of " << decided << " decided";
}

INSTANTIATE_TEST_SUITE_P(
    Faults, FaultMatrix,
    ::testing::Combine(::testing::Values(Mode::kStrict, Mode::kSynced),
                       ::testing::Values(FailurePolicy::kLocal, FailurePolicy::kOpen, FailurePolicy::kClosed),
                       ::testing::Values(Fault::kKill, Fault::kStop5s, Fault::kRestartEmpty, Fault::kBlackHole)),
    [](const auto& p) {
      return std::string(ModeName(std::get<0>(p.param))) + "_" + FailurePolicyName(std::get<1>(p.param)) + "_" +
             FaultName(std::get<2>(p.param));
    });

// A debit batch whose first send ran but whose reply was lost is sent again; the marker
// it left makes the second send a no-op.
TEST(DebitOnce, ASecondSendOfTheSameBatchChargesNothing) {
  RedisServer server;
  const std::string key = RedisKey("debit-user", "q");
  const std::string marker = key + ":rid:test-1";
  auto debit = [&](const std::string& m) {
    return server.Command({"EVAL", std::string(redis::BucketScript()), "2", key, m, "debitonce", "100", "0",
                           "7", "600000"});
  };
  RedisValue first = debit(marker);
  ASSERT_EQ(first.type, RedisValue::Type::kArray) << first.Describe();
  EXPECT_EQ(first.elements[0].integer, 1);   // charged (there was room)
  RedisValue again = debit(marker);
  ASSERT_EQ(again.type, RedisValue::Type::kArray) << again.Describe();
  EXPECT_EQ(again.elements[0].integer, 2);   // found applied
  EXPECT_EQ(server.Command({"GET", key}).str, "7");
  EXPECT_GT(server.Command({"PTTL", marker}).integer, 0);
  // Another batch is charged.
  ASSERT_EQ(debit(key + ":rid:test-2").elements[0].integer, 1);
  EXPECT_EQ(server.Command({"GET", key}).str, "14");
  // Bad arguments set no marker.
  RedisValue bad = server.Command({"EVAL", std::string(redis::BucketScript()), "2", key, key + ":rid:test-3",
                                   "debitonce", "0", "0", "7", "600000"});
  EXPECT_TRUE(bad.is_error());
  EXPECT_EQ(server.Command({"EXISTS", key + ":rid:test-3"}).integer, 0);
}

}  // namespace
}  // namespace dlb::testing
