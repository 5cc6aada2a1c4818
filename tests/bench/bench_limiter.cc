// dlb::Limiter in mode `local`, end to end: argument checks, the keyed hash of the
// user ID, the striped in-process table and the bucket core.
//
//   build-rel/tests/bench/bench_limiter [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "dlb/limiter.h"

namespace dlb {
namespace {

std::unique_ptr<Limiter> LocalLimiter(size_t max_buckets) {
  LimiterOptions o;
  o.mode = Mode::kLocal;
  o.local_max_buckets = max_buckets;
  auto l = Limiter::Create(o);
  if (!l.ok()) std::abort();
  return std::move(*l);
}

void BM_LimiterLocalDecide(benchmark::State& state) {
  const auto users = static_cast<size_t>(state.range(0));
  static std::unique_ptr<Limiter> limiter;
  static std::vector<std::string> names;
  static std::vector<uint32_t> order;
  if (state.thread_index() == 0) {
    limiter = LocalLimiter(std::max<size_t>(users, 1024) * 2);
    names.resize(users);
    // 20-byte IDs, like a UUID without dashes truncated: typical gateway user IDs.
    for (size_t i = 0; i < users; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "user-%015zu", i);
      names[i] = buf;
    }
    order.resize(size_t{1} << 20);
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<uint32_t> pick(0, static_cast<uint32_t>(users - 1));
    for (auto& i : order) i = pick(rng);
  }
  const BucketSpec spec{.capacity = 50, .leak_rate_per_s = 100};
  size_t k = static_cast<size_t>(state.thread_index()) * 7919;
  int64_t admitted = 0;
  for (auto _ : state) {
    auto d = limiter->Decide(names[order[k & (order.size() - 1)]], spec);
    admitted += d->allowed;
    ++k;
  }
  state.counters["admitted_frac"] = benchmark::Counter(
      static_cast<double>(admitted) / static_cast<double>(state.iterations()),
      benchmark::Counter::kAvgThreads);
  if (state.thread_index() == 0) {
    state.SetItemsProcessed(state.iterations());
  }
}
BENCHMARK(BM_LimiterLocalDecide)->Arg(1)->Arg(1'000'000)->UseRealTime();
BENCHMARK(BM_LimiterLocalDecide)->Arg(1'000'000)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace dlb

BENCHMARK_MAIN();
