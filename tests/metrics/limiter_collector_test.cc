// The library's Limiter counters as exported families: a real Limiter (mode local, no
// store) decides requests, a real scrape reads them.
#include <gtest/gtest.h>

#include "dlb/limiter.h"
#include "dlb/metrics.h"
#include "exposition.h"
#include "http_get.h"

namespace dlb::metrics {
namespace {

using ::dlb::testing::Exposition;
using ::dlb::testing::HttpGet;
using ::dlb::testing::ParseExposition;

std::unique_ptr<Limiter> LocalLimiter() {
  LimiterOptions o;
  o.mode = Mode::kLocal;
  auto l = Limiter::Create(o);
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return std::move(*l);
}

TEST(LimiterCollectorTest, ExportsDecisionsByResultAndSource) {
  auto limiter = LocalLimiter();
  const BucketSpec spec{5, 0.001};
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(limiter->Decide("alice", spec).ok());
  auto e = Exporter::Start("127.0.0.1:0");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  (*e)->AddCollector(LimiterCollector(*limiter));
  const auto r = HttpGet("127.0.0.1", (*e)->port(), "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  const Exposition x = ParseExposition(r.body);
  EXPECT_EQ(x.type.at("dlb_limiter_decisions_total"), "counter");
  EXPECT_EQ(x.type_lines.at("dlb_limiter_decisions_total"), 1);
  EXPECT_EQ(x.Value("dlb_limiter_decisions_total{result=\"allowed\"}"), 5) << r.body;
  EXPECT_EQ(x.Value("dlb_limiter_decisions_total{result=\"rejected\"}"), 3) << r.body;
  EXPECT_EQ(x.Value("dlb_limiter_source_decisions_total{source=\"local\"}"), 8) << r.body;
  EXPECT_EQ(x.Value("dlb_limiter_source_decisions_total{source=\"store\"}"), 0) << r.body;
  EXPECT_EQ(x.Value("dlb_limiter_breaker_open"), 0);
  EXPECT_EQ(x.type.at("dlb_limiter_breaker_open"), "gauge");
  EXPECT_EQ(x.type.at("dlb_limiter_store_latency_seconds"), "histogram");
  EXPECT_EQ(x.Value("dlb_limiter_store_latency_seconds_count"), 0);
  EXPECT_EQ(x.Value("dlb_limiter_store_latency_seconds_bucket{le=\"+Inf\"}"), 0);
  EXPECT_TRUE(x.Has("dlb_limiter_store_latency_seconds_bucket{le=\"5e-05\"}") ||
              x.Has("dlb_limiter_store_latency_seconds_bucket{le=\"0.00005\"}"))
      << r.body;

  // Counters move between scrapes.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(limiter->Decide("bob", spec).ok());
  const Exposition y = ParseExposition(HttpGet("127.0.0.1", (*e)->port(), "/metrics").body);
  EXPECT_EQ(y.Value("dlb_limiter_decisions_total{result=\"allowed\"}"), 9);
  EXPECT_EQ(y.Value("dlb_limiter_source_decisions_total{source=\"local\"}"), 12);
}

TEST(LimiterCollectorTest, EveryFamilyIsDocumentedShape) {
  auto limiter = LocalLimiter();
  const Exposition x = ParseExposition(RenderText({LimiterCollector(*limiter)}));
  const std::map<std::string, std::string> expected = {
      {"dlb_limiter_decisions_total", "counter"},
      {"dlb_limiter_source_decisions_total", "counter"},
      {"dlb_limiter_store_errors_total", "counter"},
      {"dlb_limiter_store_timeouts_total", "counter"},
      {"dlb_limiter_breaker_opens_total", "counter"},
      {"dlb_limiter_breaker_open", "gauge"},
      {"dlb_limiter_reconciled_requests_total", "counter"},
      {"dlb_limiter_fallback_overflow_total", "counter"},
      {"dlb_limiter_store_latency_seconds", "histogram"},
      {"dlb_limiter_live_participants", "gauge"},
      {"dlb_limiter_sync_max_gap_seconds", "gauge"},
  };
  EXPECT_EQ(x.type, expected);
}

TEST(LimiterCollectorTest, TwoLimitersSumIntoProcessTotals) {
  auto a = LocalLimiter();
  auto b = LocalLimiter();
  const BucketSpec spec{100, 1};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->Decide("u", spec).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(b->Decide("u", spec).ok());
  const Exposition x = ParseExposition(RenderText({LimiterCollector(*a), LimiterCollector(*b)}));
  EXPECT_EQ(x.Value("dlb_limiter_decisions_total{result=\"allowed\"}"), 7);
  EXPECT_EQ(x.type_lines.at("dlb_limiter_decisions_total"), 1);
}

}  // namespace
}  // namespace dlb::metrics
