// The `xdp:` section (config/config.h).
#include "config/config.h"
#include "config/document.h"

namespace dlb::config {

StatusOr<XdpSettings> ReadXdpSettings(const Document& doc) {
  return doc.Read([&](const Reader& r) {
    XdpSettings s;
    const YAML::Node x = doc.Section("xdp");
    if (x.IsNull()) return s;
    r.Map(x, "xdp");
    for (const auto& kv : x) {
      const std::string key = r.Scalar(kv.first, "xdp");
      const YAML::Node& v = kv.second;
      const std::string f = "xdp." + key;
      r.RefuseOtherIntervalUnit(kv.first, v, "xdp", key);
      if (key == "sync_interval_us") s.sync_interval_us = static_cast<uint32_t>(r.SyncIntervalUs(v, f));
      else if (key == "max_users") s.max_users = static_cast<uint32_t>(r.Int(v, f, 1, 1 << 26));
      else r.Fail(kv.first, f, "unknown key");
    }
    return s;
  });
}

}  // namespace dlb::config
