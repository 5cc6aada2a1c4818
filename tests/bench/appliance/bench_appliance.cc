// Worker throughput of dlb-appliance in-process: prepared frames go through two
// net_ring ports (rte_eth_from_rings) and one appliance Worker (app/dlb-appliance), so
// that a poll is the real rx burst -> ProcessBurst -> verdicts -> tx burst. Only the
// poll is timed (thread CPU time); refilling the client port's rx ring and draining
// the server port's tx ring happen outside the clock.
//
//   build-app-rel/tests/bench/appliance/bench_appliance [EAL args]
//   (default EAL args: --no-huge -m 1024 --no-pci --lcores 0@0 --file-prefix dlbbench<pid>)
//
// head-only: every frame carries one complete request head (~420 bytes, the identity
//   among eight headers) from one of 1024 keep-alive connections, the identity drawn
//   uniformly from 1e6 users; the shard is filled with all of them first. Action
//   shadow, so that limited users keep their connections.
// mixed: one head in four frames; the others are pure ACKs toward the server and UDP
//   to another port (forwarded unexamined beyond L4).
// Prints Mpps per worker lcore and ns per frame, and the engine's memory per 1e6 users.
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "appliance.h"
#include "dlb/clock.h"
#include "../packet/bench_frames.h"

using dlb::appliance::PortInfo;
using dlb::appliance::Worker;
namespace packet = dlb::packet;
namespace bench = dlb::bench;

namespace {

constexpr int kFlows = 1024;
constexpr uint64_t kUsers = 1'000'000;
constexpr size_t kBurst = 32;

std::vector<uint8_t> UdpFrame(int flow) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00};
  bench::Put16(f, 0x4500);
  bench::Put16(f, 20 + 8 + 64);
  bench::Put32(f, 0x00004000);
  bench::Put16(f, 0x4011);
  bench::Put16(f, 0);
  bench::Put32(f, 0x0a000000 | static_cast<uint32_t>(flow));
  bench::Put32(f, 0x0a800001);
  bench::Put16(f, 5353);
  bench::Put16(f, 53);
  bench::Put16(f, 8 + 64);
  bench::Put16(f, 0);
  f.resize(f.size() + 64, 0x61);
  return f;
}

std::string Head(size_t& user_offset) {
  std::string h = "GET /v1/accounts/balance?currency=EUR HTTP/1.1\r\nHost: api.example.com\r\n"
                  "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)\r\n"
                  "Accept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\n"
                  "Accept-Language: en-US,en;q=0.9\r\nX-Request-ID: 4bf92f3577b34da6a3ce929d0e0e4736\r\n"
                  "X-User-ID: ";
  user_offset = h.size();
  h += std::string(bench::kUserDigits, '0');
  h += "\r\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
       "Connection: keep-alive\r\n\r\n";
  return h;
}

rte_mbuf* MbufOf(rte_mempool* pool, const std::vector<uint8_t>& f) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
  return m;
}

struct Rig {
  rte_mempool* pool = nullptr;
  rte_ring* client_rx = nullptr;   // frames the bench offers
  rte_ring* client_tx = nullptr;   // 429s back to clients (none: shadow)
  rte_ring* server_rx = nullptr;   // empty
  rte_ring* server_tx = nullptr;   // forwarded frames
  PortInfo ports[2];
  std::unique_ptr<packet::RuleSet> rules;
  std::atomic<const packet::RuleSet*> published{nullptr};
  std::unique_ptr<dlb::appliance::RteAllocator> allocator;
  std::unique_ptr<Worker> worker;
  size_t engine_memory = 0, shard_bytes = 0;
};

