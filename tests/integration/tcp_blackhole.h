// A TCP proxy on 127.0.0.1 for fault tests: forwards each accepted connection to an
// upstream port until told to black-hole, and then goes silent the way a dead network
// path does: connections stay open and new ones are still accepted, but every byte in
// either direction is read and thrown away, nothing is forwarded and nothing is
// closed. Connections that saw the black hole stay silent for good (their streams have
// lost bytes); connections accepted after Heal() are forwarded again. SetUpstream()
// points new connections at another server (a failover behind a fixed address).
// SetReplyDelay() makes it a slow path instead: every chunk of bytes from the upstream
// reaches the client after a random delay (seeded), in order.
//
// One thread with poll(); the destructor stops it and closes every socket.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace dlb::testing {

class TcpBlackhole {
 public:
  // Listens on a free loopback port; throws std::runtime_error if it cannot.
  explicit TcpBlackhole(int upstream_port);
  ~TcpBlackhole();
  TcpBlackhole(const TcpBlackhole&) = delete;
  TcpBlackhole& operator=(const TcpBlackhole&) = delete;

  int port() const { return port_; }
  // redis://127.0.0.1:<port>
  std::string Url() const;

  void BlackHole();
  void Heal();
  void SetUpstream(int upstream_port);
  // Delays what the upstream sends by a uniform [min, max] per chunk (0, 0 = none).
  void SetReplyDelay(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed);
  // Connections currently open through the proxy (dead ones included).
  size_t connections() const { return connections_.load(); }
  // Bytes thrown away while black-holed.
  uint64_t discarded_bytes() const { return discarded_.load(); }

 private:
  struct Pair {
    int client = -1;
    int upstream = -1;
    bool dead = false;     // saw the black hole: discard forever
    // Delayed upstream bytes: (monotonic ns at which they go out, bytes), in order.
    std::deque<std::pair<int64_t, std::string>> held;
  };
  void Run();
  void Close(Pair& p);

  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<int> upstream_port_;
  std::atomic<bool> black_{false};
  std::atomic<bool> stop_{false};
  std::atomic<size_t> connections_{0};
  std::atomic<uint64_t> discarded_{0};
  std::atomic<int64_t> delay_min_ns_{0};
  std::atomic<int64_t> delay_max_ns_{0};
  std::atomic<uint64_t> seed_{1};
  std::vector<Pair> pairs_;   // only the thread touches it
  std::thread thread_;
};

}  // namespace dlb::testing
