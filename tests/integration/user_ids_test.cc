// User IDs are arbitrary byte strings: each gets its own fixed-length, hash-tagged key
// and its own bucket in Redis.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

// Two requests per bucket and no visible leak during the test.
const BucketSpec kSpec{.capacity = 2, .leak_rate_per_s = 1e-6};

struct NamedId {
  std::string name;
  std::string id;
};

std::vector<NamedId> Ids() {
  std::string mib(1 << 20, 'x');
  std::string mib2 = mib;
  mib2.back() = 'y';
  return {
      {"one byte", "a"},
      {"one byte + NUL", std::string("a\0", 2)},
      {"NUL only", std::string(1, '\0')},
      {"64 bytes", std::string(64, 'u')},
      {"65 bytes", std::string(65, 'u')},
      {"1 MiB", mib},
      {"1 MiB, last byte differs", mib2},
      {"binary with NUL", std::string("\x00\x01\xff\xfe\x00z", 6)},
      {"braces", "{a}"},
      {"unbraced twin", "a}"},
      {"open brace", "{"},
      {"close brace", "}"},
      {"hash tag lookalike", "}{user}{"},
      {"UTF-8", "\xe7\x94\xa8\xe6\x88\xb7-\xc3\xa9\xf0\x9f\x98\x80"},
      {"spaces and CRLF", "user 1\r\n"},
      {"key-like", "dlb:{aaaaaaaaaaaaaaaaaa}:r"},
  };
}

class UserIds : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RedisServer>();
    LimiterOptions o;
    o.redis_url = server_->Url();
    o.deadline = std::chrono::seconds(2);
    auto l = Limiter::Create(o);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    limiter_ = std::move(*l);
  }
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<Limiter> limiter_;
};

TEST_F(UserIds, EmptyIdIsAnErrorAndTouchesNothing) {
  auto d = limiter_->Decide("", kSpec);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("user_id"), std::string::npos) << d.status().message();
  EXPECT_EQ(server_->BucketKeyCount(), 0);
  EXPECT_EQ(limiter_->Stats().store_errors, 0u);
}

TEST_F(UserIds, EachIdGetsItsOwnFixedLengthHashTaggedKey) {
  const std::string rule = RuleNameForSpec(kSpec.capacity, kSpec.leak_rate_per_s);
  std::set<std::string> keys;
  for (const NamedId& u : Ids()) {
    SCOPED_TRACE(u.name);
    auto d = limiter_->Decide(u.id, kSpec);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_EQ(d->source, DecisionSource::kStore);
    const std::string key = RedisKey(u.id, rule);
    EXPECT_EQ(key.size(), 4 + 1 + kDigestChars + 1 + 1 + rule.size());
    EXPECT_EQ(key.substr(0, 5), "dlb:{");
    EXPECT_EQ(key.substr(5 + kDigestChars, 2), "}:");
    // The digest never contains a brace, so the hash tag is exactly the digest.
    EXPECT_EQ(key.substr(5, kDigestChars).find_first_of("{}"), std::string::npos);
    EXPECT_EQ(server_->Command({"EXISTS", key}).integer, 1);
    keys.insert(key);
    // The key Redis holds is the key the limiter reports.
    auto info = limiter_->Inspect(u.id, kSpec);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->key, key);
  }
  EXPECT_EQ(keys.size(), Ids().size());
  EXPECT_EQ(server_->BucketKeyCount(), static_cast<long long>(Ids().size()));
}

TEST_F(UserIds, ExhaustingOneIdLeavesEveryOtherIdFresh) {
  const std::vector<NamedId> ids = Ids();
  for (size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE(ids[i].name);
    // Fresh, although every earlier ID (some of them near-twins) is exhausted.
    auto first = limiter_->Decide(ids[i].id, kSpec);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_TRUE(first->allowed);
    EXPECT_EQ(first->remaining, kSpec.capacity - 1);
    auto second = limiter_->Decide(ids[i].id, kSpec);
    ASSERT_TRUE(second.ok());
    EXPECT_TRUE(second->allowed);
    auto third = limiter_->Decide(ids[i].id, kSpec);
    ASSERT_TRUE(third.ok());
    EXPECT_FALSE(third->allowed);
    EXPECT_EQ(third->source, DecisionSource::kStore);
  }
  // And the exhausted ones stay exhausted: nobody refilled them.
  for (const NamedId& u : ids) {
    auto d = limiter_->Decide(u.id, kSpec);
    ASSERT_TRUE(d.ok());
    EXPECT_FALSE(d->allowed) << u.name;
  }
}

TEST_F(UserIds, OneIdWithTwoSpecsHasTwoBucketsOnOneSlot) {
  const BucketSpec other{.capacity = 3, .leak_rate_per_s = 1e-6};
  ASSERT_TRUE(limiter_->Decide("{a}", kSpec)->allowed);
  ASSERT_TRUE(limiter_->Decide("{a}", kSpec)->allowed);
  ASSERT_FALSE(limiter_->Decide("{a}", kSpec)->allowed);
  auto d = limiter_->Decide("{a}", other);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(d->remaining, 2);
  const std::string k1 = RedisKey("{a}", RuleNameForSpec(kSpec.capacity, kSpec.leak_rate_per_s));
  const std::string k2 = RedisKey("{a}", RuleNameForSpec(other.capacity, other.leak_rate_per_s));
  EXPECT_NE(k1, k2);
  EXPECT_EQ(server_->Command({"CLUSTER", "KEYSLOT", k1}).integer,
            server_->Command({"CLUSTER", "KEYSLOT", k2}).integer);
}

}  // namespace
}  // namespace dlb::testing
