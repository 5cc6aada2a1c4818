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
#include <string>
#include <thread>
#include <vector>

#include "appliance.h"
#ifdef DLB_HAVE_METRICS
#include "metrics/config.h"
#endif
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
  // Signals first: a SIGTERM during start-up must still end in a clean stop.
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);

  const int eal_args = rte_eal_init(argc, argv);
  if (eal_args < 0) {
    return Fail(std::string("EAL initialisation failed: ") + rte_strerror(rte_errno) +
                " (hugepages reserved? try EAL --no-huge -m 256 for tests)");
  }
  std::string config_path;
  std::string metrics_listen;
  bool metrics_given = false;
  for (int i = eal_args + 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--config" || arg == "--metrics") && i + 1 >= argc) {
      rte_eal_cleanup();
      return Fail(arg + " needs a value");
    }
    if (arg == "--config") {
      config_path = argv[++i];
    } else if (arg == "--metrics") {
      metrics_listen = argv[++i];
      metrics_given = true;
    } else {
      Usage(stderr);
      rte_eal_cleanup();
      return Fail("unknown argument '" + arg + "'");
    }
  }
  if (config_path.empty()) {
    Usage(stderr);
    rte_eal_cleanup();
    return Fail("--config FILE is required");
  }

  int rc = 0;
  {
    auto created = dlb::appliance::Appliance::Create(config_path);
    if (!created.ok()) {
      rte_eal_cleanup();
      return Fail(created.status().message());
    }
    std::unique_ptr<dlb::appliance::Appliance> appliance = std::move(created).value();
#ifdef DLB_HAVE_METRICS
    if (!metrics_given) {
      // The file's `metrics:` section, DLB_METRICS_LISTEN over it; --metrics over both.
      auto mc = dlb::metrics::LoadMetricsConfig(config_path);
      if (mc.ok()) {
        const char* env = std::getenv("DLB_METRICS_LISTEN");
        metrics_listen = env != nullptr ? std::string(env) : mc->listen;
      } else {
        appliance.reset();
        rte_eal_cleanup();
        return Fail(mc.status().message());
      }
    }
#endif

    std::vector<dlb::metrics::CollectFn> collectors = {dlb::appliance::ApplianceCollector(*appliance)};
    dlb::appliance::RegisterTelemetry(&collectors);
#ifdef DLB_HAVE_METRICS
    std::unique_ptr<dlb::metrics::Exporter> exporter;
    if (!metrics_listen.empty()) {
      auto started = dlb::metrics::Exporter::Start(metrics_listen);
      if (!started.ok()) {
        appliance.reset();
        rte_eal_cleanup();
        return Fail("metrics: " + started.status().message());
      }
      exporter = std::move(started).value();
      for (const auto& c : collectors) exporter->AddCollector(c);
      DLB_LOG_INFO("dlb-appliance: metrics on {}:{}", metrics_listen.substr(0, metrics_listen.rfind(':')),
                   exporter->port());
    }
#else
    if (!metrics_listen.empty()) {
      DLB_LOG_WARN("dlb-appliance: built without the metrics exporter; {} not served (telemetry /dlb/stats is)",
                   metrics_listen);
    }
#endif

    if (auto st = appliance->Launch(); !st.ok()) {
      appliance.reset();
      rte_eal_cleanup();
      return Fail(st.message());
    }
    std::printf("dlb-appliance: running (%zu worker(s))\n", appliance->workers().size());
    std::fflush(stdout);

    // The control loop: reloads on SIGHUP; everything else runs on its own threads.
    // The control loop: reloads on SIGHUP, sync rounds every sync interval; metrics and
    // telemetry run on their own threads.
    int reloads_seen = 0;
    const auto interval = std::chrono::nanoseconds(
        appliance->synced() ? appliance->sync_interval_ns() : int64_t{10'000'000});
    auto next_round = std::chrono::steady_clock::now();
    while (!g_stop.load(std::memory_order_relaxed)) {
      const int reloads = g_reloads.load(std::memory_order_relaxed);
      if (reloads != reloads_seen) {
        reloads_seen = reloads;
        if (auto st = appliance->Reload(); !st.ok()) {
          DLB_LOG_ERROR("dlb-appliance: reload refused, the running rules stay: {}", st.message());
        }
      }
      if (appliance->synced()) {
        if (auto st = appliance->SyncRound(); !st.ok()) {
          DLB_LOG_EVERY(1000, spdlog::level::warn, "dlb-appliance: sync round: {}", st.message());
        }
      }
      next_round += interval;
      const auto now = std::chrono::steady_clock::now();
      if (next_round < now) next_round = now;  // a slow round is not caught up in a burst
      std::this_thread::sleep_until(next_round);
    }
    DLB_LOG_INFO("dlb-appliance: stopping");
    appliance->Stop();
#ifdef DLB_HAVE_METRICS
    exporter.reset();
#endif
    dlb::appliance::RegisterTelemetry(nullptr);
  }
  rte_eal_cleanup();
  std::printf("dlb-appliance: stopped\n");
  return rc;
}
