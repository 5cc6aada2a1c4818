// The fixture itself: what the other integration tests rely on.
#include "redis_server.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

namespace dlb::testing {
namespace {

TEST(RedisServerFixture, AnswersOnItsOwnLoopbackPort) {
  RedisServer server;
  EXPECT_GT(server.port(), 0);
  EXPECT_EQ(server.Command("PING").str, "PONG");
  EXPECT_EQ(server.Command("CONFIG GET bind").elements.at(1).str, "127.0.0.1");
  EXPECT_EQ(server.Command("CONFIG GET appendonly").elements.at(1).str, "no");
  EXPECT_EQ(server.Command("CONFIG GET save").elements.at(1).str, "");
}

TEST(RedisServerFixture, TwoServersGetDifferentPorts) {
  RedisServer a, b;
  EXPECT_NE(a.port(), b.port());
}

TEST(RedisServerFixture, CommandArgumentsAreBinarySafe) {
  RedisServer server;
  const std::string key("k\0{x} y", 7);
  const std::string value("\0\r\n\xff", 4);
  EXPECT_FALSE(server.Command({"SET", key, value}).is_error());
  EXPECT_EQ(server.Command({"GET", key}).str, value);
}

TEST(RedisServerFixture, RestartKeepsThePortAndStartsEmpty) {
  RedisServer server;
  const int port = server.port();
  ASSERT_FALSE(server.Command("SET a 1").is_error());
  server.Restart();
  EXPECT_EQ(server.port(), port);
  EXPECT_TRUE(server.Command("GET a").is_nil());
}

TEST(RedisServerFixture, KillRefusesConnectionsUntilRestart) {
  RedisServer server;
  server.Kill();
  EXPECT_FALSE(server.running());
  RedisClient::Options o;
  o.port = server.port();
  o.timeout = std::chrono::milliseconds(200);
  RedisClient client(o);
  EXPECT_THROW(client.Command("PING"), std::runtime_error);
  server.Restart();
  EXPECT_EQ(client.Command("PING").str, "PONG");
}

TEST(RedisServerFixture, StoppedServerDoesNotAnswerUntilContinued) {
  RedisServer server;
  RedisClient::Options o;
  o.port = server.port();
  o.timeout = std::chrono::milliseconds(100);
  RedisClient client(o);
  ASSERT_EQ(client.Command("PING").str, "PONG");
  server.Stop();
  EXPECT_THROW(client.Command("PING"), std::runtime_error);
  server.Cont();
  EXPECT_EQ(client.Command("PING").str, "PONG");
  EXPECT_EQ(server.Command("PING").str, "PONG");
}

TEST(RedisServerFixture, UnixSocketAndPassword) {
  RedisServerOptions opts;
  opts.unix_socket = true;
  opts.requirepass = "pw with space";
  RedisServer server(opts);
  RedisClient::Options o;
  o.unix_path = server.socket_path();
  o.password = "pw with space";
  RedisClient client(o);
  EXPECT_EQ(client.Command("PING").str, "PONG");
  RedisClient::Options anon;
  anon.port = server.port();
  RedisClient no_auth(anon);
  EXPECT_TRUE(no_auth.Command("GET x").is_error());
  EXPECT_EQ(server.Command("PING").str, "PONG");
}

TEST(RedisServerFixture, ExtraArgumentsReachTheServer) {
  RedisServerOptions opts;
  opts.extra_args = {"--maxmemory", "12345678"};
  RedisServer server(opts);
  EXPECT_EQ(server.Command("CONFIG GET maxmemory").elements.at(1).str, "12345678");
}

TEST(RedisServerFixture, ExtraEnvironmentReachesTheServer) {
  // The dynamic loader reads the environment before redis-server rewrites it (for its
  // process title), and says so on stderr, which is the server's log.
  RedisServerOptions opts;
  opts.env = {"LD_PRELOAD=/nonexistent/dlb-it-mark.so"};
  RedisServer server(opts);
  EXPECT_NE(server.Log().find("dlb-it-mark.so"), std::string::npos) << server.Log();
}

TEST(RedisServerFixture, DestructorRemovesTheServerAndItsDir) {
  pid_t pid;
  std::string dir;
  {
    RedisServer server;
    pid = server.pid();
    dir = server.dir();
  }
  EXPECT_NE(kill(pid, 0), 0);
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(RedisServerFixture, TimeIsTheServerClock) {
  RedisServer server;
  const int64_t a = server.TimeUs();
  const int64_t b = server.TimeUs();
  EXPECT_GT(a, int64_t{1'600'000'000} * 1'000'000);
  EXPECT_GE(b, a);
}

}  // namespace
}  // namespace dlb::testing
