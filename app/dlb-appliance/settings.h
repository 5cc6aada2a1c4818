// The appliance's own settings: the `appliance:` section of the one YAML file that also
// holds the packet engine's settings and rules (dlb/packet/config_yaml.h) and the
// library's `redis:` / `limiter:` sections and the `metrics:` section (listen address).
//
//   appliance:
//     client_port: net_af_packet0,iface=veth1   # PCI address, vdev spec, or an EAL port name
//     server_port: 0000:03:00.0
//     workers: 2               # worker lcores used (0: every worker lcore EAL was given)
//     rx_descriptors: 1024
//     tx_descriptors: 1024
//     mbufs: 0                 # mbuf pool size (0: sized from queues and descriptors)
//     idle_backoff_us: 0       # sleep after an empty poll of both ports (0: busy poll)
//     sync_interval_ms: 5      # lease sync rounds of synced and strict rules (Redis from
//                              # the `redis:` section)
//     sync_standing_ms: 1000   # a synced bucket that saw a request this recently keeps
//                              # one leased unit per core, so that a user's next request
//                              # is admitted at once instead of after a round
#pragma once

#include <cstdint>
#include <string>

#include "dlb/status.h"

namespace dlb::appliance {

struct Settings {
  std::string client_port;
  std::string server_port;
  uint32_t workers = 0;
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  uint32_t mbufs = 0;
  uint32_t idle_backoff_us = 0;
  uint32_t sync_interval_ms = 5;
  uint32_t sync_standing_ms = 1000;
};

// Reads the `appliance:` section of `yaml_text`. Errors name the file, line and field.
StatusOr<Settings> ParseSettings(const std::string& yaml_text, const std::string& file_name);

// `yaml_text` with the `appliance:` section's lines blanked (line numbers kept), for the
// packet engine's reader, which refuses keys it does not know.
std::string WithoutApplianceSection(const std::string& yaml_text);

}  // namespace dlb::appliance
