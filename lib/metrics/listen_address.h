// The exporter's listen address: "host:port", "[v6]:port" or ":port" (every IPv4
// interface). Debian's civetweb is built without IPv6: "[v6]:port" parses, and the
// exporter then says that it cannot serve it.
#pragma once

#include <string>

#include "dlb/status.h"

namespace dlb::metrics {

struct ListenAddress {
  std::string host;   // numeric IPv4 or IPv6 (no brackets); empty = every interface
  int port = 0;       // 0 = the kernel picks a free port
  bool ipv6 = false;
  // civetweb's listening_ports form: "127.0.0.1:9464", "[::1]:0", "9464".
  std::string civetweb;
};

// "localhost" is 127.0.0.1; other names are refused (an exporter must not depend on
// DNS at start-up). Errors name the address and what is wrong with it.
StatusOr<ListenAddress> ParseListenAddress(const std::string& listen);

// Why binding `address` fails, found by binding a socket of our own there (civetweb
// only says that it could not start): "address already in use", ... Empty if the
// bind succeeds now.
std::string BindError(const ListenAddress& address);

}  // namespace dlb::metrics
