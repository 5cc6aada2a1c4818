// The Limiter API over Redis: batches, many threads, Inspect and Reset, rule names.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

class LimiterApi : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RedisServer>();
    LimiterOptions o;
    o.redis_url = server_->Url();
    // Every decision must come from the store, also on a loaded machine.
    o.deadline = std::chrono::seconds(5);
    o.on_store_failure = FailurePolicy::kClosed;
    auto l = Limiter::Create(o);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    limiter_ = std::move(*l);
  }
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<Limiter> limiter_;
};

// Leak rates slow enough that nothing visible leaks while the test runs, so decisions
// made a few ms apart must agree exactly.
const BucketSpec kSpecs[] = {
    {.capacity = 3, .leak_rate_per_s = 0},
    {.capacity = 7, .leak_rate_per_s = 1e-6},
    {.capacity = 20, .leak_rate_per_s = 0.01},
};

TEST_F(LimiterApi, BatchAgreesWithSequentialDecisions) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> user_dist(0, 19), spec_dist(0, 2);
  struct Triple {
    std::string user;
    BucketSpec spec;
    int64_t cost;
  };
  std::vector<Triple> triples;
  for (int i = 0; i < 400; ++i) {
    const BucketSpec spec = kSpecs[spec_dist(rng)];
    std::uniform_int_distribution<int64_t> cost_dist(1, std::min<int64_t>(3, spec.capacity));
    triples.push_back({std::to_string(user_dist(rng)), spec, cost_dist(rng)});
  }
  std::vector<std::string> batch_ids, seq_ids;
  for (const Triple& t : triples) {
    batch_ids.push_back("batch-" + t.user);
    seq_ids.push_back("seq-" + t.user);
  }
  std::vector<LimitRequest> reqs;
  for (size_t i = 0; i < triples.size(); ++i) {
    reqs.push_back({.user_id = batch_ids[i], .spec = triples[i].spec, .cost = triples[i].cost, .rule = {}});
  }
  const auto batch = limiter_->DecideBatch(reqs);
  ASSERT_EQ(batch.size(), triples.size());
  int admitted = 0;
  for (size_t i = 0; i < triples.size(); ++i) {
    auto seq = limiter_->Decide(seq_ids[i], triples[i].spec, triples[i].cost);
    ASSERT_TRUE(batch[i].ok()) << i << ": " << batch[i].status().ToString();
    ASSERT_TRUE(seq.ok()) << i << ": " << seq.status().ToString();
    EXPECT_EQ(batch[i]->source, DecisionSource::kStore) << i;
    EXPECT_EQ(batch[i]->allowed, seq->allowed) << i;
    EXPECT_EQ(batch[i]->remaining, seq->remaining) << i;
    EXPECT_NEAR(batch[i]->level, seq->level, 0.01) << i;
    EXPECT_EQ(batch[i]->retry_after_ns == kNever, seq->retry_after_ns == kNever) << i;
    admitted += batch[i]->allowed;
  }
  // Both outcomes occur, so the comparison means something.
  EXPECT_GT(admitted, 50);
  EXPECT_LT(admitted, 350);
  EXPECT_EQ(limiter_->Stats().store_decisions, 2 * triples.size());
}

