// Several gateway processes deciding one user through the library's process-wide
// limiter (dlb_it_overload: defaults from the environment, as a new user runs it), on
// this loaded 2-CPU machine, against the bounds of docs/failure-policy.md:
//   - overload with Redis up: the admitted total is near C + r*W (W = the run's
//     window; the band is explained at kOverloadUpper), with 4 and 8 processes and with
//     one process whose wall clock is an hour off;
//   - Redis slow but up (a proxy delaying replies 3-10 ms, DEBUG SLEEP 0.05 every
//     200 ms): within C + r*W + N (N processes), every call within its deadline plus a
//     scheduling margin;
//   - outages (killed and restarted empty, SIGSTOP, restarted empty, black hole) under
//     each policy, 4 processes: `local` within C + r*W + N (2C + r*W + N when the store
//     came back empty: the store itself then forgets the level), `open` admits every
//     request the policy decides, `closed` none.
// W is measured on CLOCK_MONOTONIC, one clock for every process of the host, from the
// first worker's start to the last one's end; the figures are printed for the docs.
#include <gtest/gtest.h>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "child_process.h"
#include "dlb/policy.h"
#include "redis_server.h"
#include "tcp_blackhole.h"

namespace dlb::testing {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kCapacity = 100;
constexpr double kRate = 100;
// A call may lose the CPU for this long on a loaded 2-core machine running up to 32
// worker threads besides other builds (a call was seen to take 268 ms at a load average
// of 10): the check is that no call waits for the store beyond its deadline by anything
// like a connect or read timeout; the slowest calls are printed.
constexpr int64_t kSchedulingMarginNs = 1'000'000'000;

struct WorkerResult {
  int64_t start_ns = 0, end_ns = 0;
  uint64_t decisions = 0, admitted = 0, fallback = 0, fallback_admitted = 0;
  int64_t max_call_ns = 0;
  uint64_t timeouts = 0, breaker_opens = 0;
  int64_t live = 0;
  uint64_t mirrored = 0;
  int64_t first_call_ns = 0;
};

struct FleetResult {
  std::vector<WorkerResult> workers;
  std::vector<int64_t> wall_s;   // each worker's time(nullptr) when ready
  double window_s = 0;          // first start to last end: for the upper bounds
  double common_s = 0;          // last start to first end: for the lower bounds
  uint64_t admitted = 0, decisions = 0, fallback = 0, fallback_admitted = 0;
  int64_t max_call_ns = 0;

  double Limit() const { return static_cast<double>(kCapacity) + kRate * window_s; }
  // Admitted while every worker ran: the part of the limit the lower bound can ask for.
  double CommonLimit() const { return static_cast<double>(kCapacity) + kRate * common_s; }
  std::string Describe() const {
    std::ostringstream o;
    o << "admitted " << admitted << " of limit C + r*W = " << Limit() << " (W = " << window_s
      << " s, all running " << common_s << " s); "
      << decisions << " decisions, " << fallback << " by the policy (" << fallback_admitted
      << " admitted); slowest call " << max_call_ns / 1000 << " us; per process:";
    for (const WorkerResult& w : workers) {
      o << " [admitted " << w.admitted << ", timeouts " << w.timeouts << ", breaker openings " << w.breaker_opens
        << ", participants " << w.live << ", first call " << w.first_call_ns / 1000 << " us]";
    }
    return o.str();
  }
};

// N worker processes started together; `during` runs in this thread while they work
// (a fault schedule), then their results are read.
class Fleet {
 public:
  Fleet(int processes, int threads, int duration_ms, const std::vector<std::string>& env,
        const std::vector<std::string>& env_of_first = {}) {
    const char* exe = std::getenv("DLB_IT_OVERLOAD");
    if (exe == nullptr) throw std::runtime_error("DLB_IT_OVERLOAD is not set (run through meson test)");
    for (int p = 0; p < processes; ++p) {
      std::vector<std::string> e = env;
      if (p == 0) e.insert(e.end(), env_of_first.begin(), env_of_first.end());
      workers_.push_back(std::make_unique<ChildProcess>(
          std::vector<std::string>{exe, "overload-user", std::to_string(kCapacity), std::to_string(kRate),
                                   std::to_string(threads), std::to_string(duration_ms), std::to_string(processes)},
          e));
    }
  }

