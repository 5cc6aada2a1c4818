// dlb::AllowRequest, the one-line API, over a real Redis: one process-wide limiter
// configured from the environment. main() starts the server and points DLB_REDIS_URL
// at it before the first call creates that limiter.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

RedisServer* g_server = nullptr;

TEST(AllowRequest, EmptyUserIdThrowsInvalidArgument) {
  EXPECT_THROW(AllowRequest("", 5, 1.0), std::invalid_argument);
  EXPECT_EQ(g_server->BucketKeyCount(), 0);
}

TEST(AllowRequest, BadParametersThrowInvalidArgument) {
  EXPECT_THROW(AllowRequest("u", 0, 1.0), std::invalid_argument);
  EXPECT_THROW(AllowRequest("u", -3, 1.0), std::invalid_argument);
  EXPECT_THROW(AllowRequest("u", 5, -1.0), std::invalid_argument);
  EXPECT_THROW(AllowRequest("u", 5, std::nan("")), std::invalid_argument);
  EXPECT_THROW(AllowRequest("u", 5, std::numeric_limits<double>::infinity()), std::invalid_argument);
  try {
    AllowRequest("u", 0, 1.0);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("capacity"), std::string::npos) << e.what();
  }
}

TEST(AllowRequest, BurstThenRejectedOverRedis) {
  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += AllowRequest("allow-user", 4, 1e-6);
  EXPECT_EQ(admitted, 4);
  // The decisions were the store's: the key is in this test's Redis, full.
  const std::string key = RedisKey("allow-user", RuleNameForSpec(4, 1e-6));
  EXPECT_EQ(g_server->Command({"EXISTS", key}).integer, 1);
  const LimiterStats s = DefaultLimiter().Stats();
  EXPECT_EQ(s.fallback_decisions, 0u);
  EXPECT_GE(s.store_decisions, 10u);
}

TEST(AllowRequest, SharesBucketsWithAnyLimiterOnTheSameRedis) {
  LimiterOptions o;
  o.redis_url = g_server->Url();
  o.deadline = std::chrono::seconds(2);
  auto other = Limiter::Create(o);
  ASSERT_TRUE(other.ok());
  const BucketSpec spec{.capacity = 3, .leak_rate_per_s = 1e-6};
  ASSERT_TRUE((*other)->Decide("shared-allow-user", spec, 2)->allowed);
  EXPECT_TRUE(AllowRequest("shared-allow-user", 3, 1e-6));
  EXPECT_FALSE(AllowRequest("shared-allow-user", 3, 1e-6));
}

TEST(AllowRequest, StoreDownNeverThrows) {
  g_server->Stop();
  bool threw = false;
  try {
    for (int i = 0; i < 20; ++i) AllowRequest("outage-allow-user", 3, 1e-6);
  } catch (...) {
    threw = true;
  }
  g_server->Cont();
  EXPECT_FALSE(threw);
  EXPECT_GE(DefaultLimiter().Stats().fallback_decisions, 1u);
}

}  // namespace
}  // namespace dlb::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  dlb::testing::RedisServer server;
  dlb::testing::g_server = &server;
  setenv("DLB_REDIS_URL", server.Url().c_str(), 1);
  // Generous, so that the store decides on a loaded machine; StoreDownNeverThrows then
  // waits at most this long per call.
  setenv("DLB_DEADLINE_US", "200000", 1);
  for (const char* v : {"DLB_CONFIG", "DLB_REDIS_USER", "DLB_REDIS_PASSWORD", "DLB_MODE",
                        "DLB_ON_STORE_FAILURE", "DLB_FALLBACK_SHARE"}) {
    unsetenv(v);
  }
  return RUN_ALL_TESTS();
}
