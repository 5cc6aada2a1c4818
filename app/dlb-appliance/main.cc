// dlb-appliance [EAL args] -- --config FILE [--metrics HOST:PORT]
//
// The inline DPDK rate limiter (appliance.h). SIGHUP reloads the rules, SIGINT and
// SIGTERM stop it cleanly (exit 0). A bad config, a missing port or too little memory
// is one clear line on stderr and exit 1.
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "appliance.h"
#include "config/config.h"
#include "log/log.h"
#include "stats.h"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_reloads{0};

void OnSignal(int sig) {
  if (sig == SIGHUP) {
    g_reloads.fetch_add(1, std::memory_order_relaxed);
  } else {
    g_stop.store(true, std::memory_order_relaxed);
  }
}

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: dlb-appliance [EAL args] -- --config FILE [--metrics HOST:PORT]\n"
               "  --config FILE      YAML: appliance:, packet settings and rules (config/appliance.yaml)\n"
               "  --metrics ADDR     Prometheus listen address (over metrics.listen and DLB_METRICS_LISTEN; '' = off)\n"
               "Signals: SIGHUP reloads the rules; SIGINT/SIGTERM stop.\n");
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "dlb-appliance: %s\n", message.c_str());
  return 1;
}

// Signals first: a SIGTERM during start-up must still end in a clean stop.
void InstallSignalHandlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
}

// EAL for the life of the process: rte_eal_cleanup() runs on every way out of main,
// after the appliance (declared later) is destroyed.
struct EalSession {
  ~EalSession() { rte_eal_cleanup(); }
};

// /dlb/stats serves `collectors` while this lives.
struct TelemetryScope {
  explicit TelemetryScope(const std::vector<dlb::metrics::CollectFn>* collectors) {
    dlb::appliance::RegisterTelemetry(collectors);
  }
  ~TelemetryScope() { dlb::appliance::RegisterTelemetry(nullptr); }
};

struct Args {
  std::string config_path;
  std::optional<std::string> metrics_listen;  // --metrics, over the file and the environment
};

// The arguments after EAL's (and its "--").
dlb::StatusOr<Args> ParseArgs(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--config" || arg == "--metrics") && i + 1 >= argc) {
      return dlb::Status::InvalidArgument(arg + " needs a value");
    }
    if (arg == "--config") {
      a.config_path = argv[++i];
    } else if (arg == "--metrics") {
      a.metrics_listen = argv[++i];
    } else {
      Usage(stderr);
      return dlb::Status::InvalidArgument("unknown argument '" + arg + "'");
    }
  }
  if (a.config_path.empty()) {
    Usage(stderr);
    return dlb::Status::InvalidArgument("--config FILE is required");
  }
  return a;
}

// --metrics, else DLB_METRICS_LISTEN, else the file's metrics.listen; "" = none.
std::string MetricsListen(const Args& args, const dlb::config::File& file) {
  if (args.metrics_listen) return *args.metrics_listen;
  if (const char* env = std::getenv("DLB_METRICS_LISTEN"); env != nullptr) return env;
  return file.metrics.listen;
}

#ifdef DLB_HAVE_METRICS
dlb::StatusOr<std::unique_ptr<dlb::metrics::Exporter>> StartExporter(
    const std::string& listen, const std::vector<dlb::metrics::CollectFn>& collectors) {
  if (listen.empty()) return std::unique_ptr<dlb::metrics::Exporter>();
  auto started = dlb::metrics::Exporter::Start(listen);
  if (!started.ok()) return dlb::Status::InvalidArgument("metrics: " + started.status().message());
  for (const auto& c : collectors) (*started)->AddCollector(c);
  DLB_LOG_INFO("dlb-appliance: metrics on {}:{}", listen.substr(0, listen.rfind(':')), (*started)->port());
  return started;
}
#endif

// Reloads on SIGHUP and runs a sync round every sync interval until SIGINT or SIGTERM;
// metrics and telemetry run on their own threads.
void ControlLoop(dlb::appliance::Appliance& appliance) {
  int reloads_seen = 0;
  const auto interval =
      std::chrono::nanoseconds(appliance.synced() ? appliance.sync_interval_ns() : int64_t{10'000'000});
  auto next_round = std::chrono::steady_clock::now();
  while (!g_stop.load(std::memory_order_relaxed)) {
    const int reloads = g_reloads.load(std::memory_order_relaxed);
    if (reloads != reloads_seen) {
      reloads_seen = reloads;
      if (auto st = appliance.Reload(); !st.ok()) {
        DLB_LOG_ERROR("dlb-appliance: reload refused, the running rules stay: {}", st.message());
      }
    }
    if (appliance.synced()) {
      if (auto st = appliance.SyncRound(); !st.ok()) {
        DLB_LOG_EVERY(1000, spdlog::level::warn, "dlb-appliance: sync round: {}", st.message());
      }
    }
    next_round += interval;
    const auto now = std::chrono::steady_clock::now();
    if (next_round < now) next_round = now;  // a slow round is not caught up in a burst
    std::this_thread::sleep_until(next_round);
  }
}

}  // namespace

int main(int argc, char** argv) {
  dlb::log::InitFromEnvironment();
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      Usage(stdout);
      return 0;
    }
    if (std::strcmp(argv[i], "--") == 0) break;
  }
  InstallSignalHandlers();
  const int eal_args = rte_eal_init(argc, argv);
  if (eal_args < 0) {
    return Fail(std::string("EAL initialisation failed: ") + rte_strerror(rte_errno) +
                " (hugepages reserved? try EAL --no-huge -m 256 for tests)");
  }
  {
    EalSession eal;
    auto args = ParseArgs(argc, argv, eal_args + 1);
    if (!args.ok()) return Fail(args.status().message());
    auto file = dlb::config::Load(args->config_path);  // every section, read once
    if (!file.ok()) return Fail(file.status().message());
    auto created = dlb::appliance::Appliance::Create(*file);
    if (!created.ok()) return Fail(created.status().message());
    std::unique_ptr<dlb::appliance::Appliance> appliance = std::move(created).value();

    std::vector<dlb::metrics::CollectFn> collectors = {dlb::appliance::ApplianceCollector(*appliance)};
    TelemetryScope telemetry(&collectors);
    const std::string listen = MetricsListen(*args, *file);
#ifdef DLB_HAVE_METRICS
    auto exporter = StartExporter(listen, collectors);
    if (!exporter.ok()) return Fail(exporter.status().message());
#else
    if (!listen.empty()) {
      DLB_LOG_WARN("dlb-appliance: built without the metrics exporter; {} not served (telemetry /dlb/stats is)",
                   listen);
    }
#endif
    if (auto st = appliance->Launch(); !st.ok()) return Fail(st.message());
    std::printf("dlb-appliance: running (%zu worker(s))\n", appliance->workers().size());
    std::fflush(stdout);

    ControlLoop(*appliance);
    DLB_LOG_INFO("dlb-appliance: stopping");
    appliance->Stop();  // then the exporter, telemetry, the appliance and EAL, in that order
  }
  std::printf("dlb-appliance: stopped\n");
  return 0;
}
