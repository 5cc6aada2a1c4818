// dlb-xdp: loads the XDP fallback on an interface, keeps its maps in step with the
// config, and drives the global buckets' leases against Redis.
//
//   dlb-xdp --iface IF --config FILE [--metrics 127.0.0.1:9465] [--redis URL]
//           [--sync-interval-us N] [--max-users N]
//   dlb-xdp --iface IF --detach
#include <signal.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dlb/limiter.h"
#include "dlb/packet/config_yaml.h"
#include "log/log.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/url.h"
#include "xdp_config.h"
#include "xdp_program.h"
#include "xdp_sync.h"
#include "xdp_tc.h"
#ifdef DLB_XDP_HAVE_METRICS
#include "dlb/metrics.h"
#endif

namespace {

struct Args {
  std::string iface;
  std::string config;
  std::string metrics;
  std::string redis_url;
  bool detach = false;
  int64_t sync_interval_us = 5000;
  uint32_t max_users = 65536;
};

int Usage(const char* msg) {
  std::fprintf(stderr,
               "dlb-xdp: %s\n"
               "usage: dlb-xdp --iface IF --config FILE [--metrics HOST:PORT] [--redis URL]\n"
               "               [--sync-interval-us N] [--max-users N]\n"
               "       dlb-xdp --iface IF --detach\n",
               msg);
  return 2;
}

bool ParseInt(const char* s, int64_t lo, int64_t hi, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    const char* v = nullptr;
    if (f == "--detach") {
      a.detach = true;
    } else if (f == "--iface" || f == "--config" || f == "--metrics" || f == "--redis" ||
               f == "--sync-interval-us" || f == "--max-users") {
      v = value(f.c_str());
      if (v == nullptr) return Usage((f + " needs a value").c_str());
      int64_t n = 0;
      if (f == "--iface") a.iface = v;
      if (f == "--config") a.config = v;
      if (f == "--metrics") a.metrics = v;
      if (f == "--redis") a.redis_url = v;
      if (f == "--sync-interval-us") {
        if (!ParseInt(v, 100, 10'000'000, &n)) return Usage("--sync-interval-us: 100..10000000");
        a.sync_interval_us = n;
      }
      if (f == "--max-users") {
        if (!ParseInt(v, 1, 1 << 26, &n)) return Usage("--max-users: 1..67108864");
        a.max_users = static_cast<uint32_t>(n);
      }
    } else if (f == "--help" || f == "-h") {
      return Usage("help");
    } else {
      return Usage(("unknown argument '" + f + "'").c_str());
    }
  }
  if (a.iface.empty()) return Usage("--iface is required");

  if (a.detach) {
    auto n = dlb::xdp::XdpProgram::DetachAll(a.iface);
    if (!n.ok()) {
      std::fprintf(stderr, "dlb-xdp: %s\n", n.status().ToString().c_str());
      return 1;
    }
    std::printf("dlb-xdp: removed %d program(s) from %s\n", *n, a.iface.c_str());
    auto tc = dlb::xdp::TcReject::DetachAll(a.iface);
    if (!tc.ok()) {
      std::fprintf(stderr, "dlb-xdp: %s\n", tc.status().ToString().c_str());
      return 1;
    }
    if (*tc) std::printf("dlb-xdp: removed the TC program from %s\n", a.iface.c_str());
    return 0;
  }
  if (a.config.empty()) return Usage("--config is required");

  auto pcfg = dlb::packet::LoadPacketConfigFile(a.config);
  if (!pcfg.ok()) {
    std::fprintf(stderr, "dlb-xdp: %s\n", pcfg.status().ToString().c_str());
    return 1;
  }
  auto lopts = dlb::LoadLimiterConfig(a.config);
  if (!lopts.ok()) {
    std::fprintf(stderr, "dlb-xdp: %s\n", lopts.status().ToString().c_str());
    return 1;
  }
  if (!a.redis_url.empty()) lopts->redis_url = a.redis_url;
  auto ep = dlb::redis::ParseUrl(lopts->redis_url);
  if (!ep.ok()) {
    std::fprintf(stderr, "dlb-xdp: redis url: %s\n", ep.status().ToString().c_str());
    return 1;
  }
  if (!lopts->username.empty() && ep->username.empty()) ep->username = lopts->username;
  if (!lopts->password.empty() && ep->password.empty()) ep->password = lopts->password;
  auto tables = dlb::xdp::CompileXdpTables(*pcfg, 1.0);
  if (!tables.ok()) {
    std::fprintf(stderr, "dlb-xdp: %s: %s\n", a.config.c_str(), tables.status().ToString().c_str());
    return 1;
  }
  for (const auto& info : tables->info) {
    if (info.mode == dlb::Mode::kStrict) {
      DLB_LOG_WARN("rule '{}': mode strict is decided as synced by the XDP program (a packet "
                   "path never waits on Redis)", info.name);
    }
  }

