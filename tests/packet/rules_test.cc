#include "dlb/packet/rules.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace dlb::packet {
namespace {

RuleConfig Rule(std::string name, std::string method, std::string path, std::string host) {
  RuleConfig r;
  r.name = std::move(name);
  r.method = std::move(method);
  r.path_prefix = std::move(path);
  r.host = std::move(host);
  return r;
}

RequestHead H(Method m, std::string_view token, std::string_view path, std::string_view host) {
  RequestHead h;
  h.method = m;
  h.method_token = token;
  h.path = path;
  h.host = host;
  return h;
}

TEST(RulesTest, FirstMatchWinsThenDefault) {
  auto set = RuleSet::Compile({Rule("pay", "POST", "/v1/pay", "api.example.com"),
                               Rule("any-pay", "", "/v1/pay", ""),
                               Rule("purge", "PURGE", "", "")},
                              DefaultRuleConfig());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->Match(H(Method::kPost, "POST", "/v1/payments", "API.Example.com")), 0);
  EXPECT_EQ(set->Match(H(Method::kPost, "POST", "/v1/payments", "other")), 1);
  EXPECT_EQ(set->Match(H(Method::kGet, "GET", "/v1/pay", "api.example.com")), 1);
  EXPECT_EQ(set->Match(H(Method::kOther, "PURGE", "/x", "")), 2);
  EXPECT_EQ(set->Match(H(Method::kOther, "PURGEX", "/x", "")), 3);
  EXPECT_EQ(set->Match(H(Method::kGet, "GET", "/v2", "")), set->default_index());
  EXPECT_EQ(set->rule(set->default_index()).name, "default");
}

// Path prefixes of every length from 1 to 24 bytes, against paths equal to them, one
// byte shorter, longer, or different at each position: Match picks what a plain
// first-match search over the rules picks, and reads no byte outside the path.
TEST(RulesTest, PrefixesOfEveryLengthMatchAsAPlainSearchDoes) {
  std::mt19937_64 rng(2024);
  const std::string base = "/v1/payments/charge/now/extra";
  for (size_t len = 1; len <= 24; ++len) {
    const std::string prefix = base.substr(0, len);
    auto set = RuleSet::Compile({Rule("post", "POST", prefix, ""), Rule("any", "", prefix + "x", "")},
                                DefaultRuleConfig());
    ASSERT_TRUE(set.ok()) << set.status().ToString();
    std::vector<std::string> paths = {prefix, prefix.substr(0, len - 1), base, prefix + "x", prefix + "xy"};
    for (size_t i = 0; i < len; ++i) {
      std::string p = prefix;
      p[i] = static_cast<char>(p[i] ^ (1 << (rng() % 7)));
      paths.push_back(p);
      paths.push_back(p + "/more/of/the/path");
    }
    for (const std::string& path : paths) {
      for (const Method m : {Method::kPost, Method::kGet}) {
        // Each path on its own heap block of exactly its size: a read past it is caught
        // by the sanitizers.
        const std::vector<char> bytes(path.begin(), path.end());
        const std::string_view view(bytes.data(), bytes.size());
        uint16_t want = set->default_index();
        if (m == Method::kPost && view.substr(0, len) == prefix) {
          want = 0;
        } else if (view.substr(0, len + 1) == prefix + "x") {
          want = 1;
        }
        EXPECT_EQ(set->Match(H(m, m == Method::kPost ? "POST" : "GET", view, "")), want)
            << "prefix '" << prefix << "' path '" << path << "'";
      }
    }
  }
}

TEST(RulesTest, PolicyHeaderCarriesQuotaAndWindow) {
  RuleConfig r = Rule("pay", "", "", "");
  r.bucket = {.capacity = 10, .leak_rate_per_s = 4};
  auto set = RuleSet::Compile({r}, DefaultRuleConfig());
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->rule(0).policy_header, "\"pay\";q=10;w=3");
  r.bucket.leak_rate_per_s = 0;
  set = RuleSet::Compile({r}, DefaultRuleConfig());
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->rule(0).policy_header, "\"pay\";q=10");
}