TEST_F(LimiterApi, BatchInvalidEntriesGetTheirOwnErrors) {
  const BucketSpec good{.capacity = 2, .leak_rate_per_s = 1e-6};
  const std::vector<LimitRequest> reqs = {
      {.user_id = "u1", .spec = good, .cost = 1, .rule = {}},
      {.user_id = "", .spec = good, .cost = 1, .rule = {}},
      {.user_id = "u1", .spec = good, .cost = 1, .rule = {}},
      {.user_id = "u2", .spec = good, .cost = 0, .rule = {}},
      {.user_id = "u2", .spec = good, .cost = 3, .rule = {}},
      {.user_id = "u2", .spec = {.capacity = 0, .leak_rate_per_s = 1}, .cost = 1, .rule = {}},
      {.user_id = "u2", .spec = {.capacity = 2, .leak_rate_per_s = -1}, .cost = 1, .rule = {}},
      {.user_id = "u2", .spec = {.capacity = 2, .leak_rate_per_s = std::nan("")}, .cost = 1, .rule = {}},
      {.user_id = "u2", .spec = {.capacity = 2, .leak_rate_per_s = INFINITY}, .cost = 1, .rule = {}},
      {.user_id = "u1", .spec = good, .cost = 1, .rule = {}},
      {.user_id = "u2", .spec = good, .cost = 2, .rule = {}},
  };
  const auto out = limiter_->DecideBatch(reqs);
  ASSERT_EQ(out.size(), reqs.size());
  const char* const expect_in_message[] = {nullptr, "user_id", nullptr, "cost", "cost", "capacity",
                                           "leak_rate", "leak_rate", "leak_rate", nullptr, nullptr};
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE(i);
    if (expect_in_message[i] == nullptr) {
      ASSERT_TRUE(out[i].ok()) << out[i].status().ToString();
      EXPECT_EQ(out[i]->source, DecisionSource::kStore);
    } else {
      ASSERT_FALSE(out[i].ok());
      EXPECT_EQ(out[i].status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(out[i].status().message().find(expect_in_message[i]), std::string::npos)
          << out[i].status().message();
    }
  }
  // The valid ones were decided in order as if the invalid ones were not there.
  EXPECT_TRUE(out[0]->allowed);
  EXPECT_TRUE(out[2]->allowed);
  EXPECT_FALSE(out[9]->allowed);
  EXPECT_TRUE(out[10]->allowed);
  EXPECT_EQ(out[10]->remaining, 0);
  EXPECT_EQ(limiter_->Stats().store_errors, 0u);
}

TEST_F(LimiterApi, EmptyBatchIsEmpty) {
  EXPECT_TRUE(limiter_->DecideBatch({}).empty());
}

TEST_F(LimiterApi, ThreadsWithTheirOwnUsersEachGetExactlyTheBurst) {
  constexpr int kThreads = 8;
  constexpr int kUsersPerThread = 40;
  constexpr int kAsksPerUser = 12;
  const BucketSpec spec{.capacity = 7, .leak_rate_per_s = 1e-6};
  std::vector<std::vector<int>> admitted(kThreads, std::vector<int>(kUsersPerThread, 0));
  std::vector<int> not_store(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      // Interleave the users of one thread in a shuffled order of asks.
      std::vector<int> order;
      for (int u = 0; u < kUsersPerThread; ++u) {
        for (int k = 0; k < kAsksPerUser; ++k) order.push_back(u);
      }
      std::shuffle(order.begin(), order.end(), rng);
      for (int u : order) {
        auto d = limiter_->Decide("thread-" + std::to_string(t) + "-user-" + std::to_string(u), spec);
        if (!d.ok() || d->source != DecisionSource::kStore) {
          ++not_store[t];
          continue;
        }
        admitted[t][u] += d->allowed;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(not_store[t], 0) << "thread " << t;
    for (int u = 0; u < kUsersPerThread; ++u) {
      EXPECT_EQ(admitted[t][u], spec.capacity) << "thread " << t << " user " << u;
    }
  }
  const LimiterStats s = limiter_->Stats();
  EXPECT_EQ(s.allowed, uint64_t{kThreads} * kUsersPerThread * spec.capacity);
  EXPECT_EQ(s.allowed + s.rejected, uint64_t{kThreads} * kUsersPerThread * kAsksPerUser);
}

TEST_F(LimiterApi, ThreadsSharingUsersNeverExceedTheBurst) {
  constexpr int kThreads = 8;
  constexpr int kUsers = 30;
  const BucketSpec spec{.capacity = 9, .leak_rate_per_s = 1e-6};
  std::vector<std::atomic<int>> admitted(kUsers);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 3; ++round) {
        for (int u = 0; u < kUsers; ++u) {
          auto d = limiter_->Decide("shared-user-" + std::to_string(u), spec);
          if (d.ok() && d->allowed) admitted[u].fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int u = 0; u < kUsers; ++u) EXPECT_EQ(admitted[u].load(), spec.capacity) << "user " << u;
  EXPECT_EQ(limiter_->Stats().fallback_decisions, 0u);
}

TEST_F(LimiterApi, InspectChangesNothingAndResetEmpties) {
  const BucketSpec spec{.capacity = 4, .leak_rate_per_s = 1e-6};
  ASSERT_TRUE(limiter_->Decide("inspect-user", spec, 3)->allowed);
  for (int i = 0; i < 3; ++i) {
    auto info = limiter_->Inspect("inspect-user", spec);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_NEAR(info->state.level, 3.0, 1e-3);
    EXPECT_EQ(info->state.remaining, 1);
    EXPECT_TRUE(info->state.allowed);
  }
  EXPECT_FALSE(limiter_->Decide("inspect-user", spec, 2)->allowed);
  ASSERT_TRUE(limiter_->Reset("inspect-user", spec).ok());
  EXPECT_EQ(server_->BucketKeyCount(), 0);
  auto d = limiter_->Decide("inspect-user", spec, 4);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->allowed);
}

