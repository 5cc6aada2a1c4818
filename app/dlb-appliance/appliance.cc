#include "appliance.h"

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstring>

#include "dlb/clock.h"
#include "dlb/limiter.h"
#include "dlb/packet/reject.h"
#include "log/log.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/url.h"

namespace dlb::appliance {

using packet::FrameResult;
using packet::PacketEngine;
using packet::RuleSet;
using packet::Verdict;

namespace {

constexpr uint16_t kBurst = PacketEngine::kMaxBurst;
// Attempts to hand a burst to a full tx ring before the rest is freed: a port that
// stays full for this long is overloaded, and holding frames would stall rx.
constexpr int kTxRetries = 64;

// A symmetric Toeplitz key (0x6d5a repeated): a flow and its reply hash alike, so both
// directions of a connection land in the same queue index, hence the same worker.
constexpr uint8_t kSymmetricRssKey[40] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};

std::string RteError(int err) { return rte_strerror(err < 0 ? -err : err); }

// The ethdev of `spec`: a PCI address or vdev spec whose device EAL already probed, or
// one probed now (hotplug). The port name is the spec up to its first comma.
StatusOr<uint16_t> ResolvePort(const std::string& field, const std::string& spec) {
  const std::string name = spec.substr(0, spec.find(','));
  uint16_t port_id = 0;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &port_id) == 0) return port_id;
  const int rc = rte_dev_probe(spec.c_str());
  if (rc < 0) {
    return Status::InvalidArgument("appliance." + field + " '" + spec +
                                   "': no such port, and probing it failed: " + RteError(rc));
  }
  if (rte_eth_dev_get_port_by_name(name.c_str(), &port_id) == 0) return port_id;
  // A PCI device may name its port differently from the spec: take the port of the device.
  RTE_ETH_FOREACH_DEV(port_id) {
    rte_eth_dev_info info;
    if (rte_eth_dev_info_get(port_id, &info) == 0 && info.device != nullptr &&
        name == rte_dev_name(info.device)) {
      return port_id;
    }
  }
  return Status::InvalidArgument("appliance." + field + " '" + spec + "': probed, but no ethdev port appeared");
}

Status ConfigurePort(PortInfo& p, uint16_t queues, const Settings& s, rte_mempool* pool) {
  rte_eth_dev_info info;
  int rc = rte_eth_dev_info_get(p.port_id, &info);
  if (rc != 0) return Status::Unavailable(p.spec + ": device info: " + RteError(rc));
  rte_eth_conf conf;
  std::memset(&conf, 0, sizeof conf);
  p.queues = queues;
  p.rss = false;
  if (queues > 1) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_key = const_cast<uint8_t*>(kSymmetricRssKey);
    conf.rx_adv_conf.rss_conf.rss_key_len = sizeof kSymmetricRssKey;
    conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP) & info.flow_type_rss_offloads;
    p.rss = true;
  }
  // The NIC's checksum verdicts, where it has them, spare the engine its software check
  // (PacketConfig::verify_checksums); af_packet and most virtual NICs have none.
  conf.rxmode.offloads |= info.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
  rc = rte_eth_dev_configure(p.port_id, queues, queues, &conf);
  if (rc != 0) return Status::Unavailable(p.spec + ": configure " + std::to_string(queues) + " queues: " + RteError(rc));
  uint16_t rxd = s.rx_descriptors;
  uint16_t txd = s.tx_descriptors;
  rc = rte_eth_dev_adjust_nb_rx_tx_desc(p.port_id, &rxd, &txd);
  if (rc != 0) return Status::Unavailable(p.spec + ": descriptors: " + RteError(rc));
  const int socket = rte_eth_dev_socket_id(p.port_id);
  for (uint16_t q = 0; q < queues; ++q) {
    rc = rte_eth_rx_queue_setup(p.port_id, q, rxd, socket < 0 ? SOCKET_ID_ANY : socket, nullptr, pool);
    if (rc != 0) return Status::Unavailable(p.spec + ": rx queue " + std::to_string(q) + ": " + RteError(rc));
    rc = rte_eth_tx_queue_setup(p.port_id, q, txd, socket < 0 ? SOCKET_ID_ANY : socket, nullptr);
    if (rc != 0) return Status::Unavailable(p.spec + ": tx queue " + std::to_string(q) + ": " + RteError(rc));
  }
  rc = rte_eth_dev_start(p.port_id);
  if (rc != 0) return Status::Unavailable(p.spec + ": start: " + RteError(rc));
  // L2-transparent: frames for every MAC address are ours to forward.
  rc = rte_eth_promiscuous_enable(p.port_id);
  if (rc != 0) DLB_LOG_WARN("dlb-appliance: {}: promiscuous mode: {}", p.spec, RteError(rc));
  return Status::Ok();
}

