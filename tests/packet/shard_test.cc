#include "dlb/packet/shard.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "dlb/siphash.h"

namespace dlb::packet {
namespace {

constexpr int64_t kEpochNs = 1'000'000'000'000;  // shards start late: times are large

dlb::BucketProfile Profile(int64_t capacity, double rate) {
  auto p = dlb::BucketProfile::Make({.capacity = capacity, .leak_rate_per_s = rate});
  EXPECT_TRUE(p.ok());
  return *p;
}

void ExpectSame(const dlb::Decision& a, const dlb::Decision& b, int step) {
  ASSERT_EQ(a.allowed, b.allowed) << step;
  ASSERT_EQ(a.remaining, b.remaining) << step;
  ASSERT_EQ(a.retry_after_ns, b.retry_after_ns) << step;
  ASSERT_EQ(a.reset_after_ns, b.reset_after_ns) << step;
  ASSERT_EQ(a.level, b.level) << step;
}

// The shard stores TATs relative to its epoch in 96 bits; its decisions must be
// dlb::Decide's on absolute time, bit for bit, over random traffic.
TEST(ShardTest, DecisionsEqualTheBucketCore) {
  std::mt19937_64 rng(12345);
  const dlb::BucketProfile profiles[] = {Profile(1, 1), Profile(10, 3), Profile(100, 1e6),
                                         Profile(7, 0.001), Profile(5, 0), Profile(1000, 333.3),
                                         Profile(3, 1e9), Profile(50, 1e-6)};
  auto shard = BucketShard::Create(HeapAllocator::Instance(), 1000, kEpochNs);
  ASSERT_TRUE(shard.ok());
  constexpr int kUsers = 40;
  std::vector<dlb::BucketState> oracle(kUsers * std::size(profiles));
  int64_t now = kEpochNs;
  for (int step = 0; step < 200'000; ++step) {
    // Gaps from 0 to ~10 s, skewed small so that buckets fill.
    const int64_t gap = (rng() % 4 == 0) ? int64_t(rng() % 10'000'000'000ULL) : int64_t(rng() % 2'000'000);
    now += gap;
    const int user = static_cast<int>(rng() % kUsers);
    const size_t pi = rng() % std::size(profiles);
    const dlb::BucketProfile& p = profiles[pi];
    const int64_t cost = 1 + static_cast<int64_t>(rng() % p.spec().capacity);
    dlb::BucketState& o = oracle[pi * kUsers + user];
    const dlb::Decision want = dlb::Decide(p, o, now, cost);
    dlb::Decision got;
    const ShardProbe probe = shard->Probe(0x1000 + user, static_cast<uint16_t>(pi));
    ASSERT_TRUE(shard->Decide(probe, p, now, cost, got));
    ExpectSame(got, want, step);
  }
}

// Admit (the data path's Decide) changes buckets as Decide does and describes a limited
// request as Decide would.
TEST(ShardTest, AdmitEqualsTheBucketCore) {
  std::mt19937_64 rng(777);
  const dlb::BucketProfile profiles[] = {Profile(1, 1), Profile(10, 3), Profile(100, 1e6),
                                         Profile(7, 0.001), Profile(5, 0), Profile(1000, 333.3),
                                         Profile(3, 1e9), Profile(50, 1e-6)};
  auto shard = BucketShard::Create(HeapAllocator::Instance(), 1000, kEpochNs);
  ASSERT_TRUE(shard.ok());
  constexpr int kUsers = 40;
  std::vector<dlb::BucketState> oracle(kUsers * std::size(profiles));
  int64_t now = kEpochNs;
  int limited = 0;
  for (int step = 0; step < 200'000; ++step) {
    const int64_t gap = (rng() % 4 == 0) ? int64_t(rng() % 10'000'000'000ULL) : int64_t(rng() % 2'000'000);
    now += gap;
    const int user = static_cast<int>(rng() % kUsers);
    const size_t pi = rng() % std::size(profiles);
    const dlb::BucketProfile& p = profiles[pi];
    const int64_t cost = 1 + static_cast<int64_t>(rng() % p.spec().capacity);
    dlb::BucketState& o = oracle[pi * kUsers + user];
    const dlb::Decision want = dlb::Decide(p, o, now, cost);
    dlb::Decision got;
    const ShardProbe probe = shard->Probe(0x1000 + user, static_cast<uint16_t>(pi));
    const BucketShard::Outcome outcome = shard->Admit(probe, p, now, cost, got);
    ASSERT_NE(outcome, BucketShard::Outcome::kTableFull) << step;
    ASSERT_EQ(outcome == BucketShard::Outcome::kAllowed, want.allowed) << step;
    if (!want.allowed) {
      ++limited;
      ExpectSame(got, want, step);
    }
  }
  EXPECT_GT(limited, 1000);  // both branches were exercised
}

// The data path's pattern (PacketEngine): probe and prefetch a whole burst, then decide
// in order. A key repeated in the burst sees its own update, as one by one.
TEST(ShardTest, BurstLookupEqualsOneByOne) {
  constexpr size_t kBurst = 64;
  std::mt19937_64 rng(99);
  const dlb::BucketProfile p = Profile(4, 10);
  auto a = BucketShard::Create(HeapAllocator::Instance(), 10'000, kEpochNs);
  auto b = BucketShard::Create(HeapAllocator::Instance(), 10'000, kEpochNs);
  ASSERT_TRUE(a.ok() && b.ok());
  int64_t now = kEpochNs;
  for (int burst = 0; burst < 2000; ++burst) {
    uint64_t keys[kBurst];
    ShardProbe probes[kBurst];
    const size_t n = 1 + rng() % kBurst;
    for (size_t i = 0; i < n; ++i) {
      keys[i] = rng() % 300;
      probes[i] = a->Probe(keys[i], 0);
      a->Prefetch(probes[i]);
    }
    for (size_t i = 0; i < n; ++i) {
      dlb::Decision in_burst;
      dlb::Decision d;
      ASSERT_TRUE(a->Decide(probes[i], p, now, 1, in_burst));
      ASSERT_TRUE(b->Decide(b->Probe(keys[i], 0), p, now, 1, d));
      ASSERT_EQ(in_burst.allowed, d.allowed);
      ASSERT_EQ(in_burst.remaining, d.remaining);
    }
    now += 5'000'000;
  }
}

TEST(ShardTest, FullTableNeverEvictsABucketWithLevel) {
  // 8 entries in 2 lines (users=5 gives ceil(5 / 3.2) = 2 lines): every key sees both.
  auto shard = BucketShard::Create(HeapAllocator::Instance(), 5, kEpochNs);
  ASSERT_TRUE(shard.ok());
  ASSERT_EQ(shard->entries(), 8u);
  const dlb::BucketProfile p = Profile(2, 1);  // empties 2 s after the last admission
  int64_t now = kEpochNs + 1;
  for (uint64_t k = 0; k < 8; ++k) {
    dlb::Decision d;
    ASSERT_TRUE(shard->Decide(shard->Probe(k, 0), p, now, 2, d));  // fill each bucket
    ASSERT_TRUE(d.allowed);
    ASSERT_EQ(d.remaining, 0);
  }
  EXPECT_EQ(shard->CountUsed(), 8u);
  dlb::Decision d;
  EXPECT_FALSE(shard->Decide(shard->Probe(1000, 0), p, now + 1'000'000'000, 1, d));
  EXPECT_EQ(shard->counters().table_full, 1u);
  // The throttled users are still throttled: nobody was evicted.
  for (uint64_t k = 0; k < 8; ++k) {
    ASSERT_TRUE(shard->Decide(shard->Probe(k, 0), p, now + 100, 1, d));
    EXPECT_FALSE(d.allowed) << k;
  }
  // Once buckets have drained, their entries go to new keys.
  ASSERT_TRUE(shard->Decide(shard->Probe(1000, 0), p, now + 3'000'000'000, 1, d));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(shard->counters().reused_entries, 1u);
}

// An entry the sync layer holds keeps its index for the control thread: a new key
// never takes it, however drained its bucket, until the sync layer lets it go.
TEST(ShardTest, HeldEntriesAreNeverReused) {
  auto shard = BucketShard::Create(HeapAllocator::Instance(), 5, kEpochNs, /*with_sync=*/true);
  ASSERT_TRUE(shard.ok());
  ASSERT_EQ(shard->entries(), 8u);
  shard->EngageSync();
  const dlb::BucketProfile p = Profile(2, 1);
  const int64_t now = kEpochNs + 1;
  for (uint64_t k = 0; k < 8; ++k) {
    dlb::Decision d;
    ASSERT_TRUE(shard->Decide(shard->Probe(k, 0), p, now, 1, d));
  }
  ASSERT_EQ(shard->CountUsed(), 8u);
  // All eight buckets drain within 2 s; six of them are held.
  for (size_t i = 0; i < 8; ++i) {
    if (i != 2 && i != 5) shard->sync_slot(i).avail.store(3);
  }
  const int64_t later = now + 5'000'000'000;
  for (uint64_t k = 100; k < 102; ++k) {
    dlb::Decision d;
    ASSERT_TRUE(shard->Decide(shard->Probe(k, 0), p, later, 1, d)) << k;
  }
  EXPECT_EQ(shard->counters().reused_entries, 2u);
  // Only the two free entries went to new keys; the held ones still hold their tags.
  const uint32_t fresh_a = shard->Probe(100, 0).tag;
  const uint32_t fresh_b = shard->Probe(101, 0).tag;
  for (size_t i = 0; i < 8; ++i) {
    const bool taken = shard->entry_tag(i) == fresh_a || shard->entry_tag(i) == fresh_b;
    EXPECT_EQ(taken, i == 2 || i == 5) << i;
  }
  dlb::Decision d;
  EXPECT_FALSE(shard->Decide(shard->Probe(102, 0), p, later, 1, d));  // the rest is held
  // Let go, an entry is free again.
  shard->sync_slot(0).avail.store(kNotSynced);
  EXPECT_TRUE(shard->Decide(shard->Probe(102, 0), p, later, 1, d));
}

// Two keys with the same tag whose lines are each other's second: an entry counts as a
// key's only in the line its placement bit names, so the two never share a bucket.
TEST(ShardTest, SameTagInSwappedLinesIsAnotherKey) {
  auto shard = BucketShard::Create(HeapAllocator::Instance(), 5, kEpochNs);
  ASSERT_TRUE(shard.ok());
  const dlb::BucketProfile p = Profile(1, 1);
  const ShardProbe x{.line_a = 0, .line_b = 1, .tag = 77};
  const ShardProbe y{.line_a = 1, .line_b = 0, .tag = 77};
  const int64_t now = kEpochNs + 1;
  dlb::Decision d;
  ASSERT_TRUE(shard->Decide(x, p, now, 1, d));
  EXPECT_TRUE(d.allowed);
  ASSERT_TRUE(shard->Decide(y, p, now, 1, d));
  EXPECT_TRUE(d.allowed) << "y took x's bucket";
  ASSERT_TRUE(shard->Decide(x, p, now, 1, d));
  EXPECT_FALSE(d.allowed);
  ASSERT_TRUE(shard->Decide(y, p, now, 1, d));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(shard->CountUsed(), 2u);
}

TEST(ShardTest, QuotaBucketsAreNeverReused) {
  auto shard = BucketShard::Create(HeapAllocator::Instance(), 5, kEpochNs);
  ASSERT_TRUE(shard.ok());
  const dlb::BucketProfile quota = Profile(3, 0);
  for (uint64_t k = 0; k < 8; ++k) {
    dlb::Decision d;
    ASSERT_TRUE(shard->Decide(shard->Probe(k, 0), quota, kEpochNs, 1, d));
  }
  dlb::Decision d;
  EXPECT_FALSE(shard->Decide(shard->Probe(99, 0), quota, kEpochNs + (int64_t{1} << 50), 1, d));
}

TEST(ShardTest, MemoryPerUserIsAtMost32Bytes) {
  for (uint64_t users : {1'000ULL, 1'000'000ULL, 3'333'333ULL}) {
    auto shard = BucketShard::Create(HeapAllocator::Instance(), users, kEpochNs);
    ASSERT_TRUE(shard.ok());
    EXPECT_LE(static_cast<double>(shard->memory_bytes()) / static_cast<double>(users), 32.0) << users;
  }
}

TEST(ShardTest, SizedTableHoldsItsUsers) {
  // Sized for N users, N distinct keys with level all find an entry (two-choice
  // balancing at a 0.8 load factor).
  constexpr uint64_t kUsers = 200'000;
  auto shard = BucketShard::Create(HeapAllocator::Instance(), kUsers, kEpochNs);
  ASSERT_TRUE(shard.ok());
  const SipKey key{1, 2};
  const dlb::BucketProfile p = Profile(10, 1);
  uint64_t full = 0;
  for (uint64_t u = 0; u < kUsers; ++u) {
    dlb::Decision d;
    full += !shard->Decide(shard->Probe(SipHash13(key, &u, sizeof u), 0), p, kEpochNs, 1, d);
  }
  EXPECT_LE(full, kUsers / 1000) << "more than 0.1% of users found no entry";
  EXPECT_EQ(shard->CountUsed() + full, kUsers);
}

TEST(ShardTest, LookupReturnsAbsoluteState) {
  auto shard = BucketShard::Create(HeapAllocator::Instance(), 100, kEpochNs);
  ASSERT_TRUE(shard.ok());
  const dlb::BucketProfile p = Profile(10, 2);
  dlb::BucketState oracle;
  dlb::Decision d;
  const int64_t t = kEpochNs + 123'456'789;
  dlb::Decide(p, oracle, t, 3);
  ASSERT_TRUE(shard->Decide(shard->Probe(7, 1), p, t, 3, d));
  dlb::BucketState got;
  ASSERT_TRUE(shard->Lookup(shard->Probe(7, 1), t, got));
  EXPECT_TRUE(got.tat_fp == oracle.tat_fp);
  EXPECT_FALSE(shard->Lookup(shard->Probe(7, 2), t, got));
}

}  // namespace
}  // namespace dlb::packet
