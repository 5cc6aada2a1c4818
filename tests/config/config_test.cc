// config::Load (lib/config/config.h): every section of the one file, read once; errors
// name the file, the line and column, and the field.
#include "config/config.h"

#include <gtest/gtest.h>

#include <string>

namespace dlb::config {
namespace {

std::string ErrorOf(const std::string& yaml) {
  auto f = Parse(yaml, "t.yaml");
  EXPECT_FALSE(f.ok()) << yaml;
  return f.ok() ? std::string() : f.status().message();
}

TEST(ConfigLoad, ReadsEverySection) {
  auto f = Parse(
      "redis:\n  url: redis://10.0.0.7:6390\n  deadline_us: 1500\n"
      "limiter:\n  mode: synced\n  sync_interval_us: 2000\n"
      "metrics:\n  listen: 127.0.0.1:9500\n"
      "appliance:\n  client_port: net_null0\n  server_port: net_null1\n  sync_interval_us: 750\n"
      "xdp:\n  sync_interval_us: 3000\n  max_users: 1000\n"
      "service_ports: [8080]\n"
      "rules:\n  - {name: pay, capacity: 5, leak_rate_per_s: 1}\n",
      "t.yaml");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->path, "t.yaml");
  EXPECT_EQ(f->library.redis_url, "redis://10.0.0.7:6390");
  EXPECT_EQ(f->library.deadline, std::chrono::microseconds(1500));
  EXPECT_EQ(f->library.mode, Mode::kSynced);
  EXPECT_EQ(f->library.sync_interval, std::chrono::microseconds(2000));
  EXPECT_EQ(f->metrics.listen, "127.0.0.1:9500");
  ASSERT_TRUE(f->appliance.has_value());
  EXPECT_EQ(f->appliance->client_port, "net_null0");
  EXPECT_EQ(f->appliance->server_port, "net_null1");
  EXPECT_EQ(f->appliance->sync_interval_us, 750u);
  EXPECT_EQ(f->xdp.sync_interval_us, 3000u);
  EXPECT_EQ(f->xdp.max_users, 1000u);
  ASSERT_EQ(f->packet.service_ports.size(), 1u);
  EXPECT_EQ(f->packet.service_ports[0], 8080);
  ASSERT_EQ(f->packet.rules.size(), 1u);
  EXPECT_EQ(f->packet.rules[0].name, "pay");
}

TEST(ConfigLoad, AnEmptyFileGivesEveryDefault) {
  auto f = Parse("", "empty.yaml");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_FALSE(f->appliance.has_value());
  EXPECT_EQ(f->xdp.sync_interval_us, 5000u);
  EXPECT_EQ(f->xdp.max_users, 65536u);
  EXPECT_EQ(f->library.sync_interval, std::chrono::microseconds(5000));
  EXPECT_EQ(f->metrics.listen, metrics::kDefaultListen);
  EXPECT_TRUE(f->packet.rules.empty());
}

TEST(ConfigLoad, UnknownSectionNamesFileLineAndKey) {
  const std::string m = ErrorOf("redis: {}\napplaince:\n  workers: 2\n");
  EXPECT_NE(m.find("t.yaml:2:1: applaince: unknown key"), std::string::npos) << m;
}

TEST(ConfigLoad, UnknownKeyInASectionNamesTheField) {
  EXPECT_NE(ErrorOf("xdp:\n  max_user: 5\n").find("t.yaml:2:3: xdp.max_user: unknown key"),
            std::string::npos);
  EXPECT_NE(ErrorOf("appliance: {client_port: a, server_port: b, wokers: 2}\n")
                .find("appliance.wokers: unknown key"),
            std::string::npos);
}

TEST(ConfigLoad, WrongTypesNameTheField) {
  std::string m = ErrorOf("appliance: [net_null0, net_null1]\n");
  EXPECT_NE(m.find("t.yaml:1:12: appliance: must be a map"), std::string::npos) << m;
  m = ErrorOf("limiter: 5\n");
  EXPECT_NE(m.find("t.yaml:1:10: limiter: must be a map"), std::string::npos) << m;
  m = ErrorOf("xdp:\n  max_users: [1, 2]\n");
  EXPECT_NE(m.find("t.yaml:2:14: xdp.max_users: must be a scalar"), std::string::npos) << m;
  m = ErrorOf("xdp:\n  max_users: many\n");
  EXPECT_NE(m.find("xdp.max_users: must be an integer in [1, 67108864], got 'many'"), std::string::npos) << m;
  m = ErrorOf("- just\n- a list\n");
  EXPECT_NE(m.find("t.yaml:1:1: (top level): must be a map"), std::string::npos) << m;
}

TEST(ConfigLoad, ASyncIntervalInAnotherUnitIsRefusedWithTheNewSpelling) {
  std::string m = ErrorOf("appliance:\n  client_port: a\n  server_port: b\n  sync_interval_ms: 5\n");
  EXPECT_NE(m.find("t.yaml:4:3: appliance.sync_interval_ms: sync intervals are in microseconds"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("write sync_interval_us: 5000"), std::string::npos) << m;
  m = ErrorOf("limiter:\n  sync_interval_ms: 2\n");
  EXPECT_NE(m.find("limiter.sync_interval_ms"), std::string::npos) << m;
  EXPECT_NE(m.find("sync_interval_us: 2000"), std::string::npos) << m;
  m = ErrorOf("xdp:\n  sync_interval_s: 1\n");
  EXPECT_NE(m.find("xdp.sync_interval_s"), std::string::npos) << m;
  EXPECT_NE(m.find("sync_interval_us: 1000000"), std::string::npos) << m;
}

TEST(ConfigLoad, ASyncIntervalWithAUnitSuffixIsNotAnInteger) {
  const std::string m = ErrorOf("xdp:\n  sync_interval_us: 5ms\n");
  EXPECT_NE(m.find("t.yaml:2:21: xdp.sync_interval_us: must be an integer in [100, 10000000], got '5ms'"),
            std::string::npos)
      << m;
}

TEST(ConfigLoad, EveryFormTakesTheSameSyncIntervalRange) {
  for (const char* name : {"limiter", "appliance", "xdp"}) {
    const std::string section = name;
    SCOPED_TRACE(section);
    const std::string ports = section == "appliance" ? "  client_port: a\n  server_port: b\n" : "";
    EXPECT_FALSE(Parse(section + ":\n" + ports + "  sync_interval_us: 99\n", "t.yaml").ok());
    EXPECT_TRUE(Parse(section + ":\n" + ports + "  sync_interval_us: 100\n", "t.yaml").ok());
    EXPECT_TRUE(Parse(section + ":\n" + ports + "  sync_interval_us: 10000000\n", "t.yaml").ok());
    EXPECT_FALSE(Parse(section + ":\n" + ports + "  sync_interval_us: 10000001\n", "t.yaml").ok());
  }
}

TEST(ConfigLoad, TheApplianceSectionNeedsTwoDifferentPorts) {
  EXPECT_NE(ErrorOf("appliance: {server_port: b}\n").find("appliance.client_port: is required"),
            std::string::npos);
  EXPECT_NE(ErrorOf("appliance: {client_port: a, server_port: a}\n").find("must differ from client_port"),
            std::string::npos);
}

TEST(ConfigLoad, ErrorsOfEachReaderNameTheFile) {
  EXPECT_NE(ErrorOf("rules:\n  - {name: a, capacity: 0}\n").find("t.yaml:2:"), std::string::npos);
  EXPECT_NE(ErrorOf("metrics:\n  listen: nowhere\n").find("t.yaml:2:11: metrics.listen"), std::string::npos);
  EXPECT_NE(ErrorOf("redis:\n  deadline_us: soon\n").find("t.yaml:2:16: redis.deadline_us"),
            std::string::npos);
  EXPECT_NE(ErrorOf("rules: [{name: a\n").find("t.yaml:"), std::string::npos);
  auto missing = Load("/nonexistent/dlb.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/dlb.yaml: cannot open"), std::string::npos);
}

}  // namespace
}  // namespace dlb::config
