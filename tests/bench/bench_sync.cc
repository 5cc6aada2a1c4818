// Mode synced: decisions per second on one core and what they cost Redis.
//   build-rel/tests/bench/bench_sync [seconds per point]
// Starts its own redis-server. Every user's limit is far above the offered rate, so the
// figures are the cost of the decision path, not of rejections.
//
// 1. Library: Limiter::Decide in mode synced, one thread, one hot user (the whole path:
//    validation, keyed hash of the user ID, lease, counters).
// 2. Sync engine, as an appliance core and its control lcore use it: one thread decides
//    (SyncEngine::TryAdmit on a precomputed 64-bit key: the appliance hashes the user ID
//    while parsing) round-robin over 1e3 or 1e5 active users for one sync interval, then
//    runs Sync() (the control lcore's round trip); repeated. Reported: decisions per
//    second of deciding time, the share decided by leases (the rest would be strict
//    calls), and Redis's cost: bucket operations and EVALSHA calls per second of wall
//    time and Redis's own CPU.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dlb/clock.h"
#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/script.h"
#include "redis/url.h"
#include "redis_server.h"
#include "sync/sync_engine.h"

namespace {

struct RedisCost {
  double evalsha_calls = 0;
  double cpu_s = 0;
};

double Field(const std::string& info, const std::string& name) {
  const size_t p = info.find(name);
  if (p == std::string::npos) return 0;
  return std::atof(info.c_str() + p + name.size());
}

RedisCost Sample(dlb::testing::RedisServer& server) {
  const std::string cmd = server.Command("INFO commandstats").str;
  const std::string cpu = server.Command("INFO cpu").str;
  return {.evalsha_calls = Field(cmd, "cmdstat_evalsha:calls="),
          .cpu_s = Field(cpu, "used_cpu_sys:") + Field(cpu, "used_cpu_user:")};
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const dlb::BucketSpec kSpec{.capacity = int64_t{1} << 40, .leak_rate_per_s = 1e9};

int LibraryPoint(dlb::testing::RedisServer& server, double seconds) {
  dlb::LimiterOptions o;
  o.mode = dlb::Mode::kSynced;
  o.redis_url = server.Url();
  auto limiter = dlb::Limiter::Create(o);
  if (!limiter.ok()) {
    std::fprintf(stderr, "%s\n", limiter.status().ToString().c_str());
    return 1;
  }
  auto run = [&](double s, double* lease_share) {
    uint64_t n = 0;
    const uint64_t lease0 = (*limiter)->Stats().lease_decisions;
    const auto t0 = std::chrono::steady_clock::now();
    while (Since(t0) < s) {
      for (int k = 0; k < 1024; ++k) {
        auto d = (*limiter)->Decide("bench-hot", kSpec, 1, "b");
        n += d.ok() && d->allowed;
      }
    }
    *lease_share = static_cast<double>((*limiter)->Stats().lease_decisions - lease0) / static_cast<double>(n);
    return static_cast<double>(n) / Since(t0);
  };
  double share = 0;
  run(0.3, &share);
  const RedisCost c0 = Sample(server);
  const auto t0 = std::chrono::steady_clock::now();
  const double rate = run(seconds, &share);
  const double el = Since(t0);
  const RedisCost c1 = Sample(server);
  std::printf("library Limiter::Decide, 1 hot user: %.2f M decisions/s, %.1f%% by lease, "
              "Redis %.0f EVALSHA/s, Redis CPU %.1f%%\n",
              rate / 1e6, 100 * share, (c1.evalsha_calls - c0.evalsha_calls) / el, 100 * (c1.cpu_s - c0.cpu_s) / el);
  return 0;
}

int EnginePoint(dlb::testing::RedisServer& server, int users, double seconds) {
  auto ep = dlb::redis::ParseUrl(server.Url());
  dlb::redis::Pool pool(*ep, 2, {dlb::redis::BucketScript(), dlb::redis::LeaseScript(), dlb::redis::kAnnounceScript});
  dlb::sync::SyncOptions so;
  so.deadline = std::chrono::microseconds(5'000'000);
  so.participant_id = "bench-core";
  dlb::sync::SyncEngine engine(so, &pool, nullptr);
  std::vector<std::string> keys;
  for (int u = 0; u < users; ++u) {
    keys.push_back(dlb::RedisKey("bench-" + std::to_string(users) + "-" + std::to_string(u), "b"));
    engine.Track(static_cast<uint64_t>(u) + 1, keys.back(), kSpec, 2);
  }
  const int64_t interval_ns = 5'000'000;
  uint64_t decided = 0, admitted = 0;
  double decide_s = 0, sync_s = 0, max_sync_s = 0;
  size_t u = 0;
  auto period = [&](bool measure) {
    const int64_t start = dlb::MonotonicClock::Instance().NowNs();
    const int64_t end = start + interval_ns;
    uint64_t n = 0, a = 0;
    int64_t now = start;
    while (now < end) {
      for (int k = 0; k < 256; ++k) {
        a += engine.TryAdmit(static_cast<uint64_t>(u) + 1, 1, now) == dlb::sync::SyncEngine::Admit::kAdmitted;
        ++n;
        if (++u == static_cast<size_t>(users)) u = 0;
      }
      now = dlb::MonotonicClock::Instance().NowNs();
    }
    const auto t1 = std::chrono::steady_clock::now();
    (void)engine.Sync();
    const double s = Since(t1);
    if (measure) {
      decided += n;
      admitted += a;
      decide_s += static_cast<double>(now - start) / 1e9;
      sync_s += s;
      max_sync_s = std::max(max_sync_s, s);
    }
  };
  for (int i = 0; i < 40; ++i) period(false);   // leases sized to the demand
  const dlb::sync::SyncStats s0 = engine.Stats();
  const RedisCost c0 = Sample(server);
  const auto t0 = std::chrono::steady_clock::now();
  while (Since(t0) < seconds) period(true);
  const double el = Since(t0);
  const RedisCost c1 = Sample(server);
  const dlb::sync::SyncStats s1 = engine.Stats();
  std::printf("engine %6d users: %.2f M decisions/s while deciding, %.1f%% by lease; sync round %.2f ms avg "
              "(max %.2f); Redis %.0f bucket ops/s, %.0f EVALSHA/s, CPU %.1f%%\n",
              users, static_cast<double>(decided) / decide_s / 1e6,
              100.0 * static_cast<double>(admitted) / static_cast<double>(decided),
              1e3 * sync_s / static_cast<double>(s1.syncs - s0.syncs), 1e3 * max_sync_s,
              static_cast<double>(s1.bucket_ops - s0.bucket_ops) / el, (c1.evalsha_calls - c0.evalsha_calls) / el,
              100 * (c1.cpu_s - c0.cpu_s) / el);
  (void)engine.ReturnAll();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  dlb::testing::RedisServer server;
  std::printf("mode synced, sync interval 5 ms, one deciding thread, %.1f s per point\n", seconds);
  std::fflush(stdout);
  if (LibraryPoint(server, seconds) != 0) return 1;
  for (int users : {1000, 100000}) {
    if (EnginePoint(server, users, seconds) != 0) return 1;
    std::fflush(stdout);
  }
  return 0;
}
