// A background child process for tests that talk to a running program (dlb-demo,
// prometheus): stdout and stderr go to files, the child dies with the test
// (PR_SET_PDEATHSIG) and is killed by the destructor.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace dlb::testing {

class Child {
 public:
  // Starts argv[0] (a path) with `env` set over the current environment (a value of
  // "\x01unset" removes the variable). Throws std::runtime_error if it cannot start.
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
        const std::string& log_prefix);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  std::string Stdout() const;
  std::string Stderr() const;
  // SIGTERM, then SIGKILL after `grace_ms`; returns the wait status.
  int Stop(int grace_ms = 5000);

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  std::string out_path_, err_path_;
};

// Polls `cond` every 50 ms until it holds or `timeout_ms` passes.
bool WaitFor(const std::function<bool()>& cond, int timeout_ms);

// A TCP port on 127.0.0.1 nothing listens on right now.
int FreeLoopbackPort();

std::string ReadFile(const std::string& path);

// A fresh directory under TMPDIR (or /tmp), removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace dlb::testing
