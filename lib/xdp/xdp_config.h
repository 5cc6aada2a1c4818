// The packet engine's configuration (lib/dlb/packet/config.h) compiled into the maps of
// the XDP program (dlb_xdp.h): ports as a bitmap, the identity header as folded words,
// rules with whole-nanosecond bucket parameters and the static pieces of their 429.
// The rules are validated by the engine's own compiler (RuleSet::Compile), so a file
// that the appliance accepts means the same here; limits that only the BPF side has
// (rule count, field lengths) are reported with the field's name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/packet/config.h"
#include "dlb/status.h"
#include "dlb_xdp.h"

namespace dlb::xdp {

// The longest identity the config may allow, as the engine's config (lib/packet/
// config_yaml.cc): IDs longer than DLB_XDP_MAX_ID are keyed by their digest.
inline constexpr uint32_t kMaxIdentityBytes = 4096;

struct XdpRuleInfo {
  std::string name;
  dlb::BucketSpec spec;
  int64_t cost = 1;
  dlb::Mode mode = dlb::Mode::kSynced;
};

struct XdpTables {
  dlb_xdp_config config{};
  std::vector<dlb_xdp_rule> rules;   // the default rule last
  std::vector<XdpRuleInfo> info;     // per rule, for the agent's sync
};

// `share` in (0, 1]: this host's part of each limit for the local bucket (1/N with N
// live participants).
StatusOr<XdpTables> CompileXdpTables(const packet::PacketConfig& config, double share);

// Rewrites the local bucket of every rule for a new share (the participant count
// changed); the rest stays as compiled.
void ApplyShare(XdpTables& tables, double share);

}  // namespace dlb::xdp
