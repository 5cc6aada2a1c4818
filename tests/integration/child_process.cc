#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

extern char** environ;

namespace dlb::testing {

ChildProcess::ChildProcess(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  std::vector<std::string> a = args;
  std::vector<char*> argv;
  for (std::string& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> e = env;
  for (char** p = environ; *p != nullptr; ++p) {
    const std::string_view var(*p);
    const std::string_view name = var.substr(0, var.find('='));
    bool overridden = false;
    for (const std::string& x : env) overridden |= x.compare(0, name.size() + 1, std::string(name) + "=") == 0;
    if (!overridden) e.emplace_back(var);
  }
  std::vector<char*> envp;
  for (std::string& s : e) envp.push_back(s.data());
  envp.push_back(nullptr);
  const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    throw std::runtime_error(std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc));
  }
  to_ = fdopen(in[1], "w");
  from_ = fdopen(out[0], "r");
}

ChildProcess::~ChildProcess() {
  if (to_ != nullptr) fclose(to_);
  if (from_ != nullptr) fclose(from_);
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string ChildProcess::ReadLine() {
  char buf[1024];
  if (fgets(buf, sizeof buf, from_) == nullptr) return {};
  std::string s(buf);
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void ChildProcess::Go() {
  fputs("go\n", to_);
  fflush(to_);
}

int ChildProcess::Wait() {
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace dlb::testing
