// dlb::Limiter in mode synced against a real redis-server. Buckets that never leak make
// Redis's count exact, so what was admitted and what Redis holds can be compared.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

using std::chrono::milliseconds;

class SyncedLimiterTest : public ::testing::Test {
 protected:
  std::unique_ptr<Limiter> Make(Mode mode = Mode::kSynced) {
    LimiterOptions o;
    o.mode = mode;
    o.redis_url = server_.Url();
    o.deadline = std::chrono::microseconds(50'000);
    o.sync_interval = std::chrono::microseconds(2'000);
    auto l = Limiter::Create(o);
    if (!l.ok()) throw std::runtime_error(l.status().ToString());
    return std::move(*l);
  }
  int64_t Count(std::string_view user, std::string_view rule) {
    RedisValue v = server_.Command({"GET", RedisKey(user, rule)});
    return v.is_nil() ? 0 : std::stoll(v.str);
  }
  RedisServer server_;
};

TEST(SyncedMode, IsParsedAndNamed) {
  auto m = ParseMode("synced");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, Mode::kSynced);
  EXPECT_STREQ(ModeName(Mode::kSynced), "synced");
  EXPECT_STREQ(DecisionSourceName(DecisionSource::kLease), "lease");
}

TEST(SyncedMode, IsChosenFromTheEnvironment) {
  ::setenv("DLB_MODE", "synced", 1);
  ::setenv("DLB_SYNC_INTERVAL_US", "1000", 1);
  auto o = OptionsFromEnvironment();
  ::unsetenv("DLB_MODE");
  ::unsetenv("DLB_SYNC_INTERVAL_US");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->mode, Mode::kSynced);
  EXPECT_EQ(o->sync_interval, std::chrono::microseconds(1000));
  ::setenv("DLB_SYNC_INTERVAL_US", "5", 1);
  EXPECT_FALSE(OptionsFromEnvironment().ok());
  ::unsetenv("DLB_SYNC_INTERVAL_US");
}

TEST_F(SyncedLimiterTest, ColdUserIsOneStrictCallAndHoldsNoLease) {
  auto l = Make();
  const BucketSpec quota{.capacity = 100, .leak_rate_per_s = 0};
  auto d = l->Decide("cold", quota, 1, "q");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(d->source, DecisionSource::kStore);
  // Several sync rounds later nothing more is charged.
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(Count("cold", "q"), 1);
}

TEST_F(SyncedLimiterTest, HotUserIsDecidedByLeasesAndShutdownReturnsThem) {
  const BucketSpec quota{.capacity = 1'000'000, .leak_rate_per_s = 0};
  int64_t admitted = 0;
  {
    auto l = Make();
    const auto end = std::chrono::steady_clock::now() + milliseconds(150);
    while (std::chrono::steady_clock::now() < end) {
      auto d = l->Decide("hot", quota, 1, "q");
      ASSERT_TRUE(d.ok());
      admitted += d->allowed;
    }
    EXPECT_GT(l->Stats().lease_decisions, l->Stats().store_decisions);
  }
  // Every unit charged was either admitted or given back at shutdown.
  EXPECT_EQ(Count("hot", "q"), admitted);
}

