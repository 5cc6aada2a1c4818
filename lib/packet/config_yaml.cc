#include "dlb/packet/config_yaml.h"

#include <cctype>
#include <string>

#include "config/document.h"
#include "dlb/packet/rules.h"

namespace dlb::packet {
namespace {

using config::Reader;

bool IsOtherSection(const std::string& key) {
  for (const char* section : kNonPacketSections) {
    if (key == section) return true;
  }
  return false;
}

constexpr std::pair<const char*, bool> kBools[] = {{"true", true}, {"false", false}};
constexpr std::pair<const char*, Mode> kModes[] = {
    {"strict", Mode::kStrict}, {"synced", Mode::kSynced}, {"local", Mode::kLocal}};
constexpr std::pair<const char*, Action> kActions[] = {
    {"reject", Action::kReject}, {"drop", Action::kDrop}, {"shadow", Action::kShadow}};
constexpr std::pair<const char*, FailurePolicy> kFailure[] = {
    {"local", FailurePolicy::kLocal}, {"open", FailurePolicy::kOpen}, {"closed", FailurePolicy::kClosed}};
constexpr std::pair<const char*, OverflowPolicy> kOverflow[] = {
    {"allow", OverflowPolicy::kAllow}, {"limit", OverflowPolicy::kLimit}};
constexpr std::pair<const char*, MissingIdentityPolicy> kMissing[] = {
    {"source_ip", MissingIdentityPolicy::kSourceIp},
    {"limit", MissingIdentityPolicy::kLimit},
    {"pass", MissingIdentityPolicy::kPass}};
constexpr std::pair<const char*, HeadPolicy> kHeadPolicies[] = {
    {"forward", HeadPolicy::kForward}, {"drop", HeadPolicy::kDrop}, {"reset", HeadPolicy::kReset}};
constexpr std::pair<const char*, ProxyProtocol> kProxyProtocols[] = {
    {"off", ProxyProtocol::kOff}, {"v1", ProxyProtocol::kV1}, {"v2", ProxyProtocol::kV2}, {"any", ProxyProtocol::kAny}};
constexpr std::pair<const char*, FramePolicy> kFramePolicies[] = {
    {"forward", FramePolicy::kForward}, {"drop", FramePolicy::kDrop}};

RuleConfig ReadRule(const Reader& r, const YAML::Node& node, const std::string& field,
                    RuleConfig rule) {
  if (!node.IsMap()) r.Fail(node, field, "must be a map");
  for (const auto& kv : node) {
    const std::string key = r.Scalar(kv.first, field);
    const YAML::Node& v = kv.second;
    const std::string f = field + "." + key;
    if (key == "name") rule.name = r.String(v, f);
    else if (key == "method") rule.method = r.String(v, f);
    else if (key == "path_prefix") rule.path_prefix = r.String(v, f);
    else if (key == "host") rule.host = r.String(v, f);
    else if (key == "fold_case") rule.fold_case = r.Enum(v, f, kBools);
    else if (key == "capacity") rule.bucket.capacity = r.Int(v, f, 1, dlb::kMaxCapacity);
    else if (key == "leak_rate_per_s") rule.bucket.leak_rate_per_s = r.Number(v, f, 0, dlb::kMaxLeakRatePerS);
    else if (key == "cost") rule.cost = r.Int(v, f, 1, dlb::kMaxCapacity);
    else if (key == "mode") rule.mode = r.Enum(v, f, kModes);
    else if (key == "action") rule.action = r.Enum(v, f, kActions);
    else if (key == "on_store_failure") rule.on_store_failure = r.Enum(v, f, kFailure);
    else if (key == "on_table_full") rule.on_table_full = r.Enum(v, f, kOverflow);
    else r.Fail(kv.first, f, "unknown key");
  }
  // The compiler's checks (name syntax, spec, cost), reported at this rule's position.
  auto compiled = RuleSet::Compile({}, rule);
  if (!compiled.ok()) r.Fail(node, field, compiled.status().message());
  return rule;
}

PacketConfig Read(const Reader& r, const YAML::Node& root) {
  PacketConfig c;
  if (root.IsNull()) return c;
  if (!root.IsMap()) r.Fail(root, "(top level)", "must be a map");
  for (const auto& kv : root) {
    const std::string key = r.Scalar(kv.first, "(top level)");
    const YAML::Node& v = kv.second;
    // The other sections of the one file have their own readers (config::Load).
    if (IsOtherSection(key)) continue;
    if (key == "service_ports") {
      if (!v.IsSequence() || v.size() == 0) r.Fail(v, key, "must be a non-empty list of ports");
      c.service_ports.clear();
      for (size_t i = 0; i < v.size(); ++i) {
        c.service_ports.push_back(static_cast<uint16_t>(r.Int(v[i], key + "[" + std::to_string(i) + "]", 1, 65535)));
      }
    } else if (key == "identity_header") {
      c.identity_header = r.String(v, key);
      if (c.identity_header.empty()) r.Fail(v, key, "must not be empty");
      for (char ch : c.identity_header) {
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_')) {
          r.Fail(v, key, "must be a header name of [A-Za-z0-9_-]");
        }
      }
    } else if (key == "max_identity_bytes") {
      c.max_identity_bytes = static_cast<uint32_t>(r.Int(v, key, 1, 4096));
    } else if (key == "on_missing_identity") {
      c.on_missing_identity = r.Enum(v, key, kMissing);
    } else if (key == "trusted_proxies") {
      c.trusted_proxies = static_cast<uint8_t>(r.Int(v, key, 0, kMaxTrustedProxies));
    } else if (key == "proxy_protocol") {
      c.proxy_protocol = r.Enum(v, key, kProxyProtocols);
    } else if (key == "max_head_bytes") {
      c.max_head_bytes = static_cast<uint32_t>(r.Int(v, key, 64, 65536));
    } else if (key == "max_header_lines") {
      c.max_header_lines = static_cast<uint32_t>(r.Int(v, key, 1, 1024));
    } else if (key == "max_ipv6_extension_headers") {
      c.max_ipv6_extension_headers = static_cast<uint8_t>(r.Int(v, key, 0, 32));
    } else if (key == "on_not_http") {
      c.on_not_http = r.Enum(v, key, kHeadPolicies);
    } else if (key == "on_malformed_head") {
      c.on_malformed_head = r.Enum(v, key, kHeadPolicies);
    } else if (key == "on_oversize_head") {
      c.on_oversize_head = r.Enum(v, key, kHeadPolicies);
    } else if (key == "on_untracked_flow") {
      c.on_untracked_flow = r.Enum(v, key, kHeadPolicies);
      if (c.on_untracked_flow == HeadPolicy::kForward) r.Fail(v, key, "must be drop or reset");
    } else if (key == "on_fragment") {
      c.on_fragment = r.Enum(v, key, kFramePolicies);
    } else if (key == "on_malformed_frame") {
      c.on_malformed_frame = r.Enum(v, key, kFramePolicies);
    } else if (key == "verify_checksums") {
      c.verify_checksums = r.Enum(v, key, kBools);
    } else if (key == "max_flows") {
      c.max_flows = static_cast<uint32_t>(r.Int(v, key, 1, 1 << 26));
    } else if (key == "reassembly_buffers") {
      c.reassembly_buffers = static_cast<uint32_t>(r.Int(v, key, 0, 1 << 20));
    } else if (key == "flow_idle_timeout_s") {
      c.flow_idle_timeout_ns = static_cast<int64_t>(r.Number(v, key, 0.001, 86400.0) * 1e9);
    } else if (key == "partial_head_timeout_s") {
      c.partial_head_timeout_ns = static_cast<int64_t>(r.Number(v, key, 0.001, 86400.0) * 1e9);
    } else if (key == "shard_users") {
      c.shard_users = static_cast<uint64_t>(r.Int(v, key, 1, int64_t{1} << 32));
    } else if (key == "rules") {
      if (!v.IsSequence()) r.Fail(v, key, "must be a list of rules");
      for (size_t i = 0; i < v.size(); ++i) {
        RuleConfig rule;
        rule.name.clear();
        const std::string field = "rules[" + std::to_string(i) + "]";
        rule = ReadRule(r, v[i], field, rule);
        for (const RuleConfig& prev : c.rules) {
          if (prev.name == rule.name) r.Fail(v[i], field + ".name", "'" + rule.name + "' is used twice");
        }
        c.rules.push_back(std::move(rule));
      }
    } else if (key == "default_rule") {
      c.default_rule = ReadRule(r, v, key, c.default_rule);
    } else {
      r.Fail(kv.first, key, "unknown key");
    }
  }
  return c;
}

}  // namespace

StatusOr<PacketConfig> ReadPacketConfig(const config::Document& doc) {
  auto c = doc.Read([&](const Reader& r) { return Read(r, doc.root()); });
  if (!c.ok()) return c.status();
  if (auto rules = RuleSet::Compile(c->rules, c->default_rule); !rules.ok()) {
    return Status::InvalidArgument(doc.file() + ": " + rules.status().message());
  }
  return c;
}

StatusOr<PacketConfig> LoadPacketConfigYaml(std::string_view yaml_text, std::string_view file_name) {
  auto doc = config::Document::Parse(yaml_text, file_name);
  if (!doc.ok()) return doc.status();
  return ReadPacketConfig(*doc);
}

}  // namespace dlb::packet
