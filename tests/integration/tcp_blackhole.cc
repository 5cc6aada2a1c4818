#include "tcp_blackhole.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace dlb::testing {
namespace {

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

int ConnectUpstream(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Blocking connect on loopback: refused or accepted at once.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SetNonBlocking(fd);
  return fd;
}

// Writes all of `n` bytes to a non-blocking socket (loopback, small test traffic: a
// short wait for buffer space is fine). False if the peer is gone.
bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      pollfd pf{.fd = fd, .events = POLLOUT, .revents = 0};
      ::poll(&pf, 1, 100);
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

TcpBlackhole::TcpBlackhole(int upstream_port) : upstream_port_(upstream_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = 0;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 || ::pipe2(wake_, O_CLOEXEC) != 0) {
    const std::string err = std::strerror(errno);
    ::close(listen_fd_);
    throw std::runtime_error("tcp proxy: " + err);
  }
  port_ = ntohs(a.sin_port);
  SetNonBlocking(listen_fd_);
  thread_ = std::thread([this] { Run(); });
}

TcpBlackhole::~TcpBlackhole() {
  stop_ = true;
  const char c = 0;
  (void)!::write(wake_[1], &c, 1);
  thread_.join();
  for (Pair& p : pairs_) Close(p);
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

std::string TcpBlackhole::Url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

void TcpBlackhole::BlackHole() {
  black_ = true;
  const char c = 0;
  (void)!::write(wake_[1], &c, 1);
}

void TcpBlackhole::Heal() {
  black_ = false;
  const char c = 0;
  (void)!::write(wake_[1], &c, 1);
}

void TcpBlackhole::SetUpstream(int upstream_port) { upstream_port_ = upstream_port; }

void TcpBlackhole::SetReplyDelay(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed) {
  seed_ = seed;
  delay_max_ns_ = std::chrono::nanoseconds(max).count();
  delay_min_ns_ = std::chrono::nanoseconds(min).count();
  const char c = 0;
  (void)!::write(wake_[1], &c, 1);
}

void TcpBlackhole::Close(Pair& p) {
  if (p.client >= 0) ::close(p.client);
  if (p.upstream >= 0) ::close(p.upstream);
  if (p.client >= 0) connections_.fetch_sub(1);
  p.client = p.upstream = -1;
}

void TcpBlackhole::Run() {
  std::vector<pollfd> fds;
  char buf[16384];
  std::mt19937_64 rng(seed_.load());
  uint64_t rng_seed = seed_.load();
  auto now_ns = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  while (!stop_) {
    if (seed_.load() != rng_seed) {
      rng_seed = seed_.load();
      rng.seed(rng_seed);
    }
    // Delayed bytes whose time has come go out; the poll wakes for the next ones.
    int timeout_ms = 100;
    const int64_t now = now_ns();
    for (Pair& p : pairs_) {
      while (!p.held.empty() && p.held.front().first <= now) {
        if (p.client >= 0 && !p.dead) (void)WriteAll(p.client, p.held.front().second.data(), p.held.front().second.size());
        p.held.pop_front();
      }
      if (!p.held.empty()) {
        timeout_ms = std::min<int>(timeout_ms, static_cast<int>((p.held.front().first - now + 999'999) / 1'000'000));
      }
    }
    const bool black = black_.load();
    if (black) {
      for (Pair& p : pairs_) p.dead = true;
    }
    fds.clear();
    fds.push_back({.fd = wake_[0], .events = POLLIN, .revents = 0});
    fds.push_back({.fd = listen_fd_, .events = POLLIN, .revents = 0});
    for (const Pair& p : pairs_) {
      fds.push_back({.fd = p.client, .events = POLLIN, .revents = 0});
      fds.push_back({.fd = p.upstream, .events = static_cast<short>(p.upstream >= 0 ? POLLIN : 0), .revents = 0});
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) return;
    if (fds[0].revents & POLLIN) (void)!::read(wake_[0], buf, sizeof buf);
    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) break;
        const int one = 1;
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Pair p;
        p.client = c;
        connections_.fetch_add(1);
        if (black_.load()) {
          p.dead = true;   // accepted, then nothing: the client's bytes go nowhere
        } else {
          p.upstream = ConnectUpstream(upstream_port_.load());
          if (p.upstream < 0) {   // upstream down: the client sees the connection close
            Close(p);
            continue;
          }
        }
        pairs_.push_back(p);
      }
    }
    // fds[2 + 2i] / fds[3 + 2i] belong to pairs_[i] as it was before the accepts.
    const size_t polled = (fds.size() - 2) / 2;
    for (size_t i = 0; i < polled; ++i) {
      Pair& p = pairs_[i];
      const short cr = fds[2 + 2 * i].revents, ur = fds[3 + 2 * i].revents;
      bool gone = false;
      auto pump = [&](int from, int to) {
        const ssize_t n = ::recv(from, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          // A peer that closes is passed on as a close, unless the path is dead: then
          // the other side hears nothing, as with a real black hole.
          gone = true;
          return;
        }
        if (n < 0) return;
        const int64_t dmin = delay_min_ns_.load(), dmax = delay_max_ns_.load();
        if (from == p.upstream && !p.dead && dmax > 0) {
          const int64_t d = dmin + static_cast<int64_t>(rng() % static_cast<uint64_t>(dmax - dmin + 1));
          int64_t at = now_ns() + d;
          // In order: a chunk never overtakes the one before it.
          if (!p.held.empty() && p.held.back().first > at) at = p.held.back().first;
          p.held.emplace_back(at, std::string(buf, static_cast<size_t>(n)));
        } else if (p.dead || to < 0) {
          discarded_.fetch_add(static_cast<uint64_t>(n));
        } else if (!WriteAll(to, buf, static_cast<size_t>(n))) {
          gone = true;
        }
      };
      if (cr & (POLLIN | POLLHUP | POLLERR)) pump(p.client, p.upstream);
      if (!gone && p.upstream >= 0 && (ur & (POLLIN | POLLHUP | POLLERR))) pump(p.upstream, p.client);
      if (gone) {
        if (p.dead && p.client >= 0 && (cr & (POLLIN | POLLHUP | POLLERR)) == 0) {
          // The upstream went away behind a dead path: keep the client hanging.
          ::close(p.upstream);
          p.upstream = -1;
        } else {
          Close(p);
        }
      }
    }
    std::erase_if(pairs_, [](const Pair& p) { return p.client < 0; });
  }
}

}  // namespace dlb::testing
