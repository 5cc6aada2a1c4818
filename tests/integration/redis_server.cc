#include "redis_server.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace dlb::testing {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  return timeval{.tv_sec = static_cast<time_t>(ms.count() / 1000),
                 .tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

RedisValue Convert(const redisReply* r) {
  RedisValue v;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      v.type = RedisValue::Type::kString;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = RedisValue::Type::kStatus;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = RedisValue::Type::kError;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      v.type = RedisValue::Type::kInteger;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.type = RedisValue::Type::kArray;
      for (size_t i = 0; i < r->elements; ++i) v.elements.push_back(Convert(r->element[i]));
      break;
    default:
      v.type = RedisValue::Type::kNil;
      break;
  }
  return v;
}

// A port the kernel considers free right now. Another process may take it before
// redis-server binds it; Start() then retries with a new one.
int PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string err = std::strerror(errno);
    close(fd);
    throw std::runtime_error("bind to a free port: " + err);
  }
  close(fd);
  return ntohs(a.sin_port);
}

// A redis.conf argument in double quotes (the config parser unescapes \\ and \").
std::string ConfQuote(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace

int64_t MonoNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string RedisValue::Describe() const {
  switch (type) {
    case Type::kNil: return "nil";
    case Type::kString: return "string '" + str + "'";
    case Type::kStatus: return "status '" + str + "'";
    case Type::kError: return "error '" + str + "'";
    case Type::kInteger: return "integer " + std::to_string(integer);
    case Type::kArray: {
      std::string s = "[";
      for (size_t i = 0; i < elements.size(); ++i) s += (i ? ", " : "") + elements[i].Describe();
      return s + "]";
    }
  }
  return "?";
}

// ---- RedisClient ---------------------------------------------------------------------

RedisClient::RedisClient(Options options) : options_(std::move(options)) {}

RedisClient::~RedisClient() { Disconnect(); }

void RedisClient::Disconnect() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

void RedisClient::Connect() {
  const timeval tv = ToTimeval(options_.timeout);
  redisContext* c = options_.unix_path.empty()
                        ? redisConnectWithTimeout(options_.host.c_str(), options_.port, tv)
                        : redisConnectUnixWithTimeout(options_.unix_path.c_str(), tv);
  if (c == nullptr) throw std::runtime_error("redis connect: out of memory");
  if (c->err != 0) {
    const std::string err = c->errstr;
    redisFree(c);
    throw std::runtime_error("redis connect: " + err);
  }
  redisSetTimeout(c, tv);
  ctx_ = c;
  if (!options_.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!options_.username.empty()) auth.push_back(options_.username);
    auth.push_back(options_.password);
    const RedisValue r = Command(auth);
    if (r.is_error()) {
      Disconnect();
      throw std::runtime_error("redis AUTH: " + r.str);
    }
  }
  if (options_.db != 0) {
    const RedisValue r = Command({"SELECT", std::to_string(options_.db)});
    if (r.is_error()) {
      Disconnect();
      throw std::runtime_error("redis SELECT: " + r.str);
    }
  }
}

RedisValue RedisClient::Command(const std::vector<std::string>& argv) {
  if (ctx_ == nullptr) Connect();
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (r == nullptr) {
    const std::string err = ctx_->errstr;
    Disconnect();
    throw std::runtime_error("redis command " + (argv.empty() ? std::string() : argv[0]) +
                             ": " + err);
  }
  RedisValue v = Convert(r);
  freeReplyObject(r);
  return v;
}

RedisValue RedisClient::Command(std::string_view line) {
  std::vector<std::string> argv;
  std::istringstream in{std::string(line)};
  for (std::string w; in >> w;) argv.push_back(w);
  return Command(argv);
}

// ---- RedisServer ---------------------------------------------------------------------

RedisServer::RedisServer(RedisServerOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/dlb-it-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  dir_ = tmpl;
  if (options_.unix_socket) socket_path_ = dir_ + "/redis.sock";
  try {
    // A port picked as free can be taken before redis-server binds it: try a few.
    for (int attempt = 0;; ++attempt) {
      port_ = PickFreePort();
      try {
        Start();
        break;
      } catch (const std::exception&) {
        const bool port_taken = Log().find("Address already in use") != std::string::npos;
        Kill();
        if (!port_taken || attempt == 4) throw;
        std::error_code ec;
        std::filesystem::remove(dir_ + "/redis.log", ec);
      }
    }
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw;
  }
}

RedisServer::~RedisServer() {
  Kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void RedisServer::Start() {
  {
    // A config file keeps the password off the command line and needs no shell
    // quoting for `save ""`.
    std::ofstream conf(dir_ + "/redis.conf", std::ios::trunc);
    conf << "port " << port_ << "\n"
         << "bind 127.0.0.1\n"
         << "save \"\"\n"
         << "appendonly no\n"
         << "daemonize no\n"
         << "dir " << ConfQuote(dir_) << "\n"
         << "logfile \"\"\n";
    if (!socket_path_.empty()) conf << "unixsocket " << ConfQuote(socket_path_) << "\nunixsocketperm 700\n";
    if (!options_.requirepass.empty()) conf << "requirepass " << ConfQuote(options_.requirepass) << "\n";
    if (!conf) throw std::runtime_error("cannot write " + dir_ + "/redis.conf");
  }
  std::vector<std::string> args = {"redis-server", dir_ + "/redis.conf"};
  for (const std::string& a : options_.extra_args) args.push_back(a);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The added entries first: getenv() returns the first match.
  std::vector<std::string> env_strings = options_.env;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string log_path = dir_ + "/redis.log";
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    // A session of its own, as a Redis service has: with the kernel's autogroup
    // scheduling (on by default) a server in the test's session shares one CPU share
    // with every worker the test starts (32 spinning threads starved it to a policy
    // decision in nearly every call), which no deployment does.
    setsid();
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      if (fd > STDERR_FILENO) close(fd);
    }
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    execvpe("redis-server", argv.data(), envp.data());
    _exit(127);
  }
  pid_ = pid;
  stopped_ = false;
  WaitUntilReady();
}

