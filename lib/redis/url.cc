#include "redis/url.h"

#include <charconv>
#include <string>
#include <vector>

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

// host[:port] or [v6]:port into `hp` (port defaults to `default_port`).
bool ParseHostPort(std::string_view hostport, int default_port, HostPort* hp, std::string* why) {
  hp->port = default_port;
  if (hostport.starts_with("[")) {  // [::1]:6379
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) return *why = "unterminated IPv6 address", false;
    hp->host = std::string(hostport.substr(1, close - 1));
    hostport = hostport.substr(close + 1);
    if (!hostport.empty()) {
      if (hostport[0] != ':') return *why = "junk after IPv6 address", false;
      if (!ParseInt(hostport.substr(1), 1, 65535, &hp->port)) return *why = "port must be in [1, 65535]", false;
    }
  } else {
    const size_t colon = hostport.find(':');
    hp->host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos && !ParseInt(hostport.substr(colon + 1), 1, 65535, &hp->port)) {
      return *why = "port must be in [1, 65535]", false;
    }
  }
  if (hp->host.empty()) return *why = "missing host", false;
  return true;
}

// "user:password@" in front of `rest` (removed) into the endpoint's credentials.
bool ParseUserInfo(std::string_view* rest, Endpoint* ep, std::string* why) {
  const size_t at = rest->rfind('@');
  if (at == std::string_view::npos) return true;
  std::string_view cred = rest->substr(0, at);
  *rest = rest->substr(at + 1);
  const size_t colon = cred.find(':');
  if (!PercentDecode(cred.substr(0, colon), &ep->username)) return *why = "bad percent-encoding in user", false;
  if (colon != std::string_view::npos && !PercentDecode(cred.substr(colon + 1), &ep->password)) {
    return *why = "bad percent-encoding in password", false;
  }
  return true;
}

// a,b,c host lists of the sentinel and cluster forms.
bool ParseHostList(std::string_view list, int default_port, std::vector<HostPort>* out, std::string* why) {
  if (list.empty()) return *why = "missing host", false;
  while (true) {
    const size_t comma = list.find(',');
    HostPort hp;
    if (!ParseHostPort(list.substr(0, comma), default_port, &hp, why)) return false;
    out->push_back(std::move(hp));
    if (comma == std::string_view::npos) return true;
    list = list.substr(comma + 1);
  }
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string Endpoint::Describe() const {
  std::string s;
  if (topology == Topology::kSentinel || topology == Topology::kCluster) {
    s = topology == Topology::kSentinel ? "sentinel master " + master_name + " via " : "cluster seeds ";
    for (size_t i = 0; i < seeds.size(); ++i) s += (i ? "," : "") + seeds[i].ToString();
  } else {
    s = unix_socket ? "unix " + path : "tcp " + HostPort{host, port}.ToString();
  }
  s += " db " + std::to_string(db);
  if (!username.empty()) s += " user " + username;
  return s;
}

Endpoint Endpoint::At(const HostPort& hp, bool sentinel) const {
  Endpoint e;
  e.host = hp.host;
  e.port = hp.port;
  if (sentinel) {
    e.username = sentinel_username;
    e.password = sentinel_password;
  } else {
    e.username = username;
    e.password = password;
    e.db = db;
  }
  return e;
}

StatusOr<Endpoint> ParseUrl(std::string_view url) {
  Endpoint ep;
  std::string why;
  if (url.starts_with("redis-sentinel://") || url.starts_with("redis-cluster://")) {
    const bool sentinel = url.starts_with("redis-sentinel://");
    ep.topology = sentinel ? Topology::kSentinel : Topology::kCluster;
    std::string_view rest = url.substr(sentinel ? 17 : 16);
    const size_t q = rest.find('?');
    std::string_view query = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
    rest = rest.substr(0, q);
    const size_t slash = rest.find('/', rest.rfind('@') == std::string_view::npos ? 0 : rest.rfind('@'));
    std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!ParseUserInfo(&rest, &ep, &why)) return Bad(url, why);
    if (!ParseHostList(rest, sentinel ? 26379 : 6379, &ep.seeds, &why)) return Bad(url, why);
    if (sentinel) {
      if (path.empty()) return Bad(url, "missing master name (redis-sentinel://host:port/mastername)");
      if (!PercentDecode(path, &ep.master_name)) return Bad(url, "bad percent-encoding in master name");
    } else if (!path.empty()) {
      return Bad(url, "a cluster has no db or path (redis-cluster://host:port[,host:port...])");
    }
    while (!query.empty()) {
      const size_t amp = query.find('&');
      std::string_view kv = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
      const size_t eq = kv.find('=');
      if (eq == std::string_view::npos) return Bad(url, "query parameter without '='");
      std::string_view k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "db" && sentinel) {
        if (!ParseInt(v, 0, 1 << 20, &ep.db)) return Bad(url, "db must be a non-negative integer");
      } else if (k == "sentinel_password" && sentinel) {
        if (!PercentDecode(v, &ep.sentinel_password)) return Bad(url, "bad percent-encoding in sentinel_password");
      } else if (k == "sentinel_user" && sentinel) {
        if (!PercentDecode(v, &ep.sentinel_username)) return Bad(url, "bad percent-encoding in sentinel_user");
      } else {
        return Bad(url, "unknown query parameter '" + std::string(k) + "'");
      }
    }
    ep.host = ep.seeds[0].host;
    ep.port = ep.seeds[0].port;
    return ep;
  }
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
  if (!url.starts_with("redis://")) {
    return Bad(url, "scheme must be redis://, unix://, redis-sentinel:// or redis-cluster://");
  }
  std::string_view rest = url.substr(8);
  if (!ParseUserInfo(&rest, &ep, &why)) return Bad(url, why);
  const size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && !ParseInt(db, 0, 1 << 20, &ep.db)) return Bad(url, "db must be a non-negative integer");
  }
  HostPort hp;
  if (!ParseHostPort(hostport, 6379, &hp, &why)) return Bad(url, why);
  ep.host = hp.host;
  ep.port = hp.port;
  return ep;
}

}  // namespace dlb::redis