bool MakeRig(Rig& r, const char* tag) {
  const std::string t = tag;
  r.pool = rte_pktmbuf_pool_create(("pool" + t).c_str(), 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  auto ring = [&](const char* n) {
    return rte_ring_create((t + n).c_str(), 8192, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  };
  r.client_rx = ring("crx");
  r.client_tx = ring("ctx");
  r.server_rx = ring("srx");
  r.server_tx = ring("stx");
  if (!r.pool || !r.client_rx || !r.client_tx || !r.server_rx || !r.server_tx) return false;
  const int c = rte_eth_from_rings(("c" + t).c_str(), &r.client_rx, 1, &r.client_tx, 1, 0);
  const int s = rte_eth_from_rings(("s" + t).c_str(), &r.server_rx, 1, &r.server_tx, 1, 0);
  if (c < 0 || s < 0) return false;
  r.ports[0].port_id = static_cast<uint16_t>(c);
  r.ports[1].port_id = static_cast<uint16_t>(s);
  for (auto& p : r.ports) {
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(p.port_id, 1, 1, &conf) != 0) return false;
    if (rte_eth_rx_queue_setup(p.port_id, 0, 1024, 0, nullptr, r.pool) != 0) return false;
    if (rte_eth_tx_queue_setup(p.port_id, 0, 1024, 0, nullptr) != 0) return false;
    if (rte_eth_dev_start(p.port_id) != 0) return false;
  }
  packet::PacketConfig config;
  config.max_flows = 4 * kFlows;
  config.reassembly_buffers = 256;
  config.shard_users = kUsers;
  config.default_rule.bucket = {.capacity = 100, .leak_rate_per_s = 10};
  config.default_rule.action = packet::Action::kShadow;
  config.default_rule.mode = dlb::Mode::kLocal;
  auto rules = packet::RuleSet::Compile(config.rules, config.default_rule);
  if (!rules.ok()) return false;
  r.rules = std::make_unique<packet::RuleSet>(std::move(rules).value());
  r.published.store(r.rules.get());
  r.allocator = std::make_unique<dlb::appliance::RteAllocator>(0);
  auto e = packet::PacketEngine::Create(config, *r.rules, *r.allocator, dlb::SipKey::Random(),
                                        dlb::MonotonicClock::Instance().NowNs());
  if (!e.ok()) {
    std::fprintf(stderr, "engine: %s\n", e.status().message().c_str());
    return false;
  }
  r.engine_memory = (*e)->memory_bytes();
  r.shard_bytes = (*e)->shard().memory_bytes();
  r.worker = std::make_unique<Worker>(0, 0, r.ports, r.pool, std::move(e).value(), r.rules.get(), &r.published, 0);
  return true;
}

void Drain(Rig& r) {
  void* objs[256];
  for (rte_ring* ring : {r.server_tx, r.client_tx}) {
    unsigned n;
    while ((n = rte_ring_dequeue_burst(ring, objs, 256, nullptr)) > 0) {
      rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), n);
    }
  }
}

// Runs `frames` frames: each burst is built by `make` (outside the clock), then one poll.
// The clock is the thread's CPU time, as bench_packet's figures are: on a shared
// machine wall time counts other processes' slices. Reading it costs a system call per
// burst (a few hundred ns, ~10 ns per frame), charged to the worker.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

