#include "dlb/packet/rules.h"

#include <cmath>
#include <cstdio>

#include "dlb/path.h"
#include "dlb/retry_after.h"
#include "dlb/siphash.h"

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

}  // namespace

uint64_t RuleBucketKey(std::string_view name) { return dlb::SipHash13(dlb::SipKey{}, name); }

namespace {

StatusOr<CompiledRule> CompileRule(const RuleConfig& rc) {
  CompiledRule r;
  if (rc.name.empty() || rc.name.size() > kMaxRuleNameBytes) {
    return RuleError(rc.name, "name", "must be 1 to 64 characters");
  }
  for (char c : rc.name) {
    if (!IsNameChar(c)) return RuleError(rc.name, "name", "may contain only [A-Za-z0-9_.-]");
  }
  r.name = rc.name;
  r.bucket_key = RuleBucketKey(r.name);
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
  if (!rc.path_prefix.empty()) {
    const uint32_t flags = rc.fold_case ? DLB_PATH_FOLD_CASE : 0;
    const auto* p = reinterpret_cast<const dlb_path_u8*>(rc.path_prefix.data());
    const auto len = static_cast<dlb_path_u32>(rc.path_prefix.size());
    if (!dlb_path_is_normal(p, len, flags)) {
      std::string normal(rc.path_prefix.size() + 1, '\0');
      const int n = dlb_path_normalize(p, len, reinterpret_cast<dlb_path_u8*>(normal.data()),
                                       static_cast<dlb_path_u32>(normal.size()), flags);
      if (n < 0) return RuleError(rc.name, "path_prefix", "is not a path: '" + rc.path_prefix + "'");
      normal.resize(static_cast<size_t>(n));
      return RuleError(rc.name, "path_prefix",
                       "must be a normalized path (rules match normalized paths): write '" + normal +
                           "' for '" + rc.path_prefix + "'");
    }
  }
  r.path_prefix = rc.path_prefix;
  r.fold_case = rc.fold_case;
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
  uint64_t interval_ns = 0;  // T rounded up to whole ns; 0: never leaks
  if (profile->leaks()) {
    const dlb::u128 one = dlb::u128{1} << dlb::kFracBits;
    const dlb::u128 ns = (profile->interval_fp() + one - 1) >> dlb::kFracBits;
    interval_ns = ns == 0 ? 1 : ns > ~uint64_t{0} ? ~uint64_t{0} : static_cast<uint64_t>(ns);
  }
  r.no_bucket_retry_after_s = static_cast<int64_t>(dlb_no_bucket_retry_after_s(interval_ns));
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

dlb::Decision NoBucketDecision(const CompiledRule& rule) {
  dlb::Decision d;
  d.allowed = false;
  d.level = static_cast<double>(rule.profile.spec().capacity);
  d.remaining = 0;
  d.retry_after_ns = rule.profile.leaks() ? rule.no_bucket_retry_after_s * 1'000'000'000 : dlb::kNever;
  d.reset_after_ns = d.retry_after_ns;
  return d;
}

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

namespace {

// Whether `path` starts with `prefix`, ASCII letters of the path folded when `fold`
// (the prefix is folded already).
bool HasPathPrefix(std::string_view path, const std::string& prefix, bool fold) {
  if (path.size() < prefix.size()) return false;
  if (!fold) return path.substr(0, prefix.size()) == prefix;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (LowerChar(path[i]) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

uint16_t RuleSet::Match(const RequestHead& head) const {
  // Normalized without folding: a rule that folds compares its folded prefix with the
  // path's letters folded, which is the same as comparing the folded normalization
  // (folding changes no segment and escapes keep upper-case digits on both sides).
  std::string_view path = head.path;
  dlb_path_u8 buf[DLB_PATH_MAX_BYTES + 1];
  const auto* raw = reinterpret_cast<const dlb_path_u8*>(head.path.data());
  const auto raw_len = static_cast<dlb_path_u32>(head.path.size());
  if (!head.path_normal && !dlb_path_is_normal(raw, raw_len, 0)) {
    const int len = dlb_path_normalize(raw, raw_len, buf, sizeof buf, 0);
    if (len >= 0) path = std::string_view(reinterpret_cast<const char*>(buf), static_cast<size_t>(len));
  }
  const size_t n = rules_.size() - 1;
  for (size_t i = 0; i < n; ++i) {
    const CompiledRule& r = rules_[i];
    if (!r.any_method) {
      if (r.method != head.method) continue;
      if (r.method == Method::kOther && head.method_token != r.method_token) continue;
    }
    if (!r.path_prefix.empty() && !HasPathPrefix(path, r.path_prefix, r.fold_case)) continue;
    if (!r.host_lower.empty() && !HostEquals(head.host, r.host_lower)) continue;
    return static_cast<uint16_t>(i);
  }
  return static_cast<uint16_t>(n);
}

}  // namespace dlb::packet
