// Cost of the packet engine per frame, one core, no NIC: frames are pre-built in memory
// and fed to PacketEngine::ProcessBurst in bursts of 32, as an rx burst would be.
//
//   build-rel/tests/bench/packet/bench_packet [--benchmark_filter=...]
//
// BM_HeadFrames/<users>: every frame carries one complete request head of 400-600
//   bytes (ten or so headers, the identity header at a random position) from one of
//   1024 keep-alive connections; the identity is drawn uniformly from <users>, and the
//   shard is filled with all of them first. Parse + flow + head + rule + SipHash +
//   shard decision per frame. Rules use action "shadow" so that limited users keep
//   their connections (a reject would close them and make later frames cheap).
// BM_FloorHeadFrames/<users>: the same frames and users through the floor of a head
//   decision (floor.h: L2-L4, flow slot, scan to the end of the head and the identity,
//   SipHash, a GCRA bucket; no validation, rules or stream state), for comparison.
// BM_HeadFramesSynced/<users>: the same with every rule synced, decided through
//   ShardSync against a private redis-server (started by the benchmark): each bucket
//   registered and settled first; the control thread's Round() runs untimed after
//   every 8192 frames (about every 2 ms of worker time), as the control lcore would
//   beside the worker. Counter lease_or_credit_frac: decisions made on a lease,
//   a standing unit or a credit (the rest: limited for want of one).
// BM_SyncRound/<active users>: Round() of one engine's ShardSync after every one of
//   <active users> sent one request (a synced rule each): ns per Round and per active
//   bucket, Redis EVALSHAs and bucket operations per round, and the bucket operations
//   per second Redis would see at one round per 5 ms (ops_per_s_at_5ms).
// BM_AckFrames: pure ACKs toward the server (no flow lookup by design).
// Frames carry correct checksums, verified in software by the engine as behind a NIC
// without checksum offload (af_packet); DLB_BENCH_VERIFY_CHECKSUMS=0 leaves it out.
// BM_BodyFrames: 1400-byte body segments of long uploads (flow lookup, no head).
//
// Counters: ns_per_frame, Mpps (frames per second of CPU time / 1e6), allocs_per_frame
// (operator new calls during the timed loop, counted by the override below),
// shard_bytes_per_bucket (a user holds one bucket per rule it hits: up to three here),
// shard_bytes_per_user, buckets_in_use, shard_full (new keys refused by a full shard).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "dlb/clock.h"
#include "dlb/packet/engine.h"
#include "dlb/packet/shard_sync.h"
#include "bench_frames.h"
#include "floor.h"
#ifdef DLB_BENCH_REDIS
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/url.h"
#include "redis_server.h"
#endif

namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace dlb::packet {
namespace {

constexpr size_t kBurst = PacketEngine::kMaxBurst;
constexpr size_t kRingFrames = 8192;
constexpr int kFlows = 1024;
constexpr int64_t kStartNs = 1'000'000'000;
constexpr int64_t kFrameSpacingNs = 100;  // 10 Mpps of simulated arrival time
constexpr uint64_t kRulesPerUser = 3;


#ifdef DLB_BENCH_REDIS
// One redis-server for the process, started on first use.
dlb::testing::RedisServer& Server() {
  static dlb::testing::RedisServer* server = new dlb::testing::RedisServer();
  return *server;
}
#endif

struct Bench {
  PacketConfig config;
  std::unique_ptr<RuleSet> rules;
  std::unique_ptr<PacketEngine> engine;
  int64_t now_ns = kStartNs;
#ifdef DLB_BENCH_REDIS
  std::unique_ptr<redis::Pool> pool;
  std::unique_ptr<ShardSync> sync;
#endif

  explicit Bench(uint64_t users, Mode mode = Mode::kLocal) {
    config.max_flows = 4 * kFlows;
    config.reassembly_buffers = 256;
    // DLB_BENCH_VERIFY_CHECKSUMS=0: as behind a NIC that verifies (no software check).
    const char* verify = std::getenv("DLB_BENCH_VERIFY_CHECKSUMS");
    config.verify_checksums = verify == nullptr || std::strcmp(verify, "0") != 0;
    // Three rules (payments, search, default) and a request mix that hits all three:
    // a user holds up to three buckets, so the shard is sized for 3 keys per user.
    config.shard_users = users * kRulesPerUser;
    RuleConfig pay;
    pay.name = "payments";
    pay.method = "POST";
    pay.path_prefix = "/v1/payments";
    pay.bucket = {.capacity = 20, .leak_rate_per_s = 2};
    pay.action = Action::kShadow;
    RuleConfig search;
    search.name = "search";
    search.path_prefix = "/v1/search";
    search.bucket = {.capacity = 100, .leak_rate_per_s = 50};
    search.action = Action::kShadow;
    config.rules = {pay, search};
    config.default_rule.bucket = {.capacity = 100, .leak_rate_per_s = 10};
    config.default_rule.action = Action::kShadow;
    for (RuleConfig& rc : config.rules) rc.mode = mode;
    config.default_rule.mode = mode;
    auto r = RuleSet::Compile(config.rules, config.default_rule);
    if (!r.ok()) std::abort();
    rules = std::make_unique<RuleSet>(std::move(r).value());
    auto e = PacketEngine::Create(config, *rules, HeapAllocator::Instance(), SipKey{0x1234, 0x5678}, kStartNs);
    if (!e.ok()) std::abort();
    engine = std::move(e).value();
#ifdef DLB_BENCH_REDIS
    if (mode != Mode::kLocal) {
      Server().Command("FLUSHALL");
      auto ep = redis::ParseUrl(Server().Url());
      if (!ep.ok()) std::abort();
      pool = std::make_unique<redis::Pool>(*ep, 2, std::vector<std::string_view>{redis::SettleScript(),
                                                                                 redis::kAnnounceScript});
      ShardSyncOptions so;
      so.ring_entries = 1 << 16;
      so.deadline = std::chrono::seconds(10);   // rounds of many buckets, untimed
      PacketEngine* engines[] = {engine.get()};
      auto s = ShardSync::Create(so, pool.get(), rules.get(), engines, HeapAllocator::Instance());
      if (!s.ok()) std::abort();
      sync = std::move(s).value();
      if (!sync->Round(MonotonicClock::Instance().NowNs()).ok()) std::abort();
    }
#endif
  }

  // The control thread's round (untimed by the callers).
  void Round() {
#ifdef DLB_BENCH_REDIS
    if (sync) (void)sync->Round(MonotonicClock::Instance().NowNs());
#endif
  }

  void Run(const std::vector<std::vector<uint8_t>>& ring, size_t begin, size_t count, FrameResult* out) {
    Frame frames[kBurst];
    for (size_t i = 0; i < count; ++i) {
      frames[i] = {ring[begin + i].data(), static_cast<uint32_t>(ring[begin + i].size())};
    }
    engine->ProcessBurst(frames, count, now_ns, out);
    now_ns += kFrameSpacingNs * static_cast<int64_t>(count);
  }

  void Open(int flow, uint32_t isn) {
    auto syn = bench::BuildTcpFrame(flow, isn, 0x02, "");
    Frame f{syn.data(), static_cast<uint32_t>(syn.size())};
    FrameResult r;
    engine->ProcessBurst(&f, 1, now_ns, &r);
  }
};

struct HeadRing {
  std::vector<std::vector<uint8_t>> frames;
  std::vector<size_t> user_at;    // frame offset of the identity digits
  std::vector<int> flow_of;
  std::vector<uint32_t> lap_advance;  // per flow: stream bytes of one lap
  std::vector<uint32_t> seq0;         // per frame: seq in lap 0
};

HeadRing MakeHeadRing(std::mt19937_64& rng) {
  HeadRing ring;
  std::vector<uint32_t> next(kFlows);
  for (int f = 0; f < kFlows; ++f) next[f] = 1000u * static_cast<uint32_t>(f) + 1;
  ring.lap_advance.assign(kFlows, 0);
  for (size_t i = 0; i < kRingFrames; ++i) {
    const int flow = static_cast<int>(rng() % kFlows);
    size_t user_offset = 0;
    const std::string head = bench::MakeHead(rng, &user_offset);
    auto frame = bench::BuildTcpFrame(flow, next[flow], 0x18, head);
    ring.user_at.push_back(frame.size() - head.size() + user_offset);
    ring.seq0.push_back(next[flow]);
    ring.flow_of.push_back(flow);
    next[flow] += static_cast<uint32_t>(head.size());
    ring.lap_advance[flow] += static_cast<uint32_t>(head.size());
    ring.frames.push_back(std::move(frame));
  }
  return ring;
}

// Rewrites each frame's sequence number for lap `lap` (each flow's stream continues)
// and its identity with `next_user(i)`.
template <typename F>
void PrepareLap(HeadRing& ring, uint32_t lap, F&& next_user) {
  for (size_t i = 0; i < ring.frames.size(); ++i) {
    uint8_t* f = ring.frames[i].data();
    const uint32_t seq = ring.seq0[i] + lap * ring.lap_advance[ring.flow_of[i]];
    f[bench::kSeqOffset] = static_cast<uint8_t>(seq >> 24);
    f[bench::kSeqOffset + 1] = static_cast<uint8_t>(seq >> 16);
    f[bench::kSeqOffset + 2] = static_cast<uint8_t>(seq >> 8);
    f[bench::kSeqOffset + 3] = static_cast<uint8_t>(seq);
    bench::WriteUser(f + ring.user_at[i], next_user(i));
    bench::FillChecksums(f, ring.frames[i].size());
  }
}

void RunHeadFrames(benchmark::State& state, Mode mode) {
  const uint64_t users = static_cast<uint64_t>(state.range(0));
  std::mt19937_64 rng(42);
  Bench bench(users, mode);
  for (int f = 0; f < kFlows; ++f) bench.Open(f, 1000u * static_cast<uint32_t>(f));
  HeadRing ring = MakeHeadRing(rng);
  FrameResult out[kBurst];
  uint32_t lap = 0;
  // Fill the shard (not timed): every user, three times over, with the ring's request
  // mix, so that most users hold buckets of several rules before measuring.
  for (uint64_t u = 0; u < users * kRulesPerUser; lap++) {
    PrepareLap(ring, lap, [&](size_t) { return u < users * kRulesPerUser ? (u++) % users : rng() % users; });
    for (size_t i = 0; i < kRingFrames; i += kBurst) bench.Run(ring.frames, i, kBurst, out);
    bench.Round();
  }
  bench.Round();
  bench.Round();
  const uint64_t heads_before = bench.engine->counters().heads;
  const uint64_t allowed_before = bench.engine->counters().allowed;
  uint64_t frames = 0;
  uint64_t allocations = 0;
  size_t pos = kRingFrames;
  for (auto _ : state) {
    if (pos == kRingFrames) {
      state.PauseTiming();
      bench.Round();
      PrepareLap(ring, lap++, [&](size_t) { return rng() % users; });
      pos = 0;
      state.ResumeTiming();
    }
    const uint64_t a0 = g_allocations.load(std::memory_order_relaxed);
    bench.Run(ring.frames, pos, kBurst, out);
    allocations += g_allocations.load(std::memory_order_relaxed) - a0;
    benchmark::DoNotOptimize(out);
    pos += kBurst;
    frames += kBurst;
  }
  const auto& c = bench.engine->counters();
  if (c.heads - heads_before != frames) state.SkipWithError("not every frame was decided as a head");
  state.SetItemsProcessed(static_cast<int64_t>(frames));
  state.counters["ns_per_frame"] = benchmark::Counter(static_cast<double>(frames),
                                                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["Mpps"] = benchmark::Counter(static_cast<double>(frames) / 1e6, benchmark::Counter::kIsRate);
  state.counters["allocs_per_frame"] = static_cast<double>(allocations) / static_cast<double>(frames);
  const double shard_bytes = static_cast<double>(bench.engine->shard().memory_bytes());
  state.counters["shard_bytes_per_bucket"] = shard_bytes / static_cast<double>(users * kRulesPerUser);
  state.counters["shard_bytes_per_user"] = shard_bytes / static_cast<double>(users);
  state.counters["buckets_in_use"] = static_cast<double>(bench.engine->shard().CountUsed());
  state.counters["shard_full"] = static_cast<double>(c.shard_table_full);
  state.counters["limited_frac"] = static_cast<double>(c.limited) / static_cast<double>(c.heads);
  if (mode != Mode::kLocal) {
    state.counters["lease_or_credit_frac"] =
        static_cast<double>(c.allowed - allowed_before) / static_cast<double>(frames);
  }
}

void BM_HeadFrames(benchmark::State& state) { RunHeadFrames(state, Mode::kLocal); }
BENCHMARK(BM_HeadFrames)->Arg(10'000)->Arg(1'000'000)->Arg(10'000'000)->Unit(benchmark::kNanosecond)
    ->MinTime(2.0);

// BM_FloorHeadFrames/<users>: the same frames, users and burst through FloorDecider
// (floor.h): only what any decision of a head must do. Run beside BM_HeadFrames.
void BM_FloorHeadFrames(benchmark::State& state) {
  const uint64_t users = static_cast<uint64_t>(state.range(0));
  std::mt19937_64 rng(42);
  HeadRing ring = MakeHeadRing(rng);
  // The default rule's bucket: capacity 100 at 10/s.
  bench::FloorDecider floor(users, 100'000'000, 99 * 100'000'000LL);
  std::vector<bench::FloorDecider::Frame> frames(kRingFrames);
  for (size_t i = 0; i < kRingFrames; ++i) {
    frames[i] = {ring.frames[i].data(), static_cast<uint32_t>(ring.frames[i].size())};
  }
  {
    std::vector<bool> seen(kFlows);
    for (size_t i = 0; i < kRingFrames; ++i) {
      if (!seen[ring.flow_of[i]]) floor.Expect(frames[i]);
      seen[ring.flow_of[i]] = true;
    }
  }
  // The floor must find each frame's identity (its scalar path too, where it has AVX-512).
  for (size_t i = 0; i < kRingFrames; ++i) {
    const uint8_t* head = frames[i].data + bench::kPayloadOffset;
    const size_t n = frames[i].bytes - bench::kPayloadOffset;
    const uint64_t want = floor.HashOf(frames[i].data + ring.user_at[i], bench::kUserDigits);
    if (floor.IdentityOf(head, n) != want || floor.ScalarIdentityOf(head, n) != want) {
      state.SkipWithError("the floor did not find a frame's identity");
      return;
    }
  }
  int64_t now_ns = kStartNs;
  uint32_t lap = 0;
  // Fill the buckets (not timed): every user once.
  for (uint64_t u = 0; u < users; lap++) {
    PrepareLap(ring, lap, [&](size_t) { return u < users ? u++ : rng() % users; });
    for (size_t i = 0; i < kRingFrames; i += kBurst, now_ns += kFrameSpacingNs * kBurst) {
      floor.Burst(&frames[i], kBurst, now_ns);
    }
  }
  const uint64_t decided_before = floor.decided();
  const uint64_t admitted_before = floor.admitted();
  uint64_t n = 0;
  size_t pos = kRingFrames;
  for (auto _ : state) {
    if (pos == kRingFrames) {
      state.PauseTiming();
      PrepareLap(ring, lap++, [&](size_t) { return rng() % users; });
      pos = 0;
      state.ResumeTiming();
    }
    benchmark::DoNotOptimize(floor.Burst(&frames[pos], kBurst, now_ns));
    now_ns += kFrameSpacingNs * kBurst;
    pos += kBurst;
    n += kBurst;
  }
  if (floor.decided() - decided_before != n) state.SkipWithError("not every frame was decided as a head");
  state.SetItemsProcessed(static_cast<int64_t>(n));
  state.SetLabel(floor.avx512() ? "avx512" : "scalar");
  state.counters["limited_frac"] =
      1.0 - static_cast<double>(floor.admitted() - admitted_before) / static_cast<double>(n);
  state.counters["ns_per_frame"] = benchmark::Counter(static_cast<double>(n),
                                                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["Mpps"] = benchmark::Counter(static_cast<double>(n) / 1e6, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FloorHeadFrames)->Arg(10'000)->Arg(1'000'000)->Arg(10'000'000)->Unit(benchmark::kNanosecond)
    ->MinTime(2.0);

#ifdef DLB_BENCH_REDIS
void BM_HeadFramesSynced(benchmark::State& state) { RunHeadFrames(state, Mode::kSynced); }
BENCHMARK(BM_HeadFramesSynced)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kNanosecond)->MinTime(0.5);

void BM_SyncRound(benchmark::State& state) {
  const uint64_t active = static_cast<uint64_t>(state.range(0));
  std::mt19937_64 rng(43);
  Bench bench(active, Mode::kSynced);
  for (int f = 0; f < kFlows; ++f) bench.Open(f, 1000u * static_cast<uint32_t>(f));
  HeadRing ring = MakeHeadRing(rng);
  FrameResult out[kBurst];
  uint32_t lap = 0;
  uint64_t next_user = 0;
  // One request of every active user (one rule each: the ring's mix picks it), then the
  // round; repeated so that every bucket is tracked and has demand in each round.
  auto feed = [&] {
    for (uint64_t sent = 0; sent < active;) {
      PrepareLap(ring, lap++, [&](size_t) { return (next_user++) % active; });
      for (size_t i = 0; i < kRingFrames && sent < active; i += kBurst, sent += kBurst) {
        bench.Run(ring.frames, i, kBurst, out);
      }
    }
  };
  for (int i = 0; i < 3; ++i) {
    feed();
    bench.Round();
  }
  const ShardSyncStats before = bench.sync->Stats();
  int64_t round_ns = 0;
  uint64_t rounds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    feed();
    state.ResumeTiming();
    const int64_t t0 = MonotonicClock::Instance().NowNs();
    (void)bench.sync->Round(MonotonicClock::Instance().NowNs());
    round_ns += MonotonicClock::Instance().NowNs() - t0;
    ++rounds;
  }
  const ShardSyncStats after = bench.sync->Stats();
  const double ops = static_cast<double>(after.bucket_ops - before.bucket_ops) / static_cast<double>(rounds);
  state.counters["ns_per_round"] = static_cast<double>(round_ns) / static_cast<double>(rounds);
  state.counters["ns_per_active_bucket"] = static_cast<double>(round_ns) / static_cast<double>(rounds) / ops;
  state.counters["bucket_ops_per_round"] = ops;
  state.counters["evalsha_per_round"] =
      static_cast<double>(after.redis_calls - before.redis_calls) / static_cast<double>(rounds);
  state.counters["tracked"] = static_cast<double>(after.tracked);
  // At one round per 5 ms, if a round fits in 5 ms; otherwise rounds run back to back.
  const double round_s = std::max(0.005, static_cast<double>(round_ns) / static_cast<double>(rounds) / 1e9);
  state.counters["ops_per_s_at_5ms"] = ops / round_s;
  state.counters["evalsha_per_s_at_5ms"] =
      static_cast<double>(after.redis_calls - before.redis_calls) / static_cast<double>(rounds) / round_s;
}
BENCHMARK(BM_SyncRound)->Arg(1'000)->Arg(100'000)->Unit(benchmark::kMillisecond)->Iterations(20);
#endif

// The head parser alone, over the ring's heads (in L2/L3 like the frames above).
void BM_ParseRequestHead(benchmark::State& state) {
  std::mt19937_64 rng(42);
  std::vector<std::string> heads;
  for (int i = 0; i < 1024; ++i) {
    size_t at = 0;
    heads.push_back(bench::MakeHead(rng, &at));
  }
  HeadOptions o;
  size_t i = 0;
  uint64_t bytes = 0;
  for (auto _ : state) {
    const std::string& h = heads[i++ & 1023];
    RequestHead head;
    const HeadResult r = ParseRequestHead(reinterpret_cast<const uint8_t*>(h.data()), h.size(), o, head);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(head);
    bytes += h.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ParseRequestHead);

void RunNonHead(benchmark::State& state, bool body) {
  Bench bench(10'000);
  std::mt19937_64 rng(7);
  std::vector<uint32_t> next(kFlows);
  for (int f = 0; f < kFlows; ++f) {
    bench.Open(f, 1000u * static_cast<uint32_t>(f));
    next[f] = 1000u * static_cast<uint32_t>(f) + 1;
  }
  if (body) {
    // Every connection starts an upload of 1 TB: all later segments are body.
    for (int f = 0; f < kFlows; ++f) {
      const std::string head =
          "PUT /v1/files/big HTTP/1.1\r\nHost: api.example.com\r\nX-User-ID: u1\r\nContent-Length: "
          "1000000000000\r\n\r\n";
      auto frame = bench::BuildTcpFrame(f, next[f], 0x18, head);
      Frame in{frame.data(), static_cast<uint32_t>(frame.size())};
      FrameResult r;
      bench.engine->ProcessBurst(&in, 1, bench.now_ns, &r);
      next[f] += static_cast<uint32_t>(head.size());
    }
  }
  const std::string payload = body ? std::string(1400, 'b') : std::string();
  std::vector<std::vector<uint8_t>> ring;
  std::vector<int> flow_of;
  std::vector<uint32_t> seq0;
  std::vector<uint32_t> lap_advance(kFlows, 0);
  for (size_t i = 0; i < kRingFrames; ++i) {
    const int f = static_cast<int>(rng() % kFlows);
    ring.push_back(bench::BuildTcpFrame(f, next[f], body ? 0x18 : 0x10, payload));
    flow_of.push_back(f);
    seq0.push_back(next[f]);
    next[f] += static_cast<uint32_t>(payload.size());
    lap_advance[f] += static_cast<uint32_t>(payload.size());
  }
  FrameResult out[kBurst];
  uint64_t frames = 0;
  uint64_t allocations = 0;
  uint32_t lap = 0;
  size_t pos = kRingFrames;
  for (auto _ : state) {
    if (pos == kRingFrames) {
      state.PauseTiming();
      ++lap;
      for (size_t i = 0; i < ring.size(); ++i) {
        const uint32_t seq = seq0[i] + lap * lap_advance[flow_of[i]];
        uint8_t* p = ring[i].data() + bench::kSeqOffset;
        p[0] = static_cast<uint8_t>(seq >> 24);
        p[1] = static_cast<uint8_t>(seq >> 16);
        p[2] = static_cast<uint8_t>(seq >> 8);
        p[3] = static_cast<uint8_t>(seq);
        bench::FillChecksums(ring[i].data(), ring[i].size());
      }
      pos = 0;
      state.ResumeTiming();
    }
    const uint64_t a0 = g_allocations.load(std::memory_order_relaxed);
    bench.Run(ring, pos, kBurst, out);
    allocations += g_allocations.load(std::memory_order_relaxed) - a0;
    benchmark::DoNotOptimize(out);
    pos += kBurst;
    frames += kBurst;
  }
  const auto& c = bench.engine->counters();
  if (body && c.heads != static_cast<uint64_t>(kFlows)) state.SkipWithError("a body segment was taken for a head");
  if (body && c.retransmitted_segments != 0) state.SkipWithError("body segments were seen as retransmissions");
  state.SetItemsProcessed(static_cast<int64_t>(frames));
  state.counters["ns_per_frame"] = benchmark::Counter(static_cast<double>(frames),
                                                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["Mpps"] = benchmark::Counter(static_cast<double>(frames) / 1e6, benchmark::Counter::kIsRate);
  state.counters["allocs_per_frame"] = static_cast<double>(allocations) / static_cast<double>(frames);
}

void BM_AckFrames(benchmark::State& state) { RunNonHead(state, false); }
void BM_BodyFrames(benchmark::State& state) { RunNonHead(state, true); }
BENCHMARK(BM_AckFrames)->Unit(benchmark::kNanosecond)->MinTime(1.0);
BENCHMARK(BM_BodyFrames)->Unit(benchmark::kNanosecond)->MinTime(1.0);

}  // namespace
}  // namespace dlb::packet

BENCHMARK_MAIN();