void RedisServer::WaitUntilReady() {
  const auto end = std::chrono::steady_clock::now() + options_.start_timeout;
  std::string last_error = "never tried";
  for (;;) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited during start-up on port " +
                               std::to_string(port_) + "; log:\n" + Log());
    }
    try {
      RedisClient::Options o = AdminOptions(0);
      o.timeout = std::chrono::milliseconds(500);
      RedisClient probe(o);
      const RedisValue r = probe.Command("PING");
      if (r.type == RedisValue::Type::kStatus && r.str == "PONG") return;
      last_error = "PING answered " + r.Describe();
    } catch (const std::exception& e) {
      last_error = e.what();
    }
    if (std::chrono::steady_clock::now() >= end) {
      throw std::runtime_error("redis-server on port " + std::to_string(port_) +
                               " did not answer PING in time (" + last_error + "); log:\n" + Log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

RedisClient::Options RedisServer::AdminOptions(int db) const {
  RedisClient::Options o;
  o.port = port_;
  o.password = options_.requirepass;
  o.db = db;
  return o;
}

std::string RedisServer::Url(int db) const {
  return "redis://127.0.0.1:" + std::to_string(port_) + (db != 0 ? "/" + std::to_string(db) : "");
}

std::string RedisServer::UrlWithCredentials(std::string_view userinfo, int db) const {
  return "redis://" + std::string(userinfo) + "@127.0.0.1:" + std::to_string(port_) +
         (db != 0 ? "/" + std::to_string(db) : "");
}

std::string RedisServer::UnixUrl(int db) const {
  if (socket_path_.empty()) throw std::logic_error("RedisServer started without a unix socket");
  return "unix://" + socket_path_ + (db != 0 ? "?db=" + std::to_string(db) : "");
}

void RedisServer::Kill() {
  {
    std::lock_guard<std::mutex> lock(admin_mu_);
    admin_.reset();
  }
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);   // also ends a stopped process
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  stopped_ = false;
}

void RedisServer::Stop() {
  if (pid_ <= 0) throw std::logic_error("Stop: redis-server is not running");
  kill(pid_, SIGSTOP);
  // Wait until the kernel reports it stopped, so the caller's next step really meets
  // a silent server.
  int status = 0;
  while (waitpid(pid_, &status, WUNTRACED) < 0 && errno == EINTR) {
  }
  stopped_ = true;
}

void RedisServer::Cont() {
  if (pid_ <= 0) throw std::logic_error("Cont: redis-server is not running");
  kill(pid_, SIGCONT);
  int status = 0;
  while (waitpid(pid_, &status, WCONTINUED) < 0 && errno == EINTR) {
  }
  stopped_ = false;
}

void RedisServer::Restart() {
  Kill();
  std::error_code ec;
  std::filesystem::remove(dir_ + "/dump.rdb", ec);
  Start();
}

RedisValue RedisServer::Command(const std::vector<std::string>& argv) {
  std::lock_guard<std::mutex> lock(admin_mu_);
  if (stopped_) throw std::logic_error("Command on a stopped redis-server would block");
  if (!admin_) admin_ = std::make_unique<RedisClient>(AdminOptions(0));
  return admin_->Command(argv);
}

RedisValue RedisServer::Command(std::string_view line) {
  std::lock_guard<std::mutex> lock(admin_mu_);
  if (stopped_) throw std::logic_error("Command on a stopped redis-server would block");
  if (!admin_) admin_ = std::make_unique<RedisClient>(AdminOptions(0));
  return admin_->Command(line);
}

std::unique_ptr<RedisClient> RedisServer::NewClient(int db) const {
  return std::make_unique<RedisClient>(AdminOptions(db));
}

long long RedisServer::BucketKeyCount() {
  const RedisValue keys = Command(std::vector<std::string>{"KEYS", "dlb:{*"});
  if (keys.type != RedisValue::Type::kArray) throw std::runtime_error("KEYS: " + keys.Describe());
  return static_cast<long long>(keys.elements.size());
}

int64_t RedisServer::TimeUs() {
  const RedisValue t = Command("TIME");
  if (t.type != RedisValue::Type::kArray || t.elements.size() != 2) {
    throw std::runtime_error("TIME answered " + t.Describe());
  }
  return std::stoll(t.elements[0].str) * 1'000'000 + std::stoll(t.elements[1].str);
}

std::string RedisServer::Log() const {
  std::ifstream in(dir_ + "/redis.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace dlb::testing
