// The appliance's testbed on one machine (docs/testing.md, "Testbed on one machine"): network
// namespaces for the client hosts and the server host, joined by veth pairs whose middle
// ends stay in the root namespace for the appliance's net_af_packet ports, nginx in the
// server namespace (its access log, dir()/access.log: "METHOD URI X-User-ID STATUS" per
// request, the URI as nginx normalized it; port 8083 takes the PROXY protocol and logs
// "PROXY-ADDRESS METHOD URI STATUS" to dir()/proxy.log), and the appliance as a child
// process.
//
//   lane i:  [client ns i] c<i>a --veth-- c<i>b (root) = appliance i = s<i>b (root) --veth-- s<i>a [server ns]
//
// Names carry the test process's pid (namespaces "dlbe<pid>c<i>" / "dlbe<pid>s", links
// "e<pid>c<i>a" ...); everything is removed in the destructor, and leftovers of dead
// test processes are removed at start. Offloads are off on every veth end so that
// segments stay as sent.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dlb::e2e {

// Runs `cmd` with /bin/sh; returns its exit status, stdout (and stderr) in `out`.
int Sh(const std::string& cmd, std::string* out = nullptr);
// Like Sh, but throws with the command and its output on a non-zero exit.
std::string ShOk(const std::string& cmd);

// Polls `cond` until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
             std::chrono::milliseconds step = std::chrono::milliseconds(50));

// A child process with stdout and stderr in a log file; killed (SIGKILL) if the test
// process dies.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log_path);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int sig);
  // Sends `sig` and waits up to `timeout` for the exit; returns the exit code, or
  // -signal, or -1000 if it had to be killed.
  int Stop(int sig, std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  std::string log_path_;
};

class Testbed {
 public:
  explicit Testbed(int lanes = 1);
  ~Testbed();
  Testbed(const Testbed&) = delete;
  Testbed& operator=(const Testbed&) = delete;

  const std::string& dir() const { return dir_; }
  std::string client_ns(int lane = 0) const;
  std::string server_ns() const;
  std::string client_ip(int lane = 0) const;   // 10.99.<lane+1>.1
  std::string server_ip(int lane = 0) const;   // 10.99.<lane+1>.2
  std::string client_link(int lane = 0) const; // the client side's root end (appliance port)
  std::string server_link(int lane = 0) const; // the server side's root end (appliance port)
  std::string server_ns_link(int lane = 0) const;

  // Runs `cmd` in a namespace (ip netns exec).
  int InClient(const std::string& cmd, std::string* out = nullptr, int lane = 0) const;
  int InServer(const std::string& cmd, std::string* out = nullptr) const;

  // curl from the client namespace: the HTTP status ("000" on failure).
  std::string Curl(const std::string& path, const std::string& user, int lane = 0, int port = 80) const;
  // Established TCP connections of nginx in the server namespace (port 80).
  int ServerConnections() const;

 private:
  void CleanStale();
  void StartNginx();
  int lanes_;
  std::string tag_;
  std::string dir_;
  std::unique_ptr<Child> nginx_;
};

// dlb-appliance as a child process for one lane of a testbed.
class ApplianceProcess {
 public:
  // `yaml_rest` is appended after the generated appliance: section (rules, redis: ...).
  ApplianceProcess(const Testbed& bed, int lane, const std::string& yaml_rest, const std::string& name = "app");
  ~ApplianceProcess();
  const std::string& config_path() const { return config_path_; }
  void WriteConfig(const std::string& yaml_rest);
  // Waits for "running" in the log; false (log printed by the caller) if it exited.
  bool WaitRunning();
  int metrics_port() const { return metrics_port_; }
  // The sum of every sample of `family` whose labels contain all of `labels` (e.g.
  // {"action=\"allowed\""}); -1 when the scrape fails.
  double Metric(const std::string& family, const std::vector<std::string>& labels = {}) const;
  std::string Scrape() const;
  void Reload();
  int Stop();  // SIGTERM; the exit code
  std::string Log() const { return child_ ? child_->Log() : std::string(); }
  Child& child() { return *child_; }

 private:
  const Testbed& bed_;
  int lane_;
  std::string name_;
  std::string config_path_;
  std::string file_prefix_;
  std::unique_ptr<Child> child_;
  int metrics_port_ = 0;
};

// The appliance binary ($DLB_APPLIANCE).
std::string AppliancePath();

}  // namespace dlb::e2e