  // Signals are taken synchronously by the main loop.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  dlb::xdp::AttachMode mode;
  std::string native_error;
  auto prog = dlb::xdp::XdpProgram::LoadAndAttach({.max_users = a.max_users}, a.iface, &mode,
                                                  &native_error);
  if (!prog.ok()) {
    std::fprintf(stderr, "dlb-xdp: %s\n", prog.status().ToString().c_str());
    return 1;
  }
  if (auto counts = (*prog)->VerifierCounts(); counts.ok()) {
    for (const auto& c : *counts) {
      DLB_LOG_INFO("verifier: {} processed {} instructions ({:.1f}% of its limit)", c.program,
                   c.verified_insns, 100.0 * c.verified_insns / dlb::xdp::XdpProgram::kVerifierInsnLimit);
    }
  }
  if (mode == dlb::xdp::AttachMode::kSkb) {
    DLB_LOG_WARN("native XDP on {} failed ({}): attached in generic (skb) mode, slower",
                 a.iface, native_error);
  }
  if (auto s = (*prog)->Push(*tables); !s.ok()) {
    std::fprintf(stderr, "dlb-xdp: %s\n", s.ToString().c_str());
    return 1;
  }
  dlb::xdp::TcReject tc;
  if (auto s = tc.Attach((*prog)->ifindex(), (*prog)->prog_fd()); !s.ok()) {
    DLB_LOG_WARN("TC program not attached to {} ({}): a rejected head's connection is freed "
                 "on the server at the client's next segment", a.iface, s.ToString());
  }
  if (!(*prog)->dispatcher()) {
    DLB_LOG_WARN("attached to {} without libxdp's dispatcher ({}): no other XDP program can "
                 "attach to {} while dlb-xdp runs", a.iface, (*prog)->dispatcher_note(), a.iface);
  }
  std::printf("dlb-xdp: attached to %s (%s mode, %s%s). If this agent dies the program stays "
              "attached; remove it with: dlb-xdp --iface %s --detach  (or xdp-loader unload %s --all)\n",
              a.iface.c_str(), mode == dlb::xdp::AttachMode::kNative ? "native" : "skb",
              (*prog)->dispatcher() ? "through libxdp's dispatcher" : "alone",
              tc.attached() ? ", TC reject program on ingress" : "", a.iface.c_str(), a.iface.c_str());
  std::fflush(stdout);

