// Redis topology pieces without a server: CRC16 and key slots (vectors from the Redis
// Cluster specification and values CLUSTER KEYSLOT returned on Redis 7.0), the
// grouping of lease items by slot, command routing keys, MOVED/ASK and CLUSTER SLOTS
// replies, and the URL forms of standalone, Sentinel and Cluster endpoints.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

#include "dlb/key.h"
#include "redis/cluster.h"
#include "redis/connection.h"
#include "redis/sentinel.h"
#include "redis/slot.h"
#include "redis/url.h"

namespace dlb::redis {
namespace {

// A reply parsed by hiredis from RESP text, as the connection would produce it.
Reply Parse(std::string_view resp) {
  redisReader* rd = redisReaderCreate();
  EXPECT_EQ(redisReaderFeed(rd, resp.data(), resp.size()), REDIS_OK);
  void* out = nullptr;
  EXPECT_EQ(redisReaderGetReply(rd, &out), REDIS_OK);
  redisReaderFree(rd);
  EXPECT_NE(out, nullptr) << resp;
  return Reply(static_cast<redisReply*>(out));
}

TEST(Crc16, SpecVector) {
  EXPECT_EQ(Crc16("123456789"), 0x31C3);
  EXPECT_EQ(Crc16(""), 0);
}

TEST(KeySlot, MatchesClusterKeyslot) {
  EXPECT_EQ(KeySlot("123456789"), 0x31C3 % 16384);
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot("hello"), 866);
  EXPECT_EQ(KeySlot(""), 0);
  EXPECT_EQ(KeySlot("a{b}c"), 3300);
}

TEST(HashTag, FirstNonEmptyBraces) {
  EXPECT_EQ(HashTag("dlb:{abc}:pay"), "{abc}");
  EXPECT_EQ(HashTag("{a}{b}"), "{a}");
  EXPECT_EQ(HashTag("x{}y{z}"), "");  // "{}" first: the whole key is hashed
  EXPECT_EQ(HashTag("x{y"), "");
  EXPECT_EQ(HashTag("plain"), "");
}

TEST(SettleRoundKey, SharesTheSlotOfItsBuckets) {
  EXPECT_EQ(SettleRoundKey("p1", 0), "dlb:round:p1:0");
  EXPECT_EQ(SettleRoundKey("p1", 3, "dlb:{d1g}:pay"), "dlb:{d1g}:round:p1:3");
  EXPECT_EQ(KeySlot(SettleRoundKey("p1", 3, "dlb:{d1g}:pay")), KeySlot("dlb:{d1g}:pay"));
  EXPECT_EQ(SettleRoundKey("p1", 1, "untagged"), "dlb:round:p1:1");
}

TEST(KeySlot, HashTags) {
  // Spec examples: the first {...} with content decides; "{}" hashes the whole key.
  EXPECT_EQ(KeySlot("{user1000}.following"), 3443);
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("foo{}{bar}"), 8363);
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), 4015);
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("foo{bar"), Crc16("foo{bar") % 16384);  // no closing brace
}

TEST(KeySlot, OneUsersRulesShareASlot) {
  const std::string a = RedisKey("alice", "login"), b = RedisKey("alice", "pay");
  EXPECT_NE(a, b);
  EXPECT_EQ(KeySlot(a), KeySlot(b));
  // Different users spread: 64 users do not all land in one slot.
  std::vector<uint16_t> slots;
  for (int i = 0; i < 64; ++i) slots.push_back(KeySlot(RedisKey("user" + std::to_string(i), "r")));
  std::sort(slots.begin(), slots.end());
  EXPECT_GT(std::unique(slots.begin(), slots.end()) - slots.begin(), 50);
}

TEST(GroupLeaseItemsBySlot, GroupsInOrderOfFirstAppearance) {
  const std::string a1 = RedisKey("alice", "r1"), b1 = RedisKey("bob", "r1"), a2 = RedisKey("alice", "r2");
  ASSERT_NE(KeySlot(a1), KeySlot(b1));
  const BucketSpec spec{.capacity = 10, .leak_rate_per_s = 1.0};
  const std::vector<LeaseItem> items = {
      {.key = a1, .spec = spec, .return_units = 0, .want_units = 1},
      {.key = b1, .spec = spec, .return_units = 0, .want_units = 1},
      {.key = a2, .spec = spec, .return_units = 0, .want_units = 1},
  };
  auto groups = GroupLeaseItemsBySlot(items);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].slot, KeySlot(a1));
  EXPECT_EQ(groups[0].indices, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(groups[1].slot, KeySlot(b1));
  EXPECT_EQ(groups[1].indices, (std::vector<size_t>{1}));
  EXPECT_TRUE(GroupLeaseItemsBySlot({}).empty());
}

