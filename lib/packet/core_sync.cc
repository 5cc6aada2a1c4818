// The worker side of ShardSync (dlb/packet/shard_sync.h): what a core does per
// request and per new bucket, lock-free and free of Redis, so that the packet engine,
// its fuzzers and benchmarks link without the control thread's Redis code.
#include <cstring>

#include "dlb/packet/shard_sync.h"

namespace dlb::packet {

CoreSync::CoreSync(SyncRegistration* ring, size_t ring_entries, int core)
    : ring_(ring), mask_(ring_entries - 1), core_(core) {}

bool CoreSync::Push(uint32_t slot, uint32_t tag, uint16_t rule, int32_t credit, IdentityKind kind,
                    const uint8_t* identity, size_t identity_len) {
  if (identity_len > kSyncIdentityBytes) {
    Bump(counters_.identity_too_long);
    return false;
  }
  const uint64_t head = head_.load(std::memory_order_relaxed);
  if (head - tail_.load(std::memory_order_acquire) > mask_) {
    Bump(counters_.ring_full);
    return false;
  }
  SyncRegistration& r = ring_[head & mask_];
  r.slot = slot;
  r.tag = tag;
  r.rule = rule;
  r.kind = kind;
  r.credit = credit;
  r.identity_len = static_cast<uint16_t>(identity_len);
  std::memcpy(r.identity, identity, identity_len);
  head_.store(head + 1, std::memory_order_release);
  Bump(counters_.registrations);
  return true;
}

bool CoreSync::Pop(SyncRegistration* out) {
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (tail == head_.load(std::memory_order_acquire)) return false;
  *out = ring_[tail & mask_];
  tail_.store(tail + 1, std::memory_order_release);
  return true;
}

void CoreSync::NoLease(const CompiledRule& rule, dlb::Decision& d) {
  // Redis gave this core no unit for the bucket: it is at (or near) its limit. A unit
  // leaks every T; the next round may lease it.
  d = dlb::Decision();
  d.allowed = false;
  d.level = static_cast<double>(rule.profile.spec().capacity);
  d.remaining = 0;
  if (!rule.profile.leaks()) {
    d.retry_after_ns = d.reset_after_ns = dlb::kNever;
  } else {
    const dlb::u128 t = rule.profile.interval_fp();
    d.retry_after_ns = static_cast<int64_t>(((t * static_cast<dlb::u128>(rule.cost)) >> dlb::kFracBits) + 1);
    d.reset_after_ns = static_cast<int64_t>((rule.profile.capacity_fp() >> dlb::kFracBits) + 1);
  }
}

BucketShard::Outcome CoreSync::Failed(BucketShard& shard, size_t slot, SyncSlot& s,
                                      const CompiledRule& rule, int64_t now_ns, dlb::Decision& limited) {
  // Store down: the rule's policy. Store up but the bucket untracked: its share.
  const FailurePolicy policy = store_down() ? rule.on_store_failure : FailurePolicy::kLocal;
  // Owed units are bounded so that a long outage at a high rate cannot wrap avail.
  constexpr int32_t kMaxOwed = int32_t{1} << 30;
  auto owe = [&] {
    int32_t a = s.avail.load(std::memory_order_acquire);
    while (a != kNotSynced && a > -kMaxOwed) {
      if (s.avail.compare_exchange_weak(a, a - static_cast<int32_t>(rule.cost), std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        return;
      }
    }
  };
  switch (policy) {
    case FailurePolicy::kOpen:
      Bump(counters_.open_admitted);
      owe();
      return BucketShard::Outcome::kAllowed;
    case FailurePolicy::kClosed:
      Bump(counters_.closed_limited);
      NoLease(rule, limited);
      return BucketShard::Outcome::kLimited;
    case FailurePolicy::kLocal:
      break;
  }
  const BucketShard::Outcome o = shard.AdmitShare(slot, rule.profile, now_ns, rule.cost,
                                                  participants_.load(std::memory_order_relaxed), limited);
  if (o == BucketShard::Outcome::kAllowed) {
    Bump(counters_.share_admitted);
    owe();
  } else {
    Bump(counters_.share_limited);
  }
  return o;
}

}  // namespace dlb::packet
