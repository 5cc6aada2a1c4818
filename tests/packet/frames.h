// Test frames: Ethernet (+ VLAN tags) / IPv4 or IPv6 / TCP segments built byte by byte,
// independently of the engine's parser, with correct lengths and checksums.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace dlb::packet::testing {

struct Endpoint {
  std::vector<uint8_t> addr;  // 4 or 16 bytes
  uint16_t port = 0;
};

struct SegmentSpec {
  int ip_version = 4;
  std::vector<uint16_t> vlans;          // TCIs, outermost first (QinQ: two)
  Endpoint src{{10, 0, 0, 1}, 40000};
  Endpoint dst{{10, 0, 0, 2}, 80};
  uint32_t seq = 1000;
  uint32_t ack = 5000;
  uint8_t flags = 0x18;                 // PSH|ACK
  std::vector<uint8_t> tcp_options;     // padded to 4 bytes by the builder
  std::vector<uint8_t> ip_options;      // IPv4 only, multiple of 4
  std::string payload;
};

inline uint16_t Fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

inline uint64_t SumBytes(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i + 1 < n; i += 2) s += (p[i] << 8) | p[i + 1];
  if (n & 1) s += p[n - 1] << 8;
  return s;
}

inline void Put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
inline void Put32(std::vector<uint8_t>& v, uint32_t x) {
  Put16(v, static_cast<uint16_t>(x >> 16));
  Put16(v, static_cast<uint16_t>(x));
}

inline std::vector<uint8_t> BuildSegment(const SegmentSpec& s) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};  // dst, src MAC
  for (size_t i = 0; i < s.vlans.size(); ++i) {
    Put16(f, i == 0 && s.vlans.size() == 2 ? 0x88a8 : 0x8100);
    Put16(f, s.vlans[i]);
  }
  Put16(f, s.ip_version == 4 ? 0x0800 : 0x86dd);
  std::vector<uint8_t> tcp;
  Put16(tcp, s.src.port);
  Put16(tcp, s.dst.port);
  Put32(tcp, s.seq);
  Put32(tcp, s.ack);
  std::vector<uint8_t> opts = s.tcp_options;
  while (opts.size() % 4) opts.push_back(0);
  tcp.push_back(static_cast<uint8_t>(((20 + opts.size()) / 4) << 4));
  tcp.push_back(s.flags);
  Put16(tcp, 65535);
  Put16(tcp, 0);
  Put16(tcp, 0);
  tcp.insert(tcp.end(), opts.begin(), opts.end());
  tcp.insert(tcp.end(), s.payload.begin(), s.payload.end());
  uint64_t sum = SumBytes(s.src.addr.data(), s.src.addr.size()) +
                 SumBytes(s.dst.addr.data(), s.dst.addr.size()) + 6 + tcp.size() +
                 SumBytes(tcp.data(), tcp.size());
  const uint16_t csum = Fold(sum);
  tcp[16] = static_cast<uint8_t>(csum >> 8);
  tcp[17] = static_cast<uint8_t>(csum);
  if (s.ip_version == 4) {
    std::vector<uint8_t> ip;
    const size_t ihl = 20 + s.ip_options.size();
    ip.push_back(static_cast<uint8_t>(0x40 | (ihl / 4)));
    ip.push_back(0);
    Put16(ip, static_cast<uint16_t>(ihl + tcp.size()));
    Put16(ip, 1);
    Put16(ip, 0x4000);
    ip.push_back(64);
    ip.push_back(6);
    Put16(ip, 0);
    ip.insert(ip.end(), s.src.addr.begin(), s.src.addr.end());
    ip.insert(ip.end(), s.dst.addr.begin(), s.dst.addr.end());
    ip.insert(ip.end(), s.ip_options.begin(), s.ip_options.end());
    const uint16_t ic = Fold(SumBytes(ip.data(), ip.size()));
    ip[10] = static_cast<uint8_t>(ic >> 8);
    ip[11] = static_cast<uint8_t>(ic);
    f.insert(f.end(), ip.begin(), ip.end());
  } else {
    Put32(f, 0x60000000);
    Put16(f, static_cast<uint16_t>(tcp.size()));
    f.push_back(6);
    f.push_back(64);
    f.insert(f.end(), s.src.addr.begin(), s.src.addr.end());
    f.insert(f.end(), s.dst.addr.begin(), s.dst.addr.end());
  }
  f.insert(f.end(), tcp.begin(), tcp.end());
  return f;
}

inline std::vector<uint8_t> V6(uint8_t last) {
  std::vector<uint8_t> a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
  return a;
}

// A request head with an identity header ("" for none).
inline std::string Head(std::string_view method, std::string_view path, std::string_view user,
                        std::string_view extra = "") {
  std::string h = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: api.example.com\r\n";
  if (!user.empty()) h += "X-User-ID: " + std::string(user) + "\r\n";
  h += std::string(extra);
  h += "\r\n";
  return h;
}

}  // namespace dlb::packet::testing
