#include "testbed.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace dlb::e2e {

int Sh(const std::string& cmd, std::string* out) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) text.append(buf.data(), n);
  const int st = pclose(p);
  if (out != nullptr) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string ShOk(const std::string& cmd) {
  std::string out;
  const int rc = Sh(cmd, &out);
  if (rc != 0) throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + cmd + "\n" + out);
  return out;
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout, std::chrono::milliseconds step) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(step);
  }
}

// --- Child ----------------------------------------------------------------------

Child::Child(const std::vector<std::string>& argv, const std::string& log_path) : log_path_(log_path) {
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
}

Child::~Child() {
  if (Running()) Stop(SIGKILL, std::chrono::milliseconds(5000));
}

bool Child::Running() {
  if (reaped_) return false;
  const pid_t r = waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) reaped_ = true;
  return !reaped_;
}

void Child::Signal(int sig) {
  if (Running()) kill(pid_, sig);
}

int Child::Stop(int sig, std::chrono::milliseconds timeout) {
  Signal(sig);
  if (!WaitFor([&] { return !Running(); }, timeout, std::chrono::milliseconds(20))) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
    reaped_ = true;
    return -1000;
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return -WTERMSIG(status_);
  return -1;
}

std::string Child::Log() const {
  std::ifstream in(log_path_);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// --- Testbed --------------------------------------------------------------------

namespace {

bool PidAlive(long pid) { return pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

void OffloadsOff(const std::string& prefix, const std::string& link) {
  // Not every veth offload can be changed on every kernel: best effort, as documented.
  Sh(prefix + "ethtool -K " + link + " tso off gso off gro off tx off rx off");
}

}  // namespace

Testbed::Testbed(int lanes) : lanes_(lanes), tag_(std::to_string(getpid())) {
  CleanStale();
  char tmpl[] = "/tmp/dlb-e2e-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  ShOk("ip netns add " + server_ns());
  ShOk("ip netns exec " + server_ns() + " ip link set lo up");
  for (int i = 0; i < lanes_; ++i) {
    const std::string c = "e" + tag_ + "c" + std::to_string(i);
    const std::string s = "e" + tag_ + "s" + std::to_string(i);
    ShOk("ip netns add " + client_ns(i));
    ShOk("ip netns exec " + client_ns(i) + " ip link set lo up");
    ShOk("ip link add " + c + "a type veth peer name " + c + "b");
    ShOk("ip link add " + s + "a type veth peer name " + s + "b");
    ShOk("ip link set " + c + "a netns " + client_ns(i));
    ShOk("ip link set " + s + "a netns " + server_ns());
    ShOk("ip netns exec " + client_ns(i) + " ip addr add " + client_ip(i) + "/24 dev " + c + "a");
    ShOk("ip netns exec " + server_ns() + " ip addr add " + server_ip(i) + "/24 dev " + s + "a");
    ShOk("ip netns exec " + client_ns(i) + " ip link set " + c + "a up");
    ShOk("ip netns exec " + server_ns() + " ip link set " + s + "a up");
    ShOk("ip link set " + c + "b up");
    ShOk("ip link set " + s + "b up");
    // No IPv6 on the middle ends: their router solicitations and DAD would be the only
    // traffic the root namespace adds to the wire.
    Sh("sysctl -qw net.ipv6.conf." + c + "b.disable_ipv6=1 net.ipv6.conf." + s + "b.disable_ipv6=1");
    OffloadsOff("", c + "b");
    OffloadsOff("", s + "b");
    OffloadsOff("ip netns exec " + client_ns(i) + " ", c + "a");
    OffloadsOff("ip netns exec " + server_ns() + " ", s + "a");
  }
  StartNginx();
}

Testbed::~Testbed() {
  nginx_.reset();
  for (int i = 0; i < lanes_; ++i) {
    Sh("ip netns del " + client_ns(i));
    Sh("ip link del e" + tag_ + "c" + std::to_string(i) + "b");
    Sh("ip link del e" + tag_ + "s" + std::to_string(i) + "b");
  }
  Sh("ip netns del " + server_ns());
  const char* keep = std::getenv("DLB_KEEP");
  if (keep != nullptr && std::string(keep) == "1") {
    std::fprintf(stderr, "testbed files kept in %s\n", dir_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void Testbed::CleanStale() {
  std::string out;
  Sh("ip netns list", &out);
  const std::regex ns_re("^dlbe([0-9]+)[cs][0-9]*");
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, ns_re) && !PidAlive(std::stol(m[1]))) Sh("ip netns del " + m[0].str());
  }
  Sh("ip -o link show", &out);
  const std::regex link_re(" (e([0-9]+)[cs][0-9]+[ab])[@:]");
  std::istringstream links(out);
  for (std::string line; std::getline(links, line);) {
    std::smatch m;
    if (std::regex_search(line, m, link_re) && !PidAlive(std::stol(m[2]))) Sh("ip link del " + m[1].str());
  }
}

void Testbed::StartNginx() {
  const std::string conf = dir_ + "/nginx.conf";
  std::ofstream f(conf);
  f << "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid " << dir_ << "/nginx.pid;\n"
    << "error_log " << dir_ << "/nginx-error.log;\n"
    << "events { worker_connections 1024; }\n"
    << "http {\n  log_format dlb '$request_method $uri $http_x_user_id $status';\n"
    << "  access_log " << dir_ << "/access.log dlb;\n  keepalive_requests 100000;\n"
    << "  client_body_temp_path " << dir_ << "; proxy_temp_path " << dir_ << "; fastcgi_temp_path " << dir_
    << "; uwsgi_temp_path " << dir_ << "; scgi_temp_path " << dir_ << ";\n"
    << "  server { listen 80; location / { return 200 \"ok\\n\"; } }\n"
    << "  server { listen 8081; location / { return 200 \"other\\n\"; } }\n"
    // Behind a PROXY-protocol terminator: the client the header names, per request.
    << "  log_format dlbproxy '$proxy_protocol_addr $request_method $uri $status';\n"
    << "  server { listen 8083 proxy_protocol; access_log " << dir_ << "/proxy.log dlbproxy;\n"
    << "    location / { return 200 \"ok\\n\"; } }\n}\n";
  f.close();
  nginx_ = std::make_unique<Child>(
      std::vector<std::string>{"ip", "netns", "exec", server_ns(), "nginx", "-c", conf, "-p", dir_}, dir_ + "/nginx.log");
  if (!WaitFor([&] { return InServer("ss -ltn | grep -q ':80 '") == 0; }, std::chrono::seconds(20))) {
    throw std::runtime_error("nginx did not start: " + nginx_->Log());
  }
}

std::string Testbed::client_ns(int lane) const { return "dlbe" + tag_ + "c" + std::to_string(lane); }
std::string Testbed::server_ns() const { return "dlbe" + tag_ + "s"; }
std::string Testbed::client_ip(int lane) const { return "10.99." + std::to_string(lane + 1) + ".1"; }
std::string Testbed::server_ip(int lane) const { return "10.99." + std::to_string(lane + 1) + ".2"; }
std::string Testbed::client_link(int lane) const { return "e" + tag_ + "c" + std::to_string(lane) + "b"; }
std::string Testbed::server_link(int lane) const { return "e" + tag_ + "s" + std::to_string(lane) + "b"; }
std::string Testbed::server_ns_link(int lane) const { return "e" + tag_ + "s" + std::to_string(lane) + "a"; }

int Testbed::InClient(const std::string& cmd, std::string* out, int lane) const {
  return Sh("ip netns exec " + client_ns(lane) + " " + cmd, out);
}

int Testbed::InServer(const std::string& cmd, std::string* out) const {
  return Sh("ip netns exec " + server_ns() + " sh -c \"" + cmd + "\"", out);
}

std::string Testbed::Curl(const std::string& path, const std::string& user, int lane, int port) const {
  std::string out;
  InClient("curl -s -o /dev/null -m 10 -w '%{http_code}' -H 'X-User-ID: " + user + "' http://" + server_ip(lane) +
               ":" + std::to_string(port) + path,
           &out, lane);
  return out;
}

int Testbed::ServerConnections() const {
  std::string out;
  InServer("ss -Htn state established '( sport = :80 )' | wc -l", &out);
  return std::atoi(out.c_str());
}

// --- ApplianceProcess -----------------------------------------------------------

std::string AppliancePath() {
  const char* p = std::getenv("DLB_APPLIANCE");
  return p != nullptr ? p : "dlb-appliance";
}

ApplianceProcess::ApplianceProcess(const Testbed& bed, int lane, const std::string& yaml_rest, const std::string& name)
    : bed_(bed), lane_(lane), name_(name) {
  config_path_ = bed.dir() + "/" + name + ".yaml";
  file_prefix_ = "dlbe" + std::to_string(getpid()) + name;
  WriteConfig(yaml_rest);
  // Two lcores on the two CPUs: the control thread and one worker. The idle back-off
  // lets the worker share its CPU with the clients and nginx.
  child_ = std::make_unique<Child>(
      std::vector<std::string>{AppliancePath(), "--no-huge", "-m", "256", "--no-pci", "--lcores", "0@0,1@1",
                               "--file-prefix", file_prefix_, "--log-level", "lib.eal:notice", "--", "--config",
                               config_path_, "--metrics", "127.0.0.1:0"},
      bed.dir() + "/" + name + ".log");
}

ApplianceProcess::~ApplianceProcess() {
  if (child_) child_->Stop(SIGKILL, std::chrono::milliseconds(5000));
  std::error_code ec;
  std::filesystem::remove_all("/var/run/dpdk/" + file_prefix_, ec);
}

void ApplianceProcess::WriteConfig(const std::string& yaml_rest) {
  const std::string tmp = config_path_ + ".tmp";
  std::ofstream f(tmp);
  f << "appliance:\n"
    << "  client_port: net_af_packet0,iface=" << bed_.client_link(lane_) << "\n"
    << "  server_port: net_af_packet1,iface=" << bed_.server_link(lane_) << "\n"
    << "  idle_backoff_us: 50\n"
    << "  rx_descriptors: 512\n  tx_descriptors: 512\n"
    << yaml_rest;
  f.close();
  std::filesystem::rename(tmp, config_path_);  // a reload never reads half a file
}

bool ApplianceProcess::WaitRunning() {
  const bool ok = WaitFor(
      [&] { return !child_->Running() || child_->Log().find("dlb-appliance: running") != std::string::npos; },
      std::chrono::seconds(60));
  if (!ok || !child_->Running()) return false;
  std::smatch m;
  const std::string log = child_->Log();
  if (std::regex_search(log, m, std::regex("metrics on [0-9.]+:([0-9]+)"))) metrics_port_ = std::stoi(m[1]);
  return metrics_port_ > 0;
}

std::string ApplianceProcess::Scrape() const {
  std::string out;
  if (Sh("curl -s -m 10 http://127.0.0.1:" + std::to_string(metrics_port_) + "/metrics", &out) != 0) return {};
  return out;
}

double ApplianceProcess::Metric(const std::string& family, const std::vector<std::string>& labels) const {
  const std::string text = Scrape();
  if (text.empty()) return -1;
  double sum = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, family.size(), family) != 0) continue;
    const char next = line.size() > family.size() ? line[family.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    bool all = true;
    for (const auto& l : labels) all = all && line.find(l) != std::string::npos;
    if (!all) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

void ApplianceProcess::Reload() { child_->Signal(SIGHUP); }

int ApplianceProcess::Stop() { return child_->Stop(SIGTERM, std::chrono::seconds(30)); }

}  // namespace dlb::e2e
