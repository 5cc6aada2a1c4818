// Atomicity: many processes (each with several threads) deciding the same buckets in
// one Redis never admit more than one bucket would.
//
// The bound: GCRA admits at most C + r * (t_last - t_first) (+1 for a request exactly
// at an emission instant) between the first and the last decision on the Redis clock.
// Both lie inside [TIME read before "go", TIME read after every worker finished], so
// that interval, the longer one, gives a bound that is sound (never too tight).
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "child_process.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

using Hammer = ChildProcess;

struct RunResult {
  double elapsed_s = 0;            // on the Redis clock, around the whole run
  uint64_t decisions = 0;
  uint64_t admitted = 0;
  uint64_t fallback = 0;
  uint64_t errors = 0;
  std::vector<uint64_t> per_user;  // admitted per user, summed over processes
};

RunResult RunHammers(RedisServer& server, int processes, int threads, int users, int64_t capacity,
                     double rate, int duration_ms) {
  const char* exe = std::getenv("DLB_IT_HAMMER");
  if (exe == nullptr) throw std::runtime_error("DLB_IT_HAMMER is not set (run through meson test)");
  std::vector<std::unique_ptr<Hammer>> hammers;
  for (int p = 0; p < processes; ++p) {
    hammers.push_back(std::make_unique<Hammer>(std::vector<std::string>{
        exe, server.Url(), std::to_string(users), std::to_string(capacity), std::to_string(rate),
        std::to_string(threads), std::to_string(duration_ms), std::to_string(p)}));
  }
  for (auto& h : hammers) {
    const std::string line = h->ReadLine();
    if (line != "ready") throw std::runtime_error("hammer did not start: '" + line + "'");
  }
  RunResult res;
  res.per_user.assign(users, 0);
  const int64_t t0 = server.TimeUs();
  for (auto& h : hammers) h->Go();
  for (auto& h : hammers) {
    std::istringstream head(h->ReadLine());
    std::string tag;
    uint64_t d = 0, a = 0, f = 0, e = 0;
    head >> tag >> d >> a >> f >> e;
    if (tag != "result") throw std::runtime_error("hammer gave no result");
    res.decisions += d;
    res.admitted += a;
    res.fallback += f;
    res.errors += e;
    if (users > 1) {
      for (int u = 0; u < users; ++u) {
        std::istringstream line(h->ReadLine());
        int index = -1;
        uint64_t n = 0;
        line >> tag >> index >> n;
        if (tag != "user" || index != u) throw std::runtime_error("bad per-user line");
        res.per_user[u] += n;
      }
    } else {
      res.per_user[0] = res.admitted;
    }
  }
  // Each worker printed its result after its last decision: read the clock now, before
  // the workers' exit (sanitizer builds spend a while there) widens the window.
  const int64_t t1 = server.TimeUs();
  res.elapsed_s = static_cast<double>(t1 - t0) / 1e6;
  for (auto& h : hammers) {
    if (int rc = h->Wait(); rc != 0) throw std::runtime_error("hammer exited with " + std::to_string(rc));
  }
  return res;
}

TEST(Atomicity, ManyProcessesOnOneUserAdmitAtMostOneBucket) {
  RedisServer server;
  constexpr int64_t kCapacity = 50;
  constexpr double kRate = 100;
  const RunResult r = RunHammers(server, 8, 4, 1, kCapacity, kRate, 3000);
  ASSERT_EQ(r.errors, 0u);
  ASSERT_EQ(r.fallback, 0u) << "every decision must come from the store";
  const double bound = kCapacity + kRate * r.elapsed_s + 1;
  RecordProperty("decisions", std::to_string(r.decisions));
  RecordProperty("admitted", std::to_string(r.admitted));
  RecordProperty("bound", std::to_string(bound));
  EXPECT_LE(static_cast<double>(r.admitted), bound)
      << r.decisions << " decisions in " << r.elapsed_s << " s";
  EXPECT_GE(static_cast<double>(r.admitted), 0.95 * bound)
      << r.decisions << " decisions in " << r.elapsed_s << " s";
  // The workers asked far more often than they were admitted: the limit was the limit.
  EXPECT_GT(r.decisions, 2 * r.admitted);
}

TEST(Atomicity, ManyUsersAtOnceEachWithinItsOwnBound) {
  RedisServer server;
  constexpr int kUsers = 1000;
  constexpr int64_t kCapacity = 5;
  constexpr double kRate = 4;
  const RunResult r = RunHammers(server, 8, 4, kUsers, kCapacity, kRate, 2000);
  ASSERT_EQ(r.errors, 0u);
  ASSERT_EQ(r.fallback, 0u) << "every decision must come from the store";
  const double bound = kCapacity + kRate * r.elapsed_s + 1;
  uint64_t total = 0;
  for (int u = 0; u < kUsers; ++u) {
    EXPECT_LE(static_cast<double>(r.per_user[u]), bound) << "user " << u;
    // Every user was asked often (about every ms) so every user got at least its
    // burst; the per-user count must not collapse to a shared bucket's share.
    EXPECT_GE(r.per_user[u], static_cast<uint64_t>(kCapacity)) << "user " << u;
    total += r.per_user[u];
  }
  EXPECT_EQ(total, r.admitted);
  EXPECT_GT(r.decisions, 2 * r.admitted) << "users must have been asked beyond their limit";
}

}  // namespace
}  // namespace dlb::testing
