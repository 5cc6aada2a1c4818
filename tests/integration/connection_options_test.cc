// How the library reaches Redis: unix sockets, db index, passwords, ACL users, and
// what a bad URL or a wrong password looks like (never with the password in it).
#include <gtest/gtest.h>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis/connection.h"
#include "redis/url.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

const BucketSpec kSpec{.capacity = 3, .leak_rate_per_s = 1};

std::string KeyOf(std::string_view user) {
  return RedisKey(user, RuleNameForSpec(kSpec.capacity, kSpec.leak_rate_per_s));
}

std::unique_ptr<Limiter> MakeLimiter(LimiterOptions o) {
  o.deadline = std::chrono::seconds(2);
  auto l = Limiter::Create(o);
  if (!l.ok()) throw std::runtime_error(l.status().ToString());
  return std::move(*l);
}

LimiterOptions WithUrl(std::string url) {
  LimiterOptions o;
  o.redis_url = std::move(url);
  return o;
}

// One decision that must come from the store.
void ExpectStoreDecision(Limiter& limiter, std::string_view user) {
  auto d = limiter.Decide(user, kSpec);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->source, DecisionSource::kStore);
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(limiter.Stats().store_errors, 0u);
}

TEST(ConnectionOptions, UnixSocketUrl) {
  RedisServerOptions so;
  so.unix_socket = true;
  RedisServer server(so);
  auto limiter = MakeLimiter(WithUrl(server.UnixUrl()));
  ExpectStoreDecision(*limiter, "unix-user");
  EXPECT_EQ(server.Command({"EXISTS", KeyOf("unix-user")}).integer, 1);
}

TEST(ConnectionOptions, UnixSocketUrlWithDb) {
  RedisServerOptions so;
  so.unix_socket = true;
  RedisServer server(so);
  auto limiter = MakeLimiter(WithUrl(server.UnixUrl(5)));
  ExpectStoreDecision(*limiter, "unix-db-user");
  EXPECT_EQ(server.Command({"EXISTS", KeyOf("unix-db-user")}).integer, 0);
  EXPECT_EQ(server.NewClient(5)->Command({"EXISTS", KeyOf("unix-db-user")}).integer, 1);
}

TEST(ConnectionOptions, DbIndexPutsTheKeyInThatDb) {
  RedisServer server;
  auto limiter = MakeLimiter(WithUrl(server.Url(3)));
  ExpectStoreDecision(*limiter, "db-user");
  EXPECT_EQ(server.Command({"EXISTS", KeyOf("db-user")}).integer, 0);
  EXPECT_EQ(server.NewClient(3)->Command({"EXISTS", KeyOf("db-user")}).integer, 1);
  // Inspect and Reset act on the same db.
  auto info = limiter->Inspect("db-user", kSpec);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_NEAR(info->state.level, 1.0, 0.01);
  ASSERT_TRUE(limiter->Reset("db-user", kSpec).ok());
  EXPECT_EQ(server.NewClient(3)->Command({"EXISTS", KeyOf("db-user")}).integer, 0);
}

class PasswordServer : public ::testing::Test {
 protected:
  static constexpr const char* kPassword = "s3cret:@/pw";
  void SetUp() override {
    RedisServerOptions so;
    so.requirepass = kPassword;
    server_ = std::make_unique<RedisServer>(so);
  }
  std::unique_ptr<RedisServer> server_;
};

TEST_F(PasswordServer, PasswordFromUrlPercentEncoded) {
  auto limiter = MakeLimiter(WithUrl(server_->UrlWithCredentials(":s3cret%3A%40%2Fpw")));
  ExpectStoreDecision(*limiter, "pw-url-user");
}

TEST_F(PasswordServer, PasswordFromOptions) {
  LimiterOptions o = WithUrl(server_->Url());
  o.password = kPassword;
  auto limiter = MakeLimiter(o);
  ExpectStoreDecision(*limiter, "pw-opt-user");
}

TEST_F(PasswordServer, UrlPasswordWinsOverOptions) {
  LimiterOptions o = WithUrl(server_->UrlWithCredentials(":s3cret%3A%40%2Fpw"));
  o.password = "wrong";
  auto limiter = MakeLimiter(o);
  ExpectStoreDecision(*limiter, "pw-both-user");
}

TEST_F(PasswordServer, WrongPasswordIsAClearErrorWithoutThePassword) {
  auto ep = redis::ParseUrl(server_->UrlWithCredentials(":not-the-password"));
  ASSERT_TRUE(ep.ok());
  auto conn = redis::Connection::Open(*ep, MonoNowNs() + 2'000'000'000);
  ASSERT_FALSE(conn.ok());
  const std::string msg = conn.status().message();
  EXPECT_NE(msg.find("AUTH"), std::string::npos) << msg;
  EXPECT_NE(msg.find("WRONGPASS"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("not-the-password"), std::string::npos) << msg;
}

TEST_F(PasswordServer, WrongPasswordDecidesByPolicy) {
  LimiterOptions o = WithUrl(server_->UrlWithCredentials(":not-the-password"));
  o.on_store_failure = FailurePolicy::kClosed;
  auto limiter = MakeLimiter(o);
  auto d = limiter->Decide("wrong-pw-user", kSpec);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->source, DecisionSource::kFallbackClosed);
  EXPECT_FALSE(d->allowed);
  EXPECT_GE(limiter->Stats().store_errors, 1u);
  EXPECT_EQ(server_->BucketKeyCount(), 0);
}

TEST_F(PasswordServer, MissingPasswordDecidesByPolicy) {
  auto limiter = MakeLimiter(WithUrl(server_->Url()));
  auto d = limiter->Decide("no-pw-user", kSpec);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->source, DecisionSource::kFallbackLocal);
  EXPECT_EQ(server_->BucketKeyCount(), 0);
}

