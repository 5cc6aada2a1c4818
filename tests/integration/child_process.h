// A worker process of a multi-process test, with pipes to its stdin and stdout: the
// test starts several, reads a "ready" line from each, starts them all together with
// Go() and reads their results. The destructor kills and reaps it, also when a test
// fails.
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <string>
#include <vector>

namespace dlb::testing {

class ChildProcess {
 public:
  // `args[0]` is the executable's path. `env` ("NAME=value") is added to this process's
  // environment, overriding names that are set in both. Throws std::runtime_error.
  explicit ChildProcess(const std::vector<std::string>& args, const std::vector<std::string>& env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // One line of its stdout without the newline; empty at end of file.
  std::string ReadLine();
  // Writes "go\n" to its stdin.
  void Go();
  // Waits for it to exit: its exit code, or 128 + signal.
  int Wait();

 private:
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
};

}  // namespace dlb::testing
