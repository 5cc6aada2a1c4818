#include "metrics/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "metrics/listen_address.h"

namespace dlb::metrics {

namespace {

std::string Where(std::string_view file, const YAML::Node& n) {
  std::ostringstream os;
  os << file;
  if (n.Mark().line >= 0) os << ':' << n.Mark().line + 1;
  return os.str();
}

Status CheckListen(const std::string& listen) {
  if (listen.empty()) return Status::Ok();
  auto a = ParseListenAddress(listen);
  return a.ok() ? Status::Ok() : a.status();
}

}  // namespace

StatusOr<MetricsConfig> LoadMetricsConfigYaml(std::string_view yaml_text,
                                              std::string_view file_name, MetricsConfig base) {
  MetricsConfig c = std::move(base);
  try {
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    if (!root.IsMap()) return c;
    const YAML::Node m = root["metrics"];
    if (!m || m.IsNull()) return c;
    if (!m.IsMap()) {
      return Status::InvalidArgument(Where(file_name, m) + ": metrics: must be a map");
    }
    for (const auto& kv : m) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "listen") {
        if (v.IsNull()) {
          c.listen.clear();
        } else if (v.IsScalar()) {
          c.listen = v.as<std::string>();
        } else {
          return Status::InvalidArgument(Where(file_name, v) +
                                         ": metrics.listen: must be \"host:port\" or \"\"");
        }
        if (Status s = CheckListen(c.listen); !s.ok()) {
          return Status::InvalidArgument(Where(file_name, v) + ": metrics.listen: " + s.message());
        }
      } else {
        return Status::InvalidArgument(Where(file_name, kv.first) + ": metrics." + key +
                                       ": unknown key");
      }
    }
    return c;
  } catch (const YAML::Exception& e) {
    std::ostringstream os;
    os << file_name;
    if (e.mark.line >= 0) os << ':' << e.mark.line + 1 << ':' << e.mark.column + 1;
    os << ": " << e.msg;
    return Status::InvalidArgument(os.str());
  }
}

StatusOr<MetricsConfig> LoadMetricsConfig(const std::string& path, MetricsConfig base) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadMetricsConfigYaml(ss.str(), path, std::move(base));
}

StatusOr<MetricsConfig> MetricsConfigFromEnvironment(MetricsConfig base) {
  MetricsConfig c = std::move(base);
  if (const char* cfg = std::getenv("DLB_CONFIG"); cfg != nullptr && *cfg != '\0') {
    auto loaded = LoadMetricsConfig(cfg, c);
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
