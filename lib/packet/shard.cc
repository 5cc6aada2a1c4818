#include "dlb/packet/shard.h"

#include <cmath>
#include <cstring>
#include <new>
#include <utility>

#include "dlb/siphash.h"

namespace dlb::packet {
namespace {

constexpr uint64_t kNeverLeaksBit = uint64_t{1} << 63;
constexpr uint64_t kSecondLineBit = uint64_t{1} << 62;  // the entry sits in its line_b
constexpr uint64_t kTatMask = kSecondLineBit - 1;

// Lemire's multiply-shift: a uniform index in [0, n) from 32 random bits, without the
// power-of-two sizing that would waste up to half the memory.
inline uint32_t Range(uint32_t x, size_t n) {
  return static_cast<uint32_t>((uint64_t{x} * n) >> 32);
}

inline dlb::u128 Unpack(const ShardEntry& e) {
  return (static_cast<dlb::u128>(e.tat_ns & kTatMask) << dlb::kFracBits) | e.tat_frac;
}

inline void Pack(ShardEntry& e, dlb::u128 tat_fp, bool leaks, bool second_line) {
  // Rules bound C*T below 2^61 ns and the epoch keeps now below 2^61 ns for 73 years
  // of uptime, so the integer part fits in 62 bits.
  e.tat_ns = static_cast<uint64_t>(tat_fp >> dlb::kFracBits) | (leaks ? 0 : kNeverLeaksBit) |
             (second_line ? kSecondLineBit : 0);
  e.tat_frac = static_cast<uint32_t>(tat_fp);
}

inline uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// line_b = line_a + offset (mod lines), the offset a function of the tag alone: an
// entry's other line is computable from where it sits and its tag, so that entries can
// be moved to make room (cuckoo hashing with partial keys) without storing the key.
inline uint32_t AltOffset(uint32_t tag, size_t lines) {
  return 1 + Range(Mix32(tag), lines - 1);
}

}  // namespace

// An entry whose bucket is empty at `now_fp` can be given to another key: forgetting an
// empty bucket changes no decision (a fresh bucket is an empty one). An entry the sync
// layer holds (avail != kNotSynced) is named by its index: never reused while held.
// The sync slot is read last: it sits in another array, a cache line the lookup of a
// local rule has not fetched, and only a drained bucket needs the answer.
bool BucketShard::Reusable(const ShardEntry& e, dlb::u128 now_fp) const {
  if (e.tag == 0) return true;
  if (e.tat_ns & kNeverLeaksBit) return false;  // a quota: its count is its state
  if (Unpack(e) > now_fp) return false;
  if (sync_engaged_) {
    const size_t index = static_cast<size_t>(&e - &lines_[0].entries[0]);
    if (sync_[index].avail.load(std::memory_order_acquire) != kNotSynced) return false;
  }
  return true;
}

StatusOr<BucketShard> BucketShard::Create(Allocator& allocator, uint64_t users, int64_t epoch_ns,
                                          bool with_sync) {
  if (users == 0 || users > (uint64_t{1} << 32)) {
    return Status::InvalidArgument("shard users must be in [1, 2^32]");
  }
  size_t count = static_cast<size_t>(
      std::ceil(static_cast<double>(users) / (kEntriesPerLine * kShardLoadFactor)));
  if (count < 2) count = 2;  // two distinct lines per key
  void* mem = allocator.Allocate(count * sizeof(ShardLine), alignof(ShardLine));
  if (mem == nullptr) return Status::Unavailable("shard: allocation failed");
  std::memset(mem, 0, count * sizeof(ShardLine));
  SyncSlot* sync = nullptr;
  if (with_sync) {
    void* smem = allocator.Allocate(count * kEntriesPerLine * sizeof(SyncSlot), 64);
    if (smem == nullptr) {
      allocator.Free(mem);
      return Status::Unavailable("shard: sync slot allocation failed");
    }
    sync = static_cast<SyncSlot*>(smem);
    for (size_t i = 0; i < count * kEntriesPerLine; ++i) new (&sync[i]) SyncSlot();
  }
  return BucketShard(&allocator, static_cast<ShardLine*>(mem), sync, count, epoch_ns);
}

BucketShard::BucketShard(BucketShard&& o) noexcept
    : allocator_(std::exchange(o.allocator_, nullptr)),
      lines_(std::exchange(o.lines_, nullptr)),
      sync_(std::exchange(o.sync_, nullptr)),
      lines_count_(std::exchange(o.lines_count_, 0)),
      epoch_ns_(o.epoch_ns_),
      sync_engaged_(std::exchange(o.sync_engaged_, false)),
      counters_(o.counters_) {}

BucketShard& BucketShard::operator=(BucketShard&& o) noexcept {
  if (this != &o) {
    if (lines_ != nullptr) allocator_->Free(lines_);
    if (sync_ != nullptr) allocator_->Free(sync_);
    allocator_ = std::exchange(o.allocator_, nullptr);
    lines_ = std::exchange(o.lines_, nullptr);
    sync_ = std::exchange(o.sync_, nullptr);
    lines_count_ = std::exchange(o.lines_count_, 0);
    epoch_ns_ = o.epoch_ns_;
    sync_engaged_ = std::exchange(o.sync_engaged_, false);
    counters_ = o.counters_;
  }
  return *this;
}

BucketShard::~BucketShard() {
  if (lines_ != nullptr) allocator_->Free(lines_);
  if (sync_ != nullptr) allocator_->Free(sync_);
}

ShardProbe BucketShard::Probe(uint64_t key_hash, uint64_t rule_key) const {
  // One keyed hash per identity; the rule's key is folded in by a bijective mixer, so
  // one user's buckets of different rules land independently. (The odd multiplier
  // spreads keys that are small integers, as tests use, as well as name hashes.)
  const uint64_t h = Mix64(key_hash ^ ((rule_key + 1) * 0x9e3779b97f4a7c15ULL));
  ShardProbe p;
  p.tag = static_cast<uint32_t>(h >> 32);
  if (p.tag == 0) p.tag = 1;
  p.line_a = Range(static_cast<uint32_t>(h), lines_count_);
  // offset in [1, lines): one conditional subtraction instead of a 64-bit division.
  p.line_b = p.line_a + AltOffset(p.tag, lines_count_);
  if (p.line_b >= lines_count_) p.line_b -= static_cast<uint32_t>(lines_count_);
  return p;
}

ShardEntry* BucketShard::Find(const ShardProbe& p, dlb::u128 now_fp, bool& in_b, bool& fresh) {
  ShardLine& a = lines_[p.line_a];
  ShardLine& b = lines_[p.line_b];
  fresh = false;
  in_b = false;
  for (ShardEntry& e : a.entries) {
    if (e.tag == p.tag && !(e.tat_ns & kSecondLineBit)) return &e;
  }
  for (ShardEntry& e : b.entries) {
    if (e.tag == p.tag && (e.tat_ns & kSecondLineBit)) {
      in_b = true;
      return &e;
    }
  }
  fresh = true;
  // A new key: the less loaded of its two lines (two-choice balancing keeps both lines
  // of a key from filling long before the table does).
  ShardEntry* free_a = nullptr;
  ShardEntry* free_b = nullptr;
  int n_a = 0;
  int n_b = 0;
  for (ShardEntry& e : a.entries) {
    if (Reusable(e, now_fp)) { if (!free_a) free_a = &e; ++n_a; }
  }
  for (ShardEntry& e : b.entries) {
    if (Reusable(e, now_fp)) { if (!free_b) free_b = &e; ++n_b; }
  }
  ShardEntry* slot = n_a >= n_b ? free_a : free_b;
  in_b = slot != nullptr && slot == free_b && n_b > n_a;
  if (slot == nullptr) {
    // Both lines hold buckets with level: move one of their entries to its other line
    // if that has room (one step of cuckoo displacement; nothing is ever forgotten).
    slot = Relocate(p, now_fp, in_b);
    if (slot == nullptr) ++counters_.table_full;
  }
  return slot;
}

bool BucketShard::Decide(const ShardProbe& p, const dlb::BucketProfile& profile, int64_t now_ns,
                         int64_t cost, dlb::Decision& d) {
  // Relative time: GCRA depends on TAT - now only, so shifting both by the epoch gives
  // dlb::Decide's decision exactly (checked by the equivalence test).
  const int64_t rel_ns = now_ns > epoch_ns_ ? now_ns - epoch_ns_ : 0;
  const dlb::u128 now_fp = static_cast<dlb::u128>(rel_ns) << dlb::kFracBits;
  bool in_b = false;
  bool fresh = false;
  ShardEntry* e = Find(p, now_fp, in_b, fresh);
  ++counters_.decisions;
  if (e == nullptr) return false;
  dlb::BucketState state{fresh ? dlb::u128{0} : Unpack(*e)};
  d = dlb::Decide(profile, state, rel_ns, cost);
  if (d.allowed) {
    if (fresh) {
      ++counters_.new_keys;
      if (e->tag != 0) ++counters_.reused_entries;
      e->tag = p.tag;
    }
    Pack(*e, state.tat_fp, profile.leaks(), in_b);
  }
  return true;
}

BucketShard::Outcome BucketShard::Admit(const ShardProbe& p, const dlb::BucketProfile& profile,
                                        int64_t now_ns, int64_t cost, dlb::Decision& limited) {
  const int64_t rel_ns = now_ns > epoch_ns_ ? now_ns - epoch_ns_ : 0;
  const dlb::u128 now_fp = static_cast<dlb::u128>(rel_ns) << dlb::kFracBits;
  bool in_b = false;
  bool fresh = false;
  ShardEntry* e = Find(p, now_fp, in_b, fresh);
  ++counters_.decisions;
  if (e == nullptr) return Outcome::kTableFull;
  const dlb::u128 tat_fp = fresh ? dlb::u128{0} : Unpack(*e);
  // dlb::Decide's admission test and update (lib/core/bucket.cc), without describing
  // the decision; the shard test checks that both agree.
  const dlb::u128 now = (!profile.leaks() || rel_ns <= 0) ? 0 : now_fp;
  const dlb::u128 base = tat_fp > now ? tat_fp : now;
  // One unit (the usual cost) needs no 128-bit multiplication.
  const dlb::u128 want =
      base - now + (cost == 1 ? profile.interval_fp() : profile.interval_fp() * static_cast<dlb::u128>(cost));
  if (want > profile.capacity_fp()) {
    dlb::BucketState state{tat_fp};  // a rejection leaves it as it is
    limited = dlb::Decide(profile, state, rel_ns, cost);
    return Outcome::kLimited;
  }
  if (fresh) {
    ++counters_.new_keys;
    if (e->tag != 0) ++counters_.reused_entries;
    e->tag = p.tag;
  }
  Pack(*e, now + want, profile.leaks(), in_b);
  return Outcome::kAllowed;
}

ShardEntry* BucketShard::Relocate(const ShardProbe& p, dlb::u128 now_fp, bool& slot_in_b) {
  for (const uint32_t line : {p.line_a, p.line_b}) {
    for (ShardEntry& victim : lines_[line].entries) {
      if (sync_engaged_ &&
          sync_[static_cast<size_t>(&victim - &lines_[0].entries[0])].avail.load(std::memory_order_acquire) !=
              kNotSynced) {
        continue;  // held by the sync layer under this index
      }
      const bool in_b = victim.tat_ns & kSecondLineBit;
      const uint32_t offset = AltOffset(victim.tag, lines_count_);
      const uint32_t other = in_b ? static_cast<uint32_t>((line + lines_count_ - offset) % lines_count_)
                                  : static_cast<uint32_t>((line + offset) % lines_count_);
      for (ShardEntry& dest : lines_[other].entries) {
        if (!Reusable(dest, now_fp)) continue;
        if (dest.tag != 0) ++counters_.reused_entries;
        dest = victim;
        dest.tat_ns ^= kSecondLineBit;
        ++counters_.relocations;
        slot_in_b = line == p.line_b;
        victim = ShardEntry();
        return &victim;
      }
    }
  }
  return nullptr;
}

int64_t BucketShard::Claim(const ShardProbe& p, int64_t now_ns, bool& fresh) {
  const int64_t rel_ns = now_ns > epoch_ns_ ? now_ns - epoch_ns_ : 0;
  const dlb::u128 now_fp = static_cast<dlb::u128>(rel_ns) << dlb::kFracBits;
  bool in_b = false;
  ShardEntry* e = Find(p, now_fp, in_b, fresh);
  ++counters_.decisions;
  if (e == nullptr) return -1;
  if (fresh) {
    ++counters_.new_keys;
    if (e->tag != 0) ++counters_.reused_entries;
    e->tag = p.tag;
    Pack(*e, 0, true, in_b);  // an empty bucket; AdmitShare sets the never-leaks bit
  }
  return static_cast<int64_t>(e - &lines_[0].entries[0]);
}

BucketShard::Outcome BucketShard::AdmitShare(size_t index, const dlb::BucketProfile& profile,
                                             int64_t now_ns, int64_t cost, int64_t participants,
                                             dlb::Decision& limited) {
  ShardEntry& e = lines_[index / kEntriesPerLine].entries[index % kEntriesPerLine];
  const bool in_b = e.tat_ns & kSecondLineBit;
  const int64_t rel_ns = now_ns > epoch_ns_ ? now_ns - epoch_ns_ : 0;
  const dlb::u128 now_fp = static_cast<dlb::u128>(rel_ns) << dlb::kFracBits;
  if (participants < 1) participants = 1;
  // (C/n, r/n) with cost 1 is (C, r) with cost n: the same TAT span C*T. A capacity
  // below one request is raised to one (n*T), so a share always admits something.
  const dlb::u128 tat_fp = Unpack(e);
  const dlb::u128 now = !profile.leaks() ? 0 : now_fp;
  const dlb::u128 base = tat_fp > now ? tat_fp : now;
  const dlb::u128 step = profile.interval_fp() * static_cast<dlb::u128>(cost) *
                         static_cast<dlb::u128>(participants);
  const dlb::u128 want = base - now + step;
  dlb::u128 cap = profile.capacity_fp();
  const dlb::u128 one = profile.interval_fp() * static_cast<dlb::u128>(participants);
  if (cap < one) cap = one;
  if (want > cap) {
    limited = dlb::Decision();
    limited.allowed = false;
    limited.level = static_cast<double>(profile.spec().capacity);
    limited.remaining = 0;
    if (!profile.leaks()) {
      limited.retry_after_ns = limited.reset_after_ns = dlb::kNever;
    } else {
      limited.retry_after_ns = static_cast<int64_t>(((want - cap) >> dlb::kFracBits) + 1);
      limited.reset_after_ns = static_cast<int64_t>(((base - now) >> dlb::kFracBits) + 1);
    }
    return Outcome::kLimited;
  }
  Pack(e, now + want, profile.leaks(), in_b);
  return Outcome::kAllowed;
}

bool BucketShard::Lookup(const ShardProbe& p, int64_t now_ns, dlb::BucketState& state) const {
  (void)now_ns;
  for (uint32_t line : {p.line_a, p.line_b}) {
    for (const ShardEntry& e : lines_[line].entries) {
      if (e.tag == p.tag && ((e.tat_ns & kSecondLineBit) != 0) == (line == p.line_b)) {
        const dlb::u128 rel = Unpack(e);
        // Absolute TAT: a leaking bucket's relative TAT shifted back by the epoch; a
        // quota's TAT is a count, not a time.
        state.tat_fp = (e.tat_ns & kNeverLeaksBit)
                           ? rel
                           : rel + (static_cast<dlb::u128>(epoch_ns_ > 0 ? epoch_ns_ : 0) << dlb::kFracBits);
        return true;
      }
    }
  }
  return false;
}

size_t BucketShard::CountUsed() const {
  size_t n = 0;
  for (size_t i = 0; i < lines_count_; ++i) {
    for (const ShardEntry& e : lines_[i].entries) n += e.tag != 0;
  }
  return n;
}

}  // namespace dlb::packet
