// A gateway process of the overload and outage tests: several threads calling the
// library's process-wide limiter (the one behind dlb::AllowRequest, configured from the
// environment as a new user's program is) for one user in a closed loop.
//
//   dlb_it_overload USER CAPACITY LEAK_RATE THREADS DURATION_MS PARTICIPANTS
//
// Protocol on stdin/stdout:
//   -> "ready WALL_S"   once the limiter is connected and counts at least PARTICIPANTS
//                       live participants (or after 5 s); WALL_S = time(nullptr), so
//                       the test can check a faked wall clock
//   <- any line         start
//   -> "result START_NS END_NS DECISIONS ADMITTED FALLBACK_DECISIONS FALLBACK_ADMITTED
//       MAX_CALL_NS STORE_TIMEOUTS BREAKER_OPENS LIVE_PARTICIPANTS MIRRORED FIRST_CALL_NS"
// START_NS and END_NS are CLOCK_MONOTONIC (one clock for every process of the host);
// FIRST_CALL_NS is the duration of this process's first decision.
// With DLB_IT_TRACE set, each admission is also written to stderr when the run ends, as
// "admit MONO_NS store|policy PID", to see when a run admitted what.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "dlb/limiter.h"

namespace {

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s USER CAPACITY LEAK_RATE THREADS DURATION_MS PARTICIPANTS\n", argv[0]);
    return 2;
  }
  const std::string user = argv[1];
  const dlb::BucketSpec spec{.capacity = std::atoll(argv[2]), .leak_rate_per_s = std::atof(argv[3])};
  const int threads = std::atoi(argv[4]);
  const int64_t duration_ns = std::atoll(argv[5]) * 1'000'000;
  const int64_t participants = std::atoll(argv[6]);

  // What a gateway does at start-up so that no request pays for the connection.
  dlb::Limiter& limiter = dlb::DefaultLimiter();
  const int64_t wait_end = MonoNs() + 5'000'000'000;
  while (limiter.Stats().live_participants < participants && MonoNs() < wait_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::cout << "ready " << static_cast<int64_t>(time(nullptr)) << std::endl;
  std::string go;
  if (!std::getline(std::cin, go)) return 2;

  std::atomic<uint64_t> decisions{0}, admitted{0}, fallback{0}, fallback_admitted{0};
  std::atomic<int64_t> max_call_ns{0}, first_call_ns{-1};
  const int64_t start = MonoNs();
  const int64_t end = start + duration_ns;
  const bool trace = std::getenv("DLB_IT_TRACE") != nullptr;
  std::vector<std::vector<std::pair<int64_t, bool>>> traces(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      uint64_t n = 0, a = 0, f = 0, fa = 0;
      int64_t slowest = 0;
      for (int64_t now = MonoNs(); now < end;) {
        auto d = limiter.Decide(user, spec);   // what dlb::AllowRequest(user, C, r) calls
        const int64_t after = MonoNs();
        int64_t unset = -1;
        first_call_ns.compare_exchange_strong(unset, after - now);
        slowest = std::max(slowest, after - now);
        now = after;
        if (!d.ok()) {
          std::fprintf(stderr, "overload worker: %s\n", d.status().ToString().c_str());
          std::exit(3);
        }
        ++n;
        a += d->allowed;
        if (trace && d->allowed) traces[t].emplace_back(after, d->source == dlb::DecisionSource::kStore);
        if (d->source != dlb::DecisionSource::kStore) {
          ++f;
          fa += d->allowed;
        }
      }
      decisions += n;
      admitted += a;
      fallback += f;
      fallback_admitted += fa;
      int64_t prev = max_call_ns.load();
      while (slowest > prev && !max_call_ns.compare_exchange_weak(prev, slowest)) {
      }
    });
  }
  for (auto& th : pool) th.join();
  const int64_t stop = MonoNs();
  const dlb::LimiterStats s = limiter.Stats();
  for (const auto& tr : traces) {
    for (const auto& [at, store] : tr) {
      std::fprintf(stderr, "admit %lld %s %d\n", static_cast<long long>(at), store ? "store" : "policy",
                   static_cast<int>(getpid()));
    }
  }
  std::cout << "result " << start << " " << stop << " " << decisions << " " << admitted << " " << fallback << " "
            << fallback_admitted << " " << max_call_ns << " " << s.store_timeouts << " " << s.breaker_opens << " "
            << s.live_participants << " " << s.mirrored_levels << " " << first_call_ns << std::endl;
  return 0;
}