TEST_F(LimiterApi, NamedRulesAreSeparateBucketsOfOneUser) {
  const BucketSpec spec{.capacity = 1, .leak_rate_per_s = 1e-6};
  EXPECT_TRUE(limiter_->Decide("rule-user", spec, 1, "login")->allowed);
  EXPECT_FALSE(limiter_->Decide("rule-user", spec, 1, "login")->allowed);
  EXPECT_TRUE(limiter_->Decide("rule-user", spec, 1, "pay")->allowed);
  EXPECT_TRUE(limiter_->Decide("rule-user", spec)->allowed);   // the derived rule name
  EXPECT_EQ(server_->Command({"EXISTS", RedisKey("rule-user", "login")}).integer, 1);
  EXPECT_EQ(server_->Command({"EXISTS", RedisKey("rule-user", "pay")}).integer, 1);
  EXPECT_EQ(server_->BucketKeyCount(), 3);
}

TEST_F(LimiterApi, ForeignValueUnderOurKeyIsThatRequestsFailureOnly) {
  const BucketSpec spec{.capacity = 2, .leak_rate_per_s = 1};
  const std::string key = RedisKey("squatted-user", RuleNameForSpec(spec.capacity, spec.leak_rate_per_s));
  ASSERT_FALSE(server_->Command({"HSET", key, "f", "v"}).is_error());
  const std::vector<LimitRequest> reqs = {
      {.user_id = "squatted-user", .spec = spec, .cost = 1, .rule = {}},
      {.user_id = "fine-user", .spec = spec, .cost = 1, .rule = {}},
  };
  const auto out = limiter_->DecideBatch(reqs);
  ASSERT_TRUE(out[0].ok());
  EXPECT_EQ(out[0]->source, DecisionSource::kFallbackClosed);
  ASSERT_TRUE(out[1].ok());
  EXPECT_EQ(out[1]->source, DecisionSource::kStore);
  EXPECT_TRUE(out[1]->allowed);
  EXPECT_FALSE(limiter_->Stats().breaker_open);
}

// One field of INFO (e.g. "total_connections_received" or "cmdstat_script|load" with the
// part after "calls="), as a number; -1 if absent.
long long InfoField(RedisServer& server, const std::string& section, const std::string& field) {
  const std::string info = server.Command(std::vector<std::string>{"INFO", section}).str;
  const size_t at = info.find(field + ":");
  if (at == std::string::npos) return -1;
  size_t v = at + field.size() + 1;
  if (info.compare(v, 6, "calls=") == 0) v += 6;
  return std::atoll(info.c_str() + v);
}

// Create connects, loads the scripts and announces the process: the first decision is
// one pipelined EVALSHA on that connection, no connect and no SCRIPT LOAD.
TEST_F(LimiterApi, FirstDecisionAfterCreateIsOneRoundTrip) {
  LimiterOptions o;
  o.redis_url = server_->Url();
  o.deadline = std::chrono::seconds(5);
  auto fresh = Limiter::Create(o);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ((*fresh)->Stats().live_participants, 2);   // this fixture's limiter and this one
  const long long connections = InfoField(*server_, "stats", "total_connections_received");
  const long long loads = InfoField(*server_, "commandstats", "cmdstat_script|load");
  const long long evalshas = InfoField(*server_, "commandstats", "cmdstat_evalsha");
  ASSERT_GT(connections, 0);
  ASSERT_GT(loads, 0);
  auto d = (*fresh)->Decide("first-call-user", {.capacity = 5, .leak_rate_per_s = 1});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->source, DecisionSource::kStore);
  EXPECT_EQ(InfoField(*server_, "stats", "total_connections_received"), connections);
  EXPECT_EQ(InfoField(*server_, "commandstats", "cmdstat_script|load"), loads);
  // The decision's EVALSHA (and perhaps a heartbeat's, once a second).
  EXPECT_GE(InfoField(*server_, "commandstats", "cmdstat_evalsha"), evalshas + 1);
}

}  // namespace
}  // namespace dlb::testing
