#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

#include "dlb/key.h"

namespace dlb {

UserDigest DigestUserId(std::string_view user_id) {
  const auto full = Sha256(user_id);
  UserDigest d;
  std::memcpy(d.data(), full.data(), d.size());
  return d;
}

namespace {

// Whole groups of 3 bytes only (15 bytes: 20 characters), so there is no padding.
void AppendBase64Url(const uint8_t* p, size_t n, char* out) {
  static constexpr char kB64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t i = 0; i + 3 <= n; i += 3) {
    const uint32_t v = uint32_t{p[i]} << 16 | uint32_t{p[i + 1]} << 8 | p[i + 2];
    *out++ = kB64[(v >> 18) & 63];
    *out++ = kB64[(v >> 12) & 63];
    *out++ = kB64[(v >> 6) & 63];
    *out++ = kB64[v & 63];
  }
}

}  // namespace

void AppendRedisKey(const UserDigest& digest, std::string_view rule, std::string& out) {
  static_assert(kDigestBytes % 3 == 0, "base64 without padding");
  out.append("dlb:{");
  char full[kDigestBytes / 3 * 4];
  AppendBase64Url(digest.data(), digest.size(), full);
  out.append(full, kDigestChars);
  out.append("}:");
  out.append(rule);
}

std::string RedisKey(std::string_view user_id, std::string_view rule) {
  std::string out;
  out.reserve(8 + kDigestChars + rule.size());
  AppendRedisKey(DigestUserId(user_id), rule, out);
  return out;
}

std::string SourceAddressUserId(int ip_version, const uint8_t* address) {
  if (ip_version != 4 && ip_version != 6) return {};
  char buf[3 + INET6_ADDRSTRLEN] = "ip:";
  if (inet_ntop(ip_version == 4 ? AF_INET : AF_INET6, address, buf + 3, sizeof buf - 3) == nullptr) return {};
  return buf;
}

std::string RuleNameForSpec(int64_t capacity, double leak_rate_per_s) {
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%lld:%.17g", static_cast<long long>(capacity),
                              leak_rate_per_s);
  const auto h = Sha256(std::string_view(buf, static_cast<size_t>(n)));
  char text[8];
  AppendBase64Url(h.data(), 6, text);   // 8 characters; keep the first 5 (30 bits)
  return std::string(text, kRuleNameForSpecChars);
}

}  // namespace dlb

#include <sys/random.h>

#include "dlb/siphash.h"

namespace dlb {

SipKey SipKey::Random() {
  uint64_t k[2] = {0, 0};
  size_t got = 0;
  auto* p = reinterpret_cast<uint8_t*>(k);
  while (got < sizeof k) {
    const ssize_t n = getrandom(p + got, sizeof k - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return SipKey{k[0], k[1]};
}

}  // namespace dlb
