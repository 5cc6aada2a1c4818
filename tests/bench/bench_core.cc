// Cost of the bucket core and of key derivation, without any store.
//
//   build-rel/tests/bench/bench_core [--benchmark_filter=...]
//
// BM_Decide*: ns per Decide. One user keeps its state in L1; a million users in a
// flat array (16 MiB of state) visited in a pre-generated random order shows the
// cache-miss cost a per-core shard pays. Time advances by a fixed step per call so
// that admissions and rejections both occur.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/key.h"

namespace dlb {
namespace {

BucketProfile Profile(int64_t capacity, double leak_rate_per_s) {
  auto p = BucketProfile::Make({.capacity = capacity, .leak_rate_per_s = leak_rate_per_s});
  if (!p.ok()) std::abort();
  return *p;
}

void BM_DecideOneUser(benchmark::State& state) {
  const BucketProfile p = Profile(100, 1e6);
  BucketState s;
  int64_t now_ns = 1'000'000'000;
  int64_t admitted = 0;
  for (auto _ : state) {
    now_ns += 500;  // 2e6 calls/s against 1e6/s: about half are admitted
    const Decision d = Decide(p, s, now_ns, 1);
    admitted += d.allowed;
    benchmark::DoNotOptimize(d);
  }
  state.counters["admitted_frac"] =
      static_cast<double>(admitted) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_DecideOneUser);

// A random walk over `users` states, generated up front so the loop measures only
// Decide and the memory it touches. 2^22 indices: larger than any cache, cheap to build.
std::vector<uint32_t> RandomOrder(size_t users) {
  std::vector<uint32_t> order(size_t{1} << 22);
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<uint32_t> pick(0, static_cast<uint32_t>(users - 1));
  for (auto& i : order) i = pick(rng);
  return order;
}

void BM_DecideManyUsers(benchmark::State& state) {
  const auto users = static_cast<size_t>(state.range(0));
  const BucketProfile p = Profile(10, 5.0);
  std::vector<BucketState> states(users);
  const std::vector<uint32_t> order = RandomOrder(users);
  int64_t now_ns = 1'000'000'000;
  size_t k = 0;
  int64_t admitted = 0;
  for (auto _ : state) {
    now_ns += 100;
    const Decision d = Decide(p, states[order[k]], now_ns, 1);
    k = (k + 1) & (order.size() - 1);
    admitted += d.allowed;
    benchmark::DoNotOptimize(d);
  }
  state.counters["admitted_frac"] =
      static_cast<double>(admitted) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_DecideManyUsers)->Arg(1)->Arg(1'000'000);

// The same random walk over many users, decided in bursts of 32 with the states of
// the whole burst prefetched first, as a per-core shard decides a packet burst: the
// cache misses overlap instead of adding up.
void BM_DecideManyUsersBurstPrefetch(benchmark::State& state) {
  const auto users = static_cast<size_t>(state.range(0));
  constexpr size_t kBurst = 32;
  const BucketProfile p = Profile(10, 5.0);
  std::vector<BucketState> states(users);
  const std::vector<uint32_t> order = RandomOrder(users);
  int64_t now_ns = 1'000'000'000;
  size_t k = 0;
  int64_t admitted = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kBurst; ++i) __builtin_prefetch(&states[order[(k + i) & (order.size() - 1)]], 1);
    for (size_t i = 0; i < kBurst; ++i) {
      now_ns += 100;
      const Decision d = Decide(p, states[order[(k + i) & (order.size() - 1)]], now_ns, 1);
      admitted += d.allowed;
      benchmark::DoNotOptimize(d);
    }
    k = (k + kBurst) & (order.size() - 1);
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
  state.counters["ns_per_decision"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kBurst),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["admitted_frac"] =
      static_cast<double>(admitted) / static_cast<double>(state.iterations() * kBurst);
}
BENCHMARK(BM_DecideManyUsersBurstPrefetch)->Arg(1'000'000);

void BM_Peek(benchmark::State& state) {
  const BucketProfile p = Profile(100, 1e6);
  BucketState s;
  Decide(p, s, 1'000'000'000, 50);
  int64_t now_ns = 1'000'000'000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(Peek(p, s, ++now_ns));
  }
}
BENCHMARK(BM_Peek);

const std::string kUserId20 = "user-0123456789abcde";  // 20 bytes

void BM_DigestUserId20(benchmark::State& state) {
  std::string id = kUserId20;
  for (auto _ : state) {
    benchmark::DoNotOptimize(id.data());
    benchmark::DoNotOptimize(DigestUserId(id));
  }
}
BENCHMARK(BM_DigestUserId20);

// RedisKey allocates its result: the convenience form.
void BM_RedisKey20(benchmark::State& state) {
  std::string id = kUserId20;
  for (auto _ : state) {
    benchmark::DoNotOptimize(id.data());
    benchmark::DoNotOptimize(RedisKey(id, "10:5"));
  }
}
BENCHMARK(BM_RedisKey20);

// AppendRedisKey into a reused buffer: the no-allocation form a pipeline uses.
void BM_AppendRedisKey20(benchmark::State& state) {
  std::string id = kUserId20;
  std::string out;
  out.reserve(64);
  for (auto _ : state) {
    out.clear();
    benchmark::DoNotOptimize(id.data());
    AppendRedisKey(DigestUserId(id), "10:5", out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_AppendRedisKey20);

}  // namespace
}  // namespace dlb

BENCHMARK_MAIN();
