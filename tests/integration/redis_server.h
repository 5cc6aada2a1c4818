// A real redis-server for integration and e2e tests.
//
// Each RedisServer is its own process on a free 127.0.0.1 port (and optionally a unix
// socket) with no persistence (`--save '' --appendonly no`) in a private temp dir. The
// constructor returns once the server answers PING (bounded by a timeout; it throws
// std::runtime_error with the server's log otherwise); the destructor kills it and
// removes the dir, also when a test fails. The server is killed with the process
// that started it (PR_SET_PDEATHSIG), so a crashed test binary leaves nothing behind.
//
// Commands go over hiredis's synchronous API (no redis-cli), with a timeout so that a
// stopped server cannot hang a test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;

namespace dlb::testing {

// A reply, copied out of hiredis so that callers need not know hiredis types.
struct RedisValue {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;          // kString, kStatus, kError
  long long integer = 0;    // kInteger
  std::vector<RedisValue> elements;  // kArray

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  // "string 'abc'", "error 'ERR ...'", "integer 5", ... for assertion messages.
  std::string Describe() const;
};

// One synchronous connection. Transport errors throw std::runtime_error (the context
// is dead after one, so the next call reconnects); error replies are returned.
class RedisClient {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::string unix_path;      // used instead of host/port when set
    std::string username;       // empty = default user
    std::string password;       // empty = no AUTH
    int db = 0;
    std::chrono::milliseconds timeout{5000};
  };
  explicit RedisClient(Options options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Binary-safe: each argument is passed as is.
  RedisValue Command(const std::vector<std::string>& argv);
  // Splits `line` on spaces (no quoting): Command("SCRIPT FLUSH").
  RedisValue Command(std::string_view line);

  // Drops the connection; the next command reconnects.
  void Disconnect();

 private:
  void Connect();
  Options options_;
  redisContext* ctx_ = nullptr;
};

struct RedisServerOptions {
  bool unix_socket = false;     // also listen on <dir>/redis.sock
  std::string requirepass;      // password of the default user
  std::vector<std::string> extra_args;  // appended to the command line
  // "NAME=value" entries added to the server's environment, e.g. libfaketime's
  // LD_PRELOAD and FAKETIME to run a server whose clock is off.
  std::vector<std::string> env;
  std::chrono::milliseconds start_timeout{10000};
};

class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const std::string& dir() const { return dir_; }
  const std::string& socket_path() const { return socket_path_; }
  const RedisServerOptions& options() const { return options_; }

  // redis://127.0.0.1:<port>[/db], without credentials.
  std::string Url(int db = 0) const;
  // redis://<userinfo>@127.0.0.1:<port>; userinfo is "user:password" or ":password".
  std::string UrlWithCredentials(std::string_view userinfo, int db = 0) const;
  // unix://<socket path>[?db=N]; requires options.unix_socket.
  std::string UnixUrl(int db = 0) const;

  // SIGKILL and reap: the port refuses connections afterwards.
  void Kill();
  // SIGSTOP / SIGCONT: the port accepts connections (the kernel's backlog) but nothing
  // answers. Do not call Command() while stopped.
  void Stop();
  void Cont();
  // Kills the server if it runs and starts a fresh, empty one on the same port.
  void Restart();

  // Runs a command as the admin (the default user, with requirepass), on db 0.
  RedisValue Command(const std::vector<std::string>& argv);
  RedisValue Command(std::string_view line);
  // A new client connection with the admin credentials.
  std::unique_ptr<RedisClient> NewClient(int db = 0) const;

  // Redis's clock (TIME) in microseconds since the epoch.
  int64_t TimeUs();

  // Keys of users' buckets (dlb:{<digest>}:..., markers of debits included): the
  // database's size without what processes share (the participant set, the reset log).
  long long BucketKeyCount();

  // The server's log, for failure messages.
  std::string Log() const;

 private:
  void Start();
  void WaitUntilReady();
  RedisClient::Options AdminOptions(int db) const;

  RedisServerOptions options_;
  std::string dir_;
  std::string socket_path_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool stopped_ = false;
  std::mutex admin_mu_;
  std::unique_ptr<RedisClient> admin_;
};

// Polls `cond` every `interval` until it holds or `timeout` passes; returns whether
// it held. A bounded wait on a condition, never a blind sleep.
template <typename Cond>
bool WaitFor(Cond cond, std::chrono::milliseconds timeout,
             std::chrono::milliseconds interval = std::chrono::milliseconds(2));

// Monotonic nanoseconds, for measuring call durations in tests.
int64_t MonoNowNs();

}  // namespace dlb::testing

#include <thread>

template <typename Cond>
bool dlb::testing::WaitFor(Cond cond, std::chrono::milliseconds timeout,
                           std::chrono::milliseconds interval) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(interval);
  }
}
