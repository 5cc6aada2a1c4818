// An IP address in text, as the PROXY protocol header and X-Forwarded-For carry it.
#pragma once

#include <arpa/inet.h>

#include <cstring>
#include <string_view>

namespace dlb::packet {

// inet_pton on a bounded copy (it wants a NUL-terminated string). glibc refuses leading
// zeros in IPv4 octets and anything but the address itself (no port, no brackets, no
// zone).
inline bool ParseAddressText(int af, std::string_view text, void* out) {
  char buf[48];
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  return inet_pton(af, buf, out) == 1;
}

}  // namespace dlb::packet
