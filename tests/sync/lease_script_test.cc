// The lease and announce scripts against a real redis-server, and their agreement with
// the strict bucket script on one shared bucket.
#include <gtest/gtest.h>

#include <thread>

#include "dlb/key.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/script.h"
#include "redis/url.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

constexpr int64_t kSecondNs = 1'000'000'000;

class LeaseScriptTest : public ::testing::Test {
 protected:
  LeaseScriptTest()
      : pool_(*redis::ParseUrl(server_.Url()), 2,
              {redis::BucketScript(), redis::LeaseScript(), redis::kAnnounceScript, redis::ResetLogScript()}) {}

  // `resets_after_seq` >= 0: the call guarded by the reset log.
  redis::LeaseGrant Lease(const std::string& key, const BucketSpec& spec, int64_t ret, int64_t want,
                          int64_t resets_after_seq = -1) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    const redis::LeaseItem item{.key = key, .spec = spec, .return_units = ret, .want_units = want};
    redis::AppendLeaseCall(w, std::span<const redis::LeaseItem>(&item, 1), resets_after_seq);
    std::vector<redis::Reply> replies;
    Status s = pool_.Call({cmd}, MonoNowNs() + 2 * kSecondNs, &replies);
    if (!s.ok()) throw std::runtime_error(s.ToString());
    std::vector<redis::LeaseGrant> out;
    s = redis::ParseLeaseReply(replies[0].get(), 1, &out, resets_after_seq >= 0);
    if (!s.ok()) throw std::runtime_error(s.ToString());
    return out[0];
  }

  // The reset of the limiter outside Cluster: the bucket deleted and logged in one step.
  int64_t ResetAndLog(const std::string& key) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendResetLogCall(w, key, 100, /*and_delete=*/true);
    std::vector<redis::Reply> replies;
    Status s = pool_.Call({cmd}, MonoNowNs() + 2 * kSecondNs, &replies);
    if (!s.ok()) throw std::runtime_error(s.ToString());
    if (replies[0]->type != REDIS_REPLY_INTEGER) throw std::runtime_error(redis::DescribeReply(replies[0].get()));
    return replies[0]->integer;
  }

  int64_t Count(const std::string& key) {
    std::string cmd;
    redis::CommandWriter(cmd).Begin(2).Arg("GET").Arg(key);
    std::vector<redis::Reply> replies;
    Status s = pool_.Call({cmd}, MonoNowNs() + 2 * kSecondNs, &replies);
    if (!s.ok()) throw std::runtime_error(s.ToString());
    if (replies[0]->type == REDIS_REPLY_NIL) return 0;
    return std::atoll(std::string(replies[0]->str, replies[0]->len).c_str());
  }

  redis::ScriptResult Strict(const std::string& key, redis::BucketOp op, const BucketSpec& spec) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendBucketCall(w, redis::BucketScriptSha(), key, op, spec, 1);
    std::vector<redis::Reply> replies;
    Status s = pool_.Call({cmd}, MonoNowNs() + 2 * kSecondNs, &replies);
    if (!s.ok()) throw std::runtime_error(s.ToString());
    auto r = redis::ParseBucketReply(replies[0].get());
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
    return *r;
  }

  int64_t Announce(const std::string& id, int64_t ttl_ms) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendAnnounceCall(w, id, ttl_ms);
    std::vector<redis::Reply> replies;
    Status s = pool_.Call({cmd}, MonoNowNs() + 2 * kSecondNs, &replies);
    if (!s.ok()) throw std::runtime_error(s.ToString());
    auto n = redis::ParseAnnounceReply(replies[0].get());
    if (!n.ok()) throw std::runtime_error(n.status().ToString());
    return *n;
  }

  RedisServer server_;
  redis::Pool pool_;
};

// One request per 1000 s: a test leaks under 1e-4 of a request (the tolerance below).
const BucketSpec kSlow{.capacity = 10, .leak_rate_per_s = 0.001};
const BucketSpec kNeverLeaks{.capacity = 5, .leak_rate_per_s = 0};