// The least an ACL user needs: the script, and inside it TIME, GET and SET on dlb keys.
TEST_F(PasswordServer, AclUserFromUrlWithLeastPrivilege) {
  const RedisValue r = server_->Command({"ACL", "SETUSER", "gateway", "on", ">gw-pass", "~dlb:*",
                                         "+evalsha", "+script|load", "+time", "+get", "+set",
                                         "+del"});
  ASSERT_EQ(r.str, "OK") << r.Describe();
  auto limiter = MakeLimiter(WithUrl(server_->UrlWithCredentials("gateway:gw-pass")));
  ExpectStoreDecision(*limiter, "acl-user");
  EXPECT_EQ(server_->Command({"EXISTS", KeyOf("acl-user")}).integer, 1);
  ASSERT_TRUE(limiter->Reset("acl-user", kSpec).ok());
  EXPECT_EQ(server_->Command({"EXISTS", KeyOf("acl-user")}).integer, 0);
}

TEST_F(PasswordServer, AclUserFromOptions) {
  ASSERT_EQ(server_->Command("ACL SETUSER gw2 on >gw2-pass ~dlb:* +@all").str, "OK");
  LimiterOptions o = WithUrl(server_->Url());
  o.username = "gw2";
  o.password = "gw2-pass";
  auto limiter = MakeLimiter(o);
  ExpectStoreDecision(*limiter, "acl-opt-user");
}

TEST_F(PasswordServer, AclUserWithoutKeyAccessFailsToPolicy) {
  ASSERT_EQ(server_->Command("ACL SETUSER nokeys on >nk-pass ~other:* +@all").str, "OK");
  LimiterOptions o = WithUrl(server_->UrlWithCredentials("nokeys:nk-pass"));
  o.on_store_failure = FailurePolicy::kOpen;
  auto limiter = MakeLimiter(o);
  auto d = limiter->Decide("nokeys-user", kSpec);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->source, DecisionSource::kFallbackOpen);
  EXPECT_EQ(server_->BucketKeyCount(), 0);
}

TEST(ConnectionOptions, BadUrlsAreInvalidArgumentsWithoutThePassword) {
  const char* kSecret = "hunter2secret";
  const std::string bad[] = {
      "http://u:hunter2secret@127.0.0.1:6379",
      "redis://u:hunter2secret@127.0.0.1:99999",
      "redis://u:hunter2secret@127.0.0.1:port",
      "redis://u:hunter2secret@127.0.0.1:6379/notadb",
      "redis://u:hunter2secret@127.0.0.1:6379/-1",
      "redis://u:hunter2secret%zz@127.0.0.1:6379",
      "redis://u:hunter2secret@:6379",
      "redis://u:hunter2secret@[::1:6379",
      "unix://relative/path.sock?password=hunter2secret",
      "unix:///tmp/x.sock?password=hunter2secret&db=x",
      "unix:///tmp/x.sock?passwd=hunter2secret",
      "unix:///tmp/x.sock?password=hunter2secret%g",
      "",
  };
  for (const std::string& url : bad) {
    SCOPED_TRACE(url);
    auto ep = redis::ParseUrl(url);
    ASSERT_FALSE(ep.ok());
    EXPECT_EQ(ep.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(ep.status().message().find(kSecret), std::string::npos) << ep.status().message();
    auto limiter = Limiter::Create(WithUrl(url));
    ASSERT_FALSE(limiter.ok());
    EXPECT_EQ(limiter.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(limiter.status().message().find(kSecret), std::string::npos)
        << limiter.status().message();
    EXPECT_NE(limiter.status().message().find("URL"), std::string::npos) << limiter.status().message();
  }
}

TEST(ConnectionOptions, GoodUrlsParse) {
  auto a = redis::ParseUrl("redis://gw:p%40ss@10.1.2.3:6380/7");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "10.1.2.3");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->db, 7);
  EXPECT_EQ(a->username, "gw");
  EXPECT_EQ(a->password, "p@ss");
  EXPECT_EQ(a->Describe().find("p@ss"), std::string::npos);
  auto b = redis::ParseUrl("unix:///run/redis.sock?db=2&user=u&password=p");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->unix_socket);
  EXPECT_EQ(b->path, "/run/redis.sock");
  EXPECT_EQ(b->db, 2);
  EXPECT_EQ(b->username, "u");
  EXPECT_EQ(b->password, "p");
  auto c = redis::ParseUrl("redis://[::1]:6390");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 6390);
}

TEST(ConnectionOptions, NothingListeningDecidesByPolicyWithinDeadline) {
  int port;
  {
    RedisServer server;
    port = server.port();
  }
  LimiterOptions o = WithUrl("redis://127.0.0.1:" + std::to_string(port));
  o.deadline = std::chrono::milliseconds(2);
  auto l = Limiter::Create(o);
  ASSERT_TRUE(l.ok());
  const int64_t t0 = MonoNowNs();
  auto d = (*l)->Decide("nobody-home", kSpec);
  const int64_t took = MonoNowNs() - t0;
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->source, DecisionSource::kFallbackLocal);
  EXPECT_TRUE(d->allowed);
  EXPECT_LT(took, 2'000'000 + 50'000'000);
}

}  // namespace
}  // namespace dlb::testing
