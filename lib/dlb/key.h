// Keys: the one Redis key layout shared by every form (docs/design.md, "Keys").
//
//   dlb:{<digest>}:<rule>
//
// <digest> is the first 108 bits of SHA-256 of the user ID in base64url (18
// characters): fixed length for any ID, binary safe, and collision resistant even
// against crafted IDs (unlike a seeded non-cryptographic hash): throttling a victim
// by a colliding ID takes a second preimage, 2^108 work, and accidental collisions
// among 10^9 users have a probability near 10^-15. The braces are a Redis
// Cluster hash tag, so all rules of one user live on one slot.
//
// Size: Redis allocates the key in jemalloc size classes; keys of at most 30 bytes
// cost 72 bytes per bucket (MEMORY USAGE with a TTL), 31..46 bytes cost 88. The
// 25-byte prefix leaves 5 bytes of rule name: derived rule names are 5 characters, and configured
// rule names of up to 5 characters keep a bucket at 72 bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace dlb {

inline constexpr size_t kDigestBytes = 15;
inline constexpr size_t kDigestChars = 18;
inline constexpr size_t kRuleNameForSpecChars = 5;
using UserDigest = std::array<uint8_t, kDigestBytes>;

std::array<uint8_t, 32> Sha256(std::string_view data);
UserDigest DigestUserId(std::string_view user_id);
// Appends "dlb:{<18 chars>}:<rule>" to `out` (no allocation if `out` has capacity).
void AppendRedisKey(const UserDigest& digest, std::string_view rule, std::string& out);
std::string RedisKey(std::string_view user_id, std::string_view rule);
// The user ID of a client known only by its address (a head without identity under
// `on_missing_identity: source_ip`): "ip:" and the address as inet_ntop writes it,
// "ip:10.0.0.1" / "ip:2001:db8::1". Every form keys an address by this one string, so
// one client has one bucket in Redis. `address` holds 4 bytes (ip_version 4) or 16
// (ip_version 6), network order; any other version gives "". The prefix keeps a header
// value "10.0.0.1" apart from the address; docs/identity.md says why a header value
// "ip:10.0.0.1" is no new power over that bucket.
std::string SourceAddressUserId(int ip_version, const uint8_t* address);

// The rule name of a spec when the caller names none (AllowRequest): 5 base64url
// characters of SHA-256("<capacity>:<leak rate %.17g>"), so that one (capacity, leak
// rate) is one bucket and different specs of one user are different buckets.
std::string RuleNameForSpec(int64_t capacity, double leak_rate_per_s);

}  // namespace dlb
