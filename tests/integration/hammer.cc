// A worker process of the atomicity tests: several threads of one Limiter deciding
// requests for a set of users as fast as they can, for a fixed time.
//
//   dlb_it_hammer URL USERS CAPACITY LEAK_RATE THREADS DURATION_MS OFFSET
//
// Protocol on stdin/stdout, so that the test starts all workers together and reads the
// Redis clock around the whole run:
//   -> "ready"                 once the limiter is connected
//   <- any line                start
//   -> "result DECISIONS ADMITTED FALLBACK ERRORS"
//   -> "user INDEX ADMITTED"   for each user (when USERS > 1)
// Users are "hammer-user-<index>"; each thread walks them round robin from its own
// offset so that every user is asked about equally often.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "dlb/limiter.h"

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s URL USERS CAPACITY LEAK_RATE THREADS DURATION_MS OFFSET\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const int users = std::atoi(argv[2]);
  const dlb::BucketSpec spec{.capacity = std::atoll(argv[3]), .leak_rate_per_s = std::atof(argv[4])};
  const int threads = std::atoi(argv[5]);
  const auto duration = std::chrono::milliseconds(std::atoll(argv[6]));
  const int offset = std::atoi(argv[7]);

  dlb::LimiterOptions o;
  o.redis_url = url;
  // The store must decide every request: a deadline that a loaded 2-core machine
  // never reaches, and a closed policy so a fallback could never admit.
  o.deadline = std::chrono::seconds(5);
  o.on_store_failure = dlb::FailurePolicy::kClosed;
  o.max_connections = threads;
  auto limiter = dlb::Limiter::Create(o);
  if (!limiter.ok()) {
    std::fprintf(stderr, "hammer: %s\n", limiter.status().ToString().c_str());
    return 2;
  }
  std::vector<std::string> ids;
  for (int u = 0; u < users; ++u) ids.push_back("hammer-user-" + std::to_string(u));

  std::cout << "ready" << std::endl;
  std::string go;
  if (!std::getline(std::cin, go)) return 2;

  std::vector<std::vector<uint64_t>> admitted(threads, std::vector<uint64_t>(users, 0));
  std::atomic<uint64_t> decisions{0}, fallback{0}, errors{0};
  const auto end = std::chrono::steady_clock::now() + duration;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      int u = (offset * threads + t) * users / (threads * 8 + 1) % users;
      uint64_t n = 0;
      while (std::chrono::steady_clock::now() < end) {
        auto d = (*limiter)->Decide(ids[u], spec);
        ++n;
        if (!d.ok()) {
          errors.fetch_add(1);
        } else {
          if (d->source != dlb::DecisionSource::kStore) fallback.fetch_add(1);
          if (d->allowed) ++admitted[t][u];
        }
        if (++u == users) u = 0;
      }
      decisions.fetch_add(n);
    });
  }
  for (auto& th : pool) th.join();

  uint64_t total = 0;
  std::vector<uint64_t> per_user(users, 0);
  for (int t = 0; t < threads; ++t) {
    for (int u = 0; u < users; ++u) {
      per_user[u] += admitted[t][u];
      total += admitted[t][u];
    }
  }
  std::cout << "result " << decisions.load() << " " << total << " " << fallback.load() << " "
            << errors.load() << "\n";
  if (users > 1) {
    for (int u = 0; u < users; ++u) std::cout << "user " << u << " " << per_user[u] << "\n";
  }
  std::cout << std::flush;
  return 0;
}
