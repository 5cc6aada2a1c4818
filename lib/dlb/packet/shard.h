// A per-core table of buckets: fixed-size, cache-aligned, sized once at start from an
// injected allocator and never grown. Each 64-byte line holds four 16-byte entries; a
// key lives in one of two lines chosen by its keyed hash (two-choice hashing: bounded
// probing, two cache lines at most, both prefetched by the bulk lookup).
//
// An entry keeps a 32-bit tag of the key's hash and the bucket's TAT relative to the
// shard's epoch, with all 32 fractional bits, so that a decision made here is exactly
// dlb::Decide's on the absolute TAT (GCRA only ever looks at TAT - now). The key itself
// is not stored: two keys collide only if they agree on the line and the 32-bit tag,
// about 8 / 2^32 per new key, and the hash is keyed, so they cannot be made to.
//
// A full table never evicts a bucket that still holds level (that would reset a
// throttled user): entries whose bucket has drained are reused, and an entry may move
// to its key's other line to make room (one cuckoo step); a new key that still finds no
// entry is refused, and the rule's overflow policy applies.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "dlb/bucket.h"
#include "dlb/packet/allocator.h"
#include "dlb/status.h"

namespace dlb::packet {

inline constexpr size_t kEntriesPerLine = 4;
inline constexpr double kShardLoadFactor = 0.8;  // entries in use when sized for `users`

struct ShardEntry {
  uint32_t tag = 0;       // 0: free
  uint32_t tat_frac = 0;  // TAT's 32 fractional bits of a nanosecond
  uint64_t tat_ns = 0;    // TAT in ns past the epoch (62 bits); bit 62: the entry sits in
                          // its key's second line; bit 63: a bucket that never leaks
};
static_assert(sizeof(ShardEntry) == 16);

struct alignas(64) ShardLine {
  ShardEntry entries[kEntriesPerLine];
};
static_assert(sizeof(ShardLine) == 64);

// The sync state of one entry of a shard created `with_sync` (shard_sync.h), in an
// array parallel to the lines: 16 bytes per entry, so the four slots of a line fill one
// cache line. `avail` is shared by the entry's worker and the control thread (both
// change it with atomic read-modify-writes only); `demand` is written by the worker
// alone; `full_until_ns` by the control thread while it tracks the slot, and by the
// worker only when it registers the slot (the control thread does not track it then).
//   avail == kNotSynced: the entry has no sync state (a local bucket, a free entry, or a
//                        synced bucket not tracked by the control thread);
//   avail >= 0:          units the worker may admit without asking anyone;
//   avail <  0:          units admitted on credit, to be charged to the store.
// An entry whose avail is not kNotSynced is never reused for another key nor moved:
// the control thread names it by its index until it sets kNotSynced back.
inline constexpr int32_t kNotSynced = INT32_MIN;
struct SyncSlot {
  std::atomic<int32_t> avail{kNotSynced};
  std::atomic<uint32_t> demand{0};  // requests seen (admitted, limited or waiting), wrapping
  // Until this time (the engine's monotonic clock) the global bucket is known to have no
  // room for this core's next request of the rule: Redis reported it full at the slot's
  // last round and this core's share of what leaked since holds no room (shard_sync.h).
  // 0: not known full. Only this proof lets a request that finds no lease be limited;
  // without it the request waits for a lease.
  std::atomic<int64_t> full_until_ns{0};
};
static_assert(sizeof(SyncSlot) == 16);

// Where a key may live; computed once per request, then prefetched, then decided.
struct ShardProbe {
  uint32_t line_a = 0;
  uint32_t line_b = 0;
  uint32_t tag = 0;
};

struct ShardCounters {
  uint64_t decisions = 0;
  uint64_t new_keys = 0;
  uint64_t reused_entries = 0;  // an empty bucket's entry given to a new key
  uint64_t table_full = 0;
  uint64_t relocations = 0;     // entries moved to their other line to make room
};

class BucketShard {
 public:
  // Sized for `users` keys at kShardLoadFactor; `epoch_ns` is the clock's reading at
  // start: decisions must be asked at times >= it (a monotonic clock guarantees that).
  // `with_sync` adds the SyncSlot array (16 bytes per entry) that synced rules need.
  static StatusOr<BucketShard> Create(Allocator& allocator, uint64_t users, int64_t epoch_ns,
                                      bool with_sync = false);

  BucketShard(BucketShard&& other) noexcept;
  BucketShard& operator=(BucketShard&& other) noexcept;
  BucketShard(const BucketShard&) = delete;
  BucketShard& operator=(const BucketShard&) = delete;
  ~BucketShard();

