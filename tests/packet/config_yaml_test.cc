#include "dlb/packet/config_yaml.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace dlb::packet {
namespace {

TEST(ConfigYamlTest, LoadsAFullConfig) {
  const char* yaml = R"(
service_ports: [80, 8080]
identity_header: X-Api-Key
on_missing_identity: limit
max_head_bytes: 4096
on_not_http: drop
flow_idle_timeout_s: 30
shard_users: 5000
rules:
  - name: payments
    method: POST
    path_prefix: /v1/payments
    host: api.example.com
    capacity: 10
    leak_rate_per_s: 0.5
    mode: strict
    action: shadow
    on_store_failure: closed
    on_table_full: limit
default_rule: {name: fallback, capacity: 100, leak_rate_per_s: 10, mode: local}
)";
  auto c = LoadPacketConfigYaml(yaml, "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->service_ports, (std::vector<uint16_t>{80, 8080}));
  EXPECT_EQ(c->identity_header, "X-Api-Key");
  EXPECT_EQ(c->on_missing_identity, MissingIdentityPolicy::kLimit);
  EXPECT_EQ(c->max_head_bytes, 4096u);
  EXPECT_EQ(c->on_not_http, HeadPolicy::kDrop);
  EXPECT_EQ(c->flow_idle_timeout_ns, 30'000'000'000);
  EXPECT_EQ(c->shard_users, 5000u);
  ASSERT_EQ(c->rules.size(), 1u);
  const RuleConfig& r = c->rules[0];
  EXPECT_EQ(r.name, "payments");
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path_prefix, "/v1/payments");
  EXPECT_EQ(r.host, "api.example.com");
  EXPECT_EQ(r.bucket.capacity, 10);
  EXPECT_EQ(r.bucket.leak_rate_per_s, 0.5);
  EXPECT_EQ(r.mode, Mode::kStrict);
  EXPECT_EQ(r.action, Action::kShadow);
  EXPECT_EQ(r.on_store_failure, FailurePolicy::kClosed);
  EXPECT_EQ(r.on_table_full, OverflowPolicy::kLimit);
  EXPECT_EQ(c->default_rule.name, "fallback");
  EXPECT_EQ(c->default_rule.mode, Mode::kLocal);
}

TEST(ConfigYamlTest, ProxyProtocol) {
  for (const auto& [text, want] : {std::pair{"off", ProxyProtocol::kOff}, std::pair{"v1", ProxyProtocol::kV1},
                                   std::pair{"v2", ProxyProtocol::kV2}, std::pair{"any", ProxyProtocol::kAny}}) {
    auto c = LoadPacketConfigYaml(std::string("proxy_protocol: ") + text, "t.yaml");
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->proxy_protocol, want) << text;
  }
  for (const char* bad : {"proxy_protocol: on", "proxy_protocol: true", "proxy_protocol: V1", "proxy_protocol: 1"}) {
    auto c = LoadPacketConfigYaml(bad, "t.yaml");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("proxy_protocol"), std::string::npos) << c.status().message();
  }
}

TEST(ConfigYamlTest, FoldCaseAndTrustedProxies) {
  const char* yaml = R"(
trusted_proxies: 2
rules:
  - {name: admin, path_prefix: /admin/, fold_case: true}
  - {name: pay, path_prefix: /pay}
)";
  auto c = LoadPacketConfigYaml(yaml, "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->trusted_proxies, 2);
  ASSERT_EQ(c->rules.size(), 2u);
  EXPECT_TRUE(c->rules[0].fold_case);
  EXPECT_FALSE(c->rules[1].fold_case);
  EXPECT_FALSE(LoadPacketConfigYaml("rules: [{name: a, fold_case: yes please}]", "t.yaml").ok());
  EXPECT_FALSE(LoadPacketConfigYaml("trusted_proxies: 9", "t.yaml").ok());
  EXPECT_EQ(c->proxy_protocol, ProxyProtocol::kOff);
  // A path prefix rules could never see (not normalized) is refused with the hint.
  auto bad = LoadPacketConfigYaml("rules: [{name: a, path_prefix: //pay}]", "t.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("write '/pay'"), std::string::npos) << bad.status().message();
}

TEST(ConfigYamlTest, EmptyDocumentGivesDefaults) {
  auto c = LoadPacketConfigYaml("", "empty.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->identity_header, "X-User-ID");
  EXPECT_EQ(c->default_rule.name, "default");
  // What the engine cannot decide is refused by default.
  EXPECT_EQ(c->default_rule.on_table_full, OverflowPolicy::kLimit);
  EXPECT_EQ(c->on_fragment, FramePolicy::kDrop);
  EXPECT_TRUE(c->verify_checksums);
  EXPECT_EQ(c->on_malformed_frame, FramePolicy::kDrop);
  EXPECT_EQ(c->on_untracked_flow, HeadPolicy::kReset);
  EXPECT_EQ(c->partial_head_timeout_ns, 5'000'000'000);
}

TEST(ConfigYamlTest, IntegrityKeys) {
  auto c = LoadPacketConfigYaml("on_untracked_flow: drop\npartial_head_timeout_s: 2.5\nverify_checksums: false\n", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->on_untracked_flow, HeadPolicy::kDrop);
  EXPECT_EQ(c->partial_head_timeout_ns, 2'500'000'000);
  EXPECT_FALSE(c->verify_checksums);
  auto bad = LoadPacketConfigYaml("on_untracked_flow: forward\n", "t.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("on_untracked_flow"), std::string::npos) << bad.status().ToString();
}

struct ErrorCase {
  const char* yaml;
  const char* expect;  // a substring of the message
};

TEST(ConfigYamlTest, ErrorsNameFileLineAndField) {
  const ErrorCase cases[] = {
      {"rules:\n  - name: a\n    capacity: 0\n", "f.yaml:3:15: rules[0].capacity: must be an integer"},
      {"rules:\n  - name: a\n    leak_rate_per_s: fast\n", "f.yaml:3:22: rules[0].leak_rate_per_s"},
      {"rules:\n  - name: a\n    mode: quick\n", "rules[0].mode: must be one of strict | synced | local"},
      {"rules:\n  - name: a\n    colour: red\n", "f.yaml:3:5: rules[0].colour: unknown key"},
      {"identity_header: \"X User\"\n", "f.yaml:1:18: identity_header"},
      {"service_ports: [0]\n", "service_ports[0]"},
      {"max_head_bytes: 10\n", "max_head_bytes: must be an integer in [64, 65536]"},
      {"rules:\n  - name: a\n  - name: a\n", "rules[1].name: 'a' is used twice"},
      {"rules:\n  - name: 'bad name'\n", "f.yaml:2:5: rules[0]: rule 'bad name': name"},
      {"rules: [\n", "f.yaml:"},
      {"typo_key: 1\n", "f.yaml:1:1: typo_key: unknown key"},
  };
  for (const ErrorCase& c : cases) {
    auto r = LoadPacketConfigYaml(c.yaml, "f.yaml");
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << "message: " << r.status().message() << "\nexpected: " << c.expect;
  }
}

}  // namespace
}  // namespace dlb::packet