std::string Cmd(std::vector<std::string_view> args) {
  std::string out;
  CommandWriter w(out);
  w.Begin(args.size());
  for (auto a : args) w.Arg(a);
  return out;
}

TEST(RoutingKey, ScriptsCommandsAndServerCommands) {
  EXPECT_EQ(RoutingKey(Cmd({"EVALSHA", "abc", "2", "k1", "k2", "x"})), "k1");
  EXPECT_EQ(RoutingKey(Cmd({"evalsha", "abc", "0", "x"})), std::nullopt);
  EXPECT_EQ(RoutingKey(Cmd({"DEL", "dlb:{x}:r"})), "dlb:{x}:r");
  EXPECT_EQ(RoutingKey(Cmd({"ZREM", "dlb:participants", "p1"})), "dlb:participants");
  EXPECT_EQ(RoutingKey(Cmd({"SCRIPT", "LOAD", "return 1"})), std::nullopt);
  EXPECT_EQ(RoutingKey(Cmd({"PING"})), std::nullopt);
  EXPECT_EQ(RoutingKey("*2\r\n$3\r\nDEL\r\n$10\r\nshort\r\n"), std::nullopt);  // truncated
  EXPECT_EQ(RoutingKey("garbage"), std::nullopt);
}

TEST(ParseRedirect, MovedAskAndOthers) {
  const HostPort asked{"127.0.0.1", 7000};
  auto moved = ParseRedirect(Parse("-MOVED 3999 127.0.0.1:6381\r\n").get(), asked);
  ASSERT_TRUE(moved.has_value());
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->target, (HostPort{"127.0.0.1", 6381}));
  auto ask = ParseRedirect(Parse("-ASK 12 :7002\r\n").get(), asked);
  ASSERT_TRUE(ask.has_value());
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->target, (HostPort{"127.0.0.1", 7002}));  // empty host: the node asked
  auto v6 = ParseRedirect(Parse("-MOVED 1 [::1]:7001\r\n").get(), asked);
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->target, (HostPort{"::1", 7001}));
  EXPECT_FALSE(ParseRedirect(Parse("-ERR MOVED\r\n").get(), asked).has_value());
  EXPECT_FALSE(ParseRedirect(Parse("-MOVED 99999 h:1\r\n").get(), asked).has_value());
  EXPECT_FALSE(ParseRedirect(Parse("+MOVED 1 h:1\r\n").get(), asked).has_value());
  EXPECT_TRUE(IsRetryableClusterError(Parse("-TRYAGAIN Multiple keys request during rehashing of slot\r\n").get()));
  EXPECT_FALSE(IsRetryableClusterError(Parse("-CROSSSLOT Keys in request don't hash to the same slot\r\n").get()));
}

TEST(ParseClusterSlots, RangesAndMasters) {
  const HostPort asked{"10.0.0.1", 7000};
  auto r = Parse(
      "*2\r\n"
      "*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nid\r\n"
      "*3\r\n:5461\r\n:16383\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n");
  auto ranges = ParseClusterSlots(r.get(), asked);
  ASSERT_TRUE(ranges.ok()) << ranges.status().ToString();
  ASSERT_EQ(ranges->size(), 2u);
  EXPECT_EQ((*ranges)[0].first, 0);
  EXPECT_EQ((*ranges)[0].last, 5460);
  EXPECT_EQ((*ranges)[0].master, (HostPort{"127.0.0.1", 7000}));
  EXPECT_EQ((*ranges)[1].master, (HostPort{"10.0.0.1", 7001}));
  EXPECT_FALSE(ParseClusterSlots(Parse("-ERR This instance has cluster support disabled\r\n").get(), asked).ok());
  EXPECT_FALSE(ParseClusterSlots(Parse("*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n").get(), asked).ok());
}

TEST(Sentinel, RepliesAndMessages) {
  EXPECT_TRUE(IsMasterRole(Parse("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n").get()));
  EXPECT_FALSE(IsMasterRole(Parse("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:1\r\n$9\r\nconnected\r\n:0\r\n").get()));
  EXPECT_TRUE(IsReadOnlyError(Parse("-READONLY You can't write against a read only replica.\r\n").get()));
  EXPECT_FALSE(IsReadOnlyError(Parse("-ERR READONLY\r\n").get()));
  auto msg = Parse("*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$35\r\nmymaster 127.0.0.1 1 127.0.0.1 2 xx\r\n");
  HostPort to;
  EXPECT_TRUE(IsSwitchMasterFor(msg.get(), "mymaster", &to));
  EXPECT_EQ(to, (HostPort{"127.0.0.1", 2}));
  EXPECT_FALSE(IsSwitchMasterFor(msg.get(), "mymast"));
  EXPECT_FALSE(IsSwitchMasterFor(msg.get(), "other"));
}

