// Replication safety: the script writes its result with an absolute expiry (SET ..
// PXAT), so a replica holds the same value and the same expiry instant as the master,
// not one recomputed on its own clock.
#include <gtest/gtest.h>

#include <cstdlib>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

using std::chrono::milliseconds;

// The master starts a full sync at once instead of waiting for more replicas
// (repl-diskless-sync-delay defaults to 5 s).
RedisServerOptions MasterOptions() {
  RedisServerOptions o;
  o.extra_args = {"--repl-diskless-sync-delay", "0"};
  return o;
}

long long InfoField(RedisServer& server, const std::string& field) {
  const std::string info = server.Command("INFO replication").str;
  const size_t at = info.find(field + ":");
  if (at == std::string::npos) return -1;
  return std::atoll(info.c_str() + at + field.size() + 1);
}

// The replica has loaded the initial sync, the master streams to it (it waits for the
// replica's first ACK after the RDB transfer before it does), and the replica has
// applied everything the master wrote. "master_link_status:up" on the replica alone
// is not enough: writes made while the master still finishes the transfer are only
// streamed later.
bool InSync(RedisServer& master, RedisServer& replica) {
  const std::string minfo = master.Command("INFO replication").str;
  if (minfo.find("state=online") == std::string::npos) return false;
  if (replica.Command("INFO replication").str.find("master_link_status:up") == std::string::npos) {
    return false;
  }
  const long long offset = InfoField(master, "master_repl_offset");
  return offset >= 0 && InfoField(replica, "slave_repl_offset") == offset &&
         minfo.find("offset=" + std::to_string(offset) + ",") != std::string::npos;
}

TEST(Replication, ReplicaHoldsTheSameValueAndAbsoluteExpiry) {
  RedisServer master(MasterOptions());
  RedisServerOptions ro;
  ro.extra_args = {"--replicaof", "127.0.0.1", std::to_string(master.port())};
  RedisServer replica(ro);
  ASSERT_TRUE(WaitFor([&] { return InSync(master, replica); }, milliseconds(10000)))
      << replica.Command("INFO replication").str;

  LimiterOptions o;
  o.redis_url = master.Url();
  o.deadline = std::chrono::seconds(2);
  auto l = Limiter::Create(o);
  ASSERT_TRUE(l.ok());
  const BucketSpec leaking{.capacity = 100, .leak_rate_per_s = 3};     // fractional T
  const BucketSpec quota{.capacity = 10, .leak_rate_per_s = 0};        // no expiry
  for (int i = 0; i < 7; ++i) {
    auto a = (*l)->Decide("replicated-user", leaking, 1 + i % 3);
    ASSERT_TRUE(a.ok() && a->source == DecisionSource::kStore && a->allowed);
    auto b = (*l)->Decide("replicated-user", quota);
    ASSERT_TRUE(b.ok() && b->source == DecisionSource::kStore && b->allowed);
  }
  const RedisValue acked = master.Command("WAIT 1 5000");
  ASSERT_EQ(acked.integer, 1) << acked.Describe();
  ASSERT_TRUE(WaitFor([&] { return InSync(master, replica); }, milliseconds(10000)));

  const std::string k1 = RedisKey("replicated-user", RuleNameForSpec(leaking.capacity, leaking.leak_rate_per_s));
  const std::string k2 = RedisKey("replicated-user", RuleNameForSpec(quota.capacity, quota.leak_rate_per_s));
  for (const std::string& key : {k1, k2}) {
    const RedisValue mv = master.Command({"GET", key});
    const RedisValue rv = replica.Command({"GET", key});
    ASSERT_EQ(mv.type, RedisValue::Type::kString) << mv.Describe();
    EXPECT_EQ(rv.str, mv.str) << rv.Describe();
    EXPECT_EQ(replica.Command({"PEXPIRETIME", key}).integer,
              master.Command({"PEXPIRETIME", key}).integer);
  }
  const long long at = master.Command({"PEXPIRETIME", k1}).integer;
  EXPECT_GT(at, master.TimeUs() / 1000);   // an absolute instant in the future
  EXPECT_EQ(master.Command({"PEXPIRETIME", k2}).integer, -1);
  EXPECT_EQ(replica.Command({"GET", k2}).str, "7");
}

TEST(Replication, PromotedReplicaContinuesTheSameBucket) {
  RedisServer master(MasterOptions());
  RedisServerOptions ro;
  ro.extra_args = {"--replicaof", "127.0.0.1", std::to_string(master.port())};
  RedisServer replica(ro);
  ASSERT_TRUE(WaitFor([&] { return InSync(master, replica); }, milliseconds(10000)));

  const BucketSpec spec{.capacity = 5, .leak_rate_per_s = 1e-6};
  {
    LimiterOptions o;
    o.redis_url = master.Url();
    o.deadline = std::chrono::seconds(2);
    auto l = Limiter::Create(o);
    ASSERT_TRUE(l.ok());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*l)->Decide("failover-user", spec)->allowed);
    ASSERT_EQ(master.Command("WAIT 1 5000").integer, 1);
    ASSERT_TRUE(WaitFor([&] { return InSync(master, replica); }, milliseconds(10000)));
  }
  master.Kill();
  ASSERT_EQ(replica.Command("REPLICAOF NO ONE").str, "OK");
  LimiterOptions o;
  o.redis_url = replica.Url();
  o.deadline = std::chrono::seconds(2);
  auto l = Limiter::Create(o);
  ASSERT_TRUE(l.ok());
  // No second burst after the failover: the script is loaded anew, the level is kept.
  auto d = (*l)->Decide("failover-user", spec);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->source, DecisionSource::kStore);
  EXPECT_FALSE(d->allowed);
}

}  // namespace
}  // namespace dlb::testing
