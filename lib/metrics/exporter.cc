// The exporter: a prometheus-cpp Exposer (civetweb) serving one Collectable that runs
// the registered collectors at scrape time, on a civetweb thread.
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <exception>
#include <mutex>

#include "dlb/metrics.h"
#include "log/log.h"
#include "metrics/families.h"
#include "metrics/listen_address.h"

namespace dlb::metrics {

namespace {

class CollectorSet final : public prometheus::Collectable {
 public:
  void Add(CollectFn fn) {
    std::lock_guard<std::mutex> lock(mu_);
    collectors_.push_back(std::move(fn));
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    // Scrapes may overlap (civetweb runs two threads); collectors only read.
    std::vector<CollectFn> fns;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fns = collectors_;
    }
    return CollectFamilies(fns);
  }

 private:
  mutable std::mutex mu_;
  std::vector<CollectFn> collectors_;
};

class ExporterImpl final : public Exporter {
 public:
  ExporterImpl(std::unique_ptr<prometheus::Exposer> exposer,
               std::shared_ptr<CollectorSet> collectors, int port)
      : collectors_(std::move(collectors)), exposer_(std::move(exposer)), port_(port) {}

  ~ExporterImpl() override {
    // Stop serving before the collectors go away.
    exposer_.reset();
  }

  void AddCollector(CollectFn fn) override { collectors_->Add(std::move(fn)); }
  int port() const override { return port_; }

 private:
  std::shared_ptr<CollectorSet> collectors_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

}  // namespace

StatusOr<std::unique_ptr<Exporter>> Exporter::Start(const std::string& listen) {
  StatusOr<ListenAddress> address = ParseListenAddress(listen);
  if (!address.ok()) return address.status();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // Two threads: a scrape never waits for another scraper's slow connection.
    exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", address->civetweb, "num_threads", "2"});
  } catch (const std::exception& e) {
    std::string why = BindError(*address);
    if (why.empty() && address->ipv6) {
      why = "this build's HTTP server (civetweb) has no IPv6 support; use an IPv4 address";
    }
    if (why.empty()) why = e.what();
    return Status::Unavailable("metrics: cannot listen on '" + listen + "': " + why);
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty() || ports[0] <= 0) {
    return Status::Internal("metrics: listening on '" + listen + "' but no port was reported");
  }
  auto collectors = std::make_shared<CollectorSet>();
  exposer->RegisterCollectable(collectors);
  DLB_LOG_INFO("metrics: serving /metrics on {}:{}",
               address->host.empty() ? "*" : address->host, ports[0]);
  return std::unique_ptr<Exporter>(
      new ExporterImpl(std::move(exposer), std::move(collectors), ports[0]));
}

}  // namespace dlb::metrics
