// A Redis failover to a replica whose clock is behind (docs/design.md, "Time"): the master
// holds a bucket a user has drained; the replica, its clock 30 s behind, is promoted;
// the user's further admissions stay within what the old master would have allowed:
// buckets look fuller (by r x 30 s), never a second burst.
//
// libfaketime makes redis-server 7.0 abort at start (its clock_gettime recurses), so the
// test builds a small LD_PRELOAD shim that shifts only the wall clock
// (gettimeofday, time, clock_gettime(CLOCK_REALTIME*): what TIME and key expiry read)
// and leaves the monotonic clocks alone. The limiter reaches Redis through a TCP proxy
// whose upstream is switched from the master to the replica: one fixed address, as a
// virtual IP or a Sentinel-aware client gives after a failover.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis_server.h"
#include "tcp_blackhole.h"

namespace dlb::testing {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kSkewUs = -30'000'000;

constexpr const char* kShimSource = R"c(
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long offset = 0;
__attribute__((constructor)) static void read_offset(void) {
  const char* e = getenv("DLB_CLOCK_OFFSET_US");
  offset = e ? atoll(e) : 0;
}
static long long offset_us(void) { return offset; }

static void shift(struct timespec* ts) {
  long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_us() * 1000LL;
  ts->tv_sec = ns / 1000000000LL;
  ts->tv_nsec = ns % 1000000000LL;
}

int clock_gettime(clockid_t id, struct timespec* ts) {
  static int (*real)(clockid_t, struct timespec*);
  if (!real) real = (int (*)(clockid_t, struct timespec*))dlsym(RTLD_NEXT, "clock_gettime");
  int r = real(id, ts);
  if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) shift(ts);
  return r;
}

int gettimeofday(struct timeval* tv, void* tz) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  (void)tz;
  if (tv) {
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
  }
  return 0;
}

time_t time(time_t* t) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (t) *t = ts.tv_sec;
  return ts.tv_sec;
}
)c";

// Builds the shim in a private temp dir; the path of the .so, or "" with `error` set.
std::string BuildShim(std::string* error) {
  char dir[] = "/tmp/dlb-clockshim-XXXXXX";
  if (::mkdtemp(dir) == nullptr) {
    *error = "mkdtemp failed";
    return "";
  }
  const std::string src = std::string(dir) + "/shim.c", so = std::string(dir) + "/shim.so";
  std::ofstream(src) << kShimSource;
  const char* cc = std::getenv("CC");
  const std::string cmd = std::string(cc != nullptr && *cc != '\0' ? cc : "cc") + " -shared -fPIC -O2 -o " + so +
                          " " + src + " -ldl 2>" + dir + "/cc.log";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream log(std::string(dir) + "/cc.log");
    *error = "building the clock shim failed: " + cmd + "\n" +
             std::string(std::istreambuf_iterator<char>(log), std::istreambuf_iterator<char>());
    return "";
  }
  return so;
}

class ClockFailover : public ::testing::TestWithParam<Mode> {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    shim_ = BuildShim(&error);
    ASSERT_FALSE(shim_.empty()) << error;
  }
  static void TearDownTestSuite() {
    if (shim_.empty()) return;
    const std::string dir = shim_.substr(0, shim_.rfind('/'));
    std::system(("rm -rf '" + dir + "'").c_str());
  }
  static std::string shim_;
};
std::string ClockFailover::shim_;

