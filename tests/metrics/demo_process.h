// dlb-demo (app/dlb-demo) running in mode local (no Redis) with its exporter on a free
// loopback port: a real process exporting the library's metrics.
#pragma once

#include <memory>
#include <string>

#include "child.h"

namespace dlb::testing {

class DemoProcess {
 public:
  // Offers `user` (NAME:OFFERED_PER_S:CAPACITY:LEAK_RATE) for up to `seconds`.
  // Throws std::runtime_error (with the demo's stderr) if no exporter comes up.
  DemoProcess(const std::string& dir, const std::string& user, int seconds = 600);
  int metrics_port() const { return port_; }
  Child& child() { return *child_; }

 private:
  std::unique_ptr<Child> child_;
  int port_ = 0;
};

// The environment's path of a program built by meson (DLB_DEMO, DLBCTL, ...); throws
// when unset.
std::string ProgramFromEnv(const char* var);

}  // namespace dlb::testing