template <typename Make>
double Run(Rig& r, uint64_t frames, Make&& make, uint64_t* processed) {
  double busy = 0;
  uint64_t done = 0;
  rte_mbuf* burst[kBurst];
  while (done < frames) {
    const unsigned n = make(burst);
    rte_ring_enqueue_bulk(r.client_rx, reinterpret_cast<void**>(burst), n, nullptr);
    const double t0 = ThreadCpuSeconds();
    uint32_t got = 0;
    while (got < n) got += r.worker->PollOnce();
    busy += ThreadCpuSeconds() - t0;
    done += n;
    Drain(r);
  }
  *processed = done;
  return busy;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  const std::string prefix = "dlbbench" + std::to_string(getpid());
  if (argc > 1) {
    for (int i = 0; i < argc; ++i) args.push_back(argv[i]);
  } else {
    args = {argv[0], "--no-huge", "-m", "1024", "--no-pci", "--lcores", "0@0", "--file-prefix", prefix,
            "--log-level", "lib.eal:warning"};
  }
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  if (rte_eal_init(static_cast<int>(cargs.size()), cargs.data()) < 0) {
    std::fprintf(stderr, "bench_appliance: EAL init failed\n");
    return 1;
  }
  Rig rig;
  if (!MakeRig(rig, "b")) {
    std::fprintf(stderr, "bench_appliance: set-up failed\n");
    return 1;
  }
  size_t user_offset = 0;
  const std::string head = Head(user_offset);
  std::vector<uint32_t> seq(kFlows, 1000);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> pick(0, kUsers - 1);

  // Open every connection with a SYN.
  for (int f = 0; f < kFlows; f += kBurst) {
    rte_mbuf* b[kBurst];
    for (size_t i = 0; i < kBurst; ++i) b[i] = MbufOf(rig.pool, bench::BuildTcpFrame(f + static_cast<int>(i), 999, 0x02, ""));
    rte_ring_enqueue_bulk(rig.client_rx, reinterpret_cast<void**>(b), kBurst, nullptr);
    rig.worker->PollOnce();
    Drain(rig);
  }
  int next_flow = 0;
  auto head_frame = [&](uint64_t user) {
    const int f = next_flow;
    next_flow = (next_flow + 1) % kFlows;
    rte_mbuf* m = MbufOf(rig.pool, bench::BuildTcpFrame(f, seq[f], 0x18, head));
    bench::WriteUser(rte_pktmbuf_mtod(m, uint8_t*) + bench::kPayloadOffset + user_offset, user);
    bench::FillChecksums(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
    seq[f] += static_cast<uint32_t>(head.size());
    return m;
  };
  // Fill the shard: every user once.
  uint64_t processed = 0;
  uint64_t next_user = 0;
  Run(rig, kUsers, [&](rte_mbuf** b) {
    for (size_t i = 0; i < kBurst; ++i) b[i] = head_frame(next_user++ % kUsers);
    return static_cast<unsigned>(kBurst);
  }, &processed);

  const uint64_t kFrames = 4'000'000;
  double s = Run(rig, kFrames, [&](rte_mbuf** b) {
    for (size_t i = 0; i < kBurst; ++i) b[i] = head_frame(pick(rng));
    return static_cast<unsigned>(kBurst);
  }, &processed);
  std::printf("appliance worker, head-only (1e6 users, 1024 connections): %.2f Mpps per worker lcore, %.1f ns/frame\n",
              double(processed) / s / 1e6, s * 1e9 / double(processed));

  int k = 0;
  s = Run(rig, kFrames, [&](rte_mbuf** b) {
    for (size_t i = 0; i < kBurst; ++i, ++k) {
      switch (k % 4) {
        case 0: b[i] = head_frame(pick(rng)); break;
        case 1:
        case 2: {
          const int f = (k / 4) % kFlows;
          b[i] = MbufOf(rig.pool, bench::BuildTcpFrame(f, seq[f], 0x10, ""));
          break;
        }
        default: b[i] = MbufOf(rig.pool, UdpFrame(k % kFlows)); break;
      }
    }
    return static_cast<unsigned>(kBurst);
  }, &processed);
  std::printf("appliance worker, mixed (1 head in 4 frames; ACKs, UDP): %.2f Mpps per worker lcore, %.1f ns/frame\n",
              double(processed) / s / 1e6, s * 1e9 / double(processed));
  const auto& c = rig.worker->engine().counters();
  std::printf("  engine: %llu heads decided, %llu malformed frames dropped, %llu malformed heads, tx dropped %llu\n",
              static_cast<unsigned long long>(c.heads), static_cast<unsigned long long>(c.malformed_frames_dropped),
              static_cast<unsigned long long>(c.malformed_heads),
              static_cast<unsigned long long>(rig.worker->counters().tx_dropped[1]));
  std::printf("memory per worker for 1e6 users: shard %.1f MiB, engine total (shard + %d-slot flow table + reassembly) %.1f MiB\n",
              double(rig.shard_bytes) / (1 << 20), 4 * kFlows, double(rig.engine_memory) / (1 << 20));
  rig.worker.reset();
  rte_eal_cleanup();
  if (argc <= 1) {
    std::error_code ec;
    std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec);  // EAL leaves its runtime dir
  }
  return 0;
}
