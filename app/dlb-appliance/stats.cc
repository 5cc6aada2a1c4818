#include "stats.h"

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>

namespace dlb::appliance {
namespace {

uint64_t Load(const uint64_t& v) { return __atomic_load_n(&v, __ATOMIC_RELAXED); }

template <typename F>
uint64_t Sum(const Appliance& a, F&& f) {
  uint64_t s = 0;
  for (const auto& w : a.workers()) s += f(*w);
  return s;
}

// Shard occupancy takes a walk of every table: done at most once per interval.
struct OccupancyCache {
  std::mutex mu;
  std::chrono::steady_clock::time_point at{};
  uint64_t used = 0;
};

// The ports' own statistics and the workers' counters (DLB_APPLIANCE_WORKER_*_COUNTERS).
void CollectPorts(const Appliance& a, metrics::Writer& w) {
  for (int side = 0; side < 2; ++side) {
    const metrics::Labels l = {{"port", SideName(side)}};
    rte_eth_stats st;
    if (rte_eth_stats_get(a.port(side).port_id, &st) == 0) {
      w.Counter("dlb_appliance_port_rx_packets_total", "Frames received by the port.", l, double(st.ipackets));
      w.Counter("dlb_appliance_port_tx_packets_total", "Frames sent by the port.", l, double(st.opackets));
      w.Counter("dlb_appliance_port_rx_bytes_total", "Bytes received by the port.", l, double(st.ibytes));
      w.Counter("dlb_appliance_port_tx_bytes_total", "Bytes sent by the port.", l, double(st.obytes));
      w.Counter("dlb_appliance_port_rx_missed_total", "Frames the port dropped: rx ring full.", l, double(st.imissed));
      w.Counter("dlb_appliance_port_rx_errors_total", "Erroneous frames received.", l, double(st.ierrors));
      w.Counter("dlb_appliance_port_tx_errors_total", "Frames the port failed to send.", l, double(st.oerrors));
      w.Counter("dlb_appliance_port_rx_nombuf_total", "Receive failures for want of an mbuf.", l, double(st.rx_nombuf));
    }
#define DLB_X(field, name, help) \
  w.Counter(name, help, l,                            \
            double(Sum(a, [&](const Worker& k) { return Load(k.counters().field[side]); })));
    DLB_APPLIANCE_WORKER_PORT_COUNTERS(DLB_X)
#undef DLB_X
  }
}

void CollectWorkers(const Appliance& a, metrics::Writer& w) {
#define DLB_X(field, name, help) \
  w.Counter(name, help, {},                          \
            double(Sum(a, [](const Worker& k) { return Load(k.counters().field); })));
  DLB_APPLIANCE_WORKER_COUNTERS(DLB_X)
#undef DLB_X
  w.Counter("dlb_appliance_reloads_total", "Rule reloads.", {{"result", "ok"}}, double(a.reloads_ok()));
  w.Counter("dlb_appliance_reloads_total", "Rule reloads.", {{"result", "failed"}}, double(a.reloads_failed()));
  w.Gauge("dlb_appliance_workers", "Worker lcores.", {}, double(a.workers().size()));
}

// The engines' counters (packet::ForEachCounter), summed over workers; parse and head
// reasons become labels. Then the decisions by action.
void CollectEngines(const Appliance& a, metrics::Writer& w) {
  std::vector<std::pair<std::string, uint64_t>> sums;
  for (const auto& k : a.workers()) {
    size_t i = 0;
    packet::ForEachCounter(k->engine().counters(), [&](const char* name, const uint64_t& v) {
      if (sums.size() <= i) sums.emplace_back(name, 0);
      sums[i++].second += Load(v);
    });
  }
  for (const auto& [name, value] : sums) {
    if (name.rfind("parse_", 0) == 0) {
      w.Counter("dlb_packet_frames_parsed_total", "Frames by parse result.", {{"result", name.substr(6)}}, double(value));
    } else if (name.rfind("head_", 0) == 0) {
      w.Counter("dlb_packet_malformed_heads_by_reason_total", "Refused request heads by reason.",
                {{"reason", name.substr(5)}}, double(value));
    } else {
      w.Counter("dlb_packet_" + name + "_total", "Packet engine counter (dlb/packet/engine.h).", {}, double(value));
    }
  }
  const auto engine_sum = [&](uint64_t packet::EngineCounters::*field) {
    return double(Sum(a, [&](const Worker& k) { return Load(k.engine().counters().*field); }));
  };
  const char* help = "Request heads decided, by action taken.";
  w.Counter("dlb_packet_decisions_total", help, {{"action", "allowed"}}, engine_sum(&packet::EngineCounters::allowed));
  w.Counter("dlb_packet_decisions_total", help, {{"action", "rejected"}}, engine_sum(&packet::EngineCounters::rejected));
  w.Counter("dlb_packet_decisions_total", help, {{"action", "dropped"}}, engine_sum(&packet::EngineCounters::dropped));
  w.Counter("dlb_packet_decisions_total", help, {{"action", "shadow"}}, engine_sum(&packet::EngineCounters::shadow_limited));
}

// Limited requests acted on, by rule (the rule at each position of the current set).
void CollectRules(const Appliance& a, metrics::Writer& w) {
  const packet::RuleSet& rules = a.rules();
  for (uint16_t r = 0; r < rules.size() && r < packet::kMaxRules; ++r) {
    const metrics::Labels rl = {{"rule", rules.rule(r).name}};
    w.Counter("dlb_appliance_rejected_by_rule_total", "Requests answered 429, by rule.", rl,
              double(Sum(a, [&](const Worker& k) { return Load(k.counters().rejected_by_rule[r]); })));
    w.Counter("dlb_appliance_dropped_by_rule_total", "Segments dropped by a limited head, by rule.", rl,
              double(Sum(a, [&](const Worker& k) { return Load(k.counters().dropped_by_rule[r]); })));
  }
}

void CollectShardsAndFlows(const Appliance& a, OccupancyCache& cache, metrics::Writer& w) {
  uint64_t entries = 0, memory = 0, flows = 0, free_buffers = 0;
  uint64_t new_keys = 0, table_full = 0, reused = 0, relocations = 0;
  for (const auto& k : a.workers()) {
    const packet::PacketEngine& e = k->engine();
    entries += e.shard().entries();
    memory += e.memory_bytes();
    flows += e.active_flows();
    free_buffers += e.free_reassembly_buffers();
    new_keys += Load(e.shard_counters().new_keys);
    table_full += Load(e.shard_counters().table_full);
    reused += Load(e.shard_counters().reused_entries);
    relocations += Load(e.shard_counters().relocations);
  }
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    const auto now = std::chrono::steady_clock::now();
    if (now - cache.at > std::chrono::seconds(5)) {
      uint64_t used = 0;
      for (const auto& k : a.workers()) used += k->engine().shard().CountUsed();
      cache.used = used;
      cache.at = now;
    }
    w.Gauge("dlb_shard_entries_used", "Bucket entries in use over all shards (sampled every 5 s at most).", {},
            double(cache.used));
  }
  w.Gauge("dlb_shard_entries", "Bucket entries over all shards.", {}, double(entries));
  w.Gauge("dlb_shard_occupancy_ratio", "Used share of the bucket shards.", {},
          entries == 0 ? 0.0 : double(cache.used) / double(entries));
  w.Counter("dlb_shard_new_keys_total", "Buckets created.", {}, double(new_keys));
  w.Counter("dlb_shard_reused_entries_total", "Entries of drained buckets given to new keys.", {}, double(reused));
  w.Counter("dlb_shard_relocations_total", "Entries moved to their other line to make room.", {}, double(relocations));
  w.Counter("dlb_shard_overflow_total", "New keys refused by a full shard (the rule's on_table_full applied).", {},
            double(table_full));
  w.Gauge("dlb_appliance_engine_memory_bytes", "Flow tables, reassembly pools and shards (hugepage memory).", {},
          double(memory));
  w.Gauge("dlb_packet_active_flows", "Tracked connections.", {}, double(flows));
  w.Gauge("dlb_packet_free_reassembly_buffers", "Reassembly buffers free.", {}, double(free_buffers));
}

// The global sync of synced and strict rules, as of its last round.
void CollectSync(const Appliance& a, metrics::Writer& w) {
  const auto ss = a.sync_stats();
  if (!ss) return;
  w.Gauge("dlb_sync_store_up", "1 while Redis answers the sync rounds.", {}, ss->store_down ? 0.0 : 1.0);
  w.Counter("dlb_sync_rounds_total", "Sync rounds.", {}, double(ss->rounds));
  w.Counter("dlb_sync_round_failures_total", "Sync round trips that failed.", {}, double(ss->round_failures));
  w.Counter("dlb_sync_redis_calls_total", "Redis calls of the sync (settle and announce).", {}, double(ss->redis_calls));
  w.Counter("dlb_sync_bucket_ops_total", "Buckets settled in Redis.", {}, double(ss->bucket_ops));
  w.Counter("dlb_sync_units_total", "Bucket units moved by the sync.", {{"kind", "granted"}}, double(ss->granted_units));
  w.Counter("dlb_sync_units_total", "Bucket units moved by the sync.", {{"kind", "returned"}}, double(ss->returned_units));
  w.Counter("dlb_sync_units_total", "Bucket units moved by the sync.", {{"kind", "debited"}}, double(ss->debited_units));
  w.Gauge("dlb_sync_tracked_buckets", "Buckets tracked by the sync.", {}, double(ss->tracked));
  w.Gauge("dlb_sync_live_participants", "Participants of the lease protocol seen in Redis.", {},
          double(ss->live_participants));
  w.Gauge("dlb_sync_max_gap_seconds", "Longest time between two rounds' snapshots.", {}, double(ss->max_gap_ns) / 1e9);
#define DLB_X(field, name) \
  w.Counter("dlb_sync_worker_decisions_total", "Synced decisions by how they were made.", {{"how", name}}, double(ss->field));
  DLB_SYNC_WORKER_COUNTERS(DLB_X)
#undef DLB_X
}

}  // namespace