// A NIC's checksum verdict (one of the RX_*_CKSUM fields of ol_flags) for the engine.
// NONE means the integrity was verified though the field is not filled in (a partial
// checksum of a local sender): good. UNKNOWN leaves the check to the engine.
packet::RxChecksum RxVerdict(uint64_t field, uint64_t good, uint64_t bad, uint64_t none) {
  if (field == good || field == none) return packet::RxChecksum::kGood;
  if (field == bad) return packet::RxChecksum::kBad;
  return packet::RxChecksum::kUnknown;
}

}  // namespace

void* RteAllocator::Allocate(size_t size_bytes, size_t align_bytes) {
  return rte_zmalloc_socket("dlb_engine", size_bytes, static_cast<unsigned>(align_bytes), socket_);
}

void RteAllocator::Free(void* p) { rte_free(p); }

// --- Worker ---------------------------------------------------------------------

Worker::Worker(int index, uint16_t queue, const PortInfo (&ports)[2], rte_mempool* pool,
               std::unique_ptr<PacketEngine> engine, const RuleSet* rules,
               const std::atomic<const RuleSet*>* published, uint32_t idle_backoff_us)
    : index_(index),
      queue_(queue),
      port_ids_{ports[0].port_id, ports[1].port_id},
      pool_(pool),
      engine_(std::move(engine)),
      rules_(rules),
      applied_(rules),
      published_(published),
      idle_backoff_us_(idle_backoff_us) {}

Worker::~Worker() = default;

void Worker::Run(const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) {
    if (PollOnce() == 0 && idle_backoff_us_ > 0) rte_delay_us_sleep(idle_backoff_us_);
  }
}

uint32_t Worker::PollOnce() {
  // A reload: the engine takes the new rules between bursts, so no head is decided
  // half under one set and half under the other, and the buckets stay.
  if (const RuleSet* p = published_->load(std::memory_order_acquire); p != nullptr && p != rules_) {
    engine_->SetRules(*p);
    rules_ = p;
    ++counters_.rules_applied;
    applied_.store(p, std::memory_order_release);
  }
  rte_mbuf* mbufs[kBurst];
  uint32_t total = 0;
  int64_t now_ns = 0;
  for (int side = 0; side < 2; ++side) {
    const uint16_t n = rte_eth_rx_burst(port_ids_[side], queue_, mbufs, kBurst);
    if (n == 0) continue;
    if (now_ns == 0) now_ns = MonotonicClock::Instance().NowNs();
    total += n;
    Handle(side, mbufs, n, now_ns);
  }
  if (total == 0) {
    ++counters_.idle_polls;
  } else {
    ++counters_.busy_polls;
  }
  return total;
}

