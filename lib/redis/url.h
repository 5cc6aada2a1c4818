// Redis endpoints from URLs:
//   redis://[user[:password]@]host[:port][/db]
//   unix:///path/to/redis.sock[?db=N][&user=U][&password=P]
// Percent-encoded user and password are decoded. The password is never printed.
#pragma once

#include <string>
#include <string_view>

#include "dlb/status.h"

namespace dlb::redis {

struct Endpoint {
  bool unix_socket = false;
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string path;       // unix socket path
  int db = 0;
  std::string username;   // ACL user; empty = "default"
  std::string password;   // empty = no AUTH
  // "tcp 127.0.0.1:6379 db 0" -- for logs and errors; never contains the password.
  std::string Describe() const;
};

StatusOr<Endpoint> ParseUrl(std::string_view url);

}  // namespace dlb::redis
