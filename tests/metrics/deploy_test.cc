// The operations files checked against what exists: the Grafana dashboard queries only
// documented metrics that the programs export; docs/metrics.md's metric list matches the
// exporters; Prometheus, Redis, systemd and Docker files name only files, programs and
// settings that exist (no Docker engine runs here: the files are parsed).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "child.h"
#include "demo_process.h"
#include "exposition.h"
#include "http_get.h"
#include "prometheus_server.h"

namespace dlb::testing {
namespace {

namespace fs = std::filesystem;

std::string Root() { return ProgramFromEnv("DLB_SOURCE_ROOT"); }

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Every dlb_* identifier in `text` (PromQL, source).
std::set<std::string> DlbNames(const std::string& text) {
  std::set<std::string> out;
  for (size_t i = text.find("dlb_"); i != std::string::npos; i = text.find("dlb_", i + 1)) {
    if (i > 0 && IsNameChar(text[i - 1])) continue;
    size_t j = i;
    while (j < text.size() && IsNameChar(text[j])) ++j;
    out.insert(text.substr(i, j - i));
    i = j - 1;
  }
  return out;
}

// The JSON string values of every "expr" key (Grafana targets).
std::vector<std::string> DashboardExprs(const std::string& json) {
  std::vector<std::string> exprs;
  for (size_t i = json.find("\"expr\""); i != std::string::npos; i = json.find("\"expr\"", i + 1)) {
    size_t q = json.find('"', json.find(':', i) + 1);
    std::string v;
    for (size_t k = q + 1; k < json.size() && json[k] != '"'; ++k) {
      if (json[k] == '\\' && k + 1 < json.size()) {
        ++k;
        v += json[k] == 'n' ? ' ' : json[k];
      } else {
        v += json[k];
      }
    }
    exprs.push_back(v);
  }
  return exprs;
}

// The names X(field, "name", ...) of an X-macro list `macro` in `header`.
std::vector<std::string> XMacroNames(const std::string& header, const std::string& macro) {
  std::vector<std::string> names;
  size_t at = header.find("#define " + macro);
  if (at == std::string::npos) return names;
  // The list ends at the first line that does not continue with a backslash.
  size_t end = at;
  for (;;) {
    const size_t eol = header.find('\n', end);
    if (eol == std::string::npos || eol == 0 || header[eol - 1] != '\\') {
      end = eol;
      break;
    }
    end = eol + 1;
  }
  const std::string body = header.substr(at, end - at);
  for (size_t x = body.find("X("); x != std::string::npos; x = body.find("X(", x + 1)) {
    const size_t q1 = body.find('"', x);
    const size_t q2 = body.find('"', q1 + 1);
    if (q1 == std::string::npos || q2 == std::string::npos) break;
    names.push_back(body.substr(q1 + 1, q2 - q1 - 1));
  }
  return names;
}

std::vector<std::string> EngineCounterNames() {
  return XMacroNames(Slurp(Root() + "/lib/dlb/packet/engine.h"), "DLB_ENGINE_COUNTERS(X)");
}
std::vector<std::string> XdpCounterNames() {
  const std::string path = Root() + "/ebpf/dlb_xdp.h";
  if (!fs::exists(path)) return {};
  return XMacroNames(Slurp(path), "DLB_XDP_COUNTERS(X)");
}

// `a_{x,y}_b` -> a_x_b, a_y_b (repeatedly); `<counter>` patterns expanded from the
// counter lists.
std::vector<std::string> Expand(const std::string& token) {
  const size_t open = token.find('{');
  if (open != std::string::npos) {
    const size_t close = token.find('}', open);
    std::vector<std::string> out;
    std::stringstream alts(token.substr(open + 1, close - open - 1));
    std::string alt;
    while (std::getline(alts, alt, ',')) {
      for (auto& e : Expand(token.substr(0, open) + alt + token.substr(close + 1))) out.push_back(e);
    }
    return out;
  }
  if (token == "dlb_packet_<counter>_total") {
    std::vector<std::string> out;
    for (const auto& n : EngineCounterNames()) out.push_back("dlb_packet_" + n + "_total");
    return out;
  }
  if (token == "dlb_xdp_<counter>_total") {
    std::vector<std::string> out;
    for (const auto& n : XdpCounterNames()) out.push_back("dlb_xdp_" + n + "_total");
    return out;
  }
  return {token};
}

struct Documented {
  std::map<std::string, std::string> type;  // name -> counter, gauge, histogram
};

// docs/metrics.md, the metrics reference: rows `| \`name\`[, \`name\`] | type | labels | meaning |`.
Documented ReadmeMetrics() {
  const std::string readme = Slurp(Root() + "/docs/metrics.md");
  EXPECT_NE(readme.find("\n| `dlb_"), std::string::npos) << "docs/metrics.md lists no metric";
  std::istringstream in(readme);
  Documented d;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| `dlb_", 0) != 0) continue;
    const size_t c1 = line.find('|', 1);
    const size_t c2 = line.find('|', c1 + 1);
    const std::string names = line.substr(1, c1 - 1);
    std::string type = line.substr(c1 + 1, c2 - c1 - 1);
    type.erase(0, type.find_first_not_of(' '));
    type.erase(type.find_last_not_of(' ') + 1);
    for (size_t b = names.find('`'); b != std::string::npos; b = names.find('`', b + 1)) {
      const size_t e = names.find('`', b + 1);
      for (const auto& n : Expand(names.substr(b + 1, e - b - 1))) d.type[n] = type;
      b = e;
    }
  }
  return d;
}