void Worker::Handle(int in_side, rte_mbuf** mbufs, uint16_t count, int64_t now_ns) {
  const int out_side = 1 - in_side;
  packet::Frame frames[kBurst];
  FrameResult results[kBurst];
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < count; ++i) {
    // A frame is one segment for the ports set up here (2 KiB buffers, 1500-byte MTU);
    // the engine reads the first segment only and forwards what it cannot parse.
    frames[i] = {rte_pktmbuf_mtod(mbufs[i], const uint8_t*), rte_pktmbuf_data_len(mbufs[i]),
                 RxVerdict(mbufs[i]->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK, RTE_MBUF_F_RX_IP_CKSUM_GOOD,
                           RTE_MBUF_F_RX_IP_CKSUM_BAD, RTE_MBUF_F_RX_IP_CKSUM_NONE),
                 RxVerdict(mbufs[i]->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK, RTE_MBUF_F_RX_L4_CKSUM_GOOD,
                           RTE_MBUF_F_RX_L4_CKSUM_BAD, RTE_MBUF_F_RX_L4_CKSUM_NONE)};
    bytes += rte_pktmbuf_pkt_len(mbufs[i]);
  }
  counters_.rx_packets[in_side] += count;
  counters_.rx_bytes[in_side] += bytes;
  engine_->ProcessBurst(frames, count, now_ns, results,
                        in_side == kClientSide ? packet::Arrival::kClientPort : packet::Arrival::kServerPort);

  rte_mbuf* forward[kBurst];
  uint16_t n_forward = 0;
  // Built frames: at most one per input frame in each direction.
  rte_mbuf* back[kBurst];
  uint16_t n_back = 0;
  rte_mbuf* on[kBurst];
  uint16_t n_on = 0;
  // A crafted frame (429, RST) in a fresh mbuf, queued on `out`; a frame that cannot be
  // built or has no mbuf is counted, never sent half-made.
  auto emit = [&](rte_mbuf** out, uint16_t& n, auto& sent, auto&& build) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    const size_t len = m != nullptr ? build(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_tailroom(m)) : 0;
    if (len == 0) {
      if (m != nullptr) rte_pktmbuf_free(m);
      ++counters_.build_failed;
      return;
    }
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = static_cast<uint32_t>(len);
    out[n++] = m;
    ++sent;
  };
  for (uint16_t i = 0; i < count; ++i) {
    const FrameResult& r = results[i];
    switch (r.verdict) {
      case Verdict::kForward:
        forward[n_forward++] = mbufs[i];
        continue;
      case Verdict::kForwardPrefix: {
        // The heads before a limited one go on; the client retransmits the rest, which
        // then starts with the limited head and is decided again.
        const size_t len = packet::TruncatePayload(rte_pktmbuf_mtod(mbufs[i], uint8_t*), r.view, r.forward_bytes);
        if (len > 0) {
          rte_pktmbuf_trim(mbufs[i], static_cast<uint16_t>(rte_pktmbuf_pkt_len(mbufs[i]) - len));
          ++counters_.prefixes_forwarded;
          forward[n_forward++] = mbufs[i];
        } else {
          // Never forward the limited head: without the cut the segment is dropped and
          // retransmitted.
          ++counters_.verdict_dropped;
          rte_pktmbuf_free(mbufs[i]);
        }
        continue;
      }
      case Verdict::kDrop:
        ++counters_.verdict_dropped;
        if (r.heads > 0 && r.rule < packet::kMaxRules) ++counters_.dropped_by_rule[r.rule];
        rte_pktmbuf_free(mbufs[i]);
        continue;
      case Verdict::kReject:
        ++counters_.rejected_by_rule[r.rule < packet::kMaxRules ? r.rule : 0];
        emit(back, n_back, counters_.rejects_sent, [&](uint8_t* out, size_t room) {
          return packet::BuildClientReject(frames[i].data, r.view, rules_->rule(r.rule), r.decision, out, room);
        });
        emit(on, n_on, counters_.resets_sent, [&](uint8_t* out, size_t room) {
          return packet::BuildServerReset(frames[i].data, r.view, r.reset_seq, out, room);
        });
        rte_pktmbuf_free(mbufs[i]);
        continue;
      case Verdict::kReset:
        emit(back, n_back, counters_.resets_sent, [&](uint8_t* out, size_t room) {
          return packet::BuildClientReset(frames[i].data, r.view, out, room);
        });
        emit(on, n_on, counters_.resets_sent, [&](uint8_t* out, size_t room) {
          return packet::BuildServerReset(frames[i].data, r.view, r.reset_seq, out, room);
        });
        rte_pktmbuf_free(mbufs[i]);
        continue;
    }
    // A verdict this loop does not know is forwarded: never silently lost.
    forward[n_forward++] = mbufs[i];
  }
  // Frames that continue go first, then the RST behind them (it must not overtake a
  // forwarded segment of the same connection); the 429 goes back to the sender.
  if (n_forward > 0) Send(out_side, forward, n_forward);
  if (n_on > 0) Send(out_side, on, n_on);
  if (n_back > 0) Send(in_side, back, n_back);
}

void Worker::Send(int side, rte_mbuf** mbufs, uint16_t count) {
  uint16_t sent = 0;
  for (int attempt = 0; attempt < kTxRetries && sent < count; ++attempt) {
    sent += rte_eth_tx_burst(port_ids_[side], queue_, mbufs + sent, count - sent);
  }
  counters_.tx_packets[side] += sent;
  if (sent < count) {
    counters_.tx_dropped[side] += count - sent;
    rte_pktmbuf_free_bulk(mbufs + sent, count - sent);
  }
}

