// The appliance's figures, written once as a metrics collector (dlb/metrics.h) and
// served both by the Prometheus exporter and by DPDK telemetry (/dlb/stats): per-port
// packets, bytes and drops (rte_eth_stats plus the workers' tx drops), decisions by
// action and by rule, parse and head errors by reason, shard occupancy and overflow,
// flows, reloads. Summed over workers at read time; workers only bump plain counters.
#pragma once

#include <functional>

#include "appliance.h"
#include "dlb/metrics.h"

namespace dlb::appliance {

// A collector over `appliance` (which must outlive it).
metrics::CollectFn ApplianceCollector(const Appliance& appliance);

// Registers /dlb/stats (every figure of `collectors`, flattened to name[_labelvalue...] keys
// without the dlb_ prefix)
// with DPDK telemetry. `collectors` must outlive the process's telemetry.
void RegisterTelemetry(const std::vector<metrics::CollectFn>* collectors);

}  // namespace dlb::appliance
