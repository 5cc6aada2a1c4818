#include "xdp_config.h"

#include <cmath>
#include <cstring>

#include "dlb/packet/reject.h"
#include "dlb/packet/rules.h"
#include "dlb/retry_after.h"

namespace dlb::xdp {
namespace {

static_assert(DLB_XDP_RETRY_MAX_S == DLB_RETRY_AFTER_MAX_S, "one Retry-After ceiling for every form");
static_assert(DLB_RETRY_AFTER_MAX_S <= 0xffffffffULL, "no_bucket_retry_s holds any Retry-After");

Status FieldError(const std::string& rule, const std::string& field, const std::string& what) {
  return Status::InvalidArgument("rule '" + rule + "': " + field + ": " + what);
}

// T in whole nanoseconds, rounded up: the program never admits more than the library.
uint64_t IntervalNs(const dlb::BucketProfile& p) {
  if (!p.leaks()) return 0;
  const dlb::u128 fp = p.interval_fp();
  const dlb::u128 one = dlb::u128{1} << dlb::kFracBits;
  dlb::u128 ns = (fp + one - 1) >> dlb::kFracBits;
  if (ns == 0) ns = 1;
  return static_cast<uint64_t>(ns);
}

void SetShare(dlb_xdp_rule& r, double share) {
  if (!(share > 0.0) || share > 1.0) share = 1.0;
  const double cap = std::floor(static_cast<double>(r.capacity) * share);
  r.local_capacity = cap < 1.0 ? 1 : static_cast<uint64_t>(cap);
  if (r.local_capacity < r.cost) r.local_capacity = r.cost;
  r.local_interval_ns =
      r.interval_ns == 0 ? 0 : static_cast<uint64_t>(std::ceil(static_cast<double>(r.interval_ns) / share));
}

}  // namespace

StatusOr<XdpTables> CompileXdpTables(const packet::PacketConfig& config, double share) {
  auto compiled = packet::RuleSet::Compile(config.rules, config.default_rule);
  if (!compiled.ok()) return compiled.status();
  const packet::RuleSet& rs = *compiled;
  if (rs.size() > DLB_XDP_MAX_RULES) {
    return Status::InvalidArgument("rules: at most " + std::to_string(DLB_XDP_MAX_RULES - 1) +
                                   " rules and the default fit the XDP program, got " +
                                   std::to_string(rs.size() - 1));
  }
  if (config.trusted_proxies != 0) {
    return Status::InvalidArgument(
        "trusted_proxies: the XDP program keys by the packet's source address only; set 0");
  }
  if (config.proxy_protocol != packet::ProxyProtocol::kOff) {
    return Status::InvalidArgument("proxy_protocol: the XDP program does not read PROXY headers; set off");
  }
  XdpTables t;
  dlb_xdp_config& c = t.config;
  for (uint16_t port : config.service_ports) c.port_bits[port >> 6] |= uint64_t{1} << (port & 63);
  const std::string& name = config.identity_header;
  if (name.empty() || name.size() > DLB_XDP_MAX_ID_NAME) {
    return Status::InvalidArgument("identity_header: the XDP program takes 1 to " +
                                   std::to_string(DLB_XDP_MAX_ID_NAME) + " characters, got '" +
                                   name + "'");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char ch = name[i];
    const bool letter = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
    c.id_name[i] = static_cast<__u8>(letter ? (ch | 0x20) : ch);
    c.id_fold[i] = letter ? 0x20 : 0;
    c.id_mask[i] = 0xff;
  }
  c.id_name_len = static_cast<__u32>(name.size());
  // IDs longer than a user key holds (DLB_XDP_MAX_ID) are keyed by their digest; a head
  // (and so an ID) is at most DLB_XDP_SCAN_BYTES in the program, whatever this says.
  if (config.max_identity_bytes < 1 || config.max_identity_bytes > kMaxIdentityBytes) {
    return Status::InvalidArgument("max_identity_bytes: the XDP program takes 1 to " +
                                   std::to_string(kMaxIdentityBytes) + ", got " +
                                   std::to_string(config.max_identity_bytes));
  }
  c.max_identity_bytes = config.max_identity_bytes;
  c.max_head_bytes = config.max_head_bytes;
  c.rule_count = static_cast<__u16>(rs.size());
  c.on_missing_identity = static_cast<__u8>(config.on_missing_identity);
  c.on_not_http = static_cast<__u8>(config.on_not_http);
  c.on_malformed_head = static_cast<__u8>(config.on_malformed_head);
  c.on_oversize_head = static_cast<__u8>(config.on_oversize_head);
  c.on_fragment = static_cast<__u8>(config.on_fragment);
  c.on_malformed_frame = static_cast<__u8>(config.on_malformed_frame);
  // The program follows at most 8 extension headers (a bounded loop): a config asking
  // for more is refused, not clamped.
  if (config.max_ipv6_extension_headers > 8) {
    return Status::InvalidArgument("max_ipv6_extension_headers: the XDP program follows at most 8, got " +
                                   std::to_string(config.max_ipv6_extension_headers));
  }
  c.max_ipv6_ext = config.max_ipv6_extension_headers;
  if (config.max_header_lines < 1 || config.max_header_lines > 1024) {
    return Status::InvalidArgument("max_header_lines: the XDP program takes 1 to 1024, got " +
                                   std::to_string(config.max_header_lines));
  }
  c.max_header_lines = static_cast<__u16>(config.max_header_lines);
  c.enabled = 1;

  for (uint16_t i = 0; i < rs.size(); ++i) {
    const packet::CompiledRule& cr = rs.rule(i);
    dlb_xdp_rule r{};
    if (!cr.any_method) {
      const std::string token = cr.method == packet::Method::kOther ? cr.method_token
                                                                      : packet::MethodName(cr.method);
      if (token.size() > DLB_XDP_MAX_METHOD) return FieldError(cr.name, "method", "longer than 24");
      std::memcpy(r.method, token.data(), token.size());
      r.method_len = static_cast<__u8>(token.size());
    }
    if (cr.path_prefix.size() > DLB_XDP_MAX_PREFIX) {
      return FieldError(cr.name, "path_prefix", "the XDP program takes at most 64 bytes");
    }
    // The program refuses targets whose path is not normal (lib/dlb/path.h) and
    // compares the rest with the prefix as they are, letters folded for a fold_case
    // rule: the prefix is written folded.
    for (size_t k = 0; k < cr.path_prefix.size(); ++k) {
      const char ch = cr.path_prefix[k];
      r.path_prefix[k] = static_cast<__u8>(cr.fold_case && ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch);
    }
    r.path_len = static_cast<__u8>(cr.path_prefix.size());
    r.fold_case = cr.fold_case ? 1 : 0;
    r.no_bucket_retry_s = static_cast<__u32>(cr.no_bucket_retry_after_s);
    if (cr.host_lower.size() > DLB_XDP_MAX_HOST) {
      return FieldError(cr.name, "host", "the XDP program takes at most 64 bytes");
    }
    std::memcpy(r.host, cr.host_lower.data(), cr.host_lower.size());
    r.host_len = static_cast<__u8>(cr.host_lower.size());
    r.mode = static_cast<__u8>(cr.mode);
    r.action = static_cast<__u8>(cr.action);
    r.on_store_failure = static_cast<__u8>(cr.on_store_failure);
    r.on_table_full = static_cast<__u8>(cr.on_table_full);
    r.capacity = static_cast<__u64>(cr.profile.spec().capacity);
    r.interval_ns = IntervalNs(cr.profile);
    r.cost = static_cast<__u64>(cr.cost);
    SetShare(r, share);

    // The response of packet::FormatRejectResponse, cut at its numbers.
    const std::string body_prefix =
        "{\"error\":\"too_many_requests\",\"rule\":\"" + cr.name + "\",\"retry_after_s\":";
    const std::string pieces[DLB_XDP_TMPL_PIECES] = {
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: ",
        "\r\nRetry-After: ",
        "\r\nRateLimit-Policy: " + cr.policy_header + "\r\nRateLimit: \"" + cr.name + "\";r=",
        ";t=",
        "\r\nConnection: close\r\n\r\n" + body_prefix,
        "}\n",
    };
    size_t off = 0;
    for (int p = 0; p < DLB_XDP_TMPL_PIECES; ++p) {
      if (off + pieces[p].size() > DLB_XDP_TMPL_BYTES) {
        return FieldError(cr.name, "name", "the 429 response does not fit the XDP template");
      }
      std::memcpy(r.tmpl + off, pieces[p].data(), pieces[p].size());
      r.tmpl_off[p] = static_cast<__u16>(off);
      r.tmpl_len[p] = static_cast<__u16>(pieces[p].size());
      off += pieces[p].size();
    }
    r.body_static_len = static_cast<__u16>(body_prefix.size() + 2);
    t.rules.push_back(r);
    t.info.push_back({.name = cr.name, .spec = cr.profile.spec(), .cost = cr.cost, .mode = cr.mode});
  }
  return t;
}

void ApplyShare(XdpTables& tables, double share) {
  for (dlb_xdp_rule& r : tables.rules) SetShare(r, share);
}

}  // namespace dlb::xdp
