#include "demo_process.h"

#include <cstdlib>
#include <stdexcept>

namespace dlb::testing {

std::string ProgramFromEnv(const char* var) {
  const char* v = std::getenv(var);
  if (v == nullptr || *v == '\0') {
    throw std::runtime_error(std::string(var) + " is not set (run the test through meson)");
  }
  return v;
}

DemoProcess::DemoProcess(const std::string& dir, const std::string& user, int seconds) {
  child_ = std::make_unique<Child>(
      std::vector<std::string>{ProgramFromEnv("DLB_DEMO"), "--name", "metrics-test",
                               "--seconds", std::to_string(seconds), "--metrics-listen",
                               "127.0.0.1:0", "--user", user},
      std::map<std::string, std::string>{{"DLB_MODE", "local"},
                                         {"DLB_LOG_LEVEL", "info"},
                                         {"DLB_CONFIG", "\x01unset"},
                                         {"DLB_METRICS_LISTEN", "\x01unset"}},
      dir + "/dlb-demo");
  // The exporter logs its bound port once it serves.
  static const std::string kServing = "serving /metrics on 127.0.0.1:";
  const bool up = WaitFor(
      [&] {
        const std::string err = child_->Stderr();
        const size_t at = err.find(kServing);
        if (at != std::string::npos) {
          port_ = std::atoi(err.c_str() + at + kServing.size());
          return true;
        }
        return !child_->Running();
      },
      60000);
  if (!up || port_ == 0) {
    throw std::runtime_error("dlb-demo did not start its exporter: " + child_->Stderr());
  }
}

}  // namespace dlb::testing