  template <typename During>
  FleetResult Run(During during) {
    FleetResult r;
    for (auto& w : workers_) {
      std::istringstream line(w->ReadLine());
      std::string tag;
      int64_t wall = 0;
      line >> tag >> wall;
      if (tag != "ready") throw std::runtime_error("worker did not start");
      r.wall_s.push_back(wall);
    }
    for (auto& w : workers_) w->Go();
    during();
    int64_t first = INT64_MAX, last = 0, last_start = 0, first_end = INT64_MAX;
    for (auto& w : workers_) {
      std::istringstream line(w->ReadLine());
      std::string tag;
      WorkerResult x;
      line >> tag >> x.start_ns >> x.end_ns >> x.decisions >> x.admitted >> x.fallback >> x.fallback_admitted >>
          x.max_call_ns >> x.timeouts >> x.breaker_opens >> x.live >> x.mirrored >> x.first_call_ns;
      if (tag != "result") throw std::runtime_error("worker gave no result");
      if (w->Wait() != 0) throw std::runtime_error("worker failed");
      first = std::min(first, x.start_ns);
      last = std::max(last, x.end_ns);
      last_start = std::max(last_start, x.start_ns);
      first_end = std::min(first_end, x.end_ns);
      r.admitted += x.admitted;
      r.decisions += x.decisions;
      r.fallback += x.fallback;
      r.fallback_admitted += x.fallback_admitted;
      r.max_call_ns = std::max(r.max_call_ns, x.max_call_ns);
      r.workers.push_back(x);
    }
    r.window_s = static_cast<double>(last - first) / 1e9;
    r.common_s = static_cast<double>(std::max<int64_t>(0, first_end - last_start)) / 1e9;
    return r;
  }
  FleetResult Run() {
    return Run([] {});
  }

