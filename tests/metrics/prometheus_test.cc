// A real Prometheus server (the Debian package) scrapes a real process that exports
// dlb metrics (dlb-demo), and its HTTP query API returns them: the exposition is what
// Prometheus accepts, types and labels included.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "child.h"
#include "demo_process.h"
#include "http_get.h"

namespace dlb::testing {
namespace {

std::string PrometheusPath() {
  const char* p = std::getenv("PROMETHEUS");
  return p != nullptr && *p != '\0' ? p : "/usr/bin/prometheus";
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(PrometheusPath().c_str(), X_OK), 0)
        << PrometheusPath() << " is missing: scripts/setup installs the 'prometheus' package";
    dir_ = std::make_unique<TempDir>("dlb-prometheus-test-");
    demo_ = std::make_unique<DemoProcess>(dir_->path(), "alice:50:5:1");
    const std::string config = dir_->path() + "/prometheus.yml";
    {
      std::ofstream f(config);
      f << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        << "scrape_configs:\n  - job_name: dlb-demo\n    static_configs:\n"
        << "      - targets: ['127.0.0.1:" << demo_->metrics_port() << "']\n";
    }
    // A free port can be taken between probing and binding: retry a few times.
    for (int attempt = 0; attempt < 5 && prometheus_ == nullptr; ++attempt) {
      port_ = FreeLoopbackPort();
      auto p = std::make_unique<Child>(
          std::vector<std::string>{PrometheusPath(), "--config.file=" + config,
                                   "--storage.tsdb.path=" + dir_->path() + "/tsdb",
                                   "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                   "--log.level=warn"},
          std::map<std::string, std::string>{}, dir_->path() + "/prometheus");
      const bool ready = WaitFor(
          [&] {
            return !p->Running() || HttpGet("127.0.0.1", port_, "/-/ready", 2000).status == 200;
          },
          120000);
      if (ready && p->Running()) {
        prometheus_ = std::move(p);
      } else {
        last_error_ = p->Stderr();
      }
    }
    ASSERT_NE(prometheus_, nullptr) << "prometheus did not become ready: " << last_error_;
  }

  void TearDown() override {
    prometheus_.reset();
    demo_.reset();
    dir_.reset();
  }

  // GET /api/v1/query?query=Q; the JSON body.
  std::string Query(const std::string& q) {
    const auto r = HttpGet("127.0.0.1", port_, "/api/v1/query?query=" + UrlEncode(q));
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    return r.body;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<DemoProcess> demo_;
  std::unique_ptr<Child> prometheus_;
  std::string last_error_;
  int port_ = 0;
};

// The value of the first sample of a vector result: "value":[<ts>,"<v>"].
double FirstValue(const std::string& body) {
  const size_t at = body.find("\"value\":[");
  if (at == std::string::npos) return -1;
  const size_t comma = body.find(",\"", at);
  if (comma == std::string::npos) return -1;
  return std::strtod(body.c_str() + comma + 2, nullptr);
}

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