TEST_P(ClockFailover, ReplicaBehindLooksFullerAndNeverGivesASecondBurst) {
  const Mode mode = GetParam();
  RedisServer master;
  RedisServerOptions ro;
  ro.extra_args = {"--replicaof", "127.0.0.1", std::to_string(master.port())};
  ro.env = {"LD_PRELOAD=" + shim_, "DLB_CLOCK_OFFSET_US=" + std::to_string(kSkewUs)};
  RedisServer replica(ro);
  // The shim works: the replica's TIME is 30 s behind the master's.
  const int64_t skew_us = replica.TimeUs() - master.TimeUs();
  ASSERT_NEAR(static_cast<double>(skew_us), static_cast<double>(kSkewUs), 2e6);
  ASSERT_TRUE(WaitFor([&] {
    return replica.Command("INFO replication").str.find("master_link_status:up") != std::string::npos;
  }, milliseconds(10'000)));

  TcpBlackhole proxy(master.port());
  LimiterOptions o;
  o.mode = mode;
  o.redis_url = proxy.Url();
  o.deadline = milliseconds(200);
  o.on_store_failure = FailurePolicy::kClosed;   // during the switch: admit nothing
  o.breaker_threshold = 3;
  o.breaker_backoff_min = milliseconds(10);
  o.breaker_backoff_max = milliseconds(50);
  auto l = Limiter::Create(o);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  Limiter& limiter = **l;

  // C = 10, r = 1/s: drained by a burst.
  const BucketSpec spec{.capacity = 10, .leak_rate_per_s = 1};
  int burst = 0;
  for (int i = 0; i < 30; ++i) {
    auto d = limiter.Decide("clock-user", spec);
    ASSERT_TRUE(d.ok());
    burst += d->allowed;
  }
  ASSERT_GE(burst, 10);
  ASSERT_LE(burst, 11);   // 10, plus one that leaked in while deciding on a slow machine
  // Replication is asynchronous, and in synced mode the limiter's background rounds
  // (every 5 ms) still return its lease to the bucket after the burst: the drained
  // bucket must have reached the replica, and stopped changing (the same on the master
  // 50 ms apart, so no round is still writing it).
  const std::string key = RedisKey("clock-user", RuleNameForSpec(spec.capacity, spec.leak_rate_per_s));
  std::string on_master, on_replica, before;
  ASSERT_TRUE(WaitFor([&] {
    before = on_master;
    std::this_thread::sleep_for(milliseconds(50));
    master.Command({"WAIT", "1", "500"});
    on_master = master.Command({"GET", key}).Describe();
    on_replica = replica.Command({"GET", key}).Describe();
    return on_master != "nil" && on_master == before && on_replica == on_master;
  }, milliseconds(10'000))) << "replica: " << on_replica << ", master: " << on_master;
  // Failover: the replica is promoted, the master dies, the address now leads to the
  // replica.
  const int64_t failover_ns = MonoNowNs();
  proxy.SetUpstream(replica.port());
  ASSERT_EQ(replica.Command("REPLICAOF NO ONE").str, "OK");
  master.Kill();

  // The user keeps asking for 3 s. The old master would have admitted at most
  // r x elapsed + 1 more; the promoted replica sees the bucket 30 requests fuller
  // and admits nothing: never a second burst.
  int after = 0, store_decided = 0;
  double max_level = 0;
  while (MonoNowNs() < failover_ns + 3'000'000'000) {
    auto d = limiter.Decide("clock-user", spec);
    ASSERT_TRUE(d.ok());
    after += d->allowed;
    if (d->source == DecisionSource::kStore) {
      ++store_decided;
      max_level = std::max(max_level, d->level);
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  const double elapsed_s = static_cast<double>(MonoNowNs() - failover_ns) / 1e9;
  SCOPED_TRACE("the bucket on the replica at the failover: " + on_replica);
  EXPECT_GT(store_decided, 0) << "the replica never decided";
  EXPECT_LE(after, static_cast<int>(spec.leak_rate_per_s * elapsed_s) + 1);
  EXPECT_EQ(after, 0);
  // Fuller by about r x 30 s.
  auto info = limiter.Inspect("clock-user", spec);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_GT(info->state.level, spec.capacity + 20);
  EXPECT_GT(max_level, spec.capacity + 20);
}

INSTANTIATE_TEST_SUITE_P(Modes, ClockFailover, ::testing::Values(Mode::kStrict, Mode::kSynced),
                         [](const auto& p) { return std::string(ModeName(p.param)); });

}  // namespace
}  // namespace dlb::testing