// --- Appliance ------------------------------------------------------------------

StatusOr<std::unique_ptr<Appliance>> Appliance::Create(const config::File& config) {
  if (!config.appliance) {
    return Status::InvalidArgument(config.path + ": no 'appliance:' section (client_port and server_port are required)");
  }
  std::unique_ptr<Appliance> a(new Appliance());
  a->config_path_ = config.path;
  a->settings_ = *config.appliance;
  a->packet_config_ = config.packet;
  auto rules = RuleSet::Compile(a->packet_config_.rules, a->packet_config_.default_rule);
  if (!rules.ok()) return Status::InvalidArgument(config.path + ": " + rules.status().message());
  a->rules_ = std::make_unique<RuleSet>(std::move(rules).value());
  a->published_.store(a->rules_.get(), std::memory_order_release);

  if (Status st = a->ResolvePorts(); !st.ok()) return st;
  auto queues = a->PlanQueues();
  if (!queues.ok()) return queues.status();
  if (Status st = a->StartPorts(*queues); !st.ok()) return st;
  if (Status st = a->CreateWorkers(*queues); !st.ok()) return st;
  if (Status st = a->StartSync(config.library); !st.ok()) return st;
  DLB_LOG_INFO("dlb-appliance: client side {} ({}), server side {} ({}), {} worker(s), {} queue(s) per port{}",
               a->ports_[0].spec, a->ports_[0].driver, a->ports_[1].spec, a->ports_[1].driver, *queues, *queues,
               *queues > 1 ? " with symmetric RSS" : "");
  return a;
}

Status Appliance::ResolvePorts() {
  const char* fields[2] = {"client_port", "server_port"};
  const std::string* specs[2] = {&settings_.client_port, &settings_.server_port};
  for (int side = 0; side < 2; ++side) {
    auto id = ResolvePort(fields[side], *specs[side]);
    if (!id.ok()) return id.status();
    PortInfo& p = ports_[side];
    p.port_id = *id;
    p.spec = *specs[side];
    char name[RTE_ETH_NAME_MAX_LEN];
    if (rte_eth_dev_get_name_by_port(p.port_id, name) == 0) p.name = name;
    rte_eth_dev_info info;
    if (rte_eth_dev_info_get(p.port_id, &info) != 0) {
      return Status::Unavailable(p.spec + ": cannot read device info");
    }
    p.driver = info.driver_name != nullptr ? info.driver_name : "";
  }
  if (ports_[0].port_id == ports_[1].port_id) {
    return Status::InvalidArgument("appliance.client_port and server_port name the same port");
  }
  return Status::Ok();
}

StatusOr<uint32_t> Appliance::PlanQueues() {
  // Every worker lcore (or `workers` of them), one queue pair each per port, as many
  // as both ports and RSS allow.
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) lcores_.push_back(lcore);
  if (lcores_.empty()) {
    return Status::InvalidArgument(
        "no worker lcore: give EAL at least two (one control, one worker), e.g. --lcores 0@0,1@1");
  }
  uint32_t wanted = settings_.workers == 0 ? static_cast<uint32_t>(lcores_.size()) : settings_.workers;
  if (wanted > lcores_.size()) {
    return Status::InvalidArgument("appliance.workers = " + std::to_string(wanted) + " but EAL has only " +
                                   std::to_string(lcores_.size()) + " worker lcores");
  }
  uint32_t queues = wanted;
  for (const PortInfo& p : ports_) {
    rte_eth_dev_info info;
    if (rte_eth_dev_info_get(p.port_id, &info) != 0) return Status::Unavailable(p.spec + ": cannot read device info");
    queues = std::min<uint32_t>(queues, std::min(info.max_rx_queues, info.max_tx_queues));
    // Without RSS both directions of a connection could meet different workers, and
    // each worker's engine must see both.
    if ((info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP)) == 0) queues = 1;
  }
  if (queues == 0) queues = 1;
  if (queues < wanted) {
    DLB_LOG_WARN("dlb-appliance: {} workers asked, ports allow {} queue(s) with symmetric RSS: running {}",
                 wanted, queues, queues);
  }
  lcores_.resize(queues);
  return queues;
}

