// Prometheus metrics (docs/metrics.md): one exporter per process, listening
// on 127.0.0.1 by default. Data paths never touch it: workers bump plain per-core
// counters, and collectors registered here read and sum them at scrape time, on the
// exporter's thread.
//
//   auto exporter = dlb::metrics::Exporter::Start("127.0.0.1:9464");   // ":0" = any port
//   (*exporter)->AddCollector([&](dlb::metrics::Writer& w) {
//     w.Counter("dlb_packet_heads_total", "Request heads decided.", {{"rule", "login"}},
//               SumOverCores(&EngineCounters::heads, rule));
//     w.Gauge("dlb_shard_occupancy_ratio", "Used share of the bucket shards.", {}, fill);
//   });
//
// Names follow Prometheus conventions: `dlb_` prefix, `_total` counters, base units
// (seconds, bytes). Never a per-user label.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dlb/status.h"

namespace dlb::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Receives the samples of one scrape. Samples of one name may come from several
// collectors and several calls; they are grouped into one family (help and type of the
// first call win).
class Writer {
 public:
  virtual ~Writer() = default;
  virtual void Counter(std::string_view name, std::string_view help, const Labels& labels,
                       double value) = 0;
  virtual void Gauge(std::string_view name, std::string_view help, const Labels& labels,
                     double value) = 0;
  // A histogram from cumulative bucket counts: `bucket_counts[i]` requests <= bounds[i];
  // `count` and `sum` over all observations (bounds in base units, ascending).
  virtual void Histogram(std::string_view name, std::string_view help, const Labels& labels,
                         const std::vector<double>& bounds,
                         const std::vector<uint64_t>& bucket_counts, uint64_t count,
                         double sum) = 0;
};

using CollectFn = std::function<void(Writer&)>;

class Exporter {
 public:
  // Serves GET /metrics on `listen` ("host:port"; port 0 picks a free one). Errors name
  // the address (in use, not an address).
  static StatusOr<std::unique_ptr<Exporter>> Start(const std::string& listen);
  virtual ~Exporter() = default;

  // Called at every scrape from the exporter's thread; must be safe against the data
  // path (read counters with relaxed loads). Collectors live as long as the exporter.
  virtual void AddCollector(CollectFn fn) = 0;
  // The port actually bound.
  virtual int port() const = 0;
};

// The Prometheus text exposition of what `collectors` write, for tests, telemetry
// commands and `dlbctl`; the same families the exporter serves.
std::string RenderText(const std::vector<CollectFn>& collectors);

}  // namespace dlb::metrics

namespace dlb {
class Limiter;
namespace metrics {
// The library's Limiter counters (LimiterStats, dlb/limiter.h) as `dlb_limiter_*`
// families. `limiter` must outlive the exporter.
CollectFn LimiterCollector(const ::dlb::Limiter& limiter);
}  // namespace metrics
}  // namespace dlb
