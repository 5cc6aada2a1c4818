// Groups the samples that collectors write during one scrape into Prometheus metric
// families: one family per name, in the order names first appear.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "dlb/metrics.h"

namespace dlb::metrics {

// Rules, so that one bad collector cannot corrupt the exposition:
// - the help and type of a name's first sample win; a later sample of another type is
//   dropped (a counter and a gauge of the same name convert into each other);
// - samples of one name with equal label sets are summed (two Limiters in one process
//   export the process's totals), histograms only if their bounds are equal;
// - invalid metric or label names, duplicate label names, histograms whose counts do
//   not match their bounds and non-finite counter values are dropped.
// Every drop is counted (dropped()) and logged, rate-limited.
class FamilyWriter final : public Writer {
 public:
  void Counter(std::string_view name, std::string_view help, const Labels& labels,
               double value) override;
  void Gauge(std::string_view name, std::string_view help, const Labels& labels,
             double value) override;
  void Histogram(std::string_view name, std::string_view help, const Labels& labels,
                 const std::vector<double>& bounds, const std::vector<uint64_t>& bucket_counts,
                 uint64_t count, double sum) override;

  // The families that hold at least one sample (a family whose every sample was
  // dropped is not rendered).
  std::vector<prometheus::MetricFamily> Take();
  uint64_t dropped() const { return dropped_; }

 private:
  // The family for `name` (created with `help`, `type`), or null if the sample must be
  // dropped.
  prometheus::MetricFamily* Family(std::string_view name, std::string_view help,
                                   prometheus::MetricType type);
  // The sample of `family` with `labels` (sorted), created if new; null if the labels
  // are invalid.
  prometheus::ClientMetric* Sample(prometheus::MetricFamily& family, const Labels& labels,
                                   bool* created);
  void Drop(std::string_view name, const char* why);

  std::vector<prometheus::MetricFamily> families_;
  std::unordered_map<std::string, size_t> index_;
  uint64_t dropped_ = 0;
};

// Runs every collector against one FamilyWriter; a collector that throws ends its own
// part of this scrape (what it wrote before stays), not the scrape.
std::vector<prometheus::MetricFamily> CollectFamilies(const std::vector<CollectFn>& collectors);

}  // namespace dlb::metrics
