// Keys (lib/key): SHA-256 against reference vectors and the Redis key layout of
// docs/design.md, "Keys". Expected digests are FIPS 180-4 / NIST examples or values computed
// with Python's hashlib when the test was written.
#include "dlb/key.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace dlb {
namespace {

std::string Hex(const std::array<uint8_t, 32>& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

// ---------------------------------------------------------------- SHA-256

TEST(Sha256, EmptyString) {
  EXPECT_EQ(Hex(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, FipsAbc) {
  EXPECT_EQ(Hex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, Fips448BitMessage) {
  const std::string m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  ASSERT_EQ(m.size(), 56u);
  EXPECT_EQ(Hex(Sha256(m)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, Fips896BitMessage) {
  const std::string m =
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
      "klmnopqrlmnopqrsmnopqrstnopqrstu";
  ASSERT_EQ(m.size(), 112u);
  EXPECT_EQ(Hex(Sha256(m)),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, FipsMillionA) {
  EXPECT_EQ(Hex(Sha256(std::string(1'000'000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around the padding boundaries: 55 bytes is the longest message whose length
// fits in the last block; 56..63 need an extra block; 64 and 65 cross a full block.
TEST(Sha256, PaddingBoundaryLengths) {
  const std::vector<std::pair<size_t, std::string>> vectors = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
  };
  for (const auto& [len, hex] : vectors) {
    EXPECT_EQ(Hex(Sha256(std::string(len, 'a'))), hex) << len << " x 'a'";
  }
}

TEST(Sha256, ReadsOnlyTheGivenView) {
  const std::string buf = "abcXYZ";
  EXPECT_EQ(Hex(Sha256(std::string_view(buf).substr(0, 3))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// ---------------------------------------------------------------- digests and keys

constexpr size_t kKeyPrefix = 5;  // "dlb:{"

TEST(RedisKey, MatchesReferenceLayout) {
  // The first 108 bits of SHA-256 in base64url: base64.urlsafe_b64encode(
  // hashlib.sha256(id).digest()[:15])[:18] in Python.
  EXPECT_EQ(RedisKey("user-42", "api"), "dlb:{bYlKo-6AJUnX80Dnwc}:api");
  EXPECT_EQ(RedisKey("", "r"), "dlb:{47DEQpj8HBSa-_TImW}:r");
  EXPECT_EQ(RedisKey(std::string_view("\0", 1), "r"), "dlb:{bjQLnP-zepicpUTmu3}:r");
}

TEST(RedisKey, DigestIsPrefixOfSha256) {
  const auto full = Sha256("some user");
  const UserDigest d = DigestUserId("some user");
  EXPECT_TRUE(std::equal(d.begin(), d.end(), full.begin()));
}

TEST(RedisKey, FixedLengthForAnyIdLength) {
  const std::string rule = "10:5";
  const size_t expected = kKeyPrefix + kDigestChars + 2 + rule.size();
  std::mt19937_64 rng(42);
  std::vector<size_t> lengths = {0, 1, 2, 3, 15, 16, 17, 20, 55, 56, 63, 64, 65, 255,
                                 256, 4096, 65536, size_t{1} << 20};
  for (int i = 0; i < 50; ++i) lengths.push_back(rng() % (size_t{1} << 20) + 1);
  for (size_t len : lengths) {
    std::string id(len, '\0');
    for (auto& c : id) c = static_cast<char>(rng());
    EXPECT_EQ(RedisKey(id, rule).size(), expected) << "id length " << len;
  }
}

TEST(RedisKey, HasExactlyOneHashTagAroundDigest) {
  std::mt19937_64 rng(7);
  for (const std::string& id : {std::string("{"), std::string("}"), std::string("{x}"),
                               std::string("}{"), std::string(1000, '{')}) {
    const std::string key = RedisKey(id, "rule");
    EXPECT_EQ(std::count(key.begin(), key.end(), '{'), 1) << key;
    EXPECT_EQ(std::count(key.begin(), key.end(), '}'), 1) << key;
    EXPECT_EQ(key.find('{'), kKeyPrefix - 1);
    EXPECT_EQ(key.find('}'), kKeyPrefix + kDigestChars);
    EXPECT_EQ(key.rfind("dlb:", 0), 0u);
    EXPECT_EQ(key.substr(kKeyPrefix + kDigestChars), "}:rule");
  }
  for (int i = 0; i < 1000; ++i) {
    std::string id(rng() % 64, '\0');
    for (auto& c : id) c = static_cast<char>(rng());
    const std::string key = RedisKey(id, "r");
    EXPECT_EQ(std::count(key.begin(), key.end(), '{'), 1) << key;
    EXPECT_EQ(std::count(key.begin(), key.end(), '}'), 1) << key;
  }
}

TEST(RedisKey, DigestUsesOnlyBase64UrlCharacters) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 1000; ++i) {
    const std::string id = std::to_string(rng());
    const std::string key = RedisKey(id, "r");
    const std::string digest = key.substr(kKeyPrefix, kDigestChars);
    for (char c : digest) {
      EXPECT_TRUE((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '_')
          << key;
    }
  }
}

TEST(RedisKey, DiffersForDifferentIds) {
  using namespace std::string_literals;
  const std::vector<std::string> ids = {
      ""s,          "\0"s,        "\0\0"s,      "a"s,         "a\0"s,        "\0a"s,
      "A"s,         "a "s,        " a"s,        "{"s,         "}"s,          "{}"s,
      "{a}"s,       "a{"s,        "a}"s,        "user-1"s,    "user-2"s,     "user-10"s,
      "\xc3\xa9"s,  "e\xcc\x81"s, "\xe2\x82\xac"s, "\xf0\x9f\x98\x80"s, "\xff"s, "\xfe\xff"s,
      std::string(64, 'a'),       std::string(65, 'a'),       std::string(1 << 20, 'a'),
  };
  std::set<std::string> keys;
  for (const auto& id : ids) keys.insert(RedisKey(id, "r"));
  EXPECT_EQ(keys.size(), ids.size());
}

TEST(RedisKey, ManyRandomIdsDoNotCollide) {
  std::mt19937_64 rng(99);
  std::set<std::string> ids, keys;
  while (ids.size() < 100'000) {
    std::string id(rng() % 24, '\0');
    for (auto& c : id) c = static_cast<char>(rng());
    if (ids.insert(id).second) keys.insert(RedisKey(id, "r"));
  }
  EXPECT_EQ(keys.size(), ids.size());
}

TEST(RedisKey, RuleIsAppendedVerbatim) {
  const std::string rule("a\0b:{c}", 7);
  const std::string key = RedisKey("u", rule);
  EXPECT_EQ(key.substr(kKeyPrefix + kDigestChars + 2), rule);
  EXPECT_EQ(key.substr(0, kKeyPrefix + kDigestChars + 2),
            RedisKey("u", "").substr(0, kKeyPrefix + kDigestChars + 2));
}

TEST(RedisKey, AppendRedisKeyMatchesRedisKeyWithoutReallocating) {
  std::string out = "prefix|";
  out.reserve(256);
  const char* data = out.data();
  AppendRedisKey(DigestUserId("user-42"), "api", out);
  EXPECT_EQ(out, "prefix|" + RedisKey("user-42", "api"));
  EXPECT_EQ(out.data(), data);
}

TEST(RuleNameForSpec, IsShortHashOfCapacityAndExactRate) {
  // base64.urlsafe_b64encode(hashlib.sha256(b"%d:%.17g" % (C, r)).digest()[:6])[:5]
  EXPECT_EQ(RuleNameForSpec(10, 5.0), "l8kCE");                   // "10:5"
  EXPECT_EQ(RuleNameForSpec(1, 0.0), "pmhfO");                    // "1:0"
  EXPECT_EQ(RuleNameForSpec(100, 0.1), "HqqsV");                  // "100:0.10000000000000001"
  EXPECT_EQ(RuleNameForSpec(int64_t{1} << 40, 1e9), "yOV_C");     // "1099511627776:1000000000"
}

TEST(RuleNameForSpec, FixedLengthBase64Url) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 1000; ++i) {
    const std::string name =
        RuleNameForSpec(static_cast<int64_t>(rng() % 1'000'000 + 1), static_cast<double>(rng() % 1000) / 7);
    ASSERT_EQ(name.size(), kRuleNameForSpecChars);
    for (char c : name) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << name;
    }
  }
}

TEST(RuleNameForSpec, DistinguishesAdjacentRates) {
  const double r = 0.1;
  EXPECT_NE(RuleNameForSpec(10, r), RuleNameForSpec(10, std::nextafter(r, 1.0)));
  EXPECT_NE(RuleNameForSpec(10, 5.0), RuleNameForSpec(11, 5.0));
}

// One user ID per client address for every form: "ip:" and the address's text.
TEST(KeyTest, SourceAddressUserId) {
  const uint8_t v4[4] = {10, 0, 0, 1};
  EXPECT_EQ(SourceAddressUserId(4, v4), "ip:10.0.0.1");
  const uint8_t v4b[4] = {192, 0, 2, 255};
  EXPECT_EQ(SourceAddressUserId(4, v4b), "ip:192.0.2.255");
  uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 1;
  EXPECT_EQ(SourceAddressUserId(6, v6), "ip:2001:db8::1");
  uint8_t mapped[16] = {};
  mapped[10] = mapped[11] = 0xff;
  mapped[12] = 10;
  mapped[15] = 1;
  EXPECT_EQ(SourceAddressUserId(6, mapped), "ip:::ffff:10.0.0.1");
  EXPECT_EQ(SourceAddressUserId(5, v4), "");
  // Never the bucket of a header that spells the address.
  EXPECT_NE(RedisKey(SourceAddressUserId(4, v4), "r"), RedisKey("10.0.0.1", "r"));
}

}  // namespace
}  // namespace dlb