Status Appliance::StartPorts(uint32_t queues) {
  const uint32_t per_queue = uint32_t{settings_.rx_descriptors} + settings_.tx_descriptors;
  uint32_t mbufs = settings_.mbufs;
  if (mbufs == 0) mbufs = 2 * queues * per_queue + queues * (512 + 4 * kBurst) + 1024;
  pool_ = rte_pktmbuf_pool_create("dlb_mbufs", mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                  static_cast<int>(rte_socket_id()));
  if (pool_ == nullptr) {
    return Status::Unavailable("mbuf pool of " + std::to_string(mbufs) + " mbufs: " + RteError(rte_errno) +
                               " (too few hugepages? raise /proc/sys/vm/nr_hugepages or EAL -m, or lower appliance.mbufs)");
  }
  for (int side = 0; side < 2; ++side) {
    Status st = ConfigurePort(ports_[side], static_cast<uint16_t>(queues), settings_, pool_);
    if (!st.ok()) return st;
  }
  ports_started_ = true;
  return Status::Ok();
}

Status Appliance::CreateWorkers(uint32_t queues) {
  const SipKey key = SipKey::Random();
  for (uint32_t w = 0; w < queues; ++w) {
    const int wsocket = static_cast<int>(rte_lcore_to_socket_id(lcores_[w]));
    allocators_.push_back(std::make_unique<RteAllocator>(wsocket));
    auto engine = PacketEngine::Create(packet_config_, *rules_, *allocators_.back(), key,
                                       MonotonicClock::Instance().NowNs());
    if (!engine.ok()) {
      return Status::Unavailable("worker " + std::to_string(w) + " engine (shard_users " +
                                 std::to_string(packet_config_.shard_users) + ", max_flows " +
                                 std::to_string(packet_config_.max_flows) + "): " + engine.status().message() +
                                 " (too few hugepages? raise /proc/sys/vm/nr_hugepages or EAL -m, or lower shard_users)");
    }
    workers_.push_back(std::make_unique<Worker>(static_cast<int>(w), static_cast<uint16_t>(w), ports_, pool_,
                                                std::move(engine).value(), rules_.get(), &published_,
                                                settings_.idle_backoff_us));
  }
  return Status::Ok();
}

Status Appliance::StartSync(const LimiterOptions& library) {
  // Global sync only when some rule needs Redis (mode synced or strict).
  bool needs_sync = false;
  for (uint16_t i = 0; i < rules_->size(); ++i) needs_sync = needs_sync || rules_->rule(i).mode != Mode::kLocal;
  if (!needs_sync) return Status::Ok();
  auto ep = redis::ParseUrl(library.redis_url);
  if (!ep.ok()) return Status::InvalidArgument(config_path_ + ": redis.url: " + ep.status().message());
  if (ep->username.empty()) ep->username = library.username;
  if (ep->password.empty()) ep->password = library.password;
  redis_pool_ = std::make_unique<redis::Pool>(
      *ep, library.max_connections, std::vector<std::string_view>{redis::SettleScript(), redis::kAnnounceScript});
  packet::ShardSyncOptions o;
  o.interval = std::chrono::microseconds(settings_.sync_interval_us);
  o.deadline = library.deadline;
  o.standing_rounds = static_cast<int>(int64_t{settings_.sync_standing_ms} * 1000 / settings_.sync_interval_us);
  std::vector<PacketEngine*> engines;
  for (auto& w : workers_) engines.push_back(&w->mutable_engine());
  allocators_.push_back(std::make_unique<RteAllocator>(static_cast<int>(rte_socket_id())));
  auto sync = packet::ShardSync::Create(o, redis_pool_.get(), rules_.get(), engines, *allocators_.back());
  if (!sync.ok()) return Status::Unavailable("global sync: " + sync.status().message());
  sync_ = std::move(sync).value();
  DLB_LOG_INFO("dlb-appliance: synced rules lease from Redis ({}) every {} us",
               ep->seeds.empty() ? (ep->unix_socket ? ep->path : ep->host + ":" + std::to_string(ep->port))
                                 : std::to_string(ep->seeds.size()) + " seed(s)",
               settings_.sync_interval_us);
  return Status::Ok();
}

