// SipHash-1-3 (64-bit output) under a 128-bit key: the keyed hash of every local table
// (per-core shards, the library's in-process table). Keys are random per process, so
// crafted user IDs cannot be made to collide (a seeded CRC or xxhash does not resist
// that: colliding inputs collide for every seed).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace dlb {

struct SipKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
  static SipKey Random();   // from getrandom(2)
};

namespace siphash_detail {
inline uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
inline void Round(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1; v1 = Rotl(v1, 13); v1 ^= v0; v0 = Rotl(v0, 32);
  v2 += v3; v3 = Rotl(v3, 16); v3 ^= v2;
  v0 += v3; v3 = Rotl(v3, 21); v3 ^= v0;
  v2 += v1; v1 = Rotl(v1, 17); v1 ^= v2; v2 = Rotl(v2, 32);
}
inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);   // little-endian hosts only (x86-64, arm64)
  return v;
}
}  // namespace siphash_detail

inline uint64_t SipHash13(const SipKey& key, const void* data, size_t len) {
  using namespace siphash_detail;
  uint64_t v0 = 0x736f6d6570736575ULL ^ key.k0;
  uint64_t v1 = 0x646f72616e646f6dULL ^ key.k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ key.k0;
  uint64_t v3 = 0x7465646279746573ULL ^ key.k1;
  const auto* p = static_cast<const uint8_t*>(data);
  const size_t blocks = len / 8;
  for (size_t i = 0; i < blocks; ++i, p += 8) {
    const uint64_t m = Load64(p);
    v3 ^= m;
    Round(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t b = static_cast<uint64_t>(len) << 56;
  switch (len & 7) {
    case 7: b |= uint64_t{p[6]} << 48; [[fallthrough]];
    case 6: b |= uint64_t{p[5]} << 40; [[fallthrough]];
    case 5: b |= uint64_t{p[4]} << 32; [[fallthrough]];
    case 4: b |= uint64_t{p[3]} << 24; [[fallthrough]];
    case 3: b |= uint64_t{p[2]} << 16; [[fallthrough]];
    case 2: b |= uint64_t{p[1]} << 8; [[fallthrough]];
    case 1: b |= uint64_t{p[0]}; break;
    case 0: break;
  }
  v3 ^= b;
  Round(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  Round(v0, v1, v2, v3);
  Round(v0, v1, v2, v3);
  Round(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

inline uint64_t SipHash13(const SipKey& key, std::string_view s) {
  return SipHash13(key, s.data(), s.size());
}

// A bijective 64-bit mixer (the murmur3 finalizer): spreads a keyed hash combined with
// a rule's name hash without a second SipHash pass over the identity. Being a bijection it
// cannot create collisions that the keyed hash did not already have.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace dlb
