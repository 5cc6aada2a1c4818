#include "metrics/config.h"

#include <cstdlib>

#include "config/document.h"
#include "metrics/listen_address.h"

namespace dlb::metrics {

namespace {

Status CheckListen(const std::string& listen) {
  if (listen.empty()) return Status::Ok();
  auto a = ParseListenAddress(listen);
  return a.ok() ? Status::Ok() : a.status();
}

}  // namespace

StatusOr<MetricsConfig> ReadMetricsConfig(const config::Document& doc, MetricsConfig base) {
  return doc.Read([&](const config::Reader& r) {
    MetricsConfig c = std::move(base);
    const YAML::Node m = doc.Section("metrics");
    if (m.IsNull()) return c;
    r.Map(m, "metrics");
    for (const auto& kv : m) {
      const std::string key = r.Scalar(kv.first, "metrics");
      const YAML::Node& v = kv.second;
      if (key != "listen") r.Fail(kv.first, "metrics." + key, "unknown key");
      if (v.IsNull()) {
        c.listen.clear();
      } else if (v.IsScalar()) {
        c.listen = v.Scalar();
      } else {
        r.Fail(v, "metrics.listen", "must be \"host:port\" or \"\"");
      }
      if (Status s = CheckListen(c.listen); !s.ok()) r.Fail(v, "metrics.listen", s.message());
    }
    return c;
  });
}

StatusOr<MetricsConfig> LoadMetricsConfigYaml(std::string_view yaml_text, std::string_view file_name,
                                              MetricsConfig base) {
  auto doc = config::Document::Parse(yaml_text, file_name);
  if (!doc.ok()) return doc.status();
  return ReadMetricsConfig(*doc, std::move(base));
}

StatusOr<MetricsConfig> MetricsConfigFromEnvironment(MetricsConfig base) {
  MetricsConfig c = std::move(base);
  if (const char* cfg = std::getenv("DLB_CONFIG"); cfg != nullptr && *cfg != '\0') {
    auto doc = config::Document::ReadFile(cfg);
    if (!doc.ok()) return doc.status();
    auto loaded = ReadMetricsConfig(*doc, c);
    if (!loaded.ok()) return loaded.status();
    c = *loaded;
  }
  if (const char* v = std::getenv("DLB_METRICS_LISTEN"); v != nullptr) {
    c.listen = v;
    if (Status s = CheckListen(c.listen); !s.ok()) {
      return Status::InvalidArgument("DLB_METRICS_LISTEN: " + s.message());
    }
  }
  return c;
}

}  // namespace dlb::metrics