TEST_F(LeaseScriptTest, GrantsAllThatFitsAndNoMore) {
  const std::string key = RedisKey("grant", "r");
  EXPECT_EQ(Lease(key, kSlow, 0, 4).granted_units, 4);
  EXPECT_EQ(Lease(key, kSlow, 0, 10).granted_units, 6);
  EXPECT_EQ(Lease(key, kSlow, 0, 1).granted_units, 0);
  EXPECT_NEAR(Lease(key, kSlow, 0, 0).level, 10.0, 1e-4);
}

TEST_F(LeaseScriptTest, StrictTakesSeeLeasedUnitsAndReturnedOnes) {
  const std::string key = RedisKey("shared", "r");
  ASSERT_EQ(Lease(key, kSlow, 0, 10).granted_units, 10);
  EXPECT_FALSE(Strict(key, redis::BucketOp::kTake, kSlow).allowed);
  EXPECT_EQ(Lease(key, kSlow, 3, 0).granted_units, 0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Strict(key, redis::BucketOp::kTake, kSlow).allowed) << i;
  EXPECT_FALSE(Strict(key, redis::BucketOp::kTake, kSlow).allowed);
}

TEST_F(LeaseScriptTest, LeaseReadsWhatStrictWrote) {
  const std::string key = RedisKey("agree", "r");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Strict(key, redis::BucketOp::kTake, kSlow).allowed);
  const redis::LeaseGrant g = Lease(key, kSlow, 0, 100);
  EXPECT_EQ(g.granted_units, 7);
  EXPECT_NEAR(Strict(key, redis::BucketOp::kPeek, kSlow).decision.level, g.level, 1e-4);
}

TEST_F(LeaseScriptTest, ReturnNeverGoesBelowEmptyAndDropsTheKey) {
  const std::string key = RedisKey("below", "r");
  ASSERT_EQ(Lease(key, kSlow, 0, 3).granted_units, 3);
  const redis::LeaseGrant g = Lease(key, kSlow, 100, 0);
  EXPECT_EQ(g.level, 0.0);
  EXPECT_EQ(server_.Command({"EXISTS", key}).integer, 0);
  // A fresh bucket again: a whole burst fits.
  EXPECT_EQ(Lease(key, kSlow, 0, 10).granted_units, 10);
}

TEST_F(LeaseScriptTest, LeaseKeepsTheStrictExpiry) {
  const std::string key = RedisKey("ttl", "r");
  const BucketSpec fast{.capacity = 10, .leak_rate_per_s = 100};   // 10 units drain in 100 ms
  ASSERT_EQ(Lease(key, fast, 0, 10).granted_units, 10);
  const int64_t pttl = server_.Command({"PTTL", key}).integer;
  EXPECT_GT(pttl, 50);
  EXPECT_LE(pttl, 102);
}

TEST_F(LeaseScriptTest, BucketThatNeverLeaksCountsUnits) {
  const std::string key = RedisKey("quota", "r");
  ASSERT_EQ(Lease(key, kNeverLeaks, 0, 3).granted_units, 3);
  EXPECT_TRUE(Strict(key, redis::BucketOp::kTake, kNeverLeaks).allowed);
  EXPECT_TRUE(Strict(key, redis::BucketOp::kTake, kNeverLeaks).allowed);
  EXPECT_FALSE(Strict(key, redis::BucketOp::kTake, kNeverLeaks).allowed);
  EXPECT_EQ(Lease(key, kNeverLeaks, 1, 0).level, 4.0);
  EXPECT_TRUE(Strict(key, redis::BucketOp::kTake, kNeverLeaks).allowed);
  EXPECT_EQ(server_.Command({"GET", key}).str, "5");
}