// A dashboard name as a family: histogram series names lose their suffix.
std::string FamilyOf(const std::string& name, const Documented& d) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const std::string base = name.substr(0, name.size() - s.size());
      auto it = d.type.find(base);
      if (it != d.type.end() && it->second == "histogram") return base;
    }
  }
  return name;
}

// Metric names the appliance and the XDP agent write: string literals in their sources
// and the names their X-macro loops generate.
std::set<std::string> SourceMetricNames() {
  std::set<std::string> out;
  for (const char* dir : {"/app/dlb-appliance", "/app/dlb-xdp"}) {
    if (!fs::exists(Root() + dir)) continue;
    for (const auto& f : fs::directory_iterator(Root() + dir)) {
      // .h too: the appliance's worker counters are an X-macro list in appliance.h.
      if (f.path().extension() != ".cc" && f.path().extension() != ".h") continue;
      const std::string text = Slurp(f.path());
      for (size_t q = text.find("\"dlb_"); q != std::string::npos; q = text.find("\"dlb_", q + 1)) {
        const size_t e = text.find('"', q + 1);
        const std::string name = text.substr(q + 1, e - q - 1);
        if (!name.empty() && name.back() != '_') out.insert(name);
      }
    }
  }
  for (const auto& n : EngineCounterNames()) out.insert("dlb_packet_" + n + "_total");
  for (const auto& n : XdpCounterNames()) out.insert("dlb_xdp_" + n + "_total");
  return out;
}

