#include "metrics/families.h"

#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <sstream>

#include "log/log.h"

namespace dlb::metrics {

namespace {

prometheus::MetricType Other(prometheus::MetricType t) {
  return t == prometheus::MetricType::Counter ? prometheus::MetricType::Gauge
                                              : prometheus::MetricType::Counter;
}

bool IsScalar(prometheus::MetricType t) {
  return t == prometheus::MetricType::Counter || t == prometheus::MetricType::Gauge;
}

double& ScalarOf(prometheus::ClientMetric& m, prometheus::MetricType t) {
  return t == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
}

}  // namespace

void FamilyWriter::Drop(std::string_view name, const char* why) {
  ++dropped_;
  DLB_LOG_EVERY(60000, spdlog::level::warn, "metrics: dropped a sample of '{}': {}", name, why);
}

prometheus::MetricFamily* FamilyWriter::Family(std::string_view name, std::string_view help,
                                               prometheus::MetricType type) {
  std::string key(name);
  auto it = index_.find(key);
  if (it != index_.end()) {
    prometheus::MetricFamily& f = families_[it->second];
    if (f.type == type || (IsScalar(type) && f.type == Other(type))) return &f;
    Drop(name, "another type was written first under this name");
    return nullptr;
  }
  if (!prometheus::CheckMetricName(key)) {
    Drop(name, "not a valid metric name");
    return nullptr;
  }
  prometheus::MetricFamily f;
  f.name = key;
  f.help = std::string(help);
  f.type = type;
  index_.emplace(std::move(key), families_.size());
  families_.push_back(std::move(f));
  return &families_.back();
}

prometheus::ClientMetric* FamilyWriter::Sample(prometheus::MetricFamily& family,
                                               const Labels& labels, bool* created) {
  std::vector<prometheus::ClientMetric::Label> sorted;
  sorted.reserve(labels.size());
  for (const auto& [k, v] : labels) {
    // "le" and "quantile" belong to histogram and summary series.
    if (!prometheus::CheckLabelName(k) || k == "le" || k == "quantile") {
      Drop(family.name, "not a valid label name");
      return nullptr;
    }
    sorted.push_back({k, v});
  }
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].name == sorted[i - 1].name) {
      Drop(family.name, "a label name given twice");
      return nullptr;
    }
  }
  for (auto& m : family.metric) {
    if (m.label == sorted) {
      *created = false;
      return &m;
    }
  }
  family.metric.emplace_back();
  family.metric.back().label = std::move(sorted);
  *created = true;
  return &family.metric.back();
}

void FamilyWriter::Counter(std::string_view name, std::string_view help, const Labels& labels,
                           double value) {
  if (!std::isfinite(value) || value < 0) {
    Drop(name, "a counter must be finite and >= 0");
    return;
  }
  prometheus::MetricFamily* f = Family(name, help, prometheus::MetricType::Counter);
  if (f == nullptr) return;
  bool created = false;
  prometheus::ClientMetric* m = Sample(*f, labels, &created);
  if (m != nullptr) ScalarOf(*m, f->type) += value;
}

void FamilyWriter::Gauge(std::string_view name, std::string_view help, const Labels& labels,
                         double value) {
  prometheus::MetricFamily* f = Family(name, help, prometheus::MetricType::Gauge);
  if (f == nullptr) return;
  bool created = false;
  prometheus::ClientMetric* m = Sample(*f, labels, &created);
  if (m != nullptr) ScalarOf(*m, f->type) += value;
}

void FamilyWriter::Histogram(std::string_view name, std::string_view help, const Labels& labels,
                             const std::vector<double>& bounds,
                             const std::vector<uint64_t>& bucket_counts, uint64_t count,
                             double sum) {
  if (bounds.size() != bucket_counts.size()) {
    Drop(name, "a histogram needs one count per bound");
    return;
  }
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (std::isnan(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])) ||
        (i > 0 && bucket_counts[i] < bucket_counts[i - 1]) || bucket_counts[i] > count) {
      Drop(name, "histogram bounds must ascend and counts be cumulative, <= count");
      return;
    }
  }
  // The +Inf bucket is `count`; a bound of +Inf from the caller is that same bucket.
  size_t n = bounds.size();
  if (n > 0 && std::isinf(bounds[n - 1]) && bounds[n - 1] > 0) --n;
  prometheus::MetricFamily* f = Family(name, help, prometheus::MetricType::Histogram);
  if (f == nullptr) return;
  bool created = false;
  prometheus::ClientMetric* m = Sample(*f, labels, &created);
  if (m == nullptr) return;
  auto& h = m->histogram;
  if (created) {
    for (size_t i = 0; i < n; ++i) h.bucket.push_back({bucket_counts[i], bounds[i]});
    h.bucket.push_back({count, std::numeric_limits<double>::infinity()});
    h.sample_count = count;
    h.sample_sum = sum;
    return;
  }
  bool same = h.bucket.size() == n + 1;
  for (size_t i = 0; same && i < n; ++i) same = h.bucket[i].upper_bound == bounds[i];
  if (!same) {
    Drop(name, "histogram bounds differ from the first sample with these labels");
    return;
  }
  for (size_t i = 0; i < n; ++i) h.bucket[i].cumulative_count += bucket_counts[i];
  h.bucket[n].cumulative_count += count;
  h.sample_count += count;
  h.sample_sum += sum;
}

std::vector<prometheus::MetricFamily> FamilyWriter::Take() {
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families_.size());
  for (auto& f : families_) {
    if (!f.metric.empty()) out.push_back(std::move(f));
  }
  families_.clear();
  index_.clear();
  return out;
}

std::vector<prometheus::MetricFamily> CollectFamilies(const std::vector<CollectFn>& collectors) {
  FamilyWriter writer;
  for (const auto& fn : collectors) {
    if (!fn) continue;
    try {
      fn(writer);
    } catch (const std::exception& e) {
      DLB_LOG_EVERY(60000, spdlog::level::warn, "metrics: a collector failed: {}", e.what());
    }
  }
  return writer.Take();
}

std::string RenderText(const std::vector<CollectFn>& collectors) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, CollectFamilies(collectors));
  return out.str();
}

}  // namespace dlb::metrics
