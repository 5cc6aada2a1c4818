// The `appliance:` section (config/config.h).
#include "config/config.h"
#include "config/document.h"

namespace dlb::config {

StatusOr<std::optional<ApplianceSettings>> ReadApplianceSettings(const Document& doc) {
  return doc.Read([&](const Reader& r) -> std::optional<ApplianceSettings> {
    const YAML::Node a = doc.Section("appliance");
    if (a.IsNull()) return std::nullopt;
    r.Map(a, "appliance");
    ApplianceSettings s;
    for (const auto& kv : a) {
      const std::string key = r.Scalar(kv.first, "appliance");
      const YAML::Node& v = kv.second;
      const std::string f = "appliance." + key;
      r.RefuseOtherIntervalUnit(kv.first, v, "appliance", key);
      if (key == "client_port") s.client_port = r.String(v, f);
      else if (key == "server_port") s.server_port = r.String(v, f);
      else if (key == "workers") s.workers = static_cast<uint32_t>(r.Int(v, f, 0, 128));
      else if (key == "rx_descriptors") s.rx_descriptors = static_cast<uint16_t>(r.Int(v, f, 64, 16384));
      else if (key == "tx_descriptors") s.tx_descriptors = static_cast<uint16_t>(r.Int(v, f, 64, 16384));
      else if (key == "mbufs") s.mbufs = static_cast<uint32_t>(r.Int(v, f, 0, 1 << 24));
      else if (key == "idle_backoff_us") s.idle_backoff_us = static_cast<uint32_t>(r.Int(v, f, 0, 100'000));
      else if (key == "sync_interval_us") s.sync_interval_us = static_cast<uint32_t>(r.SyncIntervalUs(v, f));
      else if (key == "sync_standing_ms")
        s.sync_standing_ms = static_cast<uint32_t>(r.Int(v, f, 0, 3'600'000));
      else r.Fail(kv.first, f, "unknown key");
    }
    if (s.client_port.empty()) r.Fail(a, "appliance.client_port", "is required");
    if (s.server_port.empty()) r.Fail(a, "appliance.server_port", "is required");
    if (s.client_port == s.server_port) r.Fail(a, "appliance.server_port", "must differ from client_port");
    return s;
  });
}

}  // namespace dlb::config