 private:
  std::vector<std::unique_ptr<ChildProcess>> workers_;
};

std::vector<std::string> DefaultsEnv(const std::string& url) {
  // Nothing but the address: the library's defaults (strict, 2 ms, local, 1/N share).
  return {"DLB_REDIS_URL=" + url, "DLB_CONFIG=", "DLB_MODE=", "DLB_DEADLINE_US=", "DLB_ON_STORE_FAILURE=",
          "DLB_FALLBACK_SHARE="};
}

// Sets one "NAME=value" entry of `env`, replacing the name's earlier one.
void SetEnv(std::vector<std::string>& env, const std::string& entry) {
  const std::string name = entry.substr(0, entry.find('=') + 1);
  std::erase_if(env, [&](const std::string& e) { return e.compare(0, name.size(), name) == 0; });
  env.push_back(entry);
}

// The target, C + r*W + 1% and at least 95% of the limit of the window all processes
// ran, is what is checked. Measured on 2026-12-06 on this 2-CPU host, debug and
// sanitized builds, 13 runs of the three cases (3 of them beside two CPU hogs): 4 x 4
// 0.996-1.000 of C + r*W, 8 x 4 0.984-0.999, one clock an hour off 0.995-0.999, never
// over C + r*W. Two causes of the 0.88-0.94 measured before: redis-server was in the
// test's session, where the kernel's autogroup scheduling gave it one CPU share with the
// 32 workers (RedisServer now gives it a session of its own, as a service has); and
// before a process knew the store's clock its takes carried no deadline, so that those
// that missed it at the caller still charged when they ran (the limiter now reads TIME
// with its first announcement). The bug these catch admitted 4.1 times the limit; a
// fallback from full buckets 1.25.
constexpr double kOverloadUpper = 1.01;
constexpr double kOverloadLower = 0.95;
// The slow-store and outage cases: what the policy admitted on a copy while a starved
// store still admitted others is a debt that later rejections pay back, and the part
// not yet paid back when a run ends is over their written bound (measured: up to 3% of
// C + r*W on a loaded host).
constexpr double kLoadAllowance = 0.05;

void ExpectWithinLimitAndNearIt(const FleetResult& r) {
  EXPECT_LE(static_cast<double>(r.admitted), r.Limit() * kOverloadUpper) << r.Describe();
  EXPECT_GE(static_cast<double>(r.admitted), r.CommonLimit() * kOverloadLower) << r.Describe();
}

TEST(Overload, FourProcessesOfFourThreadsAdmitOneBucketsWorth) {
  RedisServer server;
  const FleetResult r = Fleet(4, 4, 3000, DefaultsEnv(server.Url())).Run();
  std::printf("overload 4x4: %s\n", r.Describe().c_str());
  ExpectWithinLimitAndNearIt(r);
  for (const WorkerResult& w : r.workers) EXPECT_EQ(w.live, 4);
}

TEST(Overload, EightProcessesOfFourThreadsAdmitOneBucketsWorth) {
  RedisServer server;
  const FleetResult r = Fleet(8, 4, 3000, DefaultsEnv(server.Url())).Run();
  std::printf("overload 8x4: %s\n", r.Describe().c_str());
  ExpectWithinLimitAndNearIt(r);
  for (const WorkerResult& w : r.workers) EXPECT_EQ(w.live, 8);
}

// The library decides on the monotonic clock and Redis's TIME only: a process whose
// wall clock is an hour behind changes nothing.
TEST(Overload, AProcessWhoseWallClockIsAnHourOffChangesNothing) {
  const char* faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
  if (access(faketime, R_OK) != 0) GTEST_SKIP() << "libfaketime is not installed";
  RedisServer server;
  const FleetResult r =
      Fleet(4, 4, 3000, DefaultsEnv(server.Url()),
            {std::string("LD_PRELOAD=") + faketime, "FAKETIME=-3600", "FAKETIME_DONT_FAKE_MONOTONIC=1",
             // The sanitizer build: libfaketime is preloaded before the ASan runtime.
             "ASAN_OPTIONS=verify_asan_link_order=0"})
          .Run();
  std::printf("overload 4x4, one clock -1 h: %s\n", r.Describe().c_str());
  const int64_t now = time(nullptr);
  EXPECT_NEAR(static_cast<double>(now - r.wall_s[0]), 3600.0, 120.0) << "the first worker's clock is not off";
  EXPECT_NEAR(static_cast<double>(now - r.wall_s[1]), 0.0, 120.0);
  ExpectWithinLimitAndNearIt(r);
}

// ---- Redis slow but up --------------------------------------------------------------

class SlowStore : public ::testing::TestWithParam<int> {};

TEST_P(SlowStore, DelayedRepliesAndStallsAdmitTheLimitPlusOneRequestPerProcess) {
  const int deadline_ms = GetParam();
  constexpr int kProcesses = 4;
  RedisServerOptions so;
  so.extra_args = {"--enable-debug-command", "yes"};
  RedisServer server(so);
  TcpBlackhole proxy(server.port());
  proxy.SetReplyDelay(milliseconds(3), milliseconds(10), 18);
  std::vector<std::string> env = DefaultsEnv(proxy.Url());
  SetEnv(env, "DLB_DEADLINE_US=" + std::to_string(deadline_ms * 1000));
  std::atomic<bool> done{false};
  uint64_t sleeps = 0;
  const FleetResult r = Fleet(kProcesses, 2, 3000, env).Run([&] {
    // DEBUG SLEEP on a direct connection: the whole server stalls 50 ms every 200 ms.
    const int64_t end = MonoNowNs() + 3'000'000'000;
    auto client = server.NewClient();
    while (MonoNowNs() < end) {
      const int64_t next = MonoNowNs() + 200'000'000;
      if (!client->Command("DEBUG SLEEP 0.05").is_error()) ++sleeps;
      std::this_thread::sleep_for(std::chrono::nanoseconds(std::max<int64_t>(0, next - MonoNowNs())));
    }
    done = true;
  });
  std::printf("slow store, deadline %d ms: %s; %llu stalls\n", deadline_ms, r.Describe().c_str(),
              static_cast<unsigned long long>(sleeps));
  EXPECT_GE(sleeps, 10u);
  EXPECT_LE(static_cast<double>(r.admitted), r.Limit() * (1 + kLoadAllowance) + kProcesses) << r.Describe();
  EXPECT_GE(static_cast<double>(r.admitted), r.CommonLimit() * 0.5) << r.Describe();
  uint64_t timeouts = 0;
  for (const WorkerResult& w : r.workers) timeouts += w.timeouts;
  EXPECT_GT(timeouts, 0u) << "the store was never late: the test tested nothing";
  EXPECT_LT(r.max_call_ns, int64_t{deadline_ms} * 1'000'000 + kSchedulingMarginNs) << r.Describe();
}

INSTANTIATE_TEST_SUITE_P(Deadlines, SlowStore, ::testing::Values(2, 20),
                         [](const auto& p) { return std::to_string(p.param) + "ms"; });

// ---- outages ------------------------------------------------------------------------

enum class Fault { kKill, kStop, kRestartEmpty, kBlackHole };

const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kKill: return "kill";
    case Fault::kStop: return "stop";
    case Fault::kRestartEmpty: return "restart_empty";
    case Fault::kBlackHole: return "black_hole";
  }
  return "?";
}

