// The one config file of every form, loaded once (docs/configuration.md):
//
//   redis:, limiter:   the library's options (LimiterOptions; also the Redis of the
//                      appliance's and the XDP agent's lease sync)
//   metrics:           the exporter's listen address
//   appliance:         dlb-appliance's ports, queues and sync
//   xdp:               dlb-xdp's sync and table size
//   everything else    the packet settings and rules (dlb/packet/config_yaml.h)
//
// Every error names the file, the line and the field; an unknown section or key, a
// wrong type or a sync interval in another unit than microseconds is an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dlb/limiter.h"
#include "dlb/packet/config.h"
#include "dlb/status.h"
#include "metrics/config.h"

namespace dlb::config {

class Document;

// `appliance:` (dlb-appliance).
struct ApplianceSettings {
  std::string client_port;  // PCI address, vdev spec or EAL port name (required)
  std::string server_port;  // (required, another port)
  uint32_t workers = 0;     // worker lcores used; 0 = every worker lcore EAL was given
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  uint32_t mbufs = 0;                // mbuf pool size; 0 = sized from queues and descriptors
  uint32_t idle_backoff_us = 0;      // sleep after an empty poll of both ports; 0 = busy poll
  uint32_t sync_interval_us = 5000;  // lease sync rounds of synced and strict rules
  // A synced bucket that saw a request this recently keeps one leased unit per core, so
  // that a user's next request is admitted at once instead of after a round.
  uint32_t sync_standing_ms = 1000;
};

// `xdp:` (dlb-xdp). Its command-line flags, when given, win over these.
struct XdpSettings {
  uint32_t sync_interval_us = 5000;  // lease sync rounds
  uint32_t max_users = 65536;        // entries of the per-user bucket map
};

struct File {
  std::string path;
  LimiterOptions library;                      // redis:, limiter:
  metrics::MetricsConfig metrics;              // metrics:
  packet::PacketConfig packet;                 // the top-level packet settings, rules:, default_rule:
  std::optional<ApplianceSettings> appliance;  // absent without an `appliance:` section
  XdpSettings xdp;
};

// Reads and checks every section of the file at `path` (parsed once).
StatusOr<File> Load(const std::string& path);
// The same over YAML text; `file_name` names it in errors.
StatusOr<File> Parse(std::string_view yaml_text, std::string_view file_name);

// The sections' readers (config::Load runs them all).
StatusOr<std::optional<ApplianceSettings>> ReadApplianceSettings(const Document& doc);
StatusOr<XdpSettings> ReadXdpSettings(const Document& doc);

}  // namespace dlb::config
