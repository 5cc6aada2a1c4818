// The exporter over real HTTP: what a Prometheus scrape of /metrics returns, how
// samples are grouped into families, and the errors for addresses it cannot serve.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include "dlb/limiter.h"
#include "dlb/metrics.h"
#include "exposition.h"
#include "http_get.h"

namespace dlb::metrics {
namespace {

using ::dlb::testing::Exposition;
using ::dlb::testing::HttpGet;
using ::dlb::testing::ParseExposition;

std::unique_ptr<Exporter> StartOrDie(const std::string& listen) {
  auto e = Exporter::Start(listen);
  if (!e.ok()) throw std::runtime_error(e.status().ToString());
  return std::move(*e);
}

Exposition Scrape(const Exporter& e, const std::string& host = "127.0.0.1") {
  const auto r = HttpGet(host, e.port(), "/metrics");
  EXPECT_EQ(r.status, 200) << r.error;
  Exposition x = ParseExposition(r.body);
  EXPECT_TRUE(x.errors.empty()) << "unparsable line: " << x.errors.front();
  return x;
}

TEST(ExporterTest, PortZeroReportsTheBoundPortAndServesMetrics) {
  auto e = StartOrDie("127.0.0.1:0");
  ASSERT_GT(e->port(), 0);
  e->AddCollector([](Writer& w) { w.Counter("dlb_test_events_total", "Events.", {}, 7); });
  const auto r = HttpGet("127.0.0.1", e->port(), "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_NE(r.headers.find("text/plain"), std::string::npos) << r.headers;
  const Exposition x = ParseExposition(r.body);
  EXPECT_EQ(x.type.at("dlb_test_events_total"), "counter");
  EXPECT_EQ(x.help.at("dlb_test_events_total"), "Events.");
  EXPECT_EQ(x.Value("dlb_test_events_total"), 7);
}

TEST(ExporterTest, CollectorsRunAtEveryScrape) {
  auto e = StartOrDie("127.0.0.1:0");
  std::atomic<uint64_t> counter{0};
  e->AddCollector([&](Writer& w) {
    w.Counter("dlb_test_requests_total", "Requests.", {},
              static_cast<double>(counter.load(std::memory_order_relaxed)));
  });
  EXPECT_EQ(Scrape(*e).Value("dlb_test_requests_total"), 0);
  counter.store(41);
  EXPECT_EQ(Scrape(*e).Value("dlb_test_requests_total"), 41);
  // A collector added after start shows in the next scrape.
  e->AddCollector([](Writer& w) { w.Gauge("dlb_test_late", "Late.", {}, 2.5); });
  const Exposition x = Scrape(*e);
  EXPECT_EQ(x.Value("dlb_test_late"), 2.5);
  EXPECT_EQ(x.type.at("dlb_test_late"), "gauge");
}

TEST(ExporterTest, SamplesOfOneNameFromSeveralCollectorsFormOneFamily) {
  auto e = StartOrDie("127.0.0.1:0");
  e->AddCollector([](Writer& w) {
    w.Counter("dlb_test_heads_total", "Heads decided.", {{"rule", "login"}}, 3);
    w.Gauge("dlb_test_fill_ratio", "Fill.", {}, 0.25);
  });
  e->AddCollector([](Writer& w) {
    w.Counter("dlb_test_heads_total", "Other help (ignored).", {{"rule", "pay"}}, 5);
    // Equal labels: summed (per-core or per-limiter parts of one series).
    w.Counter("dlb_test_heads_total", "x", {{"rule", "login"}}, 4);
  });
  const auto r = HttpGet("127.0.0.1", e->port(), "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  const Exposition x = ParseExposition(r.body);
  EXPECT_EQ(x.type_lines.at("dlb_test_heads_total"), 1) << r.body;
  EXPECT_EQ(x.help.at("dlb_test_heads_total"), "Heads decided.");
  EXPECT_EQ(x.Value("dlb_test_heads_total{rule=\"login\"}"), 7) << r.body;
  EXPECT_EQ(x.Value("dlb_test_heads_total{rule=\"pay\"}"), 5) << r.body;
  // One family's samples are contiguous in the exposition.
  std::vector<std::string> order;
  for (const auto& n : x.sample_names) {
    if (n.rfind("dlb_", 0) != 0) continue;  // prometheus-cpp's own exposer_* families
    if (order.empty() || order.back() != n) order.push_back(n);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"dlb_test_heads_total", "dlb_test_fill_ratio"}));
}

TEST(ExporterTest, LabelsAreSortedAndEscaped) {
  const std::string text = RenderText({[](Writer& w) {
    w.Gauge("dlb_test_info", "Info.", {{"z", "last"}, {"a", "quote\" back\\slash\nnl"}}, 1);
  }});
  EXPECT_NE(text.find(R"(dlb_test_info{a="quote\" back\\slash\nnl",z="last"} 1)"),
            std::string::npos)
      << text;
}

TEST(ExporterTest, HistogramHasCumulativeBucketsSumAndCount) {
  const std::vector<CollectFn> fns = {[](Writer& w) {
    w.Histogram("dlb_test_latency_seconds", "Latency.", {{"op", "eval"}}, {0.001, 0.01, 0.1},
                {2, 5, 9}, 10, 0.5);
  }};
  const Exposition x = ParseExposition(RenderText(fns));
  EXPECT_EQ(x.type.at("dlb_test_latency_seconds"), "histogram");
  EXPECT_EQ(x.Value("dlb_test_latency_seconds_bucket{op=\"eval\",le=\"0.001\"}"), 2);
  EXPECT_EQ(x.Value("dlb_test_latency_seconds_bucket{op=\"eval\",le=\"0.01\"}"), 5);
  EXPECT_EQ(x.Value("dlb_test_latency_seconds_bucket{op=\"eval\",le=\"0.1\"}"), 9);
  EXPECT_EQ(x.Value("dlb_test_latency_seconds_bucket{op=\"eval\",le=\"+Inf\"}"), 10);
  EXPECT_EQ(x.Value("dlb_test_latency_seconds_count{op=\"eval\"}"), 10);
  EXPECT_EQ(x.Value("dlb_test_latency_seconds_sum{op=\"eval\"}"), 0.5);
}

TEST(ExporterTest, BadSamplesAreDroppedNotRendered) {
  const std::string text = RenderText({
      [](Writer& w) {
        w.Counter("dlb_ok_total", "Good.", {}, 1);
        w.Counter("bad name", "Invalid metric name.", {}, 1);
        w.Counter("dlb_badlabel_total", "Invalid label.", {{"1x", "v"}}, 1);
        w.Counter("dlb_negative_total", "Counters do not go down.", {}, -1);
        w.Histogram("dlb_badhist_seconds", "Counts do not match bounds.", {}, {1, 2}, {1}, 1, 1);
        w.Histogram("dlb_badhist2_seconds", "Bounds descend.", {}, {2, 1}, {1, 1}, 1, 1);
        w.Gauge("dlb_ok_total", "Same name as a counter: converted.", {{"k", "g"}}, 2);
        w.Histogram("dlb_ok_total", "Same name, histogram: dropped.", {}, {1}, {1}, 1, 1);
      },
      [](Writer&) { throw std::runtime_error("collector failed"); },
      [](Writer& w) { w.Gauge("dlb_after_throw", "Still collected.", {}, 3); },
  });
  const Exposition x = ParseExposition(text);
  EXPECT_TRUE(x.errors.empty()) << text;
  EXPECT_EQ(x.Value("dlb_ok_total"), 1) << text;
  EXPECT_EQ(x.Value("dlb_ok_total{k=\"g\"}"), 2) << text;
  EXPECT_EQ(x.type.at("dlb_ok_total"), "counter");
  EXPECT_EQ(x.Value("dlb_after_throw"), 3) << text;
  for (const char* absent : {"bad", "dlb_badlabel_total", "dlb_negative_total",
                             "dlb_badhist_seconds", "dlb_badhist2_seconds"}) {
    EXPECT_EQ(x.type.count(absent), 0u) << absent << "\n" << text;
  }
  EXPECT_EQ(text.find("bad name"), std::string::npos);
}

TEST(ExporterTest, UnknownPathIsNotFound) {
  auto e = StartOrDie("127.0.0.1:0");
  EXPECT_EQ(HttpGet("127.0.0.1", e->port(), "/nope").status, 404);
}

TEST(ExporterTest, Ipv6LoopbackIsServedOrRefusedClearly) {
  auto e = Exporter::Start("[::1]:0");
  if (!e.ok()) {
    // civetweb built without IPv6 (Debian 12): the error says so.
    EXPECT_EQ(e.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(e.status().message().find("IPv6"), std::string::npos) << e.status().message();
    EXPECT_NE(e.status().message().find("[::1]:0"), std::string::npos) << e.status().message();
    return;
  }
  (*e)->AddCollector([](Writer& w) { w.Gauge("dlb_test_v6", "v6.", {}, 1); });
  EXPECT_EQ(Scrape(**e, "::1").Value("dlb_test_v6"), 1);
}

TEST(ExporterTest, LocalhostMeansLoopback) {
  auto e = StartOrDie("localhost:0");
  EXPECT_EQ(HttpGet("127.0.0.1", e->port(), "/metrics").status, 200);
}

TEST(ExporterTest, MalformedAddressesAreRefusedByName) {
  for (const std::string bad :
       {"", "9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:abc", "127.0.0.1:70000",
        "127.0.0.1:-1", "127.0.0.1:80s", "::1:9464", "[::1:9464", "[::1]9464", "[nothost]:1",
        "example.invalid:9464", "300.1.1.1:9464"}) {
    auto e = Exporter::Start(bad);
    ASSERT_FALSE(e.ok()) << "accepted '" << bad << "'";
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(e.status().message().find("'" + bad + "'"), std::string::npos)
        << e.status().message();
  }
}

TEST(ExporterTest, AddressInUseIsAClearError) {
  auto first = StartOrDie("127.0.0.1:0");
  const std::string again = "127.0.0.1:" + std::to_string(first->port());
  auto second = Exporter::Start(again);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(again), std::string::npos) << second.status().message();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().message();
  // The first exporter still serves.
  EXPECT_EQ(HttpGet("127.0.0.1", first->port(), "/metrics").status, 200);
}

TEST(ExporterTest, AddressNotOnThisHostIsAClearError) {
  // 192.0.2.0/24 is TEST-NET-1: never a local address.
  auto e = Exporter::Start("192.0.2.1:0");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(e.status().message().find("192.0.2.1:0"), std::string::npos) << e.status().message();
  EXPECT_NE(e.status().message().find("assign"), std::string::npos) << e.status().message();
}

TEST(ExporterTest, ConcurrentScrapesWhileCountersMove) {
  auto e = StartOrDie("127.0.0.1:0");
  std::atomic<uint64_t> n{0};
  std::atomic<bool> stop{false};
  e->AddCollector([&](Writer& w) {
    w.Counter("dlb_test_moving_total", "Moving.", {}, static_cast<double>(n.load()));
  });
  std::thread writer([&] {
    while (!stop.load()) n.fetch_add(1, std::memory_order_relaxed);
  });
  std::vector<std::thread> scrapers;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    scrapers.emplace_back([&] {
      double last = -1;
      for (int i = 0; i < 20; ++i) {
        const auto r = HttpGet("127.0.0.1", e->port(), "/metrics");
        if (r.status != 200) continue;
        const double v = ParseExposition(r.body).Value("dlb_test_moving_total");
        if (v >= last) ok.fetch_add(1);
        last = v;
      }
    });
  }
  for (auto& t : scrapers) t.join();
  stop.store(true);
  writer.join();
  EXPECT_EQ(ok.load(), 80);
}

}  // namespace
}  // namespace dlb::metrics
