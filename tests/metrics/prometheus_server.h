// A real Prometheus server (Debian's `prometheus`) on a free loopback port, scraping
// the given jobs every second into a TSDB under `dir`; its HTTP query API for tests.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "child.h"

namespace dlb::testing {

// $PROMETHEUS, or /usr/bin/prometheus.
std::string PrometheusPath();

class PrometheusServer {
 public:
  // `jobs`: (job name, "host:port" target). Throws std::runtime_error (with its
  // stderr) if it does not become ready.
  PrometheusServer(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& jobs);
  // GET /api/v1/query?query=Q: the JSON body ("" on a transport error).
  std::string Query(const std::string& q) const;
  int port() const { return port_; }
  std::string Stderr() const { return child_->Stderr(); }

 private:
  std::unique_ptr<Child> child_;
  int port_ = 0;
};

// The value of the first sample of a vector result ("value":[<ts>,"<v>"]); -1 if none.
double FirstValue(const std::string& query_body);

}  // namespace dlb::testing
