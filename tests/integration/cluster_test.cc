// Redis Cluster: three masters on loopback (redis-cli --cluster create). Commands go
// to the node of their key's slot, pipelines are split per node and put back in
// order, scripts are loaded on every node, MOVED and ASK are followed, and strict
// decisions from several threads stay exact while a slot that holds users' buckets
// migrates from one node to another (CLUSTER SETSLOT IMPORTING/MIGRATING + MIGRATE).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <algorithm>
#include <map>
#include <set>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/script.h"
#include "redis/slot.h"
#include "redis/url.h"
#include "redis_cluster.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kSetupBound{30000};

// `n` user IDs whose buckets (rule `rule`) share one slot, and that slot.
std::vector<std::string> UsersInOneSlot(size_t n, std::string_view rule, uint16_t* slot) {
  std::map<uint16_t, std::vector<std::string>> by_slot;
  for (int i = 0;; ++i) {
    std::string user = "user-" + std::to_string(i);
    auto& v = by_slot[redis::KeySlot(RedisKey(user, rule))];
    v.push_back(std::move(user));
    if (v.size() == n) {
      *slot = redis::KeySlot(RedisKey(v[0], rule));
      return v;
    }
  }
}

redis::Pool MakePool(const std::string& url) {
  auto ep = redis::ParseUrl(url);
  if (!ep.ok()) throw std::runtime_error(ep.status().ToString());
  return redis::Pool(*ep, 4, {redis::BucketScript(), redis::LeaseScript(), redis::kAnnounceScript});
}

std::string Command(std::vector<std::string_view> args) {
  std::string out;
  redis::CommandWriter w(out);
  w.Begin(args.size());
  for (auto a : args) w.Arg(a);
  return out;
}