  // `rule_key`: the rule's CompiledRule::bucket_key (a hash of its name, so that a
  // user's bucket of a rule stays the same across reloads that move the rule).
  ShardProbe Probe(uint64_t key_hash, uint64_t rule_key) const;
  void Prefetch(const ShardProbe& probe) const {
    __builtin_prefetch(&lines_[probe.line_a], 1, 3);
    __builtin_prefetch(&lines_[probe.line_b], 1, 3);
  }
  // Also the sync slots of both lines (a synced rule's decision reads them).
  void PrefetchSynced(const ShardProbe& probe) const {
    Prefetch(probe);
    if (sync_ != nullptr) {
      __builtin_prefetch(&sync_[size_t{probe.line_a} * kEntriesPerLine], 1, 3);
      __builtin_prefetch(&sync_[size_t{probe.line_b} * kEntriesPerLine], 1, 3);
    }
  }
  // Decides one request; false (and nothing decided) when a new key finds no entry.
  bool Decide(const ShardProbe& probe, const dlb::BucketProfile& profile, int64_t now_ns,
              int64_t cost, dlb::Decision& decision);
  // Decide for the data path, which needs a full decision only to answer a limited
  // request: an allowed one is not described (its level and remaining cost a 128-bit
  // division per request). The bucket changes exactly as with Decide; `limited` is
  // filled (as Decide would) only when the result is kLimited.
  // kWait (synced rules only, CoreSync::Admit): no lease for the request and nothing
  // proves the global bucket full. Neither admitted nor limited: a lease has been asked
  // for, and the head is to be refused without an answer and decided again when it is
  // retransmitted.
  enum class Outcome : uint8_t { kAllowed, kLimited, kTableFull, kWait };
  Outcome Admit(const ShardProbe& probe, const dlb::BucketProfile& profile, int64_t now_ns,
                int64_t cost, dlb::Decision& limited);

  // The bucket's state as dlb::Decide would see it (absolute TAT), for tests and the
  // sync layer; false if the key has no entry.
  bool Lookup(const ShardProbe& probe, int64_t now_ns, dlb::BucketState& state) const;

  // --- synced buckets (shards created with_sync; shard_sync.h) ---
  bool has_sync() const { return sync_ != nullptr; }
  // Whether any entry has ever been handed to the sync layer (the worker calls
  // EngageSync before it sets an entry's avail). Until then the sync slots need not be
  // read (nor fetched): with only local rules they never are.
  bool sync_engaged() const { return sync_engaged_; }
  void EngageSync() { sync_engaged_ = sync_ != nullptr; }
  // The index of the probe's entry, or of a new entry now holding its key (`fresh`);
  // -1 when a new key finds no entry. A fresh entry is an empty bucket.
  int64_t Claim(const ShardProbe& probe, int64_t now_ns, bool& fresh);
  SyncSlot& sync_slot(size_t index) const { return sync_[index]; }
  uint32_t entry_tag(size_t index) const {
    return lines_[index / kEntriesPerLine].entries[index % kEntriesPerLine].tag;
  }
  // The entry's bucket as this core's share of the rule's limit: capacity max(C/n, 1),
  // leak rate r/n (`participants` = n >= 1), i.e. `cost` x n units of the rule's profile
  // against a capacity of max(C, n) units. Used while a synced bucket is not leased
  // (failure policy `local`, a bucket the control thread cannot track).
  Outcome AdmitShare(size_t index, const dlb::BucketProfile& profile, int64_t now_ns, int64_t cost,
                     int64_t participants, dlb::Decision& limited);

  size_t lines() const { return lines_count_; }
  size_t entries() const { return lines_count_ * kEntriesPerLine; }
  size_t memory_bytes() const {
    return lines_count_ * (sizeof(ShardLine) + (sync_ ? kEntriesPerLine * sizeof(SyncSlot) : 0));
  }
  size_t CountUsed() const;  // O(table): for tests and statistics
  int64_t epoch_ns() const { return epoch_ns_; }
  const ShardCounters& counters() const { return counters_; }

 private:
  BucketShard(Allocator* allocator, ShardLine* lines, SyncSlot* sync, size_t count, int64_t epoch_ns)
      : allocator_(allocator), lines_(lines), sync_(sync), lines_count_(count), epoch_ns_(epoch_ns) {}
  bool Reusable(const ShardEntry& e, dlb::u128 now_fp) const;

  // The entry of the probe's key, or a new one for it (nullptr: table full).
  ShardEntry* Find(const ShardProbe& probe, dlb::u128 now_fp, bool& in_b, bool& fresh);
  ShardEntry* Relocate(const ShardProbe& probe, dlb::u128 now_fp, bool& slot_in_b);

  Allocator* allocator_ = nullptr;
  ShardLine* lines_ = nullptr;
  SyncSlot* sync_ = nullptr;
  size_t lines_count_ = 0;
  int64_t epoch_ns_ = 0;
  bool sync_engaged_ = false;
  ShardCounters counters_;
};

}  // namespace dlb::packet
