// Frames and request heads for the packet benchmarks (bench_packet, bench_http,
// bench_appliance): one builder, so that their figures describe the same traffic.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "../../packet/frames.h"

namespace dlb::bench {

inline constexpr int kUserDigits = 10;
// Offsets in a BuildTcpFrame frame: the TCP sequence number and the payload.
inline constexpr size_t kSeqOffset = 14 + 20 + 4;
inline constexpr size_t kPayloadOffset = 14 + 20 + 32;

using packet::testing::Put16;
using packet::testing::Put32;

// Recomputes the IPv4 header and TCP checksums of a BuildTcpFrame frame (after its
// sequence number or payload was rewritten).
inline void FillChecksums(uint8_t* f, size_t bytes) {
  using packet::testing::Fold;
  using packet::testing::SumBytes;
  uint8_t* ip = f + 14;
  ip[10] = ip[11] = 0;
  const uint16_t ic = Fold(SumBytes(ip, 20));
  ip[10] = static_cast<uint8_t>(ic >> 8);
  ip[11] = static_cast<uint8_t>(ic);
  uint8_t* tcp = ip + 20;
  const size_t tcp_bytes = bytes - 34;
  tcp[16] = tcp[17] = 0;
  const uint16_t tc = Fold(SumBytes(ip + 12, 8) + 6 + tcp_bytes + SumBytes(tcp, tcp_bytes));
  tcp[16] = static_cast<uint8_t>(tc >> 8);
  tcp[17] = static_cast<uint8_t>(tc);
}

// Ethernet / IPv4 / TCP (timestamps option, as Linux sends) around `payload`, client
// 10.0.x.y (x.y = flow) port 20000 + flow to server 10.128.0.1, with correct IPv4
// and TCP checksums (FillChecksums after rewriting a frame): the engine verifies them.
inline std::vector<uint8_t> BuildTcpFrame(int flow, uint32_t seq, uint8_t flags, const std::string& payload,
                                          uint16_t dport = 80) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00};
  const uint16_t tcp_bytes = 32;
  Put16(f, 0x4500);
  Put16(f, static_cast<uint16_t>(20 + tcp_bytes + payload.size()));
  Put32(f, 0x00004000);
  Put16(f, 0x4006);
  Put16(f, 0);
  Put32(f, 0x0a000000 | static_cast<uint32_t>(flow));
  Put32(f, 0x0a800001);
  Put16(f, static_cast<uint16_t>(20000 + flow));
  Put16(f, dport);
  Put32(f, seq);
  Put32(f, 1);
  Put16(f, static_cast<uint16_t>((tcp_bytes / 4) << 12 | flags));
  Put16(f, 65535);
  Put32(f, 0);
  const uint8_t ts[12] = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
  f.insert(f.end(), ts, ts + 12);
  f.insert(f.end(), payload.begin(), payload.end());
  FillChecksums(f.data(), f.size());
  return f;
}

// Writes `user` as kUserDigits decimal digits at `p` (an identity placeholder).
inline void WriteUser(uint8_t* p, uint64_t user) {
  for (int i = kUserDigits - 1; i >= 0; --i) {
    p[i] = static_cast<uint8_t>('0' + user % 10);
    user /= 10;
  }
}

// A head of 400-600 bytes: request line, Host, four to eight common headers in random
// order with the identity header (kUserDigits zeros, at `*user_offset`) at a random
// position; padded with a filler header to the target size.
inline std::string MakeHead(std::mt19937_64& rng, size_t* user_offset) {
  static const char* const kLines[] = {"POST /v1/payments/charge HTTP/1.1", "GET /v1/search?q=shoes HTTP/1.1",
                                       "GET /v1/accounts/me HTTP/1.1", "POST /v1/payments/refund HTTP/1.1"};
  static const char* const kFillerHeaders[] = {
      "Accept: application/json, text/plain, */*",
      "Accept-Encoding: gzip, deflate, br",
      "Accept-Language: en-US,en;q=0.9,de;q=0.8",
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36",
      "Content-Type: application/json",
      "X-Request-ID: 6f1c2a9e-3b7d-4c55-9f0e-2d8a7b1c4e60",
      "X-Forwarded-For: 198.51.100.23",
      "X-Forwarded-Proto: https",
      "Cache-Control: no-cache",
      "Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "Cookie: session=9b1deb4d3b7d4bad9bdd2b0d7b3dcb6d; theme=dark",
      "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
  };
  std::string h = std::string(kLines[rng() % 4]) + "\r\nHost: api.example.com\r\n";
  std::vector<std::string> headers(std::begin(kFillerHeaders), std::end(kFillerHeaders));
  std::shuffle(headers.begin(), headers.end(), rng);
  headers.resize(4 + rng() % 5);
  const size_t id_pos = rng() % (headers.size() + 1);
  const size_t target = 400 + rng() % 201;
  for (size_t i = 0; i <= headers.size(); ++i) {
    if (i == id_pos) {
      h += "X-User-ID: ";
      *user_offset = h.size();
      h += std::string(kUserDigits, '0') + "\r\n";
    }
    if (i < headers.size()) h += headers[i] + "\r\n";
  }
  if (h.size() + 2 < target) {
    const size_t pad = target - h.size() - 2;
    if (pad > 10) h += "X-Pad: " + std::string(pad - 9, 'p') + "\r\n";
  }
  h += "\r\n";
  return h;
}

}  // namespace dlb::bench
