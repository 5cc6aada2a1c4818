// dlb-xdp: loads the XDP fallback on an interface, keeps its maps in step with the
// config, and drives the global buckets' leases against Redis.
//
//   dlb-xdp --iface IF --config FILE [--metrics 127.0.0.1:9465] [--redis URL]
//           [--sync-interval-us N] [--max-users N] [--program auto|full|small]
//   dlb-xdp --iface IF --detach
//
// The file's `xdp:` section holds sync_interval_us and max_users; the flags, when
// given, win over it (docs/configuration.md). --program picks the build of the XDP
// program: auto (the default) loads the full one and falls back to the small variant
// when the kernel's verifier rejects it (docs/xdp.md, "The verifier").
#include <signal.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/document.h"
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
  std::optional<int64_t> sync_interval_us;  // over xdp.sync_interval_us
  std::optional<uint32_t> max_users;        // over xdp.max_users
  dlb::xdp::ProgramVariant program = dlb::xdp::ProgramVariant::kAuto;
};

int Usage(const char* msg) {
  std::fprintf(stderr,
               "dlb-xdp: %s\n"
               "usage: dlb-xdp --iface IF --config FILE [--metrics HOST:PORT] [--redis URL]\n"
               "               [--sync-interval-us N] [--max-users N] [--program auto|full|small]\n"
               "       dlb-xdp --iface IF --detach\n",
               msg);
  return 2;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "dlb-xdp: %s\n", message.c_str());
  return 1;
}

