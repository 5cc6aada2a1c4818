// Rules compiled once when the config loads: a request head is matched against them in
// order (first match wins), falling back to the default rule. Matching compares bytes
// only; each compiled rule carries its bucket profile (fixed point, dlb/bucket.h) and
// the RateLimit-Policy header value it answers with, so nothing is formatted per packet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/packet/config.h"
#include "dlb/packet/http.h"
#include "dlb/status.h"

namespace dlb::packet {

inline constexpr size_t kMaxRules = 1024;
inline constexpr size_t kMaxRuleNameBytes = 64;

// What a user's shard bucket of a rule is keyed by besides the user: a hash of the
// rule's name, as the Redis key holds the name (dlb/key.h), so that a reload that
// reorders rules leaves every bucket on its rule. Unkeyed (the same in every process):
// the user's hash is the keyed part.
uint64_t RuleBucketKey(std::string_view name);

struct CompiledRule {
  std::string name;
  uint64_t bucket_key = 0;  // RuleBucketKey(name)
  bool any_method = true;
  Method method = Method::kOther;
  std::string method_token;     // compared when method == kOther
  std::string path_prefix;     // normalized (lower case if fold_case)
  bool fold_case = false;
  std::string host_lower;       // empty: any host
  dlb::BucketProfile profile;
  int64_t cost = 1;
  Mode mode = Mode::kSynced;
  Action action = Action::kReject;
  FailurePolicy on_store_failure = FailurePolicy::kLocal;
  OverflowPolicy on_table_full = OverflowPolicy::kLimit;
  // `"name";q=<capacity>;w=<seconds to drain a full bucket>` (w omitted for a bucket
  // that never leaks): the RateLimit-Policy value (IETF httpapi ratelimit headers).
  std::string policy_header;
  // Retry-After (s) of a head refused without a bucket (no identity under `limit`, a
  // full table under `limit`): dlb_no_bucket_retry_after_s (dlb/retry_after.h) of the
  // rule's emission interval, the value every form sends.
  int64_t no_bucket_retry_after_s = 1;
};

// The decision for a head of `rule` refused without a bucket: limited, nothing
// remaining, Retry-After rule.no_bucket_retry_after_s (never for a rule that never
// leaks).
dlb::Decision NoBucketDecision(const CompiledRule& rule);

class RuleSet {
 public:
  // Validates every rule (name, bucket spec, cost, method token) and compiles it. The
  // message names the rule and the field.
  static StatusOr<RuleSet> Compile(const std::vector<RuleConfig>& rules,
                                   const RuleConfig& default_rule);

  // The index of the first rule that matches the head; the default rule's otherwise.
  // Paths are compared normalized (dlb/path.h): a head whose path cannot be
  // normalized is malformed (kBadPath) before it gets here, and matches as its raw
  // path if it does. No allocation.
  uint16_t Match(const RequestHead& head) const;

  size_t size() const { return rules_.size(); }          // the default rule included
  uint16_t default_index() const { return static_cast<uint16_t>(rules_.size() - 1); }
  const CompiledRule& rule(uint16_t index) const { return rules_[index]; }

 private:
  std::vector<CompiledRule> rules_;  // the default rule last
};

// The largest C*T (ns) a compiled rule may have: the shards store a bucket's TAT as
// 63-bit nanoseconds past their epoch (shard.h), and a bucket that takes more than
// 2^61 ns (73 years) to drain is not a rate limit anyone means.
inline constexpr int64_t kMaxDrainNs = int64_t{1} << 61;

}  // namespace dlb::packet
