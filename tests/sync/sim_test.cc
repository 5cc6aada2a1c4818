// A short run of the accuracy simulation: every user of every pattern stays within the
// written worst-case bound (not the targets, which dlb_sim prints: a bound cannot be
// missed by a slow machine, a target could).
#include <gtest/gtest.h>

#include "redis_server.h"
#include "sim.h"

namespace dlb::sim {
namespace {

class SimTest : public ::testing::TestWithParam<Pattern> {
 protected:
  static void SetUpTestSuite() { server_ = new testing::RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static SimOptions Short(Mode mode) {
    SimOptions o;
    o.redis_url = server_->Url();
    o.mode = mode;
    o.duration_s = 0.6;
    o.load_scale = 0.5;   // sanitizer builds on two cores
    return o;
  }
  static testing::RedisServer* server_;
};
testing::RedisServer* SimTest::server_ = nullptr;

TEST_P(SimTest, SyncedStaysWithinTheBound) {
  const SimResult r = sim::Run(GetParam(), Short(Mode::kSynced));
  SCOPED_TRACE(Describe(r));
  EXPECT_GT(r.requests, 0u);
  EXPECT_GT(r.oracle_admitted, 0u);
  EXPECT_EQ(r.users_over_bound, 0u);
  EXPECT_LE(r.over, r.over_bound);
  EXPECT_LE(r.under, r.under_bound);
}

// The appliance cores as packet engines driven by ShardSync (lib/dlb/packet/shard_sync.h).
TEST_P(SimTest, PacketShardsStayWithinTheBound) {
  SimOptions o = Short(Mode::kSynced);
  o.packet_cores = true;
  const SimResult r = sim::Run(GetParam(), o);
  SCOPED_TRACE(Describe(r));
  EXPECT_GT(r.requests, 0u);
  EXPECT_GT(r.oracle_admitted, 0u);
  EXPECT_GT(r.registrations, 0u);
  EXPECT_EQ(r.users_over_bound, 0u);
  EXPECT_LE(r.over, r.over_bound);
  EXPECT_LE(r.under, r.under_bound);
}

TEST_P(SimTest, StrictStaysWithinTheBound) {
  const SimResult r = sim::Run(GetParam(), Short(Mode::kStrict));
  SCOPED_TRACE(Describe(r));
  EXPECT_EQ(r.lease_decisions, 0u);
  EXPECT_EQ(r.users_over_bound, 0u);
}

INSTANTIATE_TEST_SUITE_P(Patterns, SimTest, ::testing::ValuesIn(kAllPatterns),
                         [](const ::testing::TestParamInfo<Pattern>& param) {
                           std::string n = PatternName(param.param);
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n == "1e5_users" ? std::string("many_users") : n;
                         });

}  // namespace
}  // namespace dlb::sim
