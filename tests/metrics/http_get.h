// A minimal HTTP/1.0 GET over a loopback TCP socket for tests: what a scraper sees.
#pragma once

#include <string>

namespace dlb::testing {

struct HttpResponse {
  int status = 0;       // 0 = no response (connect or read failed)
  std::string body;
  std::string headers;
  std::string error;    // why status is 0
};

// GET http://host:port/path with a deadline of `timeout_ms` for the whole exchange.
HttpResponse HttpGet(const std::string& host, int port, const std::string& path,
                     int timeout_ms = 10000);

// Percent-encodes a query value.
std::string UrlEncode(const std::string& s);

}  // namespace dlb::testing
