// The circuit breaker opens on evidence of an outage, not on a slow reply
// (redis/breaker.h). Time is injected: every call passes its own now.
#include <gtest/gtest.h>

#include "redis/breaker.h"

namespace dlb::redis {
namespace {

constexpr int64_t kMs = 1'000'000;
const Status kTimeout = Status::DeadlineExceeded("Redis reply deadline exceeded");
const Status kRefused = Status::Unavailable("connect: Connection refused");

// threshold 3 hard failures; 8 missed deadlines spanning 20 ms; back-off 10..50 ms.
Breaker MakeBreaker(bool by_rate = true) { return Breaker(3, 8, 20 * kMs, 10 * kMs, 50 * kMs, by_rate); }

TEST(Breaker, MissedDeadlinesBetweenSuccessesNeverOpenIt) {
  Breaker b = MakeBreaker();
  int64_t now = 1000 * kMs;
  for (int i = 0; i < 1000; ++i, now += kMs) {
    for (int k = 0; k < 7; ++k) EXPECT_FALSE(b.OnFailure(b.Acquire(now), now, kTimeout));
    EXPECT_FALSE(b.OnSuccess(b.Acquire(now), now));
    for (int k = 0; k < 20; ++k) EXPECT_FALSE(b.OnSuccess(b.Acquire(now), now));
  }
  EXPECT_FALSE(b.open());
}

TEST(Breaker, ManyMissedDeadlinesWithinTheSilenceSpanDoNotOpenIt) {
  Breaker b = MakeBreaker();
  const int64_t now = 1500 * kMs;
  // A busy store: many calls answered in this window...
  for (int k = 0; k < 200; ++k) b.OnSuccess(Breaker::Permit::kCall, now - 100 * kMs);
  // ...then a 5 ms scheduling stall: every caller's reply late at once.
  for (int k = 0; k < 50; ++k) EXPECT_FALSE(b.OnFailure(Breaker::Permit::kCall, now + k * kMs / 10, kTimeout));
  EXPECT_FALSE(b.open());
}

TEST(Breaker, MissedDeadlinesInARowOverTheSilenceSpanOpenIt) {
  Breaker b = MakeBreaker(/*by_rate=*/false);
  int64_t now = 1000 * kMs;
  bool opened = false;
  int calls = 0;
  for (; !opened && calls < 100; ++calls, now += 3 * kMs) opened = b.OnFailure(Breaker::Permit::kCall, now, kTimeout);
  EXPECT_TRUE(opened);
  EXPECT_TRUE(b.open());
  EXPECT_EQ(calls, 8);   // 8 misses over 21 ms: the run and the span both reached
}

TEST(Breaker, RefusedConnectionsOpenItAtTheThreshold) {
  Breaker b = MakeBreaker();
  const int64_t now = 1000 * kMs;
  EXPECT_FALSE(b.OnFailure(Breaker::Permit::kCall, now, kRefused));
  EXPECT_FALSE(b.OnFailure(Breaker::Permit::kCall, now, kRefused));
  EXPECT_TRUE(b.OnFailure(Breaker::Permit::kCall, now, kRefused));
  EXPECT_TRUE(b.open());
  EXPECT_EQ(b.Acquire(now + kMs), Breaker::Permit::kRefuse);
}

TEST(Breaker, AFailureRateOfOneHalfOverTheWindowOpensIt) {
  Breaker b = MakeBreaker();
  int64_t now = 1000 * kMs;
  bool opened = false;
  int rounds = 0;
  // Alternating: no run ever reaches its threshold, but half of the calls fail.
  for (; !opened && rounds < 100; ++rounds, now += kMs) {
    EXPECT_FALSE(b.OnSuccess(Breaker::Permit::kCall, now));
    opened = b.OnFailure(Breaker::Permit::kCall, now, kRefused);
  }
  EXPECT_TRUE(opened);
  EXPECT_EQ(rounds, static_cast<int>(Breaker::kMinWindowCalls) / 2);
}

TEST(Breaker, OneProbeAfterTheBackOffAndItsSuccessClosesIt) {
  Breaker b = MakeBreaker();
  int64_t now = 1000 * kMs;
  for (int k = 0; k < 3; ++k) b.OnFailure(Breaker::Permit::kCall, now, kRefused);
  ASSERT_TRUE(b.open());
  EXPECT_EQ(b.Acquire(now + 9 * kMs), Breaker::Permit::kRefuse);
  EXPECT_EQ(b.Acquire(now + 10 * kMs), Breaker::Permit::kProbe);
  EXPECT_EQ(b.Acquire(now + 10 * kMs), Breaker::Permit::kRefuse);   // one probe at a time
  // A failed probe doubles the back-off, up to the 50 ms maximum.
  now += 10 * kMs;
  for (int64_t expect : {20, 40, 50, 50}) {
    EXPECT_FALSE(b.OnFailure(Breaker::Permit::kProbe, now, kTimeout));
    EXPECT_EQ(b.backoff_ns(), expect * kMs);
    EXPECT_EQ(b.Acquire(now + expect * kMs - 1), Breaker::Permit::kRefuse);
    now += expect * kMs;
    ASSERT_EQ(b.Acquire(now), Breaker::Permit::kProbe);
  }
  EXPECT_TRUE(b.OnSuccess(Breaker::Permit::kProbe, now));
  EXPECT_FALSE(b.open());
  EXPECT_EQ(b.Acquire(now), Breaker::Permit::kCall);
  EXPECT_EQ(b.backoff_ns(), 10 * kMs);
}

}  // namespace
}  // namespace dlb::redis
