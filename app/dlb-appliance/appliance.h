// The DPDK appliance: two ports, bump in the wire (docs/appliance.md, "Data path").
// Worker lcores run to completion: rx burst from one port -> PacketEngine::ProcessBurst
// -> act on the verdicts -> tx burst to the other port (429s and RSTs built from the
// rejected segment). Each worker owns queue `index` of both ports and its own engine;
// with several queues the ports hash flows with a symmetric RSS key, so that both
// directions of a connection meet in the same worker. The control thread (the main
// lcore) reloads rules, serves metrics and telemetry and runs the lease sync.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "dlb/limiter.h"
#include "dlb/packet/config.h"
#include "dlb/packet/engine.h"
#include "dlb/packet/rules.h"
#include "dlb/packet/shard_sync.h"
#include "dlb/siphash.h"
#include "dlb/status.h"

struct rte_mbuf;
struct rte_mempool;

namespace dlb::redis {
class Pool;
}

namespace dlb::appliance {

// The `appliance:` section of the config file (config/config.h).
using Settings = config::ApplianceSettings;

enum Side : int { kClientSide = 0, kServerSide = 1 };
inline const char* SideName(int side) { return side == kClientSide ? "client" : "server"; }

// Memory for an engine's tables from rte_malloc on one NUMA socket: hugepages, or
// anonymous memory under --no-huge.
class RteAllocator final : public packet::Allocator {
 public:
  explicit RteAllocator(int socket) : socket_(socket) {}
  void* Allocate(size_t size_bytes, size_t align_bytes) override;
  void Free(void* p) override;

 private:
  int socket_;
};

// A worker's counters, declared once: field, metric name, help. Written by the worker
// only, summed over workers by the collector (stats.cc).
// Per port (labelled port = client, server; indexed by Side):
#define DLB_APPLIANCE_WORKER_PORT_COUNTERS(X)                                                       \
  X(rx_packets, "dlb_appliance_worker_rx_packets_total",                                            \
    "Frames the workers took from the port.")                                                       \
  X(rx_bytes, "dlb_appliance_worker_rx_bytes_total",                                                \
    "Bytes the workers took from the port.")                                                        \
  X(tx_packets, "dlb_appliance_worker_tx_packets_total",                                            \
    "Frames the workers handed to the port (forwarded and built).")                                 \
  X(tx_dropped, "dlb_appliance_tx_dropped_total",                                                   \
    "Frames freed because the port's tx ring stayed full.")
// Per worker:
#define DLB_APPLIANCE_WORKER_COUNTERS(X)                                                            \
  X(verdict_dropped, "dlb_appliance_verdict_dropped_total",                                         \
    "Frames dropped by a verdict.")                                                                 \
  X(prefixes_forwarded, "dlb_appliance_prefixes_forwarded_total",                                   \
    "Segments cut before a limited pipelined head.")                                                \
  X(rejects_sent, "dlb_appliance_rejects_sent_total",                                               \
    "429 responses sent to clients.")                                                               \
  X(resets_sent, "dlb_appliance_resets_sent_total",                                                 \
    "TCP RSTs sent.")                                                                               \
  X(build_failed, "dlb_appliance_build_failed_total",                                               \
    "Reject or reset frames not sent for want of an mbuf.")                                         \
  X(idle_polls, "dlb_appliance_idle_polls_total",                                                   \
    "Polls of both ports that found nothing.")                                                      \
  X(busy_polls, "dlb_appliance_busy_polls_total",                                                   \
    "Polls of both ports that found frames.")                                                       \
  X(rules_applied, "dlb_appliance_worker_rules_applied_total",                                      \
    "Rule sets taken by the workers (each worker, each reload).")

struct alignas(64) WorkerCounters {
#define DLB_X(field, name, help) uint64_t field[2] = {};
  DLB_APPLIANCE_WORKER_PORT_COUNTERS(DLB_X)
#undef DLB_X
#define DLB_X(field, name, help) uint64_t field = 0;
  DLB_APPLIANCE_WORKER_COUNTERS(DLB_X)
#undef DLB_X
  // By the position of the rule in the current set (labelled with its name).
  uint64_t rejected_by_rule[packet::kMaxRules] = {};
  uint64_t dropped_by_rule[packet::kMaxRules] = {};
};

struct PortInfo {
  uint16_t port_id = 0;
  std::string spec;
  std::string name;
  std::string driver;
  uint16_t queues = 1;
  bool rss = false;
};

class Worker {
 public:
  Worker(int index, uint16_t queue, const PortInfo (&ports)[2], rte_mempool* pool,
         std::unique_ptr<packet::PacketEngine> engine, const packet::RuleSet* rules,
         const std::atomic<const packet::RuleSet*>* published, uint32_t idle_backoff_us);
  ~Worker();

