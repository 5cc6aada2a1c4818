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
// BM_FloorIdentity: the same heads through the floor's head step (floor.h: the scan to
//   the end of the head, the identity line found by where its colon lies, the identity's
//   SipHash-1-3; no validation, no request line, no other header), for comparison.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "dlb/packet/http.h"
#include "../../../lib/packet/http_internal.h"
#include "bench_frames.h"
#include "floor.h"

namespace dlb::packet {
namespace {

// Each head in a buffer of its own size, so that a read past the head would be a read
// past the allocation (as a segment's payload ends with the head).
std::vector<std::vector<uint8_t>> MakeHeads() {
  std::mt19937_64 rng(42);
  std::vector<std::vector<uint8_t>> heads;
  for (int i = 0; i < 1024; ++i) {
    size_t at = 0;
    std::string h = bench::MakeHead(rng, &at);
    bench::WriteUser(reinterpret_cast<uint8_t*>(h.data()) + at, 1'000'000'000 + rng() % 1'000'000'000);
    heads.emplace_back(h.begin(), h.end());
  }
  return heads;
}

void Parse(benchmark::State& state, internal::HeadScanner scanner) {
  if (!internal::ForceHeadScanner(scanner)) {
    state.SkipWithError("CPU lacks this scanner");
    return;
  }
  const std::vector<std::vector<uint8_t>> bufs = MakeHeads();
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
void BM_FloorIdentity(benchmark::State& state) {
  const std::vector<std::vector<uint8_t>> bufs = MakeHeads();
  bench::FloorDecider floor(1000, 1, 1);
  // The floor must find the identity the parser finds in every head.
  for (const std::vector<uint8_t>& b : bufs) {
    RequestHead head;
    if (ParseRequestHead(b.data(), b.size(), HeadOptions(), head) != HeadResult::kOk || !head.has_identity ||
        floor.IdentityOf(b.data(), b.size()) !=
            floor.HashOf(reinterpret_cast<const uint8_t*>(head.identity.data()), head.identity.size())) {
      state.SkipWithError("the floor did not find a head's identity");
      return;
    }
  }
  size_t i = 0;
  for (auto _ : state) {
    const std::vector<uint8_t>& b = bufs[i++ & 1023];
    benchmark::DoNotOptimize(floor.IdentityOf(b.data(), b.size()));
  }
  state.SetLabel(floor.avx512() ? "avx512" : "scalar");
  state.counters["ns_per_head"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_FloorIdentity);
BENCHMARK(BM_ParseHead_Auto);
BENCHMARK(BM_ParseHead_Sse2);
BENCHMARK(BM_ParseHead_Avx2);
BENCHMARK(BM_ParseHead_Avx512);

}  // namespace
}  // namespace dlb::packet

BENCHMARK_MAIN();
