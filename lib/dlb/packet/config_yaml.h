// The packet engine's configuration from YAML (control plane, start-up and reload).
// Every error names the file, the line and column, and the field:
//   "rules.yaml:12:5: rules[1].leak_rate_per_s: must be a number >= 0, got 'fast'".
// Unknown keys are errors, so that a typo never silently leaves a default in place.
// The packet settings are the file's top-level keys; the file's sections
// (kNonPacketSections) are skipped here and read by their own readers: config::Load
// (lib/config/config.h) reads the whole file once for every program.
//
//   service_ports: [80, 8080]
//   identity_header: X-User-ID
//   on_missing_identity: source_ip      # source_ip | limit | pass
//   max_head_bytes: 8192
//   flow_idle_timeout_s: 120
//   shard_users: 1000000
//   rules:
//     - name: payments
//       method: POST
//       path_prefix: /v1/payments
//       host: api.example.com
//       capacity: 10
//       leak_rate_per_s: 1
//       mode: synced                    # strict | synced | local
//       action: reject                  # reject | drop | shadow
//       on_store_failure: local         # local | open | closed
//       on_table_full: limit            # limit (default) | allow
//   default_rule: {name: default, capacity: 100, leak_rate_per_s: 10}
#pragma once

#include <string>
#include <string_view>

#include "dlb/packet/config.h"
#include "dlb/status.h"

namespace dlb::config {
class Document;
}

namespace dlb::packet {

// The top-level keys of the file that are sections of other readers.
inline constexpr const char* kNonPacketSections[] = {"redis", "limiter", "metrics", "appliance", "xdp"};

// The packet settings and rules of a parsed file; the same over YAML text.
StatusOr<PacketConfig> ReadPacketConfig(const config::Document& doc);
StatusOr<PacketConfig> LoadPacketConfigYaml(std::string_view yaml_text, std::string_view file_name);

}  // namespace dlb::packet