TEST_F(LeaseScriptTest, ManyBucketsInOneCall) {
  std::vector<std::string> keys;
  for (int i = 0; i < 50; ++i) keys.push_back(RedisKey("many" + std::to_string(i), "r"));
  std::vector<redis::LeaseItem> items;
  for (int i = 0; i < 50; ++i) items.push_back({.key = keys[i], .spec = kSlow, .return_units = 0, .want_units = i % 12});
  std::string cmd;
  redis::CommandWriter w(cmd);
  redis::AppendLeaseCall(w, items);
  std::vector<redis::Reply> replies;
  ASSERT_TRUE(pool_.Call({cmd}, MonoNowNs() + 2 * kSecondNs, &replies).ok());
  std::vector<redis::LeaseGrant> grants;
  ASSERT_TRUE(redis::ParseLeaseReply(replies[0].get(), 50, &grants).ok());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(grants[i].granted_units, std::min(i % 12, 10)) << i;
}

TEST_F(LeaseScriptTest, AnnounceCountsLiveParticipantsOnly) {
  EXPECT_EQ(Announce("a", 60'000), 1);
  EXPECT_EQ(Announce("b", 60'000), 2);
  EXPECT_EQ(Announce("a", 60'000), 2);
  EXPECT_EQ(Announce("short", 5), 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));   // Redis time must pass
  EXPECT_EQ(Announce("b", 60'000), 2);
  EXPECT_GT(server_.Command({"PTTL", std::string(redis::kParticipantsKey)}).integer, 50'000);
}

TEST_F(LeaseScriptTest, PoolReloadsScriptsAfterFlush) {
  const std::string key = RedisKey("flush", "r");
  ASSERT_EQ(Lease(key, kSlow, 0, 1).granted_units, 1);
  server_.Command("SCRIPT FLUSH");
  EXPECT_EQ(Lease(key, kSlow, 0, 1).granted_units, 1);
  EXPECT_NEAR(Lease(key, kSlow, 0, 0).level, 2.0, 1e-4);
}

// A reset that falls between a participant's read of the reset log and its lease call:
// the guarded call gives nothing back into the new bucket (the units were charged in the
// one deleted) and reports the reset, so the participant keeps the lease it was just
// granted in the new bucket instead of dropping it at its next read of the log.
TEST_F(LeaseScriptTest, AGuardedCallGivesNothingBackToABucketResetAfterTheCallersRead) {
  const BucketSpec quota{.capacity = 1000, .leak_rate_per_s = 0};
  const std::string key = RedisKey("guarded", "q");
  const std::string other = RedisKey("guarded-other", "q");
  EXPECT_EQ(Lease(key, quota, 0, 100, 0).granted_units, 100);
  EXPECT_EQ(Lease(other, quota, 0, 100, 0).granted_units, 100);
  const int64_t seq = ResetAndLog(key);
  EXPECT_GE(seq, 1);
  EXPECT_EQ(Count(key), 0) << "the reset deletes the bucket in the same step";
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(Strict(key, redis::BucketOp::kTake, quota).decision.allowed);
  // Read before the reset (seq - 1): the 60 units held are not given back; 50 granted.
  redis::LeaseGrant g = Lease(key, quota, 60, 50, seq - 1);
  EXPECT_EQ(g.granted_units, 50);
  EXPECT_EQ(g.reset_seq, seq);
  EXPECT_EQ(Count(key), 57) << "the new bucket holds its 7 takes and the new lease, nothing given back";
  // Read after the reset: the return applies (units of this bucket), no reset reported.
  g = Lease(key, quota, 20, 0, seq);
  EXPECT_EQ(g.reset_seq, 0);
  EXPECT_EQ(Count(key), 37);
  // A bucket that was not reset: the return applies whatever the sequence.
  g = Lease(other, quota, 40, 0, 0);
  EXPECT_EQ(g.reset_seq, 0);
  EXPECT_EQ(Count(other), 60);
  // Unguarded calls keep the two-element reply.
  g = Lease(other, quota, 10, 0);
  EXPECT_EQ(Count(other), 50);
}

}  // namespace
}  // namespace dlb::testing
