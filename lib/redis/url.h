// Redis endpoints from URLs:
//   redis://[user[:password]@]host[:port][/db]
//   unix:///path/to/redis.sock[?db=N][&user=U][&password=P]
//   redis-sentinel://[user[:password]@]host[:port][,host[:port]...]/mastername
//                    [?db=N][&sentinel_password=P][&sentinel_user=U]
//     sentinels (default port 26379) are asked for the master of `mastername`;
//     user and password are the data nodes' credentials.
//   redis-cluster://[user[:password]@]host[:port][,host[:port]...]
//     seed nodes (default port 6379) of a Redis Cluster; db is always 0.
// Hosts may be [IPv6] literals. Percent-encoded user and password are decoded. The
// password is never printed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dlb/status.h"

namespace dlb::redis {

enum class Topology { kStandalone, kSentinel, kCluster };

struct HostPort {
  std::string host;
  int port = 0;
  bool operator==(const HostPort&) const = default;
  std::string ToString() const;   // "host:port", "[::1]:port"
};

struct Endpoint {
  Topology topology = Topology::kStandalone;
  // kStandalone: the server below. kSentinel: `seeds` are the sentinels and
  // `master_name` the monitored master; host/port are unused. kCluster: `seeds` are
  // the nodes asked for the slot map.
  std::vector<HostPort> seeds;
  std::string master_name;
  std::string sentinel_username;  // AUTH to sentinels; empty password = no AUTH
  std::string sentinel_password;
  bool unix_socket = false;
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string path;       // unix socket path
  int db = 0;
  std::string username;   // ACL user; empty = "default"
  std::string password;   // empty = no AUTH
  // "tcp 127.0.0.1:6379 db 0" -- for logs and errors; never contains the password.
  std::string Describe() const;
  // This endpoint's credentials and db on another server (a discovered master, a
  // cluster node, a sentinel when `sentinel` is true).
  Endpoint At(const HostPort& hp, bool sentinel = false) const;
};

StatusOr<Endpoint> ParseUrl(std::string_view url);

}  // namespace dlb::redis
