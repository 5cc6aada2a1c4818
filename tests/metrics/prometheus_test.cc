// A real Prometheus server (the Debian package) scrapes a real process that exports
// dlb metrics (dlb-demo), and its HTTP query API returns them: the exposition is what
// Prometheus accepts, types and labels included.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "child.h"
#include "demo_process.h"
#include "http_get.h"
#include "prometheus_server.h"

namespace dlb::testing {
namespace {

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(PrometheusPath().c_str(), X_OK), 0)
        << PrometheusPath() << " is missing: scripts/setup installs the 'prometheus' package";
    dir_ = std::make_unique<TempDir>("dlb-prometheus-test-");
    demo_ = std::make_unique<DemoProcess>(dir_->path(), "alice:50:5:1");
    prometheus_ = std::make_unique<PrometheusServer>(
        dir_->path(), std::vector<std::pair<std::string, std::string>>{
                          {"dlb-demo", "127.0.0.1:" + std::to_string(demo_->metrics_port())}});
    port_ = prometheus_->port();
  }

  void TearDown() override {
    prometheus_.reset();
    demo_.reset();
    dir_.reset();
  }

  std::string Query(const std::string& q) {
    const std::string body = prometheus_->Query(q);
    EXPECT_NE(body.find(R"("status":"success")"), std::string::npos) << q << ": " << body;
    return body;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<DemoProcess> demo_;
  std::unique_ptr<PrometheusServer> prometheus_;
  int port_ = 0;
};

TEST_F(PrometheusTest, ScrapesTheLimiterCountersAndAnswersQueries) {
  // Wait until a scrape stored samples with admissions and rejections (alice offers
  // 50/s against 5 + 1/s).
  std::string body;
  const bool scraped = WaitFor(
      [&] {
        body = Query("dlb_limiter_decisions_total{result=\"rejected\"}");
        return FirstValue(body) > 0;
      },
      120000);
  ASSERT_TRUE(scraped) << "no scraped sample; last answer: " << body
                       << "\nprometheus: " << prometheus_->Stderr();
  EXPECT_NE(body.find(R"("status":"success")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("job":"dlb-demo")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("__name__":"dlb_limiter_decisions_total")"), std::string::npos) << body;

  body = Query("dlb_limiter_decisions_total{result=\"allowed\"}");
  EXPECT_GE(FirstValue(body), 5) << body;

  // The target is healthy and the exposition raised no scrape errors.
  body = Query("up{job=\"dlb-demo\"}");
  EXPECT_EQ(FirstValue(body), 1) << body;
  // The histogram arrives as one: its +Inf bucket equals its count (0 in mode local).
  body = Query("dlb_limiter_store_latency_seconds_bucket{le=\"+Inf\"} - "
               "on() dlb_limiter_store_latency_seconds_count");
  EXPECT_EQ(FirstValue(body), 0) << body;
  // Queries of the shape the dashboard uses (a rate needs two scrapes).
  EXPECT_TRUE(WaitFor(
      [&] {
        body = Query("sum by (result) (rate(dlb_limiter_decisions_total[1m]))");
        return body.find(R"("result":"rejected")") != std::string::npos;
      },
      60000))
      << body;
  // Prometheus's metadata API knows the family's type from the # TYPE line.
  const auto meta = HttpGet("127.0.0.1", port_, "/api/v1/metadata?metric=dlb_limiter_breaker_open");
  EXPECT_NE(meta.body.find(R"("type":"gauge")"), std::string::npos) << meta.body;
}

}  // namespace
}  // namespace dlb::testing
