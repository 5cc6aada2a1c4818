#include "dlb/packet/client_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "address_text.h"

namespace dlb::packet {
namespace {

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const char c = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] + 32) : a[i];
    if (c != lower[i]) return false;
  }
  return true;
}

bool AllDigits(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

bool ParseForwardedAddress(std::string_view element, ClientAddress& out) {
  std::string_view e = Trim(element);
  if (e.empty()) return false;
  if (e.front() == '[') {  // "[v6]" or "[v6]:port"
    const size_t close = e.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view rest = e.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && AllDigits(rest.substr(1)))) return false;
    e = e.substr(1, close - 1);
    if (!ParseAddressText(AF_INET6, e, out.bytes)) return false;
    out.ip_version = 6;
  } else if (e.find(':') != e.rfind(':')) {  // two colons or more: IPv6
    if (!ParseAddressText(AF_INET6, e, out.bytes)) return false;
    out.ip_version = 6;
  } else {
    const size_t colon = e.find(':');
    if (colon != std::string_view::npos) {
      if (!AllDigits(e.substr(colon + 1))) return false;
      e = e.substr(0, colon);
    }
    if (!ParseAddressText(AF_INET, e, out.bytes)) return false;
    out.ip_version = 4;
    std::memset(out.bytes + 4, 0, 12);
    return true;
  }
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(out.bytes, kMapped, sizeof kMapped) == 0) {
    std::memmove(out.bytes, out.bytes + 12, 4);
    std::memset(out.bytes + 4, 0, 12);
    out.ip_version = 4;
  }
  return true;
}

bool ForwardedClientAddress(const uint8_t* data, size_t head_bytes, unsigned hops, ClientAddress& out) {
  if (hops == 0) return false;
  const std::string_view head(reinterpret_cast<const char*>(data), head_bytes);
  std::string_view last;
  bool found = false;
  // Header lines start after the request line; the parser has checked the head, so
  // every line ends in LF (CRLF or bare LF).
  size_t pos = head.find('\n');
  while (pos != std::string_view::npos && pos + 1 < head.size()) {
    const size_t start = pos + 1;
    size_t end = head.find('\n', start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && EqualsIgnoreCase(line.substr(0, colon), "x-forwarded-for")) {
      last = line.substr(colon + 1);
      found = true;
    }
    pos = end;
  }
  if (!found) return false;
  // The hops-th element from the right.
  size_t right = last.size();
  for (unsigned k = 1;; ++k) {
    const size_t comma = last.rfind(',', right == 0 ? 0 : right - 1);
    const bool first = comma == std::string_view::npos || right == 0;
    const size_t begin = first ? 0 : comma + 1;
    if (k == hops) return ParseForwardedAddress(last.substr(begin, right - begin), out);
    if (first) return false;
    right = comma;
  }
}

}  // namespace dlb::packet
