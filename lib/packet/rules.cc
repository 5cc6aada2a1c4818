#include "dlb/packet/rules.h"

#include <cmath>
#include <cstdio>

namespace dlb::packet {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

char LowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool HostEquals(std::string_view host, const std::string& lower) {
  if (host.size() != lower.size()) return false;
  for (size_t i = 0; i < host.size(); ++i) {
    if (LowerChar(host[i]) != lower[i]) return false;
  }
  return true;
}

Status RuleError(const std::string& rule, const char* field, const std::string& what) {
  return Status::InvalidArgument("rule '" + rule + "': " + field + ": " + what);
}

StatusOr<CompiledRule> CompileRule(const RuleConfig& rc) {
  CompiledRule r;
  if (rc.name.empty() || rc.name.size() > kMaxRuleNameBytes) {
    return RuleError(rc.name, "name", "must be 1 to 64 characters");
  }
  for (char c : rc.name) {
    if (!IsNameChar(c)) return RuleError(rc.name, "name", "may contain only [A-Za-z0-9_.-]");
  }
  r.name = rc.name;
  if (!rc.method.empty()) {
    for (char c : rc.method) {
      if (!(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && c != '-' && c != '_') {
        return RuleError(rc.name, "method", "must be a method token such as GET, got '" + rc.method + "'");
      }
    }
    r.any_method = false;
    r.method = MethodFromToken(rc.method);
    r.method_token = rc.method;
  }
  if (!rc.path_prefix.empty() && rc.path_prefix.front() != '/') {
    return RuleError(rc.name, "path_prefix", "must start with '/', got '" + rc.path_prefix + "'");
  }
  r.path_prefix = rc.path_prefix;
  for (char c : rc.host) r.host_lower.push_back(LowerChar(c));

  auto profile = dlb::BucketProfile::Make(rc.bucket);
  if (!profile.ok()) return RuleError(rc.name, "bucket", profile.status().message());
  if (Status s = dlb::ValidateCost(rc.bucket, rc.cost); !s.ok()) {
    return RuleError(rc.name, "cost", s.message());
  }
  if (profile->leaks()) {
    const long double drain_ns = static_cast<long double>(rc.bucket.capacity) * 1e9L /
                                 static_cast<long double>(rc.bucket.leak_rate_per_s);
    if (drain_ns >= static_cast<long double>(kMaxDrainNs)) {
      return RuleError(rc.name, "bucket",
                       "capacity / leak_rate_per_s exceeds 2^61 ns (73 years); use leak_rate 0 "
                       "for a lifetime quota");
    }
  }
  r.profile = *profile;
  r.cost = rc.cost;
  r.mode = rc.mode;
  r.action = rc.action;
  r.on_store_failure = rc.on_store_failure;
  r.on_table_full = rc.on_table_full;

  char buf[160];
  if (rc.bucket.leak_rate_per_s > 0) {
    const double w = std::ceil(static_cast<double>(rc.bucket.capacity) / rc.bucket.leak_rate_per_s);
    std::snprintf(buf, sizeof buf, "\"%s\";q=%lld;w=%.0f", rc.name.c_str(),
                  static_cast<long long>(rc.bucket.capacity), w < 1 ? 1.0 : w);
  } else {
    std::snprintf(buf, sizeof buf, "\"%s\";q=%lld", rc.name.c_str(),
                  static_cast<long long>(rc.bucket.capacity));
  }
  r.policy_header = buf;
  return r;
}

}  // namespace

StatusOr<RuleSet> RuleSet::Compile(const std::vector<RuleConfig>& rules,
                                   const RuleConfig& default_rule) {
  if (rules.size() + 1 > kMaxRules) {
    return Status::InvalidArgument("too many rules: at most 1023 plus the default");
  }
  RuleSet set;
  set.rules_.reserve(rules.size() + 1);
  for (const RuleConfig& rc : rules) {
    auto r = CompileRule(rc);
    if (!r.ok()) return r.status();
    for (const CompiledRule& prev : set.rules_) {
      if (prev.name == rc.name) return RuleError(rc.name, "name", "is used by two rules");
    }
    set.rules_.push_back(std::move(r).value());
  }
  auto d = CompileRule(default_rule);
  if (!d.ok()) return d.status();
  for (const CompiledRule& prev : set.rules_) {
    if (prev.name == default_rule.name) return RuleError(default_rule.name, "name", "is used by two rules");
  }
  set.rules_.push_back(std::move(d).value());
  return set;
}

uint16_t RuleSet::Match(const RequestHead& head) const {
  const size_t n = rules_.size() - 1;
  for (size_t i = 0; i < n; ++i) {
    const CompiledRule& r = rules_[i];
    if (!r.any_method) {
      if (r.method != head.method) continue;
      if (r.method == Method::kOther && head.method_token != r.method_token) continue;
    }
    if (!r.path_prefix.empty() && head.path.substr(0, r.path_prefix.size()) != r.path_prefix) {
      continue;
    }
    if (!r.host_lower.empty() && !HostEquals(head.host, r.host_lower)) continue;
    return static_cast<uint16_t>(i);
  }
  return static_cast<uint16_t>(n);
}

}  // namespace dlb::packet