class OutageBound : public ::testing::TestWithParam<std::tuple<FailurePolicy, Fault>> {};

// 4 processes of 2 threads for 1.5 s; the fault starts 0.4 s in and lasts 0.6 s (kill:
// the server is down 0.6 s and comes back empty).
TEST_P(OutageBound, FourProcessesAdmitWhatTheWrittenBoundAllows) {
  const auto [policy, fault] = GetParam();
  constexpr int kProcesses = 4;
  RedisServer server;
  std::unique_ptr<TcpBlackhole> proxy;
  if (fault == Fault::kBlackHole) proxy = std::make_unique<TcpBlackhole>(server.port());
  std::vector<std::string> env = DefaultsEnv(proxy ? proxy->Url() : server.Url());
  SetEnv(env, std::string("DLB_ON_STORE_FAILURE=") + FailurePolicyName(policy));
  const FleetResult r = Fleet(kProcesses, 2, 1500, env).Run([&] {
    std::this_thread::sleep_for(milliseconds(400));
    switch (fault) {
      case Fault::kKill:
        server.Kill();
        std::this_thread::sleep_for(milliseconds(600));
        server.Restart();
        break;
      case Fault::kStop:
        server.Stop();
        std::this_thread::sleep_for(milliseconds(600));
        server.Cont();
        break;
      case Fault::kRestartEmpty:
        server.Restart();
        break;
      case Fault::kBlackHole:
        proxy->BlackHole();
        std::this_thread::sleep_for(milliseconds(600));
        proxy->Heal();
        break;
    }
  });
  std::printf("outage %s, policy %s: %s\n", FaultName(fault), FailurePolicyName(policy), r.Describe().c_str());
  const bool store_forgot = fault == Fault::kKill || fault == Fault::kRestartEmpty;
  const double bound = r.Limit() + (store_forgot ? kCapacity : 0);
  const uint64_t store_admitted = r.admitted - r.fallback_admitted;
  if (fault != Fault::kRestartEmpty) {
    EXPECT_GT(r.fallback, 0u) << "no outage seen: " << r.Describe();
  }
  switch (policy) {
    case FailurePolicy::kLocal: {
      EXPECT_LE(static_cast<double>(r.admitted), bound + r.Limit() * kLoadAllowance + kProcesses) << r.Describe();
      if (fault != Fault::kRestartEmpty) {
        EXPECT_GT(r.fallback_admitted, 0u) << r.Describe();
      }
      break;
    }
    case FailurePolicy::kOpen:
      EXPECT_EQ(r.fallback_admitted, r.fallback) << r.Describe();
      EXPECT_LE(static_cast<double>(store_admitted), bound + 1) << r.Describe();
      break;
    case FailurePolicy::kClosed:
      EXPECT_EQ(r.fallback_admitted, 0u) << r.Describe();
      EXPECT_LE(static_cast<double>(r.admitted), bound + 1) << r.Describe();
      break;
  }
  EXPECT_LT(r.max_call_ns, 2'000'000 + kSchedulingMarginNs) << r.Describe();
}

INSTANTIATE_TEST_SUITE_P(
    Faults, OutageBound,
    ::testing::Combine(::testing::Values(FailurePolicy::kLocal, FailurePolicy::kOpen, FailurePolicy::kClosed),
                       ::testing::Values(Fault::kKill, Fault::kStop, Fault::kRestartEmpty, Fault::kBlackHole)),
    [](const auto& p) {
      return std::string(FailurePolicyName(std::get<0>(p.param))) + "_" + FaultName(std::get<1>(p.param));
    });

}  // namespace
}  // namespace dlb::testing