TEST(RulesTest, BadRulesAreRefusedWithTheField) {
  struct Case {
    RuleConfig rule;
    const char* field;
  } cases[] = {
      {Rule("", "", "", ""), "name"},
      {Rule("bad name", "", "", ""), "name"},
      {Rule("x", "GET /", "", ""), "method"},
      {Rule("x", "", "v1", ""), "path_prefix"},
  };
  for (auto& c : cases) {
    auto set = RuleSet::Compile({c.rule}, DefaultRuleConfig());
    ASSERT_FALSE(set.ok());
    EXPECT_NE(set.status().message().find(c.field), std::string::npos) << set.status().message();
  }
  RuleConfig r = Rule("x", "", "", "");
  r.bucket.capacity = 0;
  EXPECT_FALSE(RuleSet::Compile({r}, DefaultRuleConfig()).ok());
  r.bucket = {.capacity = 1'000'000'000, .leak_rate_per_s = 1e-6};  // drains in 3e7 years
  EXPECT_FALSE(RuleSet::Compile({r}, DefaultRuleConfig()).ok());
  r.bucket = {.capacity = 5, .leak_rate_per_s = 1};
  r.cost = 6;
  EXPECT_FALSE(RuleSet::Compile({r}, DefaultRuleConfig()).ok());
  EXPECT_FALSE(RuleSet::Compile({Rule("default", "", "", "")}, DefaultRuleConfig()).ok());
}

}  // namespace
}  // namespace dlb::packet

namespace dlb::packet {
namespace {

// Rules see the normalized path (dlb/path.h): every spelling a normalizing server
// routes to /pay matches the /pay rule; fold_case adds case.
TEST(RulesTest, MatchesTheNormalizedPath) {
  RuleConfig pay = Rule("pay", "POST", "/pay", "");
  RuleConfig admin = Rule("admin", "", "/admin/", "");
  admin.fold_case = true;
  auto set = RuleSet::Compile({pay, admin}, DefaultRuleConfig());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  for (const char* p : {"/pay", "//pay", "/%70ay", "/./pay", "/x/../pay", "/%2e%2e/pay", "/pay/..%2Fpay",
                        "/x%2F..%2Fpay", "http://h/pay", "/payments"}) {
    EXPECT_EQ(set->Match(H(Method::kPost, "POST", p, "")), 0) << p;
  }
  for (const char* p : {"/PAY", "/pay/..", "/x/pay", "/%2570ay", "/pa"}) {
    EXPECT_EQ(set->Match(H(Method::kPost, "POST", p, "")), set->default_index()) << p;
  }
  for (const char* p : {"/admin/x", "/ADMIN/x", "/Admin//./x", "/%41dmin/"}) {
    EXPECT_EQ(set->Match(H(Method::kGet, "GET", p, "")), 1) << p;
  }
  EXPECT_EQ(set->Match(H(Method::kGet, "GET", "/admin", "")), set->default_index());
}

TEST(RulesTest, PathPrefixMustBeNormalized) {
  for (const char* p : {"/%70ay", "//pay", "/x/../pay", "/pay/.", "/p%zz"}) {
    auto set = RuleSet::Compile({Rule("pay", "", p, "")}, DefaultRuleConfig());
    ASSERT_FALSE(set.ok()) << p;
    EXPECT_NE(set.status().message().find("path_prefix"), std::string::npos) << set.status().message();
  }
  auto hint = RuleSet::Compile({Rule("pay", "", "/x/../%70ay", "")}, DefaultRuleConfig());
  ASSERT_FALSE(hint.ok());
  EXPECT_NE(hint.status().message().find("'/pay'"), std::string::npos) << hint.status().message();
  RuleConfig folded = Rule("pay", "", "/Pay", "");
  folded.fold_case = true;
  EXPECT_FALSE(RuleSet::Compile({folded}, DefaultRuleConfig()).ok());
  folded.path_prefix = "/pay";
  EXPECT_TRUE(RuleSet::Compile({folded}, DefaultRuleConfig()).ok());
}

TEST(RulesTest, BucketKeyFollowsTheNameNotThePosition) {
  RuleConfig a;
  a.name = "pay";
  a.bucket = {.capacity = 2, .leak_rate_per_s = 1};
  RuleConfig b = a;
  b.name = "refund";
  RuleConfig d;
  d.name = "default";
  d.bucket = {.capacity = 3, .leak_rate_per_s = 1};
  auto ab = RuleSet::Compile({a, b}, d);
  auto ba = RuleSet::Compile({b, a}, d);
  ASSERT_TRUE(ab.ok()) << ab.status().ToString();
  ASSERT_TRUE(ba.ok()) << ba.status().ToString();
  EXPECT_EQ(ab->rule(0).bucket_key, RuleBucketKey("pay"));
  EXPECT_EQ(ab->rule(0).bucket_key, ba->rule(1).bucket_key);
  EXPECT_EQ(ab->rule(1).bucket_key, ba->rule(0).bucket_key);
  EXPECT_NE(ab->rule(0).bucket_key, ab->rule(1).bucket_key);
  EXPECT_NE(ab->rule(0).bucket_key, ab->rule(2).bucket_key);
}

}  // namespace
}  // namespace dlb::packet
