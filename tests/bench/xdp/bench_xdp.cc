// The XDP program's cost per packet, measured by the kernel (bpf_prog_test_run_opts
// with repeat): request heads that are admitted (a request line alone, a short head, a
// short head with a 36-byte and a 100-byte ID, a 212-byte head with a body, browser-like heads of 400-600 bytes with the identity
// header at a random position), a segment with a body, a bare ACK, and traffic to
// another port; then a short head of one user decided on two CPUs at once (the user's
// bucket shared, its TAT changed by compare-and-swap), ns per packet on each.
// Beside each packet, in the same run: the floor of a head decision on this kernel
// (xdp_floor.bpf.c: L2-L4, the scan to the end of the head, the clock and one hash
// lookup, nothing else), then the floor by part. Needs root.
//
//   build-rel/tests/bench/xdp/bench_xdp [repeat]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sched.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "../../packet/frames.h"
#include "xdp_config.h"
#include "xdp_program.h"
#include "xdp_floor.skel.h"

namespace {

using dlb::packet::testing::BuildSegment;
using dlb::packet::testing::Head;
using dlb::packet::testing::SegmentSpec;

double NsPerPacket(int fd, const std::vector<uint8_t>& frame, unsigned repeat, int* action) {
  std::vector<uint8_t> out(4096);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<__u32>(frame.size()),
              .data_size_out = static_cast<__u32>(out.size()), .repeat = static_cast<int>(repeat));
  if (bpf_prog_test_run_opts(fd, &opts) != 0) return -1;
  *action = static_cast<int>(opts.retval);
  return static_cast<double>(opts.duration);   // average ns per run
}

