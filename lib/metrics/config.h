// The `metrics:` section of the one config file (config/dlb.yaml), shared by the
// library's demo gateway, the appliance and the XDP agent:
//
//   metrics:
//     listen: 127.0.0.1:9464     # host:port of GET /metrics; "" = no exporter
//
// DLB_METRICS_LISTEN, when set (even to ""), wins over the file.
#pragma once

#include <string>
#include <string_view>

#include "dlb/status.h"

namespace dlb::config {
class Document;
}

namespace dlb::metrics {

inline constexpr char kDefaultListen[] = "127.0.0.1:9464";

struct MetricsConfig {
  // "host:port" (port 0 = any free port), ":port" = every IPv4 interface; empty = the
  // process exports nothing.
  std::string listen = kDefaultListen;
};

// Reads the `metrics:` section of a parsed file over `base`; other sections are left
// to their readers. Errors name the file, the line and the field.
StatusOr<MetricsConfig> ReadMetricsConfig(const config::Document& doc, MetricsConfig base = {});
// The same over YAML text.
StatusOr<MetricsConfig> LoadMetricsConfigYaml(std::string_view yaml_text,
                                              std::string_view file_name,
                                              MetricsConfig base = {});

// DLB_CONFIG's `metrics:` section (if DLB_CONFIG is set), then DLB_METRICS_LISTEN.
StatusOr<MetricsConfig> MetricsConfigFromEnvironment(MetricsConfig base = {});

}  // namespace dlb::metrics
