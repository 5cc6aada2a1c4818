// The XDP agent's meanings that need no kernel: the user ID and Redis key of a
// source-address user key (one bucket per client, the same as the appliance's), the
// Retry-After the agent writes for heads refused without a bucket (the engine's), and
// the settings the program cannot honour, refused with their field.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "dlb/key.h"
#include "dlb/packet/rules.h"
#include "dlb/retry_after.h"
#include "xdp_config.h"
#include "xdp_program.h"

namespace dlb::xdp {
namespace {

dlb_xdp_user_key AddressKey(__u8 kind, const uint8_t* addr, size_t len) {
  dlb_xdp_user_key k{};
  k.kind = kind;
  k.id_len = static_cast<__u16>(len);
  std::memcpy(k.id, addr, len);
  return k;
}

TEST(XdpAgentTest, SourceAddressHasTheApplianceUserIdAndRedisKey) {
  const uint8_t v4[4] = {10, 0, 0, 1};
  const dlb_xdp_user_key k4 = AddressKey(DLB_XDP_KEY_IPV4, v4, 4);
  EXPECT_EQ(UserIdOf(k4), "ip:10.0.0.1");
  EXPECT_EQ(UserIdOf(k4), SourceAddressUserId(4, v4));
  EXPECT_EQ(RedisKey(UserIdOf(k4), "pay"), RedisKey(SourceAddressUserId(4, v4), "pay"));

  uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 1;
  const dlb_xdp_user_key k6 = AddressKey(DLB_XDP_KEY_IPV6, v6, 16);
  EXPECT_EQ(UserIdOf(k6), "ip:2001:db8::1");
  EXPECT_EQ(RedisKey(UserIdOf(k6), "pay"), RedisKey(SourceAddressUserId(6, v6), "pay"));

  // A header that names the address is another user, with another Redis bucket.
  dlb_xdp_user_key header{};
  header.kind = DLB_XDP_KEY_IDENTITY;
  header.id_len = 8;
  std::memcpy(header.id, "10.0.0.1", 8);
  EXPECT_EQ(UserIdOf(header), "10.0.0.1");
  EXPECT_NE(RedisKey(UserIdOf(header), "pay"), RedisKey(UserIdOf(k4), "pay"));
}

// Every kind of user key names the Redis bucket every form names for its user ID: an ID
// longer than a key holds, known to the agent only by the digest the program computed,
// gets dlb::RedisKey(ID, rule) as the library and the appliance do.
TEST(XdpAgentTest, EveryKeyKindHasTheRedisKeyOfItsUserId) {
  const std::string long_id(1500, 'q');
  dlb_xdp_user_key digest{};
  digest.kind = DLB_XDP_KEY_DIGEST;
  digest.id_len = DLB_XDP_DIGEST_BYTES;
  const UserDigest d = DigestUserId(long_id);
  std::memcpy(digest.id, d.data(), d.size());
  EXPECT_EQ(RedisKeyOf(digest, "pay"), RedisKey(long_id, "pay"));
  EXPECT_EQ(DigestOf(digest), d);
  EXPECT_EQ(UserIdOf(digest), "");   // the ID itself is not known

  dlb_xdp_user_key id{};
  id.kind = DLB_XDP_KEY_IDENTITY;
  id.id_len = 5;
  std::memcpy(id.id, "alice", 5);
  EXPECT_EQ(RedisKeyOf(id, "pay"), RedisKey("alice", "pay"));
  const uint8_t v4[4] = {10, 0, 0, 1};
  EXPECT_EQ(RedisKeyOf(AddressKey(DLB_XDP_KEY_IPV4, v4, 4), "pay"), RedisKey("ip:10.0.0.1", "pay"));
}

packet::RuleConfig Rule(const std::string& name, int64_t capacity, double leak_rate_per_s) {
  packet::RuleConfig r;
  r.name = name;
  r.path_prefix = "/" + name;
  r.bucket = {.capacity = capacity, .leak_rate_per_s = leak_rate_per_s};
  return r;
}

// One emission interval rounded up to whole seconds, at least 1 s; a year for a rule
// that never leaks: what the engine answers (NoBucketDecision) for the same rule.
TEST(XdpAgentTest, NoBucketRetryAfterIsTheEngines) {
  packet::PacketConfig c;
  c.rules = {Rule("fast", 10, 100), Rule("slow", 10, 0.004), Rule("quota", 10, 0), Rule("onehz", 5, 1)};
  auto t = CompileXdpTables(c, 1.0);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto rs = packet::RuleSet::Compile(c.rules, c.default_rule);
  ASSERT_TRUE(rs.ok());
  const __u32 want[] = {1, 250, static_cast<__u32>(DLB_RETRY_AFTER_MAX_S), 1};
  for (uint16_t i = 0; i < 4; ++i) {
    EXPECT_EQ(t->rules[i].no_bucket_retry_s, want[i]) << c.rules[i].name;
    EXPECT_EQ(static_cast<int64_t>(t->rules[i].no_bucket_retry_s), rs->rule(i).no_bucket_retry_after_s);
    const Decision d = packet::NoBucketDecision(rs->rule(i));
    EXPECT_FALSE(d.allowed);
    if (c.rules[i].bucket.leak_rate_per_s > 0) {
      EXPECT_EQ(d.retry_after_ns, static_cast<int64_t>(want[i]) * 1'000'000'000) << c.rules[i].name;
    } else {
      EXPECT_EQ(d.retry_after_ns, kNever);
    }
  }
}

TEST(XdpAgentTest, SettingsTheProgramCannotHonourAreRefused) {
  packet::PacketConfig c;
  c.rules = {Rule("pay", 10, 1)};
  c.max_ipv6_extension_headers = 9;   // the program follows at most 8: refused, not clamped
  auto t = CompileXdpTables(c, 1.0);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("max_ipv6_extension_headers"), std::string::npos) << t.status().message();
  c.max_ipv6_extension_headers = 8;
  c.max_header_lines = 5;              // honoured: written into the program's config
  t = CompileXdpTables(c, 1.0);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->config.max_header_lines, 5u);