TEST_F(SyncedLimiterTest, TwoParticipantsNeverAdmitMoreThanTheBucket) {
  const BucketSpec quota{.capacity = 3000, .leak_rate_per_s = 0};
  std::atomic<int64_t> admitted{0};
  {
    auto a = Make();
    auto b = Make();
    // Both keep asking until the quota is used up and then 100 ms more (at most 10 s
    // on a slow machine), so any unit admitted twice would show.
    const auto start = std::chrono::steady_clock::now();
    std::atomic<int64_t> used_up_at_ns{0};
    auto hammer = [&](Limiter* l) {
      for (;;) {
        const auto now = std::chrono::steady_clock::now();
        const int64_t t = std::chrono::duration_cast<std::chrono::nanoseconds>(now - start).count();
        if (t > 10'000'000'000) break;
        const int64_t at = used_up_at_ns.load();
        if (at != 0 && t > at + 100'000'000) break;
        auto d = l->Decide("shared", quota, 1, "q");
        if (d.ok() && d->allowed && admitted.fetch_add(1) + 1 >= 3000) {
          int64_t zero = 0;
          used_up_at_ns.compare_exchange_strong(zero, std::max<int64_t>(t, 1));
        }
      }
    };
    std::thread ta(hammer, a.get()), tb(hammer, b.get());
    ta.join();
    tb.join();
    EXPECT_LE(admitted.load(), 3000);
  }
  EXPECT_EQ(Count("shared", "q"), admitted.load());
  // The two together admitted the whole quota, and not one request more.
  EXPECT_EQ(admitted.load(), 3000);
}

TEST_F(SyncedLimiterTest, ResetForgetsTheLocalLease) {
  const BucketSpec quota{.capacity = 1'000'000, .leak_rate_per_s = 0};
  int64_t after_reset = 0;
  {
    auto l = Make();
    const auto end = std::chrono::steady_clock::now() + milliseconds(50);
    while (std::chrono::steady_clock::now() < end) ASSERT_TRUE(l->Decide("reset", quota, 1, "q").ok());
    ASSERT_GT(l->Stats().lease_decisions, 0u);
    ASSERT_TRUE(l->Reset("reset", quota, "q").ok());
    for (int i = 0; i < 100; ++i) {
      auto d = l->Decide("reset", quota, 1, "q");
      ASSERT_TRUE(d.ok());
      after_reset += d->allowed;
    }
  }
  // Only what was admitted after the reset is in the fresh bucket: no unit leased before
  // it was admitted after it unaccounted.
  EXPECT_EQ(after_reset, 100);
  EXPECT_EQ(Count("reset", "q"), after_reset);
}

TEST_F(SyncedLimiterTest, StrictAndSyncedShareOneBucket) {
  const BucketSpec quota{.capacity = 50, .leak_rate_per_s = 0};
  auto strict = Make(Mode::kStrict);
  auto synced = Make();
  int64_t admitted = 0;
  for (int i = 0; i < 200; ++i) {
    auto d = (i % 2 ? strict : synced)->Decide("both", quota, 1, "q");
    ASSERT_TRUE(d.ok());
    admitted += d->allowed;
  }
  EXPECT_EQ(admitted, 50);
}

TEST_F(SyncedLimiterTest, StoreDownFallsBackToAShareOfTheLimitPerLiveParticipant) {
  auto a = Make();
  auto b = Make();
  ASSERT_TRUE(WaitFor([&] { return a->Stats().live_participants == 2; }, milliseconds(5000)));
  server_.Kill();
  const BucketSpec spec{.capacity = 10, .leak_rate_per_s = 0.001};
  int admitted = 0;
  for (int i = 0; i < 20; ++i) {
    auto d = a->Decide("outage", spec, 1, "o");
    ASSERT_TRUE(d.ok());
    EXPECT_NE(d->source, DecisionSource::kStore);
    EXPECT_NE(d->source, DecisionSource::kLease);
    admitted += d->allowed;
  }
  // Two live participants: each enforces half of the limit on its own.
  EXPECT_EQ(admitted, 5);
  EXPECT_TRUE(a->Stats().breaker_open);
}

TEST_F(SyncedLimiterTest, OutageAdmissionsAreReconciledWhenASyncRoundFindsTheStoreBack) {
  auto l = Make();
  const BucketSpec quota{.capacity = 10, .leak_rate_per_s = 0};
  server_.Kill();
  int admitted = 0;
  for (int i = 0; i < 20; ++i) {
    auto d = l->Decide("outage", quota, 1, "q");
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->source, DecisionSource::kFallbackLocal);
    admitted += d->allowed;
  }
  ASSERT_EQ(admitted, 10);
  ASSERT_TRUE(l->Stats().breaker_open);
  server_.Restart();
  // No more decisions: the sync thread's probe is what finds the store back, and the
  // outage's admissions are debited once.
  // (The breaker closes once the outage's charges have landed: wait for both.)
  EXPECT_TRUE(WaitFor([&] { return l->Stats().reconciled_requests == 10 && !l->Stats().breaker_open; },
                      milliseconds(10000)))
      << "reconciled " << l->Stats().reconciled_requests << ", breaker open " << l->Stats().breaker_open;
  EXPECT_EQ(l->Stats().reconciled_requests, 10u);
  EXPECT_EQ(Count("outage", "q"), 10);
}

TEST_F(SyncedLimiterTest, LiveParticipantsAreCounted) {
  auto a = Make();
  auto b = Make();
  EXPECT_TRUE(WaitFor([&] { return a->Stats().live_participants == 2 && b->Stats().live_participants == 2; },
                      milliseconds(5000)));
}

}  // namespace
}  // namespace dlb::testing