Status Appliance::Launch() {
  for (size_t w = 0; w < workers_.size(); ++w) {
    Worker* worker = workers_[w].get();
    struct Arg {
      Worker* worker;
      const std::atomic<bool>* stop;
    };
    // The argument lives as long as the appliance (the lcore reads it after launch).
    static std::vector<std::unique_ptr<Arg>> args;
    args.push_back(std::make_unique<Arg>(Arg{worker, &stop_}));
    const int rc = rte_eal_remote_launch(
        [](void* p) -> int {
          auto* arg = static_cast<Arg*>(p);
          arg->worker->Run(*arg->stop);
          return 0;
        },
        args.back().get(), lcores_[w]);
    if (rc != 0) return Status::Unavailable("launching worker on lcore " + std::to_string(lcores_[w]) + ": " + RteError(rc));
  }
  launched_ = true;
  return Status::Ok();
}

Status Appliance::Reload() {
  auto fail = [&](Status st) {
    reloads_failed_.fetch_add(1, std::memory_order_relaxed);
    return st;
  };
  // The whole file must pass, though only its rules are taken.
  auto file = config::Load(config_path_);
  if (!file.ok()) return fail(file.status());
  const packet::PacketConfig* pc = &file->packet;
  auto compiled = RuleSet::Compile(pc->rules, pc->default_rule);
  if (!compiled.ok()) return fail(Status::InvalidArgument(config_path_ + ": " + compiled.status().message()));
  auto next = std::make_unique<RuleSet>(std::move(compiled).value());
  if (pc->service_ports != packet_config_.service_ports || pc->identity_header != packet_config_.identity_header ||
      pc->shard_users != packet_config_.shard_users || pc->max_flows != packet_config_.max_flows) {
    DLB_LOG_WARN("dlb-appliance: reload takes rules only; other packet settings changed and need a restart");
  }
  const RuleSet* p = next.get();
  published_.store(p, std::memory_order_release);
  // Wait until every worker decides with the new set before freeing the old one. A
  // worker takes it at its next poll, within microseconds (or one idle back-off).
  if (launched_) {
    for (;;) {
      bool all = true;
      for (const auto& w : workers_) all = all && w->applied_rules() == p;
      if (all) break;
      rte_delay_us_sleep(100);
    }
  } else {
    for (auto& w : workers_) w->mutable_engine().SetRules(*p);
  }
  if (sync_ != nullptr) sync_->SetRules(p);
  bool needs_sync = false;
  for (uint16_t i = 0; i < p->size(); ++i) needs_sync = needs_sync || p->rule(i).mode != Mode::kLocal;
  if (needs_sync && sync_ == nullptr) {
    DLB_LOG_WARN("dlb-appliance: reload: synced or strict rules decide locally until a restart (no Redis sync was started)");
  }
  rules_ = std::move(next);
  packet_config_.rules = pc->rules;
  packet_config_.default_rule = pc->default_rule;
  reloads_ok_.fetch_add(1, std::memory_order_relaxed);
  DLB_LOG_INFO("dlb-appliance: reloaded {} rule(s) from {}", rules_->size(), config_path_);
  return Status::Ok();
}

void Appliance::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  if (launched_) {
    rte_eal_mp_wait_lcore();
    launched_ = false;
  }
  if (sync_ != nullptr && !leases_returned_) {
    leases_returned_ = true;
    if (Status st = sync_->ReturnAll(MonotonicClock::Instance().NowNs()); !st.ok()) {
      DLB_LOG_WARN("dlb-appliance: returning leases at shutdown: {}", st.message());
    } else {
      DLB_LOG_INFO("dlb-appliance: leases returned");
    }
    std::lock_guard<std::mutex> lock(sync_stats_mu_);
    sync_stats_ = sync_->Stats();
  }
}

Status Appliance::SyncRound() {
  if (sync_ == nullptr) return Status::Ok();
  Status st = sync_->Round(MonotonicClock::Instance().NowNs());
  std::lock_guard<std::mutex> lock(sync_stats_mu_);
  sync_stats_ = sync_->Stats();
  return st;
}

std::optional<packet::ShardSyncStats> Appliance::sync_stats() const {
  std::lock_guard<std::mutex> lock(sync_stats_mu_);
  return sync_stats_;
}

Appliance::~Appliance() {
  Stop();
  sync_.reset();
  workers_.clear();  // engines free their rte_malloc memory
  if (ports_started_) {
    for (const PortInfo& p : ports_) {
      rte_eth_dev_stop(p.port_id);
      rte_eth_dev_close(p.port_id);
    }
  }
  if (pool_ != nullptr) rte_mempool_free(pool_);
}

}  // namespace dlb::appliance
