// Redis-mode benchmark of dlb::Limiter: decisions per second from several threads and
// through the batch API, latency of paced single decisions, and bytes per bucket.
// scripts/bench-redis runs it beside redis-benchmark calling the same script at the
// same concurrency and pipelining, so the two figures come from one run.
//
//   bench_redis --redis URL throughput --threads T --batch B --users U --seconds S
//   bench_redis --redis URL paced --rate R --seconds S --users U
//   bench_redis --redis URL memory --users U
//   bench_redis script            (prints the Lua script, for SCRIPT LOAD)
//   bench_redis script-sha
#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis/script.h"

namespace {

struct Args {
  std::string redis = "redis://127.0.0.1:6379";
  std::string cmd;
  int threads = 1;
  int batch = 1;
  int users = 100000;
  double seconds = 3;
  double rate = 5000;
  int64_t deadline_us = 2000;
};

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: bench_redis [--redis URL] throughput|paced|memory|script|script-sha "
               "[--threads T] [--batch B] [--users U] [--seconds S] [--rate R] [--deadline-us N]\n");
  std::exit(2);
}

int64_t NowNs() { return dlb::MonotonicClock::Instance().NowNs(); }

std::string UserName(uint64_t i) { return "user-" + std::to_string(i); }

// Specs chosen so that most decisions are admissions (a payment gateway's normal
// state) while the buckets still fill: 50 requests, 100 per second.
const dlb::BucketSpec kSpec{.capacity = 50, .leak_rate_per_s = 100};

std::unique_ptr<dlb::Limiter> MakeLimiter(const Args& a) {
  dlb::LimiterOptions o;
  o.redis_url = a.redis;
  o.deadline = std::chrono::microseconds(a.deadline_us);
  o.max_connections = std::max(64, a.threads);
  auto l = dlb::Limiter::Create(o);
  if (!l.ok()) {
    std::fprintf(stderr, "bench_redis: %s\n", l.status().ToString().c_str());
    std::exit(2);
  }
  return std::move(*l);
}

int Throughput(const Args& a) {
  auto limiter = MakeLimiter(a);
  std::vector<std::string> names(static_cast<size_t>(a.users));
  for (int i = 0; i < a.users; ++i) names[static_cast<size_t>(i)] = UserName(static_cast<uint64_t>(i));
  std::atomic<bool> go{false}, stop{false};
  std::atomic<uint64_t> total{0}, allowed{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < a.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) * 7919 + 1);
      std::uniform_int_distribution<size_t> pick(0, names.size() - 1);
      std::vector<dlb::LimitRequest> reqs(static_cast<size_t>(a.batch));
      uint64_t n = 0, ok = 0, err = 0;
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      while (!stop.load(std::memory_order_relaxed)) {
        for (auto& r : reqs) r = {.user_id = names[pick(rng)], .spec = kSpec, .cost = 1};
        if (a.batch == 1) {
          auto d = limiter->Decide(reqs[0].user_id, reqs[0].spec);
          ++n;
          if (!d.ok() || d->source != dlb::DecisionSource::kStore) ++err;
          else ok += d->allowed;
        } else {
          auto ds = limiter->DecideBatch(reqs);
          for (auto& d : ds) {
            ++n;
            if (!d.ok() || d->source != dlb::DecisionSource::kStore) ++err;
            else ok += d->allowed;
          }
        }
      }
      total += n;
      allowed += ok;
      errors += err;
    });
  }
  const int64_t t0 = NowNs();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(a.seconds));
  stop.store(true);
  for (auto& th : threads) th.join();
  const double secs = static_cast<double>(NowNs() - t0) / 1e9;
  // Only decisions made by Redis count: a fallback decision (deadline missed, breaker
  // open) is fast and would flatter the figure.
  const uint64_t store = total.load() - errors.load();
  std::printf("limiter threads=%d batch=%d users=%d store_decisions=%" PRIu64 " allowed=%" PRIu64
              " not_from_store=%" PRIu64 " seconds=%.2f decisions_per_s=%.0f\n",
              a.threads, a.batch, a.users, store, allowed.load(), errors.load(), secs,
              static_cast<double>(store) / secs);
  return 0;
}

