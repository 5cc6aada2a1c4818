// dlb-sim: the synced mode's accuracy against an exact oracle, per traffic pattern.
//
//   build/tests/sync/dlb_sim [--duration S] [--scale X] [--interval-us N]
//                            [--redis-url URL] [--strict] [--pattern NAME] [--packet]
//                            [--standing-rounds N]
//
// --packet: the appliance cores are packet engines driven by ShardSync
// (lib/dlb/packet/shard_sync.h) instead of library sync engines.
//
// Starts its own redis-server on a free loopback port unless --redis-url is given.
// Prints over- and under-admission as a share of the oracle's admissions, against the
// targets at the default 5 ms sync interval (over <= 1%, under <= 5%; strict: 0 over).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "redis_server.h"
#include "sim.h"

int main(int argc, char** argv) {
  dlb::sim::SimOptions o;
  o.duration_s = 3.0;
  std::string only;
  bool strict_too = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dlb_sim: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--duration")) o.duration_s = std::atof(next());
    else if (!std::strcmp(argv[i], "--scale")) o.load_scale = std::atof(next());
    else if (!std::strcmp(argv[i], "--interval-us")) o.sync_interval = std::chrono::microseconds(std::atoll(next()));
    else if (!std::strcmp(argv[i], "--redis-url")) o.redis_url = next();
    else if (!std::strcmp(argv[i], "--strict")) strict_too = true;
    else if (!std::strcmp(argv[i], "--pattern")) only = next();
    else if (!std::strcmp(argv[i], "--packet")) o.packet_cores = true;
    else if (!std::strcmp(argv[i], "--standing-rounds")) o.standing_rounds = std::atoi(next());
    else {
      std::fprintf(stderr, "usage: dlb_sim [--duration S] [--scale X] [--interval-us N] [--redis-url URL] "
                           "[--strict] [--pattern NAME] [--packet] [--standing-rounds N]\n");
      return 2;
    }
  }
  std::unique_ptr<dlb::testing::RedisServer> server;
  if (o.redis_url.empty()) {
    server = std::make_unique<dlb::testing::RedisServer>();
    o.redis_url = server->Url();
  }
  std::printf("participants: %d appliances x %d %s + %d library processes; sync interval %lld us; "
              "%.1f s per pattern; load scale %.2f\n",
              o.appliances, o.cores_per_appliance, o.packet_cores ? "packet cores (ShardSync)" : "cores",
              o.library_processes,
              static_cast<long long>(o.sync_interval.count()), o.duration_s, o.load_scale);
  bool ok = true;
  for (dlb::Mode mode : {dlb::Mode::kSynced, dlb::Mode::kStrict}) {
    if (mode == dlb::Mode::kStrict && !strict_too) continue;
    o.mode = mode;
    std::printf("mode %s (targets: over <= %s, under <= %s)\n", dlb::ModeName(mode),
                mode == dlb::Mode::kStrict ? "0 against the Redis ledger" : "1%", "5%");
    for (dlb::sim::Pattern p : dlb::sim::kAllPatterns) {
      if (!only.empty() && only != dlb::sim::PatternName(p)) continue;
      const dlb::sim::SimResult r = dlb::sim::Run(p, o);
      std::printf("  %s\n", dlb::sim::Describe(r).c_str());
      std::fflush(stdout);
      if (r.users_over_bound != 0) ok = false;
    }
  }
  std::printf("bound %s\n", ok ? "held for every user" : "EXCEEDED");
  return ok ? 0 : 1;
}