  dlb::redis::Pool pool(*ep, 2, {dlb::redis::SettleScript(), dlb::redis::kAnnounceScript});
  dlb::xdp::SyncOptions sopts;
  sopts.interval = std::chrono::microseconds(a.sync_interval_us);
  sopts.deadline = std::chrono::microseconds(std::max<int64_t>(lopts->deadline.count(), 5000));
  dlb::xdp::XdpSync sync(sopts, &pool, prog->get(), &*tables);
  // Shared with the exporter's thread: the rules (replaced by a reload) and the sync's
  // counters as of the last round; the main loop writes both under this mutex.
  std::mutex shared_mu;
  dlb::xdp::SyncStats sync_snapshot;

#ifdef DLB_XDP_HAVE_METRICS
  std::unique_ptr<dlb::metrics::Exporter> exporter;
  if (!a.metrics.empty()) {
    auto ex = dlb::metrics::Exporter::Start(a.metrics);
    if (!ex.ok()) {
      std::fprintf(stderr, "dlb-xdp: metrics: %s\n", ex.status().ToString().c_str());
      return 1;
    }
    exporter = std::move(*ex);
    dlb::xdp::XdpProgram* p = prog->get();
    const dlb::xdp::XdpTables* t = &*tables;
    std::mutex* mu = &shared_mu;
    const dlb::xdp::SyncStats* ss = &sync_snapshot;
    exporter->AddCollector([p, t, mu, ss](dlb::metrics::Writer& w) {
      std::vector<std::string> rules;
      dlb::xdp::SyncStats s;
      {
        std::lock_guard<std::mutex> lock(*mu);
        for (const auto& info : t->info) rules.push_back(info.name);
        s = *ss;
      }
      w.Counter("dlb_xdp_sync_rounds_total", "Lease rounds with Redis.", {}, static_cast<double>(s.rounds));
      w.Counter("dlb_xdp_sync_failed_round_trips_total",
                "Round trips whose reply did not arrive (the round is re-sent).", {},
                static_cast<double>(s.failed_rounds));
      w.Counter("dlb_xdp_sync_resent_rounds_total",
                "Rounds re-sent verbatim after a lost reply (applied once).", {},
                static_cast<double>(s.resent_rounds));
      w.Counter("dlb_xdp_sync_refused_rounds_total", "Rounds with a settle call Redis refused.", {},
                static_cast<double>(s.discarded_rounds));
      const std::pair<const char*, uint64_t> units[] = {{"granted", s.granted_units},
                                                        {"returned", s.returned_units},
                                                        {"debt", s.debt_units},
                                                        {"over_admitted", s.over_admitted_units}};
      for (const auto& [kind, n] : units) {
        w.Counter("dlb_xdp_sync_units_total", "Units settled with Redis, by kind.", {{"kind", kind}},
                  static_cast<double>(n));
      }
      w.Gauge("dlb_xdp_sync_store_down", "1 while the store is marked down.", {}, s.store_down ? 1 : 0);
      w.Gauge("dlb_xdp_sync_participants", "Live participants of the global buckets.", {},
              static_cast<double>(s.live_participants));
      auto c = p->ReadCounters();
      if (!c.ok()) return;
#define DLB_XDP_X(field, name, help) \
  w.Counter("dlb_xdp_" name "_total", help, {}, static_cast<double>((*c)[DLB_XDP_C_##field]));
      DLB_XDP_COUNTERS(DLB_XDP_X)
#undef DLB_XDP_X
      for (size_t i = 0; i < rules.size() && i < c->rule_allowed.size(); ++i) {
        w.Counter("dlb_xdp_rule_decisions_total", "Heads decided, by rule and outcome.",
                  {{"rule", rules[i]}, {"outcome", "allowed"}},
                  static_cast<double>(c->rule_allowed[i]));
        w.Counter("dlb_xdp_rule_decisions_total", "Heads decided, by rule and outcome.",
                  {{"rule", rules[i]}, {"outcome", "limited"}},
                  static_cast<double>(c->rule_limited[i]));
      }
    });
    std::printf("dlb-xdp: metrics on %s\n", a.metrics.c_str());
  }
#else
  if (!a.metrics.empty()) DLB_LOG_WARN("built without the metrics library: --metrics ignored");
#endif

  const timespec tick{0, static_cast<long>(a.sync_interval_us * 1000 % 1'000'000'000)};
  const timespec wait = a.sync_interval_us >= 1'000'000
                            ? timespec{static_cast<time_t>(a.sync_interval_us / 1'000'000), tick.tv_nsec}
                            : tick;
  int rc = 0;
  for (;;) {
    const int sig = sigtimedwait(&set, nullptr, &wait);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      auto fresh = dlb::packet::LoadPacketConfigFile(a.config);
      auto compiled = fresh.ok() ? dlb::xdp::CompileXdpTables(*fresh, 1.0)
                                 : dlb::StatusOr<dlb::xdp::XdpTables>(fresh.status());
      if (!compiled.ok()) {
        DLB_LOG_ERROR("reload of {} refused, old rules stay: {}", a.config, compiled.status().ToString());
      } else {
        const int64_t live = sync.stats().live_participants;
        if (live > 0) dlb::xdp::ApplyShare(*compiled, 1.0 / static_cast<double>(live));
        {
          std::lock_guard<std::mutex> lock(shared_mu);
          *tables = std::move(*compiled);
        }
        if (auto s = (*prog)->Push(*tables); !s.ok()) DLB_LOG_ERROR("reload: {}", s.ToString());
        else DLB_LOG_INFO("reloaded {}: {} rules", a.config, tables->rules.size());
      }
      continue;
    }
    auto st = sync.Round();
    if (!st.ok()) DLB_LOG_EVERY(1000, spdlog::level::warn, "sync round failed: {}", st.ToString());
    {
      std::lock_guard<std::mutex> lock(shared_mu);
      sync_snapshot = sync.stats();
    }
    if (sync.share_changed()) (void)(*prog)->Push(*tables);
  }
  // A round whose reply was lost is re-sent first (applied once); a few tries, so that
  // a slow Redis does not keep the leases (they would be left to leak).
  dlb::Status returned = sync.ReturnAll();
  for (int attempt = 1; attempt < 3 && !returned.ok(); ++attempt) returned = sync.ReturnAll();
  if (!returned.ok()) DLB_LOG_WARN("returning leases at exit: {}", returned.ToString());
  if (auto s = tc.Detach(); !s.ok()) DLB_LOG_WARN("{}", s.ToString());
  if (auto s = (*prog)->Detach(); !s.ok()) {
    std::fprintf(stderr, "dlb-xdp: %s\n", s.ToString().c_str());
    rc = 1;
  } else {
    std::printf("dlb-xdp: detached from %s\n", a.iface.c_str());
  }
  return rc;
}