TEST(ParseUrl, StandaloneFormsStillParse) {
  auto ep = ParseUrl("redis://u:p%40ss@[::1]:7000/3");
  ASSERT_TRUE(ep.ok()) << ep.status().ToString();
  EXPECT_EQ(ep->topology, Topology::kStandalone);
  EXPECT_EQ(ep->host, "::1");
  EXPECT_EQ(ep->port, 7000);
  EXPECT_EQ(ep->db, 3);
  EXPECT_EQ(ep->username, "u");
  EXPECT_EQ(ep->password, "p@ss");
  EXPECT_EQ(ParseUrl("redis://h")->port, 6379);
  EXPECT_TRUE(ParseUrl("unix:///tmp/r.sock?db=2")->unix_socket);
}

TEST(ParseUrl, Sentinel) {
  auto ep = ParseUrl("redis-sentinel://:s3cret@127.0.0.1:26379,h2,[::1]:26381/mymaster?db=2&sentinel_password=sp");
  ASSERT_TRUE(ep.ok()) << ep.status().ToString();
  EXPECT_EQ(ep->topology, Topology::kSentinel);
  ASSERT_EQ(ep->seeds.size(), 3u);
  EXPECT_EQ(ep->seeds[0], (HostPort{"127.0.0.1", 26379}));
  EXPECT_EQ(ep->seeds[1], (HostPort{"h2", 26379}));   // default sentinel port
  EXPECT_EQ(ep->seeds[2], (HostPort{"::1", 26381}));
  EXPECT_EQ(ep->master_name, "mymaster");
  EXPECT_EQ(ep->db, 2);
  EXPECT_EQ(ep->password, "s3cret");
  EXPECT_EQ(ep->sentinel_password, "sp");
  // Discovered masters get the data credentials and db; sentinels their own.
  const Endpoint master = ep->At({"10.0.0.9", 6380});
  EXPECT_EQ(master.password, "s3cret");
  EXPECT_EQ(master.db, 2);
  const Endpoint sentinel = ep->At(ep->seeds[0], /*sentinel=*/true);
  EXPECT_EQ(sentinel.password, "sp");
  EXPECT_EQ(sentinel.db, 0);
  const std::string d = ep->Describe();
  EXPECT_NE(d.find("mymaster"), std::string::npos);
  EXPECT_EQ(d.find("s3cret"), std::string::npos);
}

TEST(ParseUrl, Cluster) {
  auto ep = ParseUrl("redis-cluster://127.0.0.1:7000,127.0.0.1:7001,node3");
  ASSERT_TRUE(ep.ok()) << ep.status().ToString();
  EXPECT_EQ(ep->topology, Topology::kCluster);
  ASSERT_EQ(ep->seeds.size(), 3u);
  EXPECT_EQ(ep->seeds[2], (HostPort{"node3", 6379}));
  EXPECT_EQ(ep->db, 0);
  EXPECT_TRUE(ParseUrl("redis-cluster://u:p@h:1/")->password == "p");
}

TEST(ParseUrl, BadFormsGetAClearError) {
  for (const char* bad : {"redis-sentinel://h:26379", "redis-sentinel://h:26379/", "redis-sentinel:///m",
                          "redis-sentinel://h:0/m", "redis-sentinel://h:1,,h2:2/m", "redis-sentinel://h/m?db=x",
                          "redis-sentinel://h/m?color=red", "redis-cluster://h:7000/1", "redis-cluster://",
                          "redis-cluster://h:70000", "redis-cluster://h?db=1", "rediss://h", "redis-cluster://[::1:7000"}) {
    auto ep = ParseUrl(bad);
    ASSERT_FALSE(ep.ok()) << bad;
    EXPECT_EQ(ep.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(ep.status().message().find("invalid Redis URL"), std::string::npos) << bad;
  }
  // The password never shows up in an error.
  auto ep = ParseUrl("redis-sentinel://:hunter2@h:1/");
  ASSERT_FALSE(ep.ok());
  EXPECT_EQ(ep.status().message().find("hunter2"), std::string::npos);
}

}  // namespace
}  // namespace dlb::redis
