// SipHash-1-3 (one compression round, three finalization rounds), 64-bit output, under
// a 128-bit key. Keyed so that crafted identities or flows cannot be made to collide in
// a table without knowing the key (DESIGN.md, "Keys"); a seeded CRC or xxhash would not
// do, since their collisions hold for every seed. Inline: it runs once per packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dlb::packet {

struct SipKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
};

// A key from the OS's random source (getrandom); the appliance picks one per process.
SipKey RandomSipKey();

namespace siphash_detail {

inline uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct State {
  uint64_t v0, v1, v2, v3;
  inline void Round() {
    v0 += v1; v1 = Rotl(v1, 13); v1 ^= v0; v0 = Rotl(v0, 32);
    v2 += v3; v3 = Rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = Rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = Rotl(v1, 17); v1 ^= v2; v2 = Rotl(v2, 32);
  }
};

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // little-endian hosts only (x86-64, arm64 LE): as SipHash specifies
  return v;
}

}  // namespace siphash_detail

inline uint64_t SipHash13(const SipKey& key, const void* data, size_t len_bytes) {
  using siphash_detail::Load64;
  siphash_detail::State s{key.k0 ^ 0x736f6d6570736575ULL, key.k1 ^ 0x646f72616e646f6dULL,
                          key.k0 ^ 0x6c7967656e657261ULL, key.k1 ^ 0x7465646279746573ULL};
  const auto* p = static_cast<const uint8_t*>(data);
  const size_t whole = len_bytes & ~size_t{7};
  for (size_t i = 0; i < whole; i += 8) {
    const uint64_t m = Load64(p + i);
    s.v3 ^= m;
    s.Round();
    s.v0 ^= m;
  }
  uint64_t b = static_cast<uint64_t>(len_bytes) << 56;
  const uint8_t* tail = p + whole;
  switch (len_bytes & 7) {
    case 7: b |= uint64_t{tail[6]} << 48; [[fallthrough]];
    case 6: b |= uint64_t{tail[5]} << 40; [[fallthrough]];
    case 5: b |= uint64_t{tail[4]} << 32; [[fallthrough]];
    case 4: b |= uint64_t{tail[3]} << 24; [[fallthrough]];
    case 3: b |= uint64_t{tail[2]} << 16; [[fallthrough]];
    case 2: b |= uint64_t{tail[1]} << 8; [[fallthrough]];
    case 1: b |= uint64_t{tail[0]}; break;
    case 0: break;
  }
  s.v3 ^= b;
  s.Round();
  s.v0 ^= b;
  s.v2 ^= 0xff;
  s.Round();
  s.Round();
  s.Round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

// A bijective 64-bit mixer (the murmur3 finalizer): spreads a keyed hash combined with
// a small integer (a rule index) without a second SipHash pass. Being a bijection it
// cannot create collisions that the keyed hash did not already have.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace dlb::packet