int64_t Deadline() { return MonoNowNs() + 2'000'000'000; }

TEST(Cluster, PipelineIsSplitPerNodeAndRepliesComeBackInOrder) {
  Cluster c;
  redis::Pool pool = MakePool(c.Url());
  std::vector<std::string> cmds;
  for (int i = 0; i < 60; ++i) {
    const std::string k = "key-" + std::to_string(i);
    cmds.push_back(Command({"SET", k, "value-" + std::to_string(i)}));
    cmds.push_back(Command({"GET", k}));
  }
  std::vector<redis::Reply> replies;
  ASSERT_TRUE(pool.Call(cmds, Deadline(), &replies).ok());
  ASSERT_EQ(replies.size(), cmds.size());
  for (int i = 0; i < 60; ++i) {
    const redisReply* r = replies[2 * static_cast<size_t>(i) + 1].get();
    ASSERT_EQ(r->type, REDIS_REPLY_STRING) << redis::DescribeReply(r);
    EXPECT_EQ(std::string(r->str, r->len), "value-" + std::to_string(i));
  }
  // Each key landed on the node that owns its slot, and all three nodes got some.
  std::set<size_t> owners;
  for (int i = 0; i < 60; ++i) {
    const std::string k = "key-" + std::to_string(i);
    const size_t owner = c.Owner(redis::KeySlot(k));
    owners.insert(owner);
    EXPECT_EQ(c.node(owner).Command({"GET", k}).str, "value-" + std::to_string(i));
  }
  EXPECT_EQ(owners.size(), 3u);
  EXPECT_EQ(pool.stats().moved, 0u);
}

TEST(Cluster, ScriptsAreLoadedOnEveryNodeAndReloadedAfterAFlush) {
  Cluster c;
  redis::Pool pool = MakePool(c.Url());
  const BucketSpec quota{.capacity = 3, .leak_rate_per_s = 0};
  // One user per node.
  std::vector<std::string> keys(3);
  for (int i = 0; std::any_of(keys.begin(), keys.end(), [](auto& k) { return k.empty(); }); ++i) {
    const std::string k = RedisKey("u" + std::to_string(i), "r");
    keys[c.Owner(redis::KeySlot(k))] = k;
  }
  auto take_all = [&](std::vector<redis::Reply>* replies) {
    std::vector<std::string> cmds;
    for (const auto& k : keys) {
      std::string cmd;
      redis::CommandWriter w(cmd);
      redis::AppendBucketCall(w, redis::BucketScriptSha(), k, redis::BucketOp::kTake, quota, 1);
      cmds.push_back(cmd);
    }
    return pool.Call(cmds, Deadline(), replies);
  };
  std::vector<redis::Reply> replies;
  ASSERT_TRUE(take_all(&replies).ok());
  for (auto& r : replies) ASSERT_TRUE(redis::ParseBucketReply(r.get()).ok()) << redis::DescribeReply(r.get());
  c.node(1).Command("SCRIPT FLUSH");
  ASSERT_TRUE(take_all(&replies).ok());
  for (auto& r : replies) {
    auto parsed = redis::ParseBucketReply(r.get());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_TRUE(parsed->allowed);
  }
  // Two takes each, none twice.
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(c.node(i).Command({"GET", keys[i]}).str, "2");
}

TEST(Cluster, FollowsAskDuringMigrationAndMovedAfterIt) {
  Cluster c;
  redis::Pool pool = MakePool(c.Url());
  uint16_t slot = 0;
  const auto users = UsersInOneSlot(2, "r", &slot);
  const std::string k0 = RedisKey(users[0], "r"), k1 = RedisKey(users[1], "r");
  const size_t from = c.Owner(slot), to = (from + 1) % 3;
  const BucketSpec quota{.capacity = 100, .leak_rate_per_s = 0};
  auto take = [&](const std::string& k) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendBucketCall(w, redis::BucketScriptSha(), k, redis::BucketOp::kTake, quota, 1);
    std::vector<redis::Reply> replies;
    Status s = pool.Call({cmd}, Deadline(), &replies);
    if (!s.ok()) return s;
    auto parsed = redis::ParseBucketReply(replies[0].get());
    if (!parsed.ok()) return parsed.status();
    return parsed->allowed ? Status::Ok() : Status::Internal("rejected");
  };
  ASSERT_TRUE(take(k0).ok());
  ASSERT_TRUE(take(k1).ok());
  int step = 0;
  c.MigrateSlot(slot, from, to, [&] {
    // One key moved, one not: the moved one is answered with ASK by the old owner.
    if (step++ == 0) {
      ASSERT_TRUE(take(k0).ok());
      ASSERT_TRUE(take(k1).ok());
    }
  });
  EXPECT_GE(pool.stats().ask, 1u);
  ASSERT_TRUE(take(k0).ok());
  ASSERT_TRUE(take(k1).ok());
  EXPECT_GE(pool.stats().moved, 1u);
  EXPECT_EQ(pool.NodeOfSlot(slot), "127.0.0.1:" + std::to_string(c.node(to).port()));
  // Three takes each, all on the new owner now.
  EXPECT_EQ(c.node(to).Command({"GET", k0}).str, "3");
  EXPECT_EQ(c.node(to).Command({"GET", k1}).str, "3");
}

TEST(Cluster, LeaseItemsGroupedBySlotRunOnePerSlot) {
  Cluster c;
  redis::Pool pool = MakePool(c.Url());
  const BucketSpec spec{.capacity = 50, .leak_rate_per_s = 0};
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back(RedisKey("lease-user-" + std::to_string(i), "r"));
  std::vector<redis::LeaseItem> items;
  for (const auto& k : keys) items.push_back({.key = k, .spec = spec, .return_units = 0, .want_units = 7});
  // All in one call: the cluster refuses keys of several slots.
  {
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendLeaseCall(w, items);
    std::vector<redis::Reply> replies;
    ASSERT_TRUE(pool.Call({cmd}, Deadline(), &replies).ok());
    ASSERT_EQ(replies[0]->type, REDIS_REPLY_ERROR);
    EXPECT_TRUE(std::string_view(replies[0]->str).starts_with("CROSSSLOT")) << replies[0]->str;
  }
  const auto groups = redis::GroupLeaseItemsBySlot(items);
  std::vector<std::string> cmds;
  for (const auto& g : groups) {
    std::vector<redis::LeaseItem> part;
    for (size_t i : g.indices) part.push_back(items[i]);
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendLeaseCall(w, part);
    cmds.push_back(cmd);
  }
  std::vector<redis::Reply> replies;
  ASSERT_TRUE(pool.Call(cmds, Deadline(), &replies).ok());
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<redis::LeaseGrant> grants;
    ASSERT_TRUE(redis::ParseLeaseReply(replies[g].get(), groups[g].indices.size(), &grants).ok())
        << redis::DescribeReply(replies[g].get());
    for (const auto& gr : grants) EXPECT_EQ(gr.granted_units, 7);
  }
  for (const auto& k : keys) EXPECT_EQ(c.node(c.Owner(redis::KeySlot(k))).Command({"GET", k}).str, "7");
}