int RunToEnd(const std::vector<std::string>& argv, const std::string& log, std::string* out,
             std::string* err) {
  Child c(argv, {}, log);
  EXPECT_TRUE(WaitFor([&] { return !c.Running(); }, 120000)) << argv[0] << " did not finish";
  const int status = c.Stop();
  if (out != nullptr) *out = c.Stdout();
  if (err != nullptr) *err = c.Stderr();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(DashboardTest, IsValidJsonWithPanelsAndQueries) {
  TempDir dir("dlb-dashboard-");
  std::string err;
  const std::string path = Root() + "/config/grafana/dashboard.json";
  EXPECT_EQ(RunToEnd({"/usr/bin/python3", "-c",
                      "import json,sys; d=json.load(open(sys.argv[1])); "
                      "assert d['panels'] and d['uid']",
                      path},
                     dir.path() + "/py", nullptr, &err),
            0)
      << err;
  EXPECT_GE(DashboardExprs(Slurp(path)).size(), 20u);
}

TEST(DashboardTest, EveryQueriedMetricIsDocumentedInReadme) {
  const Documented d = ReadmeMetrics();
  ASSERT_FALSE(d.type.empty());
  std::set<std::string> queried;
  for (const auto& e : DashboardExprs(Slurp(Root() + "/config/grafana/dashboard.json"))) {
    for (const auto& n : DlbNames(e)) queried.insert(FamilyOf(n, d));
  }
  ASSERT_FALSE(queried.empty());
  for (const auto& n : queried) EXPECT_EQ(d.type.count(n), 1u) << n << " is not in docs/metrics.md";
}

TEST(DashboardTest, EveryQueriedMetricIsExported) {
  const Documented d = ReadmeMetrics();
  // The library's families as dlb-demo really serves them; the appliance's and the XDP
  // agent's from their sources (they need a NIC or root to run).
  TempDir dir("dlb-dashboard-scrape-");
  DemoProcess demo(dir.path(), "alice:20:5:1");
  const auto r = HttpGet("127.0.0.1", demo.metrics_port(), "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  const Exposition x = ParseExposition(r.body);
  const std::set<std::string> source = SourceMetricNames();
  for (const auto& e : DashboardExprs(Slurp(Root() + "/config/grafana/dashboard.json"))) {
    for (const auto& raw : DlbNames(e)) {
      const std::string n = FamilyOf(raw, d);
      if (n.rfind("dlb_limiter_", 0) == 0) {
        EXPECT_EQ(x.type.count(n), 1u) << n << " is queried but dlb-demo does not export it";
      } else {
        EXPECT_EQ(source.count(n), 1u) << n << " is queried but no exporter writes it";
      }
    }
  }
}

// The XDP agent as it runs: on one end of a veth pair of its own, with a private
// redis-server, its exporter on a free port. Needs root (BPF, XDP).
class XdpAgentProcess {
 public:
  // Why it cannot run here, or nullptr.
  static const char* SkipReason() {
    const char* bin = std::getenv("DLB_XDP");
    if (bin == nullptr || *bin == '\0') return "dlb-xdp is not built (no libbpf/libxdp)";
    if (geteuid() != 0) return "dlb-xdp needs root (BPF and XDP)";
    return nullptr;
  }

  void Start(const std::string& dir) {
    dir_ = dir;
    RemoveStaleLinks();
    link_ = "dlbm" + std::to_string(getpid());
    ASSERT_EQ(Ip({"link", "add", link_ + "a", "type", "veth", "peer", "name", link_ + "b"}), 0);
    ASSERT_EQ(Ip({"link", "set", link_ + "a", "up"}), 0);
    ASSERT_EQ(Ip({"link", "set", link_ + "b", "up"}), 0);
    const char* rs = std::getenv("REDIS_SERVER");
    const int redis_port = FreeLoopbackPort();
    redis_ = std::make_unique<Child>(
        std::vector<std::string>{rs != nullptr && *rs ? rs : "/usr/bin/redis-server", "--port",
                                 std::to_string(redis_port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", dir_},
        std::map<std::string, std::string>{}, dir_ + "/xdp-redis");
    agent_ = std::make_unique<Child>(
        std::vector<std::string>{std::getenv("DLB_XDP"), "--iface", link_ + "a", "--config",
                                 Root() + "/config/xdp.yaml", "--metrics", "127.0.0.1:0",
                                 "--redis", "redis://127.0.0.1:" + std::to_string(redis_port)},
        std::map<std::string, std::string>{{"DLB_LOG_LEVEL", "info"},
                                           {"DLB_METRICS_LISTEN", "\x01unset"}},
        dir_ + "/dlb-xdp");
    static const std::string kServing = "serving /metrics on 127.0.0.1:";
    ASSERT_TRUE(WaitFor(
        [&] {
          const std::string err = agent_->Stderr();
          const size_t at = err.find(kServing);
          if (at != std::string::npos) port_ = std::atoi(err.c_str() + at + kServing.size());
          return port_ > 0 || !agent_->Running();
        },
        60000));
    ASSERT_GT(port_, 0) << "dlb-xdp did not serve metrics: " << agent_->Stdout() << agent_->Stderr();
  }

  ~XdpAgentProcess() {
    agent_.reset();  // SIGTERM: the agent detaches its program
    redis_.reset();
    if (!link_.empty()) Ip({"link", "del", link_ + "a"});
  }

  int port() const { return port_; }

 private:
  int Ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/sbin/ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string err;
    return RunToEnd(argv, dir_ + "/ip", nullptr, &err);
  }

  // Links "dlbm<pid>a" of test processes that no longer run.
  void RemoveStaleLinks() {
    for (const auto& e : fs::directory_iterator("/sys/class/net")) {
      const std::string n = e.path().filename().string();
      if (n.rfind("dlbm", 0) != 0 || n.back() != 'a') continue;
      const std::string pid = n.substr(4, n.size() - 5);
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (!fs::exists("/proc/" + pid)) Ip({"link", "del", n});
    }
  }

  std::string dir_;
  std::unique_ptr<Child> redis_, agent_;
  std::string link_;
  int port_ = 0;
};

class XdpAgentScrape : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* why = XdpAgentProcess::SkipReason()) GTEST_SKIP() << why;
    dir_ = std::make_unique<TempDir>("dlb-xdp-scrape-");
    agent_ = std::make_unique<XdpAgentProcess>();
    ASSERT_NO_FATAL_FAILURE(agent_->Start(dir_->path()));
    port_ = agent_->port();
  }
  void TearDown() override {
    agent_.reset();
    dir_.reset();
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<XdpAgentProcess> agent_;
  int port_ = 0;
};

TEST_F(XdpAgentScrape, ExportsEveryXdpMetricTheDashboardAndReadmeName) {
  const auto r = HttpGet("127.0.0.1", port_, "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  const Exposition x = ParseExposition(r.body);
  EXPECT_TRUE(x.errors.empty());
  const Documented d = ReadmeMetrics();
  int checked = 0;
  for (const auto& e : DashboardExprs(Slurp(Root() + "/config/grafana/dashboard.json"))) {
    for (const auto& n : DlbNames(e)) {
      if (n.rfind("dlb_xdp_", 0) != 0) continue;
      EXPECT_EQ(x.type.count(n), 1u) << n << " is queried but dlb-xdp does not export it";
      ++checked;
    }
  }
  for (const auto& [n, t] : d.type) {
    if (n.rfind("dlb_xdp_", 0) != 0) continue;
    ASSERT_EQ(x.type.count(n), 1u) << n << " is documented but dlb-xdp does not export it";
    EXPECT_EQ(x.type.at(n), t) << n;
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

// The appliance as it runs: DPDK without hugepages on two net_null ports (no NIC, no
// traffic), a private redis-server, its exporter on a free port. Needs root (EAL).
class ApplianceProcess {
 public:
  static const char* SkipReason() {
    const char* bin = std::getenv("DLB_APPLIANCE");
    if (bin == nullptr || *bin == '\0') return "dlb-appliance is not built (no DPDK)";
    if (geteuid() != 0) return "dlb-appliance's EAL needs root";
    return nullptr;
  }

  void Start(const std::string& dir) {
    const char* rs = std::getenv("REDIS_SERVER");
    const int redis_port = FreeLoopbackPort();
    redis_ = std::make_unique<Child>(
        std::vector<std::string>{rs != nullptr && *rs ? rs : "/usr/bin/redis-server", "--port",
                                 std::to_string(redis_port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", dir},
        std::map<std::string, std::string>{}, dir + "/appliance-redis");
    const std::string config = dir + "/appliance.yaml";
    {
      std::ofstream f(config);
      f << "appliance:\n  client_port: net_null0\n  server_port: net_null1\n"
        << "  idle_backoff_us: 1000\n  rx_descriptors: 512\n  tx_descriptors: 512\n"
        << "redis:\n  url: redis://127.0.0.1:" << redis_port << "\n"
        << "service_ports: [80]\n"
        << "rules:\n  - {name: pay, method: POST, path_prefix: /v1/payments, capacity: 10, "
        << "leak_rate_per_s: 1, mode: synced}\n";
    }
    file_prefix_ = "dlbm" + std::to_string(getpid());
    appliance_ = std::make_unique<Child>(
        std::vector<std::string>{std::getenv("DLB_APPLIANCE"), "--no-huge", "-m", "256", "--no-pci",
                                 "--lcores", "0@0,1@1", "--file-prefix", file_prefix_,
                                 "--log-level", "lib.eal:notice", "--", "--config", config,
                                 "--metrics", "127.0.0.1:0"},
        std::map<std::string, std::string>{{"DLB_LOG_LEVEL", "info"},
                                           {"DLB_METRICS_LISTEN", "\x01unset"}},
        dir + "/dlb-appliance");
    static const std::string kServing = "serving /metrics on 127.0.0.1:";
    ASSERT_TRUE(WaitFor(
        [&] {
          const std::string log = appliance_->Stdout() + appliance_->Stderr();
          const size_t at = log.find(kServing);
          if (at != std::string::npos) port_ = std::atoi(log.c_str() + at + kServing.size());
          return port_ > 0 || !appliance_->Running();
        },
        60000));
    ASSERT_GT(port_, 0) << "dlb-appliance did not serve metrics: " << appliance_->Stdout()
                        << appliance_->Stderr();
  }

  ~ApplianceProcess() {
    appliance_.reset();
    redis_.reset();
    std::error_code ec;
    if (!file_prefix_.empty()) fs::remove_all("/var/run/dpdk/" + file_prefix_, ec);
  }

  int port() const { return port_; }

 private:
  std::unique_ptr<Child> redis_, appliance_;
  std::string file_prefix_;
  int port_ = 0;
};

class ApplianceScrape : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* why = ApplianceProcess::SkipReason()) GTEST_SKIP() << why;
    dir_ = std::make_unique<TempDir>("dlb-appliance-scrape-");
    appliance_ = std::make_unique<ApplianceProcess>();
    ASSERT_NO_FATAL_FAILURE(appliance_->Start(dir_->path()));
    port_ = appliance_->port();
  }
  void TearDown() override {
    appliance_.reset();
    dir_.reset();
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ApplianceProcess> appliance_;
  int port_ = 0;
};

TEST_F(ApplianceScrape, ExportsEveryApplianceMetricTheDashboardAndReadmeName) {
  const auto r = HttpGet("127.0.0.1", port_, "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  const Exposition x = ParseExposition(r.body);
  EXPECT_TRUE(x.errors.empty());
  const Documented d = ReadmeMetrics();
  auto ours = [](const std::string& n) {
    return n.rfind("dlb_limiter_", 0) != 0 && n.rfind("dlb_xdp_", 0) != 0;
  };
  int checked = 0;
  for (const auto& e : DashboardExprs(Slurp(Root() + "/config/grafana/dashboard.json"))) {
    for (const auto& n : DlbNames(e)) {
      if (!ours(n)) continue;
      EXPECT_EQ(x.type.count(n), 1u) << n << " is queried but dlb-appliance does not export it";
      ++checked;
    }
  }
  for (const auto& [n, t] : d.type) {
    if (!ours(n)) continue;
    ASSERT_EQ(x.type.count(n), 1u) << n << " is documented but dlb-appliance does not export it";
    EXPECT_EQ(x.type.at(n), t) << n;
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

// A real Prometheus server scrapes the running appliance and XDP agent (the jobs of
// config/prometheus.yml) and answers queries of the dashboard's shape about both.
TEST(PrometheusScrape, ScrapesTheApplianceAndTheXdpAgent) {
  if (const char* why = ApplianceProcess::SkipReason()) GTEST_SKIP() << why;
  if (const char* why = XdpAgentProcess::SkipReason()) GTEST_SKIP() << why;
  ASSERT_EQ(access(PrometheusPath().c_str(), X_OK), 0) << PrometheusPath() << " is missing";
  TempDir dir("dlb-prometheus-scrape-");
  {
    ApplianceProcess appliance;
    ASSERT_NO_FATAL_FAILURE(appliance.Start(dir.path()));
    XdpAgentProcess agent;
    ASSERT_NO_FATAL_FAILURE(agent.Start(dir.path()));
    PrometheusServer prometheus(
        dir.path(), {{"dlb-appliance", "127.0.0.1:" + std::to_string(appliance.port())},
                     {"dlb-xdp", "127.0.0.1:" + std::to_string(agent.port())}});
    std::string body;
    for (const std::string job : {"dlb-appliance", "dlb-xdp"}) {
      EXPECT_TRUE(WaitFor(
          [&] {
            body = prometheus.Query("up{job=\"" + job + "\"}");
            return FirstValue(body) == 1;
          },
          120000))
          << job << ": " << body << "\nprometheus: " << prometheus.Stderr();
      // Every scraped family of the job is a dlb_ or exporter family, and there are many.
      body = prometheus.Query("count({job=\"" + job + "\", __name__=~\"dlb_.+\"})");
      EXPECT_GT(FirstValue(body), 10) << job << ": " << body;
    }
    // Queries the dashboard makes, answered from the scraped series.
    body = prometheus.Query("min by (instance) (dlb_sync_store_up{job=\"dlb-appliance\"})");
    EXPECT_GE(FirstValue(body), 0) << body;
    body = prometheus.Query("sum(dlb_xdp_malformed_frames_total{job=\"dlb-xdp\"})");
    EXPECT_GE(FirstValue(body), 0) << body;
  }
}

TEST(ReadmeMetricsTest, LibraryListMatchesWhatDlbDemoExports) {
  const Documented d = ReadmeMetrics();
  TempDir dir("dlb-readme-scrape-");
  DemoProcess demo(dir.path(), "bob:20:5:1");
  const auto r = HttpGet("127.0.0.1", demo.metrics_port(), "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  const Exposition x = ParseExposition(r.body);
  std::map<std::string, std::string> exported, documented;
  for (const auto& [n, t] : x.type) {
    if (n.rfind("dlb_", 0) == 0) exported[n] = t;
  }
  for (const auto& [n, t] : d.type) {
    if (n.rfind("dlb_limiter_", 0) == 0) documented[n] = t;
  }
  EXPECT_EQ(documented, exported);
}

TEST(ReadmeMetricsTest, ApplianceAndXdpListsNameMetricsTheirSourcesWrite) {
  const Documented d = ReadmeMetrics();
  const std::set<std::string> source = SourceMetricNames();
  int checked = 0;
  for (const auto& [n, t] : d.type) {
    if (n.rfind("dlb_limiter_", 0) == 0) continue;
    if (n.rfind("dlb_xdp_", 0) == 0 && !fs::exists(Root() + "/app/dlb-xdp")) continue;
    EXPECT_EQ(source.count(n), 1u) << n << " is documented but no exporter writes it";
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(PrometheusConfigTest, PromtoolAcceptsItAndItScrapesApplianceAndXdp) {
  const std::string path = Root() + "/config/prometheus.yml";
  TempDir dir("dlb-promtool-");
  std::string out, err;
  EXPECT_EQ(RunToEnd({"/usr/bin/promtool", "check", "config", path}, dir.path() + "/pt", &out, &err), 0)
      << out << err;
  const YAML::Node y = YAML::LoadFile(path);
  std::set<std::string> targets;
  for (const auto& job : y["scrape_configs"]) {
    for (const auto& sc : job["static_configs"]) {
      for (const auto& t : sc["targets"]) targets.insert(t.as<std::string>());
    }
  }
  EXPECT_EQ(targets.count("127.0.0.1:9464"), 1u);
  EXPECT_EQ(targets.count("127.0.0.1:9465"), 1u);
}

TEST(RedisConfigTest, RedisServerRunsItWithAofAndNoEviction) {
  TempDir dir("dlb-redis-conf-");
  const int port = FreeLoopbackPort();
  const char* env = std::getenv("REDIS_SERVER");
  const std::string server = env != nullptr && *env ? env : "/usr/bin/redis-server";
  Child redis({server, Root() + "/config/redis.conf", "--port", std::to_string(port), "--dir",
               dir.path(), "--bind", "127.0.0.1", "--daemonize", "no"},
              {}, dir.path() + "/redis");
  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/redis-cli", "-p", std::to_string(port)};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    RunToEnd(argv, dir.path() + "/cli", &out, nullptr);
    return out;
  };
  ASSERT_TRUE(WaitFor([&] { return !redis.Running() || cli({"ping"}) == "PONG\n"; }, 60000));
  ASSERT_TRUE(redis.Running()) << "redis-server refused config/redis.conf: " << redis.Stdout()
                               << redis.Stderr();
  EXPECT_EQ(cli({"config", "get", "maxmemory-policy"}), "maxmemory-policy\nnoeviction\n");
  EXPECT_EQ(cli({"config", "get", "appendonly"}), "appendonly\nyes\n");
  EXPECT_EQ(cli({"config", "get", "appendfsync"}), "appendfsync\neverysec\n");
}

// The executables `meson install` puts into bin/ in this build.
std::set<std::string> InstalledPrograms() {
  TempDir dir("dlb-introspect-");
  std::string out, err;
  const char* meson = std::getenv("MESON");
  EXPECT_EQ(RunToEnd({meson != nullptr && *meson ? meson : "/usr/bin/meson", "introspect",
                      ProgramFromEnv("DLB_BUILD_ROOT"), "--installed"},
                     dir.path() + "/mi", &out, &err),
            0)
      << err;
  std::set<std::string> bins;
  for (size_t p = out.find("/bin/"); p != std::string::npos; p = out.find("/bin/", p + 1)) {
    const size_t e = out.find('"', p);
    bins.insert(out.substr(p + 5, e - p - 5));
  }
  return bins;
}

// Every /usr/local/bin/NAME in `text` is a program this build installs.
void ExpectInstalledPrograms(const std::string& text, const std::string& what,
                             const std::set<std::string>& installed, int* seen) {
  for (size_t p = text.find("/usr/local/bin/"); p != std::string::npos;
       p = text.find("/usr/local/bin/", p + 1)) {
    size_t e = p + 15;
    while (e < text.size() && (IsNameChar(text[e]) || text[e] == '-')) ++e;
    const std::string name = text.substr(p + 15, e - p - 15);
    EXPECT_EQ(installed.count(name), 1u) << what << " runs " << name << ", not installed by meson";
    ++*seen;
  }
}

TEST(DeploymentFilesTest, DockerfileCopiesExistingPathsAndRunsInstalledPrograms) {
  const std::string text = Slurp(Root() + "/docker/Dockerfile");
  std::istringstream in(text);
  std::string line;
  int copies = 0;
  bool runs_setup = false, runs_install = false;
  while (std::getline(in, line)) {
    if (line.rfind("RUN ", 0) == 0 && line.find("scripts/setup") != std::string::npos) runs_setup = true;
    if (line.find("meson install") != std::string::npos) runs_install = true;
    if (line.rfind("COPY ", 0) != 0 || line.find("--from=") != std::string::npos) continue;
    std::istringstream words(line.substr(5));
    std::vector<std::string> w;
    for (std::string s; words >> s;) w.push_back(s);
    ASSERT_GE(w.size(), 2u) << line;
    for (size_t i = 0; i + 1 < w.size(); ++i) {
      EXPECT_TRUE(fs::exists(Root() + "/" + w[i])) << "COPY source missing: " << w[i];
      ++copies;
    }
  }
  EXPECT_GT(copies, 3);
  EXPECT_TRUE(runs_setup);
  EXPECT_TRUE(runs_install);
  EXPECT_TRUE(fs::exists(Root() + "/scripts/setup"));
  const std::set<std::string> installed = InstalledPrograms();
  int seen = 0;
  ExpectInstalledPrograms(text, "Dockerfile", installed, &seen);
  EXPECT_GT(seen, 0);
  // The runtime image's programs.
  for (const char* p : {"dlbctl", "dlb-appliance", "dlb-xdp"}) {
    EXPECT_EQ(installed.count(p), 1u) << p << " is not installed by meson install";
  }
}

TEST(DeploymentFilesTest, ComposeMountsExistingFilesAndRunsInstalledPrograms) {
  const std::string dir = Root() + "/docker";
  const YAML::Node y = YAML::LoadFile(dir + "/compose.yaml");
  const std::set<std::string> installed = InstalledPrograms();
  std::set<std::string> services;
  int mounts = 0;
  for (const auto& kv : y["services"]) {
    const std::string name = kv.first.as<std::string>();
    const YAML::Node s = kv.second;
    services.insert(name);
    if (s["build"]) {
      const std::string ctx = dir + "/" + s["build"]["context"].as<std::string>();
      EXPECT_TRUE(fs::is_directory(ctx)) << name << ": build context " << ctx;
      EXPECT_TRUE(fs::exists(ctx + "/" + s["build"]["dockerfile"].as<std::string>())) << name;
    }
    for (const auto& v : s["volumes"]) {
      const std::string spec = v.as<std::string>();
      const std::string src = spec.substr(0, spec.find(':'));
      if (src.rfind(".", 0) == 0) {
        EXPECT_TRUE(fs::exists(dir + "/" + src)) << name << " mounts a missing " << src;
        ++mounts;
      } else if (src.rfind("/", 0) != 0) {
        EXPECT_TRUE(y["volumes"][src]) << name << ": named volume " << src << " not declared";
      }
    }
    if (s["command"] && s["command"].IsSequence()) {
      int seen = 0;
      ExpectInstalledPrograms(s["command"][0].as<std::string>(), name, installed, &seen);
    }
  }
  EXPECT_GE(mounts, 5);
  for (const char* s : {"redis", "dlb-xdp", "prometheus", "grafana"}) {
    EXPECT_EQ(services.count(s), 1u) << s;
  }
  // The XDP agent: the host's interfaces and bpffs, and the capabilities it needs.
  const YAML::Node xdp = y["services"]["dlb-xdp"];
  EXPECT_EQ(xdp["network_mode"].as<std::string>(), "host");
  std::set<std::string> caps;
  for (const auto& c : xdp["cap_add"]) caps.insert(c.as<std::string>());
  for (const char* c : {"BPF", "NET_ADMIN"}) EXPECT_EQ(caps.count(c), 1u) << c;
  bool bpffs = false;
  for (const auto& v : xdp["volumes"]) bpffs |= v.as<std::string>().rfind("/sys/fs/bpf:", 0) == 0;
  EXPECT_TRUE(bpffs);
}

TEST(DeploymentFilesTest, SystemdUnitsRunInstalledProgramsAndDetachXdp) {
  const std::set<std::string> installed = InstalledPrograms();
  int units = 0, seen = 0;
  for (const auto& f : fs::directory_iterator(Root() + "/config/systemd")) {
    if (f.path().extension() != ".service") continue;
    const std::string text = Slurp(f.path());
    ExpectInstalledPrograms(text, f.path().filename().string(), installed, &seen);
    EXPECT_NE(text.find("Restart=on-failure"), std::string::npos) << f.path();
    ++units;
  }
  EXPECT_EQ(units, 2);
  EXPECT_GT(seen, 3);
  const std::string xdp = Slurp(Root() + "/config/systemd/dlb-xdp@.service");
  EXPECT_NE(xdp.find("ExecStopPost=/usr/local/bin/dlb-xdp --iface %i --detach"), std::string::npos);
  EXPECT_NE(Slurp(Root() + "/config/systemd/dlb-appliance.service").find("nr_hugepages"),
            std::string::npos);
}

}  // namespace
}  // namespace dlb::testing
