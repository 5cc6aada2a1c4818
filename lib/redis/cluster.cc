#include "redis/cluster.h"

#include <charconv>
#include <string>

namespace dlb::redis {
namespace {

bool ParseLen(std::string_view s, size_t* pos, char type, size_t* out) {
  if (*pos >= s.size() || s[*pos] != type) return false;
  const size_t crlf = s.find("\r\n", *pos);
  if (crlf == std::string_view::npos) return false;
  auto [p, ec] = std::from_chars(s.data() + *pos + 1, s.data() + crlf, *out);
  if (ec != std::errc() || p != s.data() + crlf) return false;
  *pos = crlf + 2;
  return true;
}

bool ErrorStartsWith(const redisReply* r, std::string_view prefix) {
  return r != nullptr && r->type == REDIS_REPLY_ERROR &&
         std::string_view(r->str, r->len).starts_with(prefix);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
    if (x != y) return false;
  }
  return true;
}

bool ParseHostPortText(std::string_view s, const HostPort& asked, HostPort* out) {
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  int port = 0;
  auto [p, ec] = std::from_chars(s.data() + colon + 1, s.data() + s.size(), port);
  if (ec != std::errc() || p != s.data() + s.size() || port < 1 || port > 65535) return false;
  std::string_view host = s.substr(0, colon);
  if (host.starts_with("[") && host.ends_with("]")) host = host.substr(1, host.size() - 2);
  out->host = host.empty() ? asked.host : std::string(host);
  out->port = port;
  return true;
}

}  // namespace

std::optional<std::string_view> RoutingKey(std::string_view cmd) {
  size_t pos = 0, argc = 0;
  if (!ParseLen(cmd, &pos, '*', &argc) || argc < 2) return std::nullopt;
  std::string_view args[4];
  const size_t want = argc < 4 ? argc : 4;
  for (size_t i = 0; i < want; ++i) {
    size_t len = 0;
    if (!ParseLen(cmd, &pos, '$', &len) || pos + len + 2 > cmd.size()) return std::nullopt;
    args[i] = cmd.substr(pos, len);
    pos += len + 2;
  }
  const std::string_view name = args[0];
  if (EqualsIgnoreCase(name, "EVALSHA") || EqualsIgnoreCase(name, "EVAL") ||
      EqualsIgnoreCase(name, "FCALL") || EqualsIgnoreCase(name, "EVALSHA_RO") ||
      EqualsIgnoreCase(name, "EVAL_RO") || EqualsIgnoreCase(name, "FCALL_RO")) {
    if (argc < 4 || args[2] == "0") return std::nullopt;
    return args[3];
  }
  for (std::string_view server : {"PING", "SCRIPT", "CLUSTER", "ROLE", "INFO", "TIME", "ASKING",
                                  "FUNCTION", "SELECT", "AUTH", "HELLO", "CLIENT", "CONFIG"}) {
    if (EqualsIgnoreCase(name, server)) return std::nullopt;
  }
  return args[1];
}

StatusOr<std::vector<SlotRange>> ParseClusterSlots(const redisReply* r, const HostPort& asked) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
    return Status::Protocol("CLUSTER SLOTS: " + std::string(r != nullptr && r->type == REDIS_REPLY_ERROR
                                                                 ? std::string(r->str, r->len)
                                                                 : "not an array"));
  }
  std::vector<SlotRange> out;
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* e = r->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
        e->element[2]->elements < 2 || e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
        e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
      return Status::Protocol("CLUSTER SLOTS: malformed entry");
    }
    const long long first = e->element[0]->integer, last = e->element[1]->integer;
    if (first < 0 || last < first || last >= 16384) return Status::Protocol("CLUSTER SLOTS: bad slot range");
    const redisReply* m = e->element[2];
    std::string host(m->element[0]->str, m->element[0]->len);
    if (host.empty()) host = asked.host;
    if (host == "?") continue;  // the master's address is not known yet
    const long long port = m->element[1]->integer;
    if (port < 1 || port > 65535) return Status::Protocol("CLUSTER SLOTS: bad port");
    out.push_back({.first = static_cast<uint16_t>(first),
                   .last = static_cast<uint16_t>(last),
                   .master = {host, static_cast<int>(port)}});
  }
  return out;
}

std::optional<Redirect> ParseRedirect(const redisReply* r, const HostPort& asked) {
  Redirect rd;
  std::string_view text;
  if (ErrorStartsWith(r, "MOVED ")) {
    text = std::string_view(r->str, r->len).substr(6);
  } else if (ErrorStartsWith(r, "ASK ")) {
    rd.ask = true;
    text = std::string_view(r->str, r->len).substr(4);
  } else {
    return std::nullopt;
  }
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  int slot = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + space, slot);
  if (ec != std::errc() || p != text.data() + space || slot < 0 || slot >= 16384) return std::nullopt;
  rd.slot = static_cast<uint16_t>(slot);
  if (!ParseHostPortText(text.substr(space + 1), asked, &rd.target)) return std::nullopt;
  return rd;
}

bool IsRetryableClusterError(const redisReply* r) {
  return ErrorStartsWith(r, "TRYAGAIN") || ErrorStartsWith(r, "CLUSTERDOWN") ||
         ErrorStartsWith(r, "LOADING") || ErrorStartsWith(r, "MASTERDOWN");
}

}  // namespace dlb::redis