int Paced(const Args& a) {
  auto limiter = MakeLimiter(a);
  const int64_t interval_ns = static_cast<int64_t>(1e9 / a.rate);
  const int64_t n = static_cast<int64_t>(a.seconds * a.rate);
  std::vector<int64_t> lat;
  lat.reserve(static_cast<size_t>(n));
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> pick(0, a.users - 1);
  uint64_t errors = 0;
  // Warm the connection, then issue on a fixed schedule (open loop: a slow call does
  // not push back the next one's start, so queueing shows up in the figures).
  (void)limiter->Decide("warm-up", kSpec);
  const int64_t start = NowNs();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t due = start + i * interval_ns;
    while (NowNs() < due) {
    }
    const std::string user = UserName(static_cast<uint64_t>(pick(rng)));
    const int64_t t0 = NowNs();
    auto d = limiter->Decide(user, kSpec);
    const int64_t t1 = NowNs();
    if (!d.ok() || d->source != dlb::DecisionSource::kStore) ++errors;
    lat.push_back(t1 - t0);
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    return static_cast<double>(lat[std::min(lat.size() - 1, static_cast<size_t>(p * static_cast<double>(lat.size())))]) / 1e6;
  };
  std::printf("paced rate=%.0f/s decisions=%zu not_from_store=%" PRIu64
              " p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
              a.rate, lat.size(), errors, pct(0.50), pct(0.90), pct(0.99), pct(0.999),
              static_cast<double>(lat.back()) / 1e6);
  return 0;
}

int Memory(const Args& a) {
  auto limiter = MakeLimiter(a);
  // Slow leaks, so that no key expires before it is measured. A whole emission
  // interval in ns (r = 0.001/s: T = 1e12 ns) stores an integer; a fractional one
  // (r = 0.003/s) stores a fraction.
  const dlb::BucketSpec specs[] = {{.capacity = 50, .leak_rate_per_s = 0.001},
                                   {.capacity = 10, .leak_rate_per_s = 0.003}};
  for (const auto& spec : specs) {
    for (int i = 0; i < a.users; ++i) (void)limiter->Decide(UserName(static_cast<uint64_t>(i)), spec);
  }
  // Host and port from a redis://host:port URL (scripts/bench-redis passes one).
  const std::string& u = a.redis;
  const size_t hp = u.find("//") + 2, colon = u.find(':', hp), slash = u.find('/', hp);
  const std::string host = u.substr(hp, colon - hp);
  const int port = std::atoi(u.substr(colon + 1, slash - colon - 1).c_str());
  redisContext* c = redisConnect(host.c_str(), port);
  if (c == nullptr || c->err) {
    std::fprintf(stderr, "bench_redis: cannot connect to %s:%d\n", host.c_str(), port);
    return 2;
  }
  for (const auto& spec : specs) {
    uint64_t sum = 0, n = 0;
    const int sample = std::min(a.users, 1000);
    for (int i = 0; i < sample; ++i) {
      const std::string key = dlb::RedisKey(UserName(static_cast<uint64_t>(i)),
                                            dlb::RuleNameForSpec(spec.capacity, spec.leak_rate_per_s));
      auto* r = static_cast<redisReply*>(redisCommand(c, "MEMORY USAGE %b", key.data(), key.size()));
      if (r != nullptr && r->type == REDIS_REPLY_INTEGER) {
        sum += static_cast<uint64_t>(r->integer);
        ++n;
      }
      if (r != nullptr) freeReplyObject(r);
    }
    std::printf("memory capacity=%lld leak_rate=%g keys_sampled=%" PRIu64 " memory_usage_bytes_per_bucket=%.1f\n",
                static_cast<long long>(spec.capacity), spec.leak_rate_per_s, n,
                n ? static_cast<double>(sum) / static_cast<double>(n) : 0.0);
  }
  redisFree(c);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) Usage();
      return argv[++i];
    };
    if (s == "--redis") a.redis = next();
    else if (s == "--threads") a.threads = std::atoi(next());
    else if (s == "--batch") a.batch = std::atoi(next());
    else if (s == "--users") a.users = std::atoi(next());
    else if (s == "--seconds") a.seconds = std::atof(next());
    else if (s == "--rate") a.rate = std::atof(next());
    else if (s == "--deadline-us") a.deadline_us = std::atoll(next());
    else if (s[0] != '-' && a.cmd.empty()) a.cmd = s;
    else Usage();
  }
  if (a.threads < 1 || a.batch < 1 || a.users < 1 || a.seconds <= 0 || a.rate <= 0) Usage();
  if (a.cmd == "script") {
    std::fwrite(dlb::redis::BucketScript().data(), 1, dlb::redis::BucketScript().size(), stdout);
    return 0;
  }
  if (a.cmd == "script-sha") {
    std::printf("%s\n", dlb::redis::BucketScriptSha().c_str());
    return 0;
  }
  if (a.cmd == "throughput") return Throughput(a);
  if (a.cmd == "paced") return Paced(a);
  if (a.cmd == "memory") return Memory(a);
  Usage();
}