  // Identities longer than a key holds are keyed by their digest: the engine's range.
  c.max_identity_bytes = kMaxIdentityBytes;
  t = CompileXdpTables(c, 1.0);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->config.max_identity_bytes, kMaxIdentityBytes);
  c.max_identity_bytes = kMaxIdentityBytes + 1;
  t = CompileXdpTables(c, 1.0);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("max_identity_bytes"), std::string::npos) << t.status().message();
  c.max_identity_bytes = 256;

  c.trusted_proxies = 1;
  t = CompileXdpTables(c, 1.0);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("trusted_proxies"), std::string::npos) << t.status().message();
  c.trusted_proxies = 0;

  // The program does not read PROXY headers: a config that needs them is refused.
  c.proxy_protocol = packet::ProxyProtocol::kV1;
  t = CompileXdpTables(c, 1.0);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("proxy_protocol"), std::string::npos) << t.status().message();
}

// The agent falls back to the small variant only for the verifier's limits: E2BIG, or
// EACCES/EINVAL whose log says so; any other failure is reported as it is.
TEST(XdpAgentTest, FallsBackOnlyWhenTheVerifierSaysTheProgramIsTooLarge) {
  const std::string too_large =
      "2040: (85) call pc+12\nBPF program is too large. Processed 1000001 insn\n"
      "processed 1000001 insns (limit 1000000) max_states_per_insn 41 total_states 60000\n";
  EXPECT_EQ(VerifierReason(too_large), "BPF program is too large. Processed 1000001 insn");
  EXPECT_TRUE(IsVerifierLimit(-E2BIG, too_large));
  EXPECT_TRUE(IsVerifierLimit(E2BIG, ""));
  EXPECT_TRUE(IsVerifierLimit(-EACCES, "The sequence of 8193 jumps is too complex.\n"));
  EXPECT_TRUE(IsVerifierLimit(-EINVAL, "combined stack size of 3 calls is 544. Too large\n"));
  // The statistics line every log ends with is no reason.
  EXPECT_FALSE(
      IsVerifierLimit(-EACCES, "R1 invalid mem access 'scalar'\nprocessed 20 insns (limit 1000000)\n"));
  EXPECT_EQ(VerifierReason("processed 20 insns (limit 1000000) max_states_per_insn 0\n"), "");
  EXPECT_FALSE(IsVerifierLimit(-EPERM, too_large));
  EXPECT_FALSE(IsVerifierLimit(-ENOMEM, ""));
}

TEST(XdpAgentTest, ProgramVariantNames) {
  for (ProgramVariant v : {ProgramVariant::kAuto, ProgramVariant::kFull, ProgramVariant::kSmall}) {
    auto parsed = ParseVariant(VariantName(v));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, v);
  }
  EXPECT_FALSE(ParseVariant("tiny").ok());
}

}  // namespace
}  // namespace dlb::xdp