  // Polls both ports until `stop` is set.
  void Run(const std::atomic<bool>& stop);
  // One poll of both ports (an rx burst each, processed and sent); returns the frames
  // received. Takes a published rule set first.
  uint32_t PollOnce();

  int index() const { return index_; }
  const packet::PacketEngine& engine() const { return *engine_; }
  const WorkerCounters& counters() const { return counters_; }
  // The rule set this worker decides with (for the control thread's hand-over).
  const packet::RuleSet* applied_rules() const { return applied_.load(std::memory_order_acquire); }
  packet::PacketEngine& mutable_engine() { return *engine_; }

 private:
  void Handle(int in_side, rte_mbuf** mbufs, uint16_t count, int64_t now_ns);
  void Send(int side, rte_mbuf** mbufs, uint16_t count);
  rte_mbuf* Build(size_t (*build)(const uint8_t*, const packet::PacketView&, uint8_t*, size_t),
                  const uint8_t* frame, const packet::PacketView& view);

  int index_;
  uint16_t queue_;
  uint16_t port_ids_[2];
  rte_mempool* pool_;
  std::unique_ptr<packet::PacketEngine> engine_;
  const packet::RuleSet* rules_;
  std::atomic<const packet::RuleSet*> applied_;
  const std::atomic<const packet::RuleSet*>* published_;
  uint32_t idle_backoff_us_;
  WorkerCounters counters_;
};

// Everything the process runs: ports, pool, workers, rules. Created on the main lcore
// after rte_eal_init.
class Appliance {
 public:
  // Resolves and starts the ports, creates one engine per worker lcore and, when a rule
  // needs Redis, the lease sync. Errors are one clear line (a missing port, too little
  // memory, no `appliance:` section).
  static StatusOr<std::unique_ptr<Appliance>> Create(const config::File& config);
  ~Appliance();

  // Launches the workers on their lcores (rte_eal_remote_launch).
  Status Launch();
  // Loads the config file again (every section must pass), compiles its rules and hands them to every worker between bursts;
  // the old set is freed once all workers took the new one. Only rules and the default
  // rule are reloaded; other settings need a restart (a change is logged).
  Status Reload();
  // Stops the workers (they finish the burst in hand) and waits for them, then returns
  // the leases of synced rules to Redis (once).
  void Stop();

  // Global sync (rules in mode synced or strict; none when every rule is local): one
  // round, run by the control thread every sync_interval().
  bool synced() const { return sync_ != nullptr; }
  Status SyncRound();
  int64_t sync_interval_ns() const { return int64_t{settings_.sync_interval_us} * 1'000; }
  // The sync's figures as of the last round (safe from any thread).
  std::optional<packet::ShardSyncStats> sync_stats() const;

  const Settings& settings() const { return settings_; }
  const packet::PacketConfig& packet_config() const { return packet_config_; }
  const packet::RuleSet& rules() const { return *rules_; }
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  const PortInfo& port(int side) const { return ports_[side]; }
  uint64_t reloads_ok() const { return reloads_ok_.load(std::memory_order_relaxed); }
  uint64_t reloads_failed() const { return reloads_failed_.load(std::memory_order_relaxed); }
  const std::string& config_path() const { return config_path_; }

 private:
  Appliance() = default;
  // The steps of Create().
  Status ResolvePorts();
  StatusOr<uint32_t> PlanQueues();  // fills lcores_; returns the queues per port
  Status StartPorts(uint32_t queues);
  Status CreateWorkers(uint32_t queues);
  Status StartSync(const LimiterOptions& library);

  std::string config_path_;
  Settings settings_;
  packet::PacketConfig packet_config_;
  std::unique_ptr<packet::RuleSet> rules_;
  std::atomic<const packet::RuleSet*> published_{nullptr};
  PortInfo ports_[2];
  bool ports_started_ = false;
  rte_mempool* pool_ = nullptr;
  std::vector<std::unique_ptr<RteAllocator>> allocators_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<unsigned> lcores_;
  std::unique_ptr<redis::Pool> redis_pool_;
  std::unique_ptr<packet::ShardSync> sync_;  // destroyed before the engines it points to
  mutable std::mutex sync_stats_mu_;
  std::optional<packet::ShardSyncStats> sync_stats_;
  bool leases_returned_ = false;
  std::atomic<bool> stop_{false};
  bool launched_ = false;
  std::atomic<uint64_t> reloads_ok_{0};
  std::atomic<uint64_t> reloads_failed_{0};
};

}  // namespace dlb::appliance
