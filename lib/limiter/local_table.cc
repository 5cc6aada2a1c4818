#include "limiter/local_table.h"

#include <bit>
#include <cstring>

namespace dlb {

LocalTable::LocalTable(size_t max_buckets) : sip_(SipKey::Random()) {
  size_t per_stripe = (max_buckets + kStripes - 1) / kStripes;
  if (per_stripe < kProbeWindow) per_stripe = kProbeWindow;
  // Keep the load factor at most 1/2 at max_buckets so bounded probing rarely overflows.
  stripe_bits_ = std::bit_width(std::bit_ceil(per_stripe * 2) - 1);
  stripes_ = std::make_unique<Stripe[]>(kStripes);
  for (int i = 0; i < kStripes; ++i) {
    stripes_[i].slots = std::make_unique<Slot[]>(size_t{1} << stripe_bits_);
  }
}

uint64_t LocalTable::KeyOf(std::string_view user_id, std::string_view rule,
                           const BucketSpec& spec) const {
  uint64_t h = SipHash13(sip_, user_id);
  uint64_t ident;
  if (rule.empty()) {
    uint64_t words[2];
    words[0] = static_cast<uint64_t>(spec.capacity);
    std::memcpy(&words[1], &spec.leak_rate_per_s, 8);
    ident = SipHash13(SipKey{sip_.k1, sip_.k0}, words, sizeof words);
  } else {
    ident = SipHash13(SipKey{sip_.k1, sip_.k0}, rule);
  }
  // The rule part is the same for every user of a rule: XOR with it is a bijection
  // on the user part, so it adds no collisions between users.
  h ^= ident;
  return h == 0 ? 1 : h;  // 0 marks an unused slot
}

LocalTable::Slot* LocalTable::Find(Stripe& s, uint64_t key, int64_t now_ns, bool insert) {
  const size_t mask = (size_t{1} << stripe_bits_) - 1;
  // The stripe is chosen by the low 6 bits; the slot by the bits above them.
  size_t i = (key >> 6) & mask;
  Slot* reusable = nullptr;
  for (int probe = 0; probe < kProbeWindow; ++probe, i = (i + 1) & mask) {
    Slot& slot = s.slots[i];
    if (slot.key == key) return &slot;
    if (slot.key == 0) {
      if (!insert) return nullptr;
      // Keys are never removed from the middle of a window (only overwritten), so an
      // unused slot ends the search.
      Slot* target = reusable != nullptr ? reusable : &slot;
      target->key = key;
      target->state = {};
      return target;
    }
    if (reusable == nullptr && slot.leaks != 0 &&
        slot.state.tat_fp <= (static_cast<u128>(now_ns > 0 ? now_ns : 0) << kFracBits)) {
      reusable = &slot;
    }
  }
  if (!insert || reusable == nullptr) return nullptr;
  reusable->key = key;
  reusable->state = {};
  return reusable;
}

LocalTable::Outcome LocalTable::Decide(uint64_t key, const BucketProfile& profile,
                                       int64_t now_ns, int64_t cost, Decision* out) {
  Stripe& s = stripes_[key & (kStripes - 1)];
  std::lock_guard<std::mutex> lock(s.mu);
  Slot* slot = Find(s, key, now_ns, true);
  if (slot == nullptr) return Outcome::kOverflow;
  slot->leaks = profile.leaks() ? 1 : 0;
  *out = dlb::Decide(profile, slot->state, now_ns, cost);
  return Outcome::kDecided;
}

bool LocalTable::SetLevel(uint64_t key, const BucketProfile& profile, int64_t now_ns, double level,
                          bool raise_only) {
  Stripe& s = stripes_[key & (kStripes - 1)];
  std::lock_guard<std::mutex> lock(s.mu);
  Slot* slot = Find(s, key, now_ns, true);
  if (slot == nullptr) return false;
  slot->leaks = profile.leaks() ? 1 : 0;
  BucketState next;
  dlb::SetLevel(profile, next, now_ns, level);
  if (!raise_only || next.tat_fp > slot->state.tat_fp) slot->state = next;
  return true;
}

Decision LocalTable::Peek(uint64_t key, const BucketProfile& profile, int64_t now_ns) {
  Stripe& s = stripes_[key & (kStripes - 1)];
  std::lock_guard<std::mutex> lock(s.mu);
  Slot* slot = Find(s, key, now_ns, false);
  return dlb::Peek(profile, slot != nullptr ? slot->state : BucketState{}, now_ns);
}

void LocalTable::Erase(uint64_t key) {
  Stripe& s = stripes_[key & (kStripes - 1)];
  std::lock_guard<std::mutex> lock(s.mu);
  Slot* slot = Find(s, key, 0, false);
  // Forgetting = an empty leaking bucket: the slot stays in its window (keeping the
  // probe chain intact) and is reusable.
  if (slot != nullptr) {
    slot->state = {};
    slot->leaks = 1;
  }
}

}  // namespace dlb
