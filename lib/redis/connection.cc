#include "redis/connection.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "dlb/clock.h"

namespace dlb::redis {
namespace {

int64_t NowNs() { return MonotonicClock::Instance().NowNs(); }

// Waits for `events` on fd until `deadline_ns`; returns revents, 0 on timeout, -1 on
// error (errno set).
int WaitFor(int fd, short events, int64_t deadline_ns) {
  for (;;) {
    const int64_t left = deadline_ns - NowNs();
    if (left <= 0) return 0;
    pollfd p{.fd = fd, .events = events, .revents = 0};
    timespec ts{.tv_sec = left / 1'000'000'000, .tv_nsec = left % 1'000'000'000};
    const int rc = ppoll(&p, 1, &ts, nullptr);
    if (rc > 0) return p.revents;
    if (rc == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

std::string Errno(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

CommandWriter& CommandWriter::Begin(size_t argc) {
  char buf[24];
  const int n = std::snprintf(buf, sizeof buf, "*%zu\r\n", argc);
  out_.append(buf, static_cast<size_t>(n));
  return *this;
}

CommandWriter& CommandWriter::Arg(std::string_view a) {
  char buf[24];
  const int n = std::snprintf(buf, sizeof buf, "$%zu\r\n", a.size());
  out_.append(buf, static_cast<size_t>(n));
  out_.append(a);
  out_.append("\r\n", 2);
  return *this;
}

CommandWriter& CommandWriter::Arg(int64_t v) {
  char buf[24];
  const int n = std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  return Arg(std::string_view(buf, static_cast<size_t>(n)));
}

CommandWriter& CommandWriter::ArgDouble(double v) {
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%.17g", v);
  return Arg(std::string_view(buf, static_cast<size_t>(n)));
}

std::string DescribeReply(const redisReply* r) {
  if (r == nullptr) return "no reply";
  switch (r->type) {
    case REDIS_REPLY_ERROR: return std::string(r->str, r->len);
    case REDIS_REPLY_STATUS: return "status " + std::string(r->str, r->len);
    case REDIS_REPLY_STRING: return "string reply";
    case REDIS_REPLY_INTEGER: return "integer reply " + std::to_string(r->integer);
    case REDIS_REPLY_NIL: return "nil reply";
    case REDIS_REPLY_ARRAY: return "array reply of " + std::to_string(r->elements);
    default: return "reply of type " + std::to_string(r->type);
  }
}

Connection::Connection(int fd) : fd_(fd), reader_(redisReaderCreate()) {}

Connection::~Connection() {
  if (fd_ >= 0) close(fd_);
  if (reader_ != nullptr) redisReaderFree(reader_);
}

Status Connection::Fail(Status s) {
  broken_ = true;
  return s;
}

StatusOr<std::unique_ptr<Connection>> Connection::Open(const Endpoint& ep, int64_t deadline_ns) {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  int family = AF_INET;
  if (ep.unix_socket) {
    auto* un = reinterpret_cast<sockaddr_un*>(&addr);
    if (ep.path.size() >= sizeof un->sun_path) {
      return Status::InvalidArgument("unix socket path too long: " + ep.path);
    }
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, ep.path.data(), ep.path.size());
    addr_len = sizeof(sockaddr_un);
    family = AF_UNIX;
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&addr);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (inet_pton(AF_INET, ep.host.c_str(), &in4->sin_addr) == 1) {
      in4->sin_family = AF_INET;
      in4->sin_port = htons(static_cast<uint16_t>(ep.port));
      addr_len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, ep.host.c_str(), &in6->sin6_addr) == 1) {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(static_cast<uint16_t>(ep.port));
      addr_len = sizeof(sockaddr_in6);
      family = AF_INET6;
    } else {
      // Name resolution can block for seconds; it happens only here, on connect, and
      // "localhost" is the one name worth supporting without a resolver.
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      if (getaddrinfo(ep.host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
        return Status::Unavailable("cannot resolve Redis host " + ep.host);
      }
      std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
      addr_len = res->ai_addrlen;
      family = res->ai_family;
      freeaddrinfo(res);
      if (family == AF_INET) in4->sin_port = htons(static_cast<uint16_t>(ep.port));
      else in6->sin6_port = htons(static_cast<uint16_t>(ep.port));
    }
  }
  const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Unavailable(Errno("socket"));
  std::unique_ptr<Connection> c(new Connection(fd));
  if (family != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      return Status::Unavailable(Errno(("connect to " + ep.Describe()).c_str()));
    }
    const int ev = WaitFor(fd, POLLOUT, deadline_ns);
    if (ev == 0) return Status::DeadlineExceeded("connect to " + ep.Describe() + " timed out");
    int err = 0;
    socklen_t len = sizeof err;
    if (ev < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      errno = err != 0 ? err : errno;
      return Status::Unavailable(Errno(("connect to " + ep.Describe()).c_str()));
    }
  }
  // AUTH and SELECT in one pipelined exchange.
  std::string req;
  CommandWriter w(req);
  size_t n = 0;
  if (!ep.password.empty()) {
    if (ep.username.empty()) {
      w.Begin(2).Arg("AUTH").Arg(ep.password);
    } else {
      w.Begin(3).Arg("AUTH").Arg(ep.username).Arg(ep.password);
    }
    ++n;
  }
  if (ep.db != 0) {
    w.Begin(2).Arg("SELECT").Arg(int64_t{ep.db});
    ++n;
  }
  if (n > 0) {
    std::vector<Reply> replies;
    if (Status s = c->Exchange(req, n, deadline_ns, &replies); !s.ok()) return s;
    for (const Reply& r : replies) {
      if (r->type == REDIS_REPLY_ERROR) {
        return Status::Unavailable("Redis refused AUTH/SELECT on " + ep.Describe() + ": " +
                                   DescribeReply(r.get()));
      }
    }
  }
  return c;
}

Status Connection::Exchange(std::string_view request, size_t n_replies, int64_t deadline_ns,
                            std::vector<Reply>* replies) {
  replies->clear();
  if (Status s = Send(request, deadline_ns); !s.ok()) return s;
  return Receive(n_replies, deadline_ns, replies);
}

Status Connection::Send(std::string_view request, int64_t deadline_ns) {
  if (broken_) return Status::Unavailable("connection is broken");
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t w = send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (w > 0) {
      sent += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int ev = WaitFor(fd_, POLLOUT, deadline_ns);
      if (ev == 0) return Fail(Status::DeadlineExceeded("Redis write deadline exceeded"));
      if (ev < 0) return Fail(Status::Unavailable(Errno("poll")));
      continue;
    }
    return Fail(Status::Unavailable(Errno("send to Redis")));
  }
  return Status::Ok();
}

Status Connection::Receive(size_t n_replies, int64_t deadline_ns, std::vector<Reply>* replies) {
  if (broken_) return Status::Unavailable("connection is broken");
  for (size_t got = 0; got < n_replies; ++got) {
    auto r = ReadPush(deadline_ns);
    if (!r.ok()) return Fail(r.status());
    replies->push_back(std::move(*r));
  }
  return Status::Ok();
}

StatusOr<Reply> Connection::ReadPush(int64_t deadline_ns) {
  if (broken_) return Status::Unavailable("connection is broken");
  char buf[16384];
  for (;;) {
    void* out = nullptr;
    if (redisReaderGetReply(reader_, &out) != REDIS_OK) {
      return Fail(Status::Protocol(std::string("bad reply from Redis: ") + reader_->errstr));
    }
    if (out != nullptr) return Reply(static_cast<redisReply*>(out));
    const ssize_t r = recv(fd_, buf, sizeof buf, 0);
    if (r > 0) {
      if (redisReaderFeed(reader_, buf, static_cast<size_t>(r)) != REDIS_OK) {
        return Fail(Status::Protocol(std::string("bad reply from Redis: ") + reader_->errstr));
      }
      continue;
    }
    if (r == 0) return Fail(Status::Unavailable("Redis closed the connection"));
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return Fail(Status::Unavailable(Errno("recv from Redis")));
    }
    const int ev = WaitFor(fd_, POLLIN, deadline_ns);
    // A reply may still be on its way: Receive() turns this into a broken connection,
    // a subscriber just waits again.
    if (ev == 0) return Status::DeadlineExceeded("Redis reply deadline exceeded");
    if (ev < 0) return Fail(Status::Unavailable(Errno("poll")));
  }
}

}  // namespace dlb::redis
