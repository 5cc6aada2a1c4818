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

#include "dlb/packet/config.h"
#include "dlb/packet/engine.h"
#include "dlb/packet/rules.h"
#include "dlb/packet/shard_sync.h"
#include "dlb/siphash.h"
#include "dlb/status.h"
#include "settings.h"

struct rte_mbuf;
struct rte_mempool;

namespace dlb::redis {
class Pool;
}

namespace dlb::appliance {

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

// A worker's counters: written by the worker only, read by the control thread with
// relaxed loads at scrape time.
struct alignas(64) WorkerCounters {
  uint64_t rx_packets[2] = {};
  uint64_t rx_bytes[2] = {};
  uint64_t tx_packets[2] = {};        // frames handed to the port (forwarded and built)
  uint64_t tx_dropped[2] = {};        // the port's tx ring stayed full: frame freed
  uint64_t verdict_dropped = 0;       // frames freed by a drop verdict
  uint64_t prefixes_forwarded = 0;    // frames cut before a limited pipelined head
  uint64_t rejects_sent = 0;          // 429 frames built
  uint64_t resets_sent = 0;           // RST frames built
  uint64_t build_failed = 0;          // no mbuf for a built frame
  uint64_t idle_polls = 0;
  uint64_t busy_polls = 0;
  uint64_t rules_applied = 0;         // reloads taken
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
  // Resolves and starts the ports, creates one engine per worker lcore. Errors are one
  // clear line (a missing port, too little memory, a bad config).
  static StatusOr<std::unique_ptr<Appliance>> Create(const std::string& config_path);
  ~Appliance();

  // Launches the workers on their lcores (rte_eal_remote_launch).
  Status Launch();
  // Compiles the config file's rules and hands them to every worker between bursts;
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
  int64_t sync_interval_ns() const { return int64_t{settings_.sync_interval_ms} * 1'000'000; }
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

// Reads a file whole; errors name it.
StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace dlb::appliance
