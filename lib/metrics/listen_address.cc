#include "metrics/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace dlb::metrics {

StatusOr<ListenAddress> ParseListenAddress(const std::string& listen) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("metrics listen address '" + listen + "': " + why +
                                   " (want host:port, [v6]:port or :port)");
  };
  ListenAddress a;
  std::string port_text;
  if (!listen.empty() && listen[0] == '[') {
    const size_t close = listen.find(']');
    if (close == std::string::npos) return bad("unclosed '['");
    if (close + 1 >= listen.size() || listen[close + 1] != ':') return bad("no ':port' after ']'");
    a.host = listen.substr(1, close - 1);
    a.ipv6 = true;
    port_text = listen.substr(close + 2);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) return bad("no ':port'");
    a.host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
    if (a.host.find(':') != std::string::npos) return bad("an IPv6 address needs brackets");
  }
  if (port_text.empty()) return bad("empty port");
  int port = -1;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return bad("port must be a number in 0..65535");
  }
  a.port = port;
  if (a.host == "localhost") a.host = "127.0.0.1";
  if (a.ipv6) {
    in6_addr v6{};
    if (inet_pton(AF_INET6, a.host.c_str(), &v6) != 1) return bad("not an IPv6 address");
    a.civetweb = "[" + a.host + "]:" + std::to_string(port);
  } else if (a.host.empty()) {
    a.civetweb = std::to_string(port);
  } else {
    in_addr v4{};
    if (inet_pton(AF_INET, a.host.c_str(), &v4) != 1) return bad("host is not an IPv4 address");
    a.civetweb = a.host + ":" + std::to_string(port);
  }
  return a;
}

std::string BindError(const ListenAddress& address) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (address.ipv6) {
    family = AF_INET6;
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(address.port));
    inet_pton(AF_INET6, address.host.c_str(), &s6->sin6_addr);
    len = sizeof(*s6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(address.port));
    if (address.host.empty()) {
      s4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else {
      inet_pton(AF_INET, address.host.c_str(), &s4->sin_addr);
    }
    len = sizeof(*s4);
  }
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  // Same option as civetweb, so that TIME_WAIT leftovers do not count as "in use".
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  std::string err;
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    err = errno == EADDRINUSE ? "address already in use" : std::strerror(errno);
  } else if (listen(fd, 1) != 0) {
    err = errno == EADDRINUSE ? "address already in use" : std::strerror(errno);
  }
  close(fd);
  return err;
}

}  // namespace dlb::metrics
