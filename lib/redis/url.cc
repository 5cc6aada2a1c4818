#include "redis/url.h"

#include <charconv>

namespace dlb::redis {
namespace {

bool ParseInt(std::string_view s, int lo, int hi, int* out) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

Status Bad(std::string_view url, std::string_view why) {
  // The URL may hold a password: name only its scheme in the message.
  const size_t colon = url.find(':');
  return Status::InvalidArgument("invalid Redis URL (" +
                                 std::string(url.substr(0, colon == std::string_view::npos ? 0 : colon)) +
                                 "://...): " + std::string(why));
}

}  // namespace

std::string Endpoint::Describe() const {
  std::string s = unix_socket ? "unix " + path : "tcp " + host + ":" + std::to_string(port);
  s += " db " + std::to_string(db);
  if (!username.empty()) s += " user " + username;
  return s;
}

StatusOr<Endpoint> ParseUrl(std::string_view url) {
  Endpoint ep;
  if (url.starts_with("unix://")) {
    ep.unix_socket = true;
    std::string_view rest = url.substr(7);
    const size_t q = rest.find('?');
    std::string_view query = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
    ep.path = std::string(rest.substr(0, q));
    if (ep.path.empty() || ep.path[0] != '/') return Bad(url, "unix socket path must be absolute");
    while (!query.empty()) {
      const size_t amp = query.find('&');
      std::string_view kv = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
      const size_t eq = kv.find('=');
      if (eq == std::string_view::npos) return Bad(url, "query parameter without '='");
      std::string_view k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "db") {
        if (!ParseInt(v, 0, 1 << 20, &ep.db)) return Bad(url, "db must be a non-negative integer");
      } else if (k == "user") {
        if (!PercentDecode(v, &ep.username)) return Bad(url, "bad percent-encoding in user");
      } else if (k == "password") {
        if (!PercentDecode(v, &ep.password)) return Bad(url, "bad percent-encoding in password");
      } else {
        return Bad(url, "unknown query parameter '" + std::string(k) + "'");
      }
    }
    return ep;
  }
  if (!url.starts_with("redis://")) return Bad(url, "scheme must be redis:// or unix://");
  std::string_view rest = url.substr(8);
  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = cred.find(':');
    if (!PercentDecode(cred.substr(0, colon), &ep.username)) return Bad(url, "bad percent-encoding in user");
    if (colon != std::string_view::npos &&
        !PercentDecode(cred.substr(colon + 1), &ep.password)) {
      return Bad(url, "bad percent-encoding in password");
    }
  }
  const size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && !ParseInt(db, 0, 1 << 20, &ep.db)) return Bad(url, "db must be a non-negative integer");
  }
  if (hostport.starts_with("[")) {  // [::1]:6379
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) return Bad(url, "unterminated IPv6 address");
    ep.host = std::string(hostport.substr(1, close - 1));
    hostport = hostport.substr(close + 1);
    if (!hostport.empty()) {
      if (hostport[0] != ':') return Bad(url, "junk after IPv6 address");
      if (!ParseInt(hostport.substr(1), 1, 65535, &ep.port)) return Bad(url, "port must be in [1, 65535]");
    }
  } else {
    const size_t colon = hostport.find(':');
    ep.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos &&
        !ParseInt(hostport.substr(colon + 1), 1, 65535, &ep.port)) {
      return Bad(url, "port must be in [1, 65535]");
    }
  }
  if (ep.host.empty()) return Bad(url, "missing host");
  return ep;
}

}  // namespace dlb::redis