bool ParseInt(const char* s, int64_t lo, int64_t hi, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// Returns the exit status for a usage error (or --help), nullopt to go on.
std::optional<int> ParseArgs(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (f == "--detach") {
      a.detach = true;
    } else if (f == "--iface" || f == "--config" || f == "--metrics" || f == "--redis" ||
               f == "--sync-interval-us" || f == "--max-users" || f == "--program") {
      if (i + 1 >= argc) return Usage((f + " needs a value").c_str());
      const char* v = argv[++i];
      int64_t n = 0;
      if (f == "--iface") a.iface = v;
      if (f == "--config") a.config = v;
      if (f == "--metrics") a.metrics = v;
      if (f == "--redis") a.redis_url = v;
      if (f == "--sync-interval-us") {
        if (!ParseInt(v, dlb::config::kMinSyncIntervalUs, dlb::config::kMaxSyncIntervalUs, &n)) {
          return Usage("--sync-interval-us: 100..10000000");
        }
        a.sync_interval_us = n;
      }
      if (f == "--program") {
        auto variant = dlb::xdp::ParseVariant(v);
        if (!variant.ok()) return Usage("--program: auto, full or small");
        a.program = *variant;
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
  if (!a.detach && a.config.empty()) return Usage("--config is required");
  return std::nullopt;
}

int Detach(const std::string& iface) {
  auto n = dlb::xdp::XdpProgram::DetachAll(iface);
  if (!n.ok()) return Fail(n.status().ToString());
  std::printf("dlb-xdp: removed %d program(s) from %s\n", *n, iface.c_str());
  auto tc = dlb::xdp::TcReject::DetachAll(iface);
  if (!tc.ok()) return Fail(tc.status().ToString());
  if (*tc) std::printf("dlb-xdp: removed the TC program from %s\n", iface.c_str());
  return 0;
}

// The Redis endpoint of the file's redis: section, --redis over its URL.
dlb::StatusOr<dlb::redis::Endpoint> RedisEndpoint(const Args& a, const dlb::LimiterOptions& lib) {
  auto ep = dlb::redis::ParseUrl(a.redis_url.empty() ? lib.redis_url : a.redis_url);
  if (!ep.ok()) return dlb::Status::InvalidArgument("redis url: " + ep.status().ToString());
  if (!lib.username.empty() && ep->username.empty()) ep->username = lib.username;
  if (!lib.password.empty() && ep->password.empty()) ep->password = lib.password;
  return ep;
}

// The program's tables from the file's packet settings and rules.
dlb::StatusOr<dlb::xdp::XdpTables> CompileTables(const Args& a, const dlb::config::File& file) {
  auto tables = dlb::xdp::CompileXdpTables(file.packet, 1.0);
  if (!tables.ok()) return dlb::Status::InvalidArgument(a.config + ": " + tables.status().ToString());
  return tables;
}

// Loads and attaches the XDP program (and the TC program when it can), pushes the
// tables and says where it is attached.
dlb::StatusOr<std::unique_ptr<dlb::xdp::XdpProgram>> Attach(const Args& a, uint32_t max_users,
                                                            const dlb::xdp::XdpTables& tables,
                                                            dlb::xdp::TcReject& tc) {
  dlb::xdp::AttachMode mode;
  std::string native_error;
  auto prog = dlb::xdp::XdpProgram::LoadAndAttach({.max_users = max_users, .variant = a.program},
                                                  a.iface, &mode, &native_error);
  if (!prog.ok()) return prog.status();
  if (const std::string line = (*prog)->FallbackLine(); !line.empty()) {
    DLB_LOG_WARN("{}", line);
  } else if ((*prog)->variant() == dlb::xdp::ProgramVariant::kSmall) {
    DLB_LOG_INFO(
        "loaded the small variant of the XDP program (--program small): heads over {} bytes "
        "are refused by on_oversize_head",
        DLB_XDP_SMALL_SCAN_BYTES);
  }
  if (auto counts = (*prog)->VerifierCounts(); counts.ok()) {
    for (const auto& c : *counts) {
      DLB_LOG_INFO("verifier: {} processed {} instructions ({:.1f}% of its limit)", c.program,
                   c.verified_insns, 100.0 * c.verified_insns / dlb::xdp::XdpProgram::kVerifierInsnLimit);
    }
  }
  if (mode == dlb::xdp::AttachMode::kSkb) {
    DLB_LOG_WARN("native XDP on {} failed ({}): attached in generic (skb) mode, slower", a.iface,
                 native_error);
  }
  if (auto s = (*prog)->Push(tables); !s.ok()) return s;
  if (auto s = tc.Attach((*prog)->ifindex(), (*prog)->prog_fd()); !s.ok()) {
    DLB_LOG_WARN(
        "TC program not attached to {} ({}): a rejected head's connection is freed "
        "on the server at the client's next segment",
        a.iface, s.ToString());
  }
  if (!(*prog)->dispatcher()) {
    DLB_LOG_WARN(
        "attached to {} without libxdp's dispatcher ({}): no other XDP program can "
        "attach to {} while dlb-xdp runs",
        a.iface, (*prog)->dispatcher_note(), a.iface);
  }
  std::printf(
      "dlb-xdp: attached to %s (%s mode, %s%s). If this agent dies the program stays "
      "attached; remove it with: dlb-xdp --iface %s --detach  (or xdp-loader unload %s --all)\n",
      a.iface.c_str(), mode == dlb::xdp::AttachMode::kNative ? "native" : "skb",
      (*prog)->dispatcher() ? "through libxdp's dispatcher" : "alone",
      tc.attached() ? ", TC reject program on ingress" : "", a.iface.c_str(), a.iface.c_str());
  std::fflush(stdout);
  return prog;
}

// What the main loop shares with the exporter's thread: the rules (replaced by a
// reload) and the sync's counters as of the last round, written under `mu`.
struct Shared {
  std::mutex mu;
  dlb::xdp::XdpTables tables;
  dlb::xdp::SyncStats sync;
};

#ifdef DLB_XDP_HAVE_METRICS
void CollectSync(const dlb::xdp::SyncStats& s, dlb::metrics::Writer& w) {
  w.Counter("dlb_xdp_sync_rounds_total", "Lease rounds with Redis.", {}, static_cast<double>(s.rounds));
  w.Counter("dlb_xdp_sync_failed_round_trips_total",
            "Round trips whose reply did not arrive (the round is re-sent).", {},
            static_cast<double>(s.failed_rounds));
  w.Counter("dlb_xdp_sync_resent_rounds_total", "Rounds re-sent verbatim after a lost reply (applied once).",
            {}, static_cast<double>(s.resent_rounds));
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
}

void CollectProgram(dlb::xdp::XdpProgram& p, const std::vector<std::string>& rules, dlb::metrics::Writer& w) {
  auto c = p.ReadCounters();
  if (!c.ok()) return;
#define DLB_XDP_X(field, name, help) \
  w.Counter("dlb_xdp_" name "_total", help, {}, static_cast<double>((*c)[DLB_XDP_C_##field]));
  DLB_XDP_COUNTERS(DLB_XDP_X)
#undef DLB_XDP_X
  for (size_t i = 0; i < rules.size() && i < c->rule_allowed.size(); ++i) {
    w.Counter("dlb_xdp_rule_decisions_total", "Heads decided, by rule and outcome.",
              {{"rule", rules[i]}, {"outcome", "allowed"}}, static_cast<double>(c->rule_allowed[i]));
    w.Counter("dlb_xdp_rule_decisions_total", "Heads decided, by rule and outcome.",
              {{"rule", rules[i]}, {"outcome", "limited"}}, static_cast<double>(c->rule_limited[i]));
  }
}

dlb::StatusOr<std::unique_ptr<dlb::metrics::Exporter>> StartExporter(const std::string& listen,
                                                                     dlb::xdp::XdpProgram* p,
                                                                     Shared* shared) {
  if (listen.empty()) return std::unique_ptr<dlb::metrics::Exporter>();
  auto ex = dlb::metrics::Exporter::Start(listen);
  if (!ex.ok()) return dlb::Status::InvalidArgument("metrics: " + ex.status().ToString());
  (*ex)->AddCollector([p, shared](dlb::metrics::Writer& w) {
    std::vector<std::string> rules;
    dlb::xdp::SyncStats s;
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      for (const auto& info : shared->tables.info) rules.push_back(info.name);
      s = shared->sync;
    }
    CollectSync(s, w);
    CollectProgram(*p, rules, w);
  });
  std::printf("dlb-xdp: metrics on %s\n", listen.c_str());
  return ex;
}
#endif

// SIGHUP: the whole file must pass again; its rules and packet settings are compiled
// and pushed, with the current share of the live participants.
void Reload(const Args& a, dlb::xdp::XdpProgram& prog, const dlb::xdp::XdpSync& sync, Shared& shared) {
  auto file = dlb::config::Load(a.config);
  auto compiled = file.ok() ? CompileTables(a, *file) : dlb::StatusOr<dlb::xdp::XdpTables>(file.status());
  if (!compiled.ok()) {
    DLB_LOG_ERROR("reload of {} refused, old rules stay: {}", a.config, compiled.status().ToString());
    return;
  }
  const int64_t live = sync.stats().live_participants;
  if (live > 0) dlb::xdp::ApplyShare(*compiled, 1.0 / static_cast<double>(live));
  {
    std::lock_guard<std::mutex> lock(shared.mu);
    shared.tables = std::move(*compiled);
  }
  if (auto s = prog.Push(shared.tables); !s.ok()) DLB_LOG_ERROR("reload: {}", s.ToString());
  else DLB_LOG_INFO("reloaded {}: {} rules", a.config, shared.tables.rules.size());
}

// Sync rounds every interval and reloads on SIGHUP, until SIGINT or SIGTERM.
void MainLoop(const Args& a, int64_t interval_us, const sigset_t& signals, dlb::xdp::XdpProgram& prog,
              dlb::xdp::XdpSync& sync, Shared& shared) {
  const timespec wait{static_cast<time_t>(interval_us / 1'000'000),
                      static_cast<long>(interval_us % 1'000'000 * 1000)};
  for (;;) {
    const int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGINT || sig == SIGTERM) return;
    if (sig == SIGHUP) {
      Reload(a, prog, sync, shared);
      continue;
    }
    auto st = sync.Round();
    if (!st.ok()) DLB_LOG_EVERY(1000, spdlog::level::warn, "sync round failed: {}", st.ToString());
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      shared.sync = sync.stats();
    }
    if (sync.share_changed()) (void)prog.Push(shared.tables);
  }
}

// Returns the leases, then detaches both programs; the exit status.
int Shutdown(const Args& a, dlb::xdp::XdpSync& sync, dlb::xdp::TcReject& tc, dlb::xdp::XdpProgram& prog) {
  // A round whose reply was lost is re-sent first (applied once); a few tries, so that
  // a slow Redis does not keep the leases (they would be left to leak).
  dlb::Status returned = sync.ReturnAll();
  for (int attempt = 1; attempt < 3 && !returned.ok(); ++attempt) returned = sync.ReturnAll();
  if (!returned.ok()) DLB_LOG_WARN("returning leases at exit: {}", returned.ToString());
  if (auto s = tc.Detach(); !s.ok()) DLB_LOG_WARN("{}", s.ToString());
  if (auto s = prog.Detach(); !s.ok()) return Fail(s.ToString());
  std::printf("dlb-xdp: detached from %s\n", a.iface.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (auto rc = ParseArgs(argc, argv, a)) return *rc;
  if (a.detach) return Detach(a.iface);

  auto file = dlb::config::Load(a.config);  // every section, read once
  if (!file.ok()) return Fail(file.status().ToString());
  const int64_t interval_us = a.sync_interval_us.value_or(file->xdp.sync_interval_us);
  const uint32_t max_users = a.max_users.value_or(file->xdp.max_users);
  auto ep = RedisEndpoint(a, file->library);
  if (!ep.ok()) return Fail(ep.status().message());
  Shared shared;
  {
    auto tables = CompileTables(a, *file);
    if (!tables.ok()) return Fail(tables.status().message());
    shared.tables = std::move(*tables);
  }
  for (const auto& info : shared.tables.info) {
    if (info.mode == dlb::Mode::kStrict) {
      DLB_LOG_WARN(
          "rule '{}': mode strict is decided as synced by the XDP program (a packet "
          "path never waits on Redis)",
          info.name);
    }
  }

  // Signals are taken synchronously by the main loop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  dlb::xdp::TcReject tc;
  auto prog = Attach(a, max_users, shared.tables, tc);
  if (!prog.ok()) return Fail(prog.status().ToString());

  dlb::redis::Pool pool(*ep, 2, {dlb::redis::SettleScript(), dlb::redis::kAnnounceScript});
  dlb::xdp::SyncOptions sopts;
  sopts.interval = std::chrono::microseconds(interval_us);
  sopts.deadline = std::chrono::microseconds(std::max<int64_t>(file->library.deadline.count(), 5000));
  dlb::xdp::XdpSync sync(sopts, &pool, prog->get(), &shared.tables);

#ifdef DLB_XDP_HAVE_METRICS
  auto exporter = StartExporter(a.metrics, prog->get(), &shared);
  if (!exporter.ok()) return Fail(exporter.status().message());
#else
  if (!a.metrics.empty()) DLB_LOG_WARN("built without the metrics library: --metrics ignored");
#endif

  MainLoop(a, interval_us, signals, **prog, sync, shared);
  return Shutdown(a, sync, tc, **prog);
}
