#include "log/log.h"

#include <cstdlib>
#include <mutex>

#include "dlb/clock.h"

namespace dlb::log {

bool Admit(std::atomic<int64_t>& next_ns, int64_t interval_ns) {
  const int64_t now = MonotonicClock::Instance().NowNs();
  int64_t next = next_ns.load(std::memory_order_relaxed);
  if (now < next) return false;
  return next_ns.compare_exchange_strong(next, now + interval_ns, std::memory_order_relaxed);
}

void InitFromEnvironment() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const char* lvl = std::getenv("DLB_LOG_LEVEL"); lvl != nullptr && *lvl != '\0') {
      spdlog::set_level(spdlog::level::from_str(lvl));
    }
  });
}

}  // namespace dlb::log