metrics::CollectFn ApplianceCollector(const Appliance& a) {
  auto cache = std::make_shared<OccupancyCache>();
  return [&a, cache](metrics::Writer& w) {
    CollectPorts(a, w);
    CollectWorkers(a, w);
    CollectEngines(a, w);
    CollectRules(a, w);
    CollectShardsAndFlows(a, *cache, w);
    CollectSync(a, w);
  };
}

namespace {

const std::vector<metrics::CollectFn>* g_collectors = nullptr;
std::mutex g_telemetry_mu;

// Flattens samples into one telemetry dictionary: `name` or `name_labelvalue...`.
class TelemetryWriter final : public metrics::Writer {
 public:
  explicit TelemetryWriter(rte_tel_data* d) : d_(d) {}
  void Counter(std::string_view name, std::string_view, const metrics::Labels& labels, double value) override {
    Add(name, labels, value);
  }
  void Gauge(std::string_view name, std::string_view, const metrics::Labels& labels, double value) override {
    Add(name, labels, value);
  }
  void Histogram(std::string_view name, std::string_view, const metrics::Labels& labels, const std::vector<double>&,
                 const std::vector<uint64_t>&, uint64_t count, double) override {
    Add(std::string(name) + "_count", labels, double(count));
  }

 private:
  void Add(std::string_view name, const metrics::Labels& labels, double value) {
    if (entries_ >= RTE_TEL_MAX_DICT_ENTRIES) return;
    std::string key(name.substr(name.rfind("dlb_", 0) == 0 ? 4 : 0));
    // Telemetry names take [A-Za-z0-9_] (and a few more): label values join with '_'.
    for (const auto& [k, v] : labels) {
      key += "_";
      for (char c : v) key += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    }
    if (key.size() >= RTE_TEL_MAX_STRING_LEN) key.resize(RTE_TEL_MAX_STRING_LEN - 1);
    if (value >= 0 && value == double(uint64_t(value))) {
      rte_tel_data_add_dict_u64(d_, key.c_str(), uint64_t(value));
    } else {
      rte_tel_data_add_dict_string(d_, key.c_str(), std::to_string(value).c_str());
    }
    ++entries_;
  }
  rte_tel_data* d_;
  int entries_ = 0;
};

int TelemetryStats(const char*, const char*, rte_tel_data* d) {
  std::lock_guard<std::mutex> lock(g_telemetry_mu);
  rte_tel_data_start_dict(d);
  if (g_collectors == nullptr) return 0;
  TelemetryWriter w(d);
  for (const auto& c : *g_collectors) c(w);
  return 0;
}

}  // namespace

void RegisterTelemetry(const std::vector<metrics::CollectFn>* collectors) {
  g_collectors = collectors;
  rte_telemetry_register_cmd("/dlb/stats", TelemetryStats,
                             "Appliance figures (ports, decisions, rules, shards). No parameters");
}

}  // namespace dlb::appliance