// Strict decisions from several threads while the slot of their users migrates: no
// caller sees an error or a fallback, and each bucket's level in Redis equals the
// admissions its callers saw (nothing lost, nothing charged twice).
TEST(Cluster, StrictDecisionsStayExactWhileASlotIsResharded) {
  Cluster c;
  LimiterOptions o;
  o.redis_url = c.Url();
  o.mode = Mode::kStrict;
  o.deadline = milliseconds(2000);   // a migration step is not a store failure
  o.on_store_failure = FailurePolicy::kClosed;
  auto l = Limiter::Create(o);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  Limiter& limiter = **l;

  uint16_t slot = 0;
  constexpr size_t kThreads = 4;
  const auto users = UsersInOneSlot(kThreads, RuleNameForSpec(1'000'000, 0), &slot);
  const size_t from = c.Owner(slot), to = (from + 2) % 3;
  const BucketSpec spec{.capacity = 1'000'000, .leak_rate_per_s = 0};
  const BucketSpec quota{.capacity = 500, .leak_rate_per_s = 0};   // another rule, same slot

  std::atomic<bool> done{false};
  std::atomic<int> during{0};
  std::vector<int64_t> admitted(kThreads, 0), quota_admitted(kThreads, 0), errors(kThreads, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t i = 0; !done.load() || i < 50; ++i) {
        auto d = limiter.Decide(users[t], spec);
        if (!d.ok() || d->source != DecisionSource::kStore || !d->allowed) {
          ++errors[t];
          continue;
        }
        ++admitted[t];
        auto q = limiter.Decide(users[t], quota, 1, "quota");
        if (!q.ok() || q->source != DecisionSource::kStore) {
          ++errors[t];
          continue;
        }
        quota_admitted[t] += q->allowed ? 1 : 0;
      }
    });
  }
  // Let the threads charge the buckets on the old owner first.
  ASSERT_TRUE(WaitFor([&] { return limiter.Stats().store_decisions >= 200; }, kSetupBound));
  c.MigrateSlot(slot, from, to, [&] {
    // Decisions go on while the slot is half migrated.
    const uint64_t before = limiter.Stats().store_decisions;
    WaitFor([&] { return limiter.Stats().store_decisions >= before + 20; }, kSetupBound);
    ++during;
  });
  const uint64_t after_migration = limiter.Stats().store_decisions;
  ASSERT_TRUE(WaitFor([&] { return limiter.Stats().store_decisions >= after_migration + 100; }, kSetupBound));
  done = true;
  for (auto& th : threads) th.join();

  EXPECT_GE(during.load(), 2) << "the slot held several keys";
  for (size_t t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], 0) << users[t] << ": " << limiter.LastStoreError().ToString();
    const std::string key = RedisKey(users[t], RuleNameForSpec(1'000'000, 0));
    EXPECT_EQ(c.node(to).Command({"GET", key}).str, std::to_string(admitted[t])) << users[t];
    EXPECT_EQ(c.node(from).Command({"EXISTS", key}).integer, 0);
    // The quota admitted exactly its capacity or all it was asked.
    EXPECT_EQ(quota_admitted[t], std::min<int64_t>(500, admitted[t])) << users[t];
    auto info = limiter.Inspect(users[t], quota, "quota");
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->state.level, static_cast<double>(quota_admitted[t]));
  }
}

