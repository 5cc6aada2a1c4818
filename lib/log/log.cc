#include "log/log.h"

#include <cstdlib>
#include <mutex>

#include <spdlog/sinks/stdout_sinks.h>

#include "dlb/clock.h"

namespace dlb::log {

bool Admit(std::atomic<int64_t>& next_ns, int64_t interval_ns) {
  const int64_t now = MonotonicClock::Instance().NowNs();
  int64_t next = next_ns.load(std::memory_order_relaxed);
  if (now < next) return false;
  return next_ns.compare_exchange_strong(next, now + interval_ns, std::memory_order_relaxed);
}

spdlog::logger& Logger() {
  // Not registered in spdlog's registry: a host program's own "dlb" logger or its
  // global settings stay its own.
  static spdlog::logger* const logger = [] {
    auto* l = new spdlog::logger("dlb", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    if (const char* lvl = std::getenv("DLB_LOG_LEVEL"); lvl != nullptr && *lvl != '\0') {
      l->set_level(spdlog::level::from_str(lvl));
    }
    return l;
  }();
  return *logger;
}

void InitFromEnvironment() { (void)Logger(); }

}  // namespace dlb::log
