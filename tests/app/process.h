// Helpers for tests that run programs: a child process with given stdin, environment
// and captured output, and a private redis-server on a free loopback port.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dlb::apptest {

struct ProcessResult {
  int exit_code = -1;    // -signal when killed by a signal
  std::string out;       // stdout
  std::string err;       // stderr
};

// Runs argv[0] (a path) with `stdin_data` on stdin. `env` entries are set over the
// current environment; an entry with nullopt removes the variable. A child still
// running after `timeout_s` is killed (the result then says so in `err`).
ProcessResult RunProcess(const std::vector<std::string>& argv, const std::string& stdin_data = {},
                         const std::map<std::string, std::optional<std::string>>& env = {},
                         double timeout_s = 60);

// A TCP port on 127.0.0.1 that nothing listens on right now.
int FreeLoopbackPort();

// redis-server on 127.0.0.1:<free port> in a private temp dir, no persistence. The
// constructor returns once it answers PING (throws std::runtime_error otherwise); the
// destructor kills it. The server dies with the test process (PR_SET_PDEATHSIG).
class RedisProcess {
 public:
  explicit RedisProcess(const std::string& requirepass = {});
  ~RedisProcess();
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }

 private:
  bool Start(const std::string& requirepass);
  void Kill();
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// The redis-server binary: $REDIS_SERVER, else "redis-server" on PATH.
std::string RedisServerPath();

}  // namespace dlb::apptest
