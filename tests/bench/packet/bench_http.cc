// Cost of the HTTP/1.1 head parser alone, per head, one core.
//
//   build-rel/tests/bench/packet/bench_http [--benchmark_filter=...]
//
// BM_ParseHead/<scanner>: 1024 heads of 400-600 bytes as bench_packet builds them (a
//   request line, Host, four to eight common headers in random order, the identity
//   header at a random position, padding), parsed in turn (they stay in L1/L2), with
//   the chunk scanner chosen at start (auto) or forced (sse2, avx2, avx512; skipped
//   where the CPU lacks it). Each head sits in a buffer of its own size, as a segment
//   holding one head is passed by the engine. Counters: ns_per_head, bytes_per_second.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "dlb/packet/http.h"
#include "../../../lib/packet/http_internal.h"

namespace dlb::packet {
namespace {

const char* const kFillerHeaders[] = {
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

std::string MakeHead(std::mt19937_64& rng) {
  static const char* const kLines[] = {"POST /v1/payments/charge HTTP/1.1", "GET /v1/search?q=shoes HTTP/1.1",
                                       "GET /v1/accounts/me HTTP/1.1", "POST /v1/payments/refund HTTP/1.1"};
  std::string h = std::string(kLines[rng() % 4]) + "\r\nHost: api.example.com\r\n";
  std::vector<std::string> headers(std::begin(kFillerHeaders), std::end(kFillerHeaders));
  std::shuffle(headers.begin(), headers.end(), rng);
  headers.resize(4 + rng() % 5);
  const size_t id_pos = rng() % (headers.size() + 1);
  const size_t target = 400 + rng() % 201;
  for (size_t i = 0; i <= headers.size(); ++i) {
    if (i == id_pos) h += "X-User-ID: " + std::to_string(1'000'000'000 + rng() % 1'000'000'000) + "\r\n";
    if (i < headers.size()) h += headers[i] + "\r\n";
  }
  if (h.size() + 2 < target) {
    const size_t pad = target - h.size() - 2;
    if (pad > 10) h += "X-Pad: " + std::string(pad - 9, 'p') + "\r\n";
  }
  h += "\r\n";
  return h;
}

std::vector<std::string> MakeHeads() {
  std::mt19937_64 rng(42);
  std::vector<std::string> heads;
  for (int i = 0; i < 1024; ++i) heads.push_back(MakeHead(rng));
  return heads;
}

void Parse(benchmark::State& state, internal::HeadScanner scanner) {
  if (!internal::ForceHeadScanner(scanner)) {
    state.SkipWithError("CPU lacks this scanner");
    return;
  }
  const std::vector<std::string> heads = MakeHeads();
  // Each head in a buffer of its own size, so that a read past the head would be a read
  // past the allocation (as a segment's payload ends with the head).
  std::vector<std::vector<uint8_t>> bufs;
  for (const std::string& h : heads) bufs.emplace_back(h.begin(), h.end());
  HeadOptions o;
  size_t i = 0;

  uint64_t bytes = 0;
  uint64_t bad = 0;
  for (auto _ : state) {
    const std::vector<uint8_t>& b = bufs[i++ & 1023];
    RequestHead head;
    const HeadResult r = ParseRequestHead(b.data(), b.size(), o, head);
    bad += r != HeadResult::kOk || !head.has_identity;
    benchmark::DoNotOptimize(head);
    bytes += b.size();
  }
  internal::ForceHeadScanner(internal::HeadScanner::kAuto);
  if (bad != 0) state.SkipWithError("a head did not parse");
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["ns_per_head"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_ParseHead_Auto(benchmark::State& s) { Parse(s, internal::HeadScanner::kAuto); }
void BM_ParseHead_Sse2(benchmark::State& s) { Parse(s, internal::HeadScanner::kSse2); }
void BM_ParseHead_Avx2(benchmark::State& s) { Parse(s, internal::HeadScanner::kAvx2); }
void BM_ParseHead_Avx512(benchmark::State& s) { Parse(s, internal::HeadScanner::kAvx512); }
BENCHMARK(BM_ParseHead_Auto);
BENCHMARK(BM_ParseHead_Sse2);
BENCHMARK(BM_ParseHead_Avx2);
BENCHMARK(BM_ParseHead_Avx512);

}  // namespace
}  // namespace dlb::packet

BENCHMARK_MAIN();
