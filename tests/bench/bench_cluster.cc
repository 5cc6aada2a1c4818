// Strict decisions per second through a three-master Redis Cluster and through one
// standalone Redis, in one run, on this machine.
//   build-rel/tests/bench/bench_cluster [seconds per point] [threads]
// Starts its own servers (tests/integration/redis_server.h, redis_cluster.h). Each
// thread decides round-robin over its own 10,000 users, whose limits are far above the
// offered rate (the figure is the cost of the decision path, not of rejections), one
// Decide per call and DecideBatch of 32 (one pipeline: on the cluster, split per node
// and read back in order). On one small machine the three cluster nodes share the
// cores with the client, so the cluster figure shows the routing's cost, not the
// scale-out a cluster of separate hosts gives.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "dlb/clock.h"
#include "dlb/limiter.h"
#include "redis_cluster.h"
#include "redis_server.h"

namespace {

struct Result {
  double decisions_per_s = 0;
  uint64_t errors = 0;
};

Result Run(const std::string& url, int threads, size_t batch, double seconds) {
  dlb::LimiterOptions o;
  o.redis_url = url;
  o.mode = dlb::Mode::kStrict;
  o.deadline = std::chrono::milliseconds(50);
  o.max_connections = threads;
  auto l = dlb::Limiter::Create(o);
  if (!l.ok()) {
    std::fprintf(stderr, "%s\n", l.status().ToString().c_str());
    std::exit(1);
  }
  dlb::Limiter& limiter = **l;
  const dlb::BucketSpec spec{.capacity = 1'000'000'000, .leak_rate_per_s = 1e6};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> decided{0}, errors{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::vector<std::string> users;
      for (int i = 0; i < 10'000; ++i) users.push_back("bench-" + std::to_string(t) + "-" + std::to_string(i));
      std::vector<dlb::LimitRequest> reqs(batch);
      uint64_t n = 0, bad = 0;
      for (size_t next = 0; !stop.load(std::memory_order_relaxed);) {
        if (batch == 1) {
          auto d = limiter.Decide(users[next++ % users.size()], spec);
          bad += (!d.ok() || d->source != dlb::DecisionSource::kStore) ? 1 : 0;
          ++n;
          continue;
        }
        for (auto& r : reqs) r = {.user_id = users[next++ % users.size()], .spec = spec, .cost = 1, .rule = {}};
        for (const auto& d : limiter.DecideBatch(reqs)) {
          bad += (!d.ok() || d->source != dlb::DecisionSource::kStore) ? 1 : 0;
          ++n;
        }
      }
      decided += n;
      errors += bad;
    });
  }
  // Warm-up: connections, SCRIPT LOAD on every node, the slot map.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t s0 = limiter.Stats().store_decisions;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const uint64_t s1 = limiter.Stats().store_decisions;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop = true;
  for (auto& th : ts) th.join();
  return {.decisions_per_s = static_cast<double>(s1 - s0) / elapsed, .errors = errors.load()};
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 4;
  setenv("DLB_LOG_LEVEL", "error", 0);
  dlb::testing::RedisServer standalone;
  dlb::testing::Cluster cluster;
  std::printf("strict mode, %d threads, %.1f s per point, 10k users per thread\n", threads, seconds);
  for (size_t batch : {size_t{1}, size_t{32}}) {
    const Result a = Run(standalone.Url(), threads, batch, seconds);
    const Result b = Run(cluster.Url(), threads, batch, seconds);
    std::printf("batch %2zu: standalone %8.0f decisions/s (%llu errors) | 3-master cluster %8.0f decisions/s "
                "(%llu errors) | cluster/standalone %.2f\n",
                batch, a.decisions_per_s, static_cast<unsigned long long>(a.errors), b.decisions_per_s,
                static_cast<unsigned long long>(b.errors), b.decisions_per_s / a.decisions_per_s);
  }
  return 0;
}
