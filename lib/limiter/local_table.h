// The library's in-process bucket table: mode `local`, and the `local` failure policy
// while the store is down.
//
// Striped open addressing: 64 stripes, each a mutex and a power-of-two array of
// 32-byte slots probed linearly within a bounded window. Keys are 64-bit SipHash-1-3
// values under a random per-process key, so crafted IDs cannot pile into one window.
// A slot whose bucket has drained is reused; a bucket that still holds level is never
// evicted (that would reset a throttled user), so a key that finds no slot in its
// window is refused and counted as overflow.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "dlb/bucket.h"
#include "dlb/siphash.h"

namespace dlb {

class LocalTable {
 public:
  static constexpr int kStripes = 64;
  static constexpr int kProbeWindow = 16;

  explicit LocalTable(size_t max_buckets);
  LocalTable(const LocalTable&) = delete;
  LocalTable& operator=(const LocalTable&) = delete;

  // The table key of (user, bucket identity).
  uint64_t KeyOf(std::string_view user_id, std::string_view rule, const BucketSpec& spec) const;

  enum class Outcome { kDecided, kOverflow };
  Outcome Decide(uint64_t key, const BucketProfile& profile, int64_t now_ns, int64_t cost,
                 Decision* out);
  // Sets a bucket's level (creating it if there is room; false if there is none): the
  // local copy of the level a store reply reported, from which the failure policy
  // starts when the store does not answer. `raise_only`: never lowers a bucket's level
  // (a level learned while this process was admitting on its own lacks those requests).
  bool SetLevel(uint64_t key, const BucketProfile& profile, int64_t now_ns, double level,
                bool raise_only = false);
  // The bucket without a request (a fresh bucket if the key is unknown).
  Decision Peek(uint64_t key, const BucketProfile& profile, int64_t now_ns);
  void Erase(uint64_t key);
  size_t capacity() const { return size_t{kStripes} << stripe_bits_; }

 private:
  struct alignas(32) Slot {
    uint64_t key;         // 0 = never used
    uint64_t leaks;       // 1 if the bucket leaks (drained slots may then be reused)
    BucketState state;
  };
  static_assert(sizeof(Slot) == 32, "two slots per cache line");
  struct alignas(64) Stripe {
    std::mutex mu;
    std::unique_ptr<Slot[]> slots;
  };
  Slot* Find(Stripe& s, uint64_t key, int64_t now_ns, bool insert);

  SipKey sip_;
  int stripe_bits_ = 0;
  std::unique_ptr<Stripe[]> stripes_;
};

}  // namespace dlb