// The same frame run on CPUs 0 and 1 at once: the mean of the two runs' ns per packet.
double NsPerPacketOnTwoCpus(int fd, const std::vector<uint8_t>& frame, unsigned repeat, int* action) {
  std::atomic<int> ready{0};
  double ns[2] = {-1, -1};
  int actions[2] = {-1, -1};
  auto run = [&](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    ns[cpu] = NsPerPacket(fd, frame, repeat, &actions[cpu]);
  };
  std::thread a(run, 0), b(run, 1);
  a.join();
  b.join();
  *action = actions[0] == actions[1] ? actions[0] : -1;
  return ns[0] < 0 || ns[1] < 0 ? -1 : (ns[0] + ns[1]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned repeat = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 1000000;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  sched_setaffinity(0, sizeof set, &set);
  auto prog = dlb::xdp::XdpProgram::Load({.max_users = 65536, .replay_heads = true});
  if (!prog.ok()) {
    std::fprintf(stderr, "bench_xdp: %s\n", prog.status().ToString().c_str());
    return 1;
  }
  dlb::packet::PacketConfig c;
  c.service_ports = {80};
  dlb::packet::RuleConfig limited;
  limited.name = "limited";
  limited.path_prefix = "/limited";
  limited.bucket = {.capacity = 1, .leak_rate_per_s = 0.001};
  limited.mode = dlb::Mode::kLocal;
  dlb::packet::RuleConfig pay = limited;
  pay.name = "pay";
  pay.path_prefix = "/v1/payments";
  pay.method = "POST";
  pay.bucket = {.capacity = 1'000'000'000'000, .leak_rate_per_s = 1e9};
  c.rules = {pay, limited};
  c.default_rule.bucket = {.capacity = 1'000'000'000'000, .leak_rate_per_s = 1e9};
  c.default_rule.mode = dlb::Mode::kLocal;
  auto tables = dlb::xdp::CompileXdpTables(c, 1.0);
  if (!tables.ok() || !(*prog)->Push(*tables).ok()) {
    std::fprintf(stderr, "bench_xdp: config\n");
    return 1;
  }
  const std::string realistic =
      "POST /v1/payments/charge HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: gateway/1.0\r\n"
      "Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
      "X-User-ID: user-000123456\r\n\r\n{\"amount\": 10}";
  // Browser-like heads of 400, 500 and 600 bytes, 9 to 12 header lines, the identity
  // header placed at a random position among them (seeded: the same heads every run).
  std::mt19937 rng(20261127);
  auto browser_head = [&rng](size_t target) {
    std::vector<std::string> lines = {
        "Host: shop.example.com",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "Accept-Language: en-US,en;q=0.5",
        "Accept-Encoding: gzip, deflate, br",
        "Referer: https://shop.example.com/cart",
        "Connection: keep-alive",
        "Cookie: session=4f9c2a7e1b3d5f60; theme=dark; cart=17",
        "Upgrade-Insecure-Requests: 1",
        "X-Request-ID: 7d1e6a52-93b4-4c0f-8a2d-5e6f7a8b9c0d",
    };
    const std::string request = "GET /v1/catalog/items?page=2 HTTP/1.1\r\n";
    const std::string id = "X-User-ID: user-" + std::to_string(100000 + rng() % 900000);
    auto size = [&] {
      size_t n = request.size() + id.size() + 4;
      for (const std::string& l : lines) n += l.size() + 2;
      return n;
    };
    while (size() + 20 > target) lines.pop_back();   // room for the padding line
    // A tracing header fills the head up to the target size.
    lines.push_back("X-Trace: " + std::string(target - size() - 11, 'a'));
    lines.insert(lines.begin() + static_cast<long>(rng() % (lines.size() + 1)), id);
    std::string h = request;
    for (const std::string& l : lines) h += l + "\r\n";
    return std::make_pair(h + "\r\n", lines.size());
  };
  struct Case {
    const char* name;
    SegmentSpec spec;
  };
  std::vector<Case> cases;
  std::vector<std::string> names;   // keeps the case names alive
  names.reserve(8);
  SegmentSpec s;
  s.payload = "GET / HTTP/1.1\r\n\r\n";
  cases.push_back({"head, request line only (admitted)", s});
  s.payload = Head("GET", "/", "alice");
  cases.push_back({"head, short (admitted)", s});
  // The user key's two maps: a UUID (36 bytes) in the short map, a 100-byte ID in the
  // long one.
  s.payload = Head("GET", "/", "7d1e6a52-93b4-4c0f-8a2d-5e6f7a8b9c0d");
  cases.push_back({"head, short, 36-byte ID (admitted)", s});
  s.payload = Head("GET", "/", std::string(100, 'k'));
  cases.push_back({"head, short, 100-byte ID (admitted)", s});
  s.payload = realistic;
  cases.push_back({"head, 212 bytes + body (admitted)", s});
  for (size_t target : {400, 500, 600}) {
    size_t headers = 0;
    std::tie(s.payload, headers) = browser_head(target);
    names.push_back("head, " + std::to_string(s.payload.size()) + " bytes, " + std::to_string(headers) +
                    " headers (admitted)");
    cases.push_back({names.back().c_str(), s});
  }
  s.payload = std::string(1200, 'x');
  cases.push_back({"non-head: 1200-byte body segment", s});
  s.payload.clear();
  cases.push_back({"non-head: bare ACK", s});
  s.payload = Head("GET", "/", "alice");
  s.dst.port = 8080;
  cases.push_back({"other port", s});
  xdp_floor_bpf* floor = xdp_floor_bpf__open_and_load();
  if (floor == nullptr) {
    std::fprintf(stderr, "bench_xdp: cannot load the floor programs\n");
    return 1;
  }
  const auto action_name = [](int action) {
    return action == XDP_PASS ? "PASS" : action == XDP_TX ? "TX" : action == XDP_DROP ? "DROP" : "?";
  };
  // The floor's parts, cumulative as the file describes them.
  const std::pair<const char*, bpf_program*> parts[] = {
      {"harness", floor->progs.floor_harness}, {"l2-l4", floor->progs.floor_l4},
      {"+clock", floor->progs.floor_clock},    {"+lookup", floor->progs.floor_lookup},
      {"l2-l4+scan", floor->progs.floor_scan}, {"floor", floor->progs.floor_all},
  };
  // The floor is that of a head: it runs on the head packets only.
  const auto is_head = [](const Case& k) { return std::string_view(k.name).starts_with("head"); };
  std::printf("%-44s %12s %8s %10s %8s\n", "packet", "ns/packet", "action", "floor ns", "floor");
  std::vector<std::pair<const char*, std::vector<double>>> by_part;
  for (const Case& k : cases) {
    const std::vector<uint8_t> frame = BuildSegment(k.spec);
    int action = -1;
    const double ns = NsPerPacket((*prog)->prog_fd(), frame, repeat, &action);
    if (!is_head(k)) {
      std::printf("%-44s %12.1f %8s %10s %8s\n", k.name, ns, action_name(action), "-", "-");
      continue;
    }
    std::vector<double> part_ns;
    int floor_action = -1;
    for (const auto& [name, p] : parts) {
      part_ns.push_back(NsPerPacket(bpf_program__fd(p), frame, repeat, &floor_action));
    }
    std::printf("%-44s %12.1f %8s %10.1f %8s\n", k.name, ns, action_name(action), part_ns.back(),
                action_name(floor_action));
    by_part.emplace_back(k.name, std::move(part_ns));
  }
  std::printf("\nfloor by part, ns/packet (each includes the ones before it; l2-l4+scan has no clock or lookup)\n");
  std::printf("%-44s", "packet");
  for (const auto& [name, p] : parts) std::printf(" %10s", name);
  std::printf("\n");
  for (const auto& [name, part_ns] : by_part) {
    std::printf("%-44s", name);
    for (double ns : part_ns) std::printf(" %10.1f", ns);
    std::printf("\n");
  }
  xdp_floor_bpf__destroy(floor);
  std::printf("\n");
  if (std::thread::hardware_concurrency() >= 2) {
    SegmentSpec one;
    one.payload = Head("GET", "/", "alice");
    int action = -1;
    const double ns = NsPerPacketOnTwoCpus((*prog)->prog_fd(), BuildSegment(one), repeat, &action);
    std::printf("%-44s %12.1f %8s\n", "head, short, one user on 2 CPUs (each)", ns,
                action == XDP_PASS ? "PASS" : "?");
  }
  return 0;
}
