#include "prometheus_server.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <stdexcept>

#include "http_get.h"

namespace dlb::testing {

std::string PrometheusPath() {
  const char* p = std::getenv("PROMETHEUS");
  return p != nullptr && *p != '\0' ? p : "/usr/bin/prometheus";
}

PrometheusServer::PrometheusServer(const std::string& dir,
                                   const std::vector<std::pair<std::string, std::string>>& jobs) {
  const std::string config = dir + "/prometheus.yml";
  {
    std::ofstream f(config);
    f << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n";
    for (const auto& [job, target] : jobs) {
      f << "  - job_name: " << job << "\n    static_configs:\n      - targets: ['" << target
        << "']\n";
    }
  }
  std::string last_error;
  // A free port can be taken between probing and binding: retry a few times.
  for (int attempt = 0; attempt < 5 && child_ == nullptr; ++attempt) {
    port_ = FreeLoopbackPort();
    auto p = std::make_unique<Child>(
        std::vector<std::string>{PrometheusPath(), "--config.file=" + config,
                                 "--storage.tsdb.path=" + dir + "/tsdb",
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                 "--log.level=warn"},
        std::map<std::string, std::string>{}, dir + "/prometheus");
    const bool ready = WaitFor(
        [&] {
          return !p->Running() || HttpGet("127.0.0.1", port_, "/-/ready", 2000).status == 200;
        },
        120000);
    if (ready && p->Running()) {
      child_ = std::move(p);
    } else {
      last_error = p->Stderr();
    }
  }
  if (child_ == nullptr) throw std::runtime_error("prometheus did not become ready: " + last_error);
}

std::string PrometheusServer::Query(const std::string& q) const {
  return HttpGet("127.0.0.1", port_, "/api/v1/query?query=" + UrlEncode(q)).body;
}

double FirstValue(const std::string& body) {
  const size_t at = body.find("\"value\":[");
  if (at == std::string::npos) return -1;
  const size_t comma = body.find(",\"", at);
  if (comma == std::string::npos) return -1;
  return std::strtod(body.c_str() + comma + 2, nullptr);
}

}  // namespace dlb::testing
