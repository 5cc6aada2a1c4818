// One logging facade for the library and the programs (spdlog underneath). Log lines
// on paths that can repeat per request are rate-limited per call site: a store that
// is down must not turn into a log line per decision.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>

namespace dlb::log {

// True at most once per `interval_ns` for one call site's `next_ns` token; counts the
// lines it refused in `suppressed` so the next admitted line can say how many.
bool Admit(std::atomic<int64_t>& next_ns, int64_t interval_ns);

// Sets the level from DLB_LOG_LEVEL (trace, debug, info, warn, error, off) once.
void InitFromEnvironment();

// The library's logger: stderr, so that a program's stdout (JSON, say) stays clean.
spdlog::logger& Logger();

}  // namespace dlb::log

#define DLB_LOG_EVERY(interval_ms, level, ...)                                   \
  do {                                                                           \
    static std::atomic<int64_t> dlb_log_next_ns_{0};                             \
    if (::dlb::log::Admit(dlb_log_next_ns_, int64_t{interval_ms} * 1000000)) {   \
      ::dlb::log::Logger().log(level, __VA_ARGS__);                              \
    }                                                                            \
  } while (0)

#define DLB_LOG_INFO(...) ::dlb::log::Logger().info(__VA_ARGS__)
#define DLB_LOG_WARN(...) ::dlb::log::Logger().warn(__VA_ARGS__)
#define DLB_LOG_ERROR(...) ::dlb::log::Logger().error(__VA_ARGS__)