// Synced mode on Cluster: a round's lease calls are split so that none crosses a slot;
// leases are granted on every node, and once the limiter has given its leases back each
// bucket's count in Redis equals what its users were admitted.
TEST(Cluster, SyncedLeasesAreSplitPerSlotAndSettleExactly) {
  Cluster c;
  LimiterOptions o;
  o.redis_url = c.Url();
  o.mode = Mode::kSynced;
  o.deadline = milliseconds(2000);
  o.on_store_failure = FailurePolicy::kClosed;
  const BucketSpec spec{.capacity = 1'000'000, .leak_rate_per_s = 0};
  constexpr int kUsers = 24;
  std::vector<std::string> users;
  std::set<size_t> owners;
  for (int i = 0; i < kUsers; ++i) {
    users.push_back("synced-" + std::to_string(i));
    owners.insert(c.Owner(redis::KeySlot(RedisKey(users.back(), RuleNameForSpec(1'000'000, 0)))));
  }
  ASSERT_EQ(owners.size(), 3u) << "the users' buckets are spread over all nodes";
  std::vector<int64_t> admitted(kUsers, 0);
  LimiterStats stats;
  {
    auto l = Limiter::Create(o);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    Limiter& limiter = **l;
    // Enough rounds that every user is leased (demand of at least two per interval).
    const auto until = std::chrono::steady_clock::now() + milliseconds(600);
    while (std::chrono::steady_clock::now() < until) {
      for (int u = 0; u < kUsers; ++u) {
        for (int k = 0; k < 4; ++k) {
          auto d = limiter.Decide(users[u], spec);
          ASSERT_TRUE(d.ok()) << d.status().ToString();
          admitted[u] += d->allowed ? 1 : 0;
        }
      }
    }
    stats = limiter.Stats();
    EXPECT_TRUE(limiter.LastStoreError().ok()) << limiter.LastStoreError().ToString();
  }  // destroyed: every lease goes back
  EXPECT_GT(stats.lease_decisions, 0u);
  EXPECT_EQ(stats.fallback_decisions, 0u);
  EXPECT_EQ(stats.store_errors, 0u);
  for (int u = 0; u < kUsers; ++u) {
    const std::string key = RedisKey(users[u], RuleNameForSpec(1'000'000, 0));
    const size_t owner = c.Owner(redis::KeySlot(key));
    EXPECT_EQ(c.node(owner).Command({"GET", key}).str, std::to_string(admitted[u])) << users[u];
  }
}

// A silent node (SIGSTOP) holds no call beyond its deadline and fails only the
// decisions of its own slots; the other nodes' users are still decided by Redis.
TEST(Cluster, SilentNodeFailsOnlyItsSlotsWithinTheDeadline) {
  Cluster c;
  LimiterOptions o;
  o.redis_url = c.Url();
  o.mode = Mode::kStrict;
  o.deadline = milliseconds(20);
  o.on_store_failure = FailurePolicy::kClosed;
  o.breaker_threshold = 1'000'000;   // keep asking Redis: the breaker is one for all nodes
  auto l = Limiter::Create(o);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  const BucketSpec spec{.capacity = 1000, .leak_rate_per_s = 1};
  // One user per node, and the slot map loaded while all nodes answer.
  std::vector<std::string> users(3);
  for (int i = 0; std::any_of(users.begin(), users.end(), [](auto& u) { return u.empty(); }); ++i) {
    const std::string u = "silent-" + std::to_string(i);
    users[c.Owner(redis::KeySlot(RedisKey(u, RuleNameForSpec(1000, 1))))] = u;
  }
  for (const auto& u : users) {
    auto d = (*l)->Decide(u, spec);
    ASSERT_TRUE(d.ok() && d->source == DecisionSource::kStore) << (*l)->LastStoreError().ToString();
  }
  c.node(2).Stop();
  int64_t slowest = 0;
  for (int round = 0; round < 5; ++round) {
    for (size_t n = 0; n < 3; ++n) {
      const int64_t t0 = MonoNowNs();
      auto d = (*l)->Decide(users[n], spec);
      slowest = std::max(slowest, MonoNowNs() - t0);
      ASSERT_TRUE(d.ok());
      EXPECT_EQ(d->source, n == 2 ? DecisionSource::kFallbackClosed : DecisionSource::kStore)
          << "node " << n << ": " << (*l)->LastStoreError().ToString();
    }
  }
  c.node(2).Cont();
  // 20 ms deadline; the margin covers scheduling on a loaded machine, not a client's
  // default timeout of seconds.
  EXPECT_LT(slowest, 20'000'000 + 200'000'000);
  EXPECT_TRUE(WaitFor(
      [&] {
        auto d = (*l)->Decide(users[2], spec);
        return d.ok() && d->source == DecisionSource::kStore;
      },
      kSetupBound, milliseconds(20)));
}

}  // namespace
}  // namespace dlb::testing
