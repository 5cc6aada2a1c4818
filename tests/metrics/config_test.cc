// The `metrics:` section: what the readers accept, what they refuse and how they say
// so; every example config in config/ passes `dlbctl config check`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "child.h"
#include "demo_process.h"
#include "dlb/limiter.h"
#include "dlb/packet/config_yaml.h"
#include "exposition.h"
#include "http_get.h"
#include "metrics/config.h"

namespace dlb::metrics {
namespace {

TEST(MetricsConfigTest, DefaultIsLoopback9464) {
  auto c = LoadMetricsConfigYaml("redis:\n  url: redis://127.0.0.1:6379\n", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->listen, "127.0.0.1:9464");
}

TEST(MetricsConfigTest, ReadsListen) {
  auto c = LoadMetricsConfigYaml("metrics:\n  listen: 10.1.2.3:9500\n", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->listen, "10.1.2.3:9500");
}

TEST(MetricsConfigTest, EmptyOrNullListenDisables) {
  for (const char* y : {"metrics:\n  listen: \"\"\n", "metrics:\n  listen:\n"}) {
    auto c = LoadMetricsConfigYaml(y, "t.yaml");
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->listen, "") << y;
  }
}

TEST(MetricsConfigTest, ErrorsNameFileLineAndField) {
  auto c = LoadMetricsConfigYaml("redis: {}\nmetrics:\n  listen: localhost\n", "dlb.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("dlb.yaml:3"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("metrics.listen"), std::string::npos);

  c = LoadMetricsConfigYaml("metrics:\n  port: 9464\n", "dlb.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("metrics.port: unknown key"), std::string::npos)
      << c.status().message();

  c = LoadMetricsConfigYaml("metrics: [1, 2]\n", "dlb.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("must be a map"), std::string::npos);

  c = LoadMetricsConfigYaml("metrics:\n  listen: [a]\n", "dlb.yaml");
  ASSERT_FALSE(c.ok());

  c = LoadMetricsConfigYaml("metrics: {listen: \"\n", "dlb.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("dlb.yaml:"), std::string::npos) << c.status().message();
}

TEST(MetricsConfigTest, EnvironmentWinsEvenWhenEmpty) {
  setenv("DLB_METRICS_LISTEN", "", 1);
  unsetenv("DLB_CONFIG");
  auto c = MetricsConfigFromEnvironment();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->listen, "");
  setenv("DLB_METRICS_LISTEN", "127.0.0.1:x", 1);
  c = MetricsConfigFromEnvironment();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("DLB_METRICS_LISTEN"), std::string::npos);
  unsetenv("DLB_METRICS_LISTEN");
}

TEST(MetricsConfigTest, TheOtherReadersAcceptTheMetricsSection) {
  const std::string yaml = "metrics:\n  listen: 127.0.0.1:0\nservice_ports: [80]\n";
  EXPECT_TRUE(packet::LoadPacketConfigYaml(yaml, "t.yaml").ok())
      << packet::LoadPacketConfigYaml(yaml, "t.yaml").status().ToString();
  ::dlb::testing::TempDir dir("dlb-metrics-config-");
  const std::string path = dir.path() + "/dlb.yaml";
  {
    std::ofstream(path) << yaml;
  }
  auto lib = LoadLimiterConfig(path);
  EXPECT_TRUE(lib.ok()) << lib.status().ToString();
}

TEST(MetricsConfigTest, PacketReaderLeavesTheApplianceSectionToTheAppliance) {
  const std::string yaml =
      "appliance:\n  client_port: net_null0\n  server_port: net_null1\n"
      "metrics:\n  listen: 127.0.0.1:9464\nservice_ports: [80]\n";
  auto c = packet::LoadPacketConfigYaml(yaml, "appliance.yaml");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  // Other unknown sections stay errors.
  c = packet::LoadPacketConfigYaml("applaince: {}\n", "appliance.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown key"), std::string::npos) << c.status().message();
}

// Every example config shipped in config/ is valid for every reader.
TEST(MetricsConfigTest, ShippedConfigsPassDlbctlConfigCheck) {
  const std::string root = ::dlb::testing::ProgramFromEnv("DLB_SOURCE_ROOT");
  const std::string dlbctl = ::dlb::testing::ProgramFromEnv("DLBCTL");
  ::dlb::testing::TempDir dir("dlb-metrics-check-");
  int checked = 0;
  for (const char* name : {"dlb.yaml", "appliance.yaml", "xdp.yaml"}) {
    const std::string path = root + "/config/" + name;
    if (!std::filesystem::exists(path)) continue;
    ::dlb::testing::Child check({dlbctl, "config", "check", path}, {}, dir.path() + "/" + name);
    ASSERT_TRUE(::dlb::testing::WaitFor([&] { return !check.Running(); }, 60000));
    const int status = check.Stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << name << ": " << check.Stderr();
    EXPECT_NE(check.Stdout().find("\"valid\":true"), std::string::npos) << check.Stdout();
    ++checked;
  }
  EXPECT_GE(checked, 1);
}

}  // namespace
}  // namespace dlb::metrics
