#include "sim.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>

#include "dlb/bucket.h"
#include "dlb/clock.h"
#include "dlb/key.h"
#include "dlb/packet/engine.h"
#include "dlb/packet/shard_sync.h"
#include "frames.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/script.h"
#include "redis/url.h"
#include "sync/sync_engine.h"

namespace dlb::sim {
namespace {

int64_t NowNs() { return MonotonicClock::Instance().NowNs(); }

constexpr std::string_view kRule = "sim";
// Generous: the simulation measures accuracy, not latency, on a small shared machine.
constexpr std::chrono::microseconds kDeadline{20000};

struct Event {
  int64_t stamp_ns;
  uint32_t user;
  bool admitted;
  bool failed;   // the store failed: rejected by the failure policy, not the protocol
  bool packet;   // decided by a packet core (ShardSync)
};

// Offered load of a pattern: who sends what, when.
struct Load {
  BucketSpec spec;
  uint32_t users = 1;
  std::vector<double> rate_per_s;      // per participant, while "on"
  double on_s = 0, period_s = 0;       // on/off; period 0 = always on
  // Participant p's requests go to users [lo, hi) uniformly (the hot user is user 0).
  std::vector<std::pair<uint32_t, uint32_t>> users_of;

  double OnTime(double t) const {
    if (period_s == 0) return t;
    const double periods = std::floor(t / period_s);
    return periods * on_s + std::min(t - periods * period_s, on_s);
  }
};

Load MakeLoad(Pattern p, int participants, double scale) {
  Load l;
  l.rate_per_s.assign(participants, 0);
  l.users_of.assign(participants, {0, 1});
  switch (p) {
    case Pattern::kUniform:
      // 200 users, each offered about twice its limit, from every participant.
      l.users = 200;
      l.spec = {.capacity = 10, .leak_rate_per_s = 25 * scale};
      for (int i = 0; i < participants; ++i) {
        l.rate_per_s[i] = 1000 * scale;
        l.users_of[i] = {0, l.users};
      }
      break;
    case Pattern::kHotUser:
      // One user at 4x its limit on participant 0; light background elsewhere.
      l.users = 101;
      l.spec = {.capacity = 100, .leak_rate_per_s = 2500 * scale};
      for (int i = 0; i < participants; ++i) {
        l.rate_per_s[i] = (i == 0 ? 10000 : 300) * scale;
        l.users_of[i] = i == 0 ? std::pair<uint32_t, uint32_t>{0, 1} : std::pair<uint32_t, uint32_t>{1, 101};
      }
      break;
    case Pattern::kSpread:
      // One user at 4x its limit, spread evenly over every participant.
      l.users = 1;
      l.spec = {.capacity = 100, .leak_rate_per_s = 2500 * scale};
      for (int i = 0; i < participants; ++i) l.rate_per_s[i] = 1000 * scale;
      break;
    case Pattern::kOnOff:
      // The spread user in bursts: 50 ms at 4x the limit, 100 ms of silence.
      l.users = 1;
      l.spec = {.capacity = 100, .leak_rate_per_s = 2500 * scale};
      l.on_s = 0.05;
      l.period_s = 0.15;
      for (int i = 0; i < participants; ++i) l.rate_per_s[i] = 1000 * scale;
      break;
    case Pattern::kManyUsers:
      // 1e5 users, a small quota each: nearly every bucket is cold.
      l.users = 100000;
      l.spec = {.capacity = 2, .leak_rate_per_s = 0.5};
      for (int i = 0; i < participants; ++i) {
        l.rate_per_s[i] = 1000 * scale;
        l.users_of[i] = {0, l.users};
      }
      break;
    case Pattern::kWithin:
      // 100 users, each offered 80% of its leak rate in all (spread over every
      // participant) with a capacity of a second of it: within the limit but for the
      // rare second in which random arrivals exceed it.
      l.users = 100;
      l.spec = {.capacity = 20, .leak_rate_per_s = 20 * scale};
      for (int i = 0; i < participants; ++i) {
        l.rate_per_s[i] = l.users * 16 * scale / participants;
        l.users_of[i] = {0, l.users};
      }
      break;
  }
  return l;
}

// One appliance core: a sync engine of its own, strict calls through its appliance's
// pool when the lease is short (the appliance's control lcore does that work).
class Core {
 public:
  Core(redis::Pool* pool, const SimOptions& o, int index)
      : pool_(pool), strict_(o.mode == Mode::kStrict), engine_(Options(o, index), pool, nullptr) {}

  static sync::SyncOptions Options(const SimOptions& o, int index) {
    sync::SyncOptions so;
    so.interval = o.sync_interval;
    so.deadline = kDeadline;
    so.participant_id = "sim-core-" + std::to_string(index);
    so.idle_syncs_to_forget = 1 << 30;   // keep PeakLease for the bound
    return so;
  }

  // Whether the request is admitted; *local if no Redis call was made, *failed on a
  // store failure (then rejected), *redis_now_us the Redis time of a strict call.
  bool Decide(uint64_t key, const std::string& redis_key, const BucketSpec& spec, bool* local,
              bool* failed, int64_t* redis_now_us) {
    *local = false;
    *failed = false;
    auto admit = sync::SyncEngine::Admit::kUnknown;
    const int64_t now = NowNs();
    if (!strict_) {
      admit = engine_.TryAdmit(key, 1, now);
      if (admit == sync::SyncEngine::Admit::kAdmitted || admit == sync::SyncEngine::Admit::kRejected) {
        *local = true;
        return admit == sync::SyncEngine::Admit::kAdmitted;
      }
    }
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendBucketCall(w, redis::BucketScriptSha(), redis_key, redis::BucketOp::kTake, spec, 1);
    std::vector<redis::Reply> replies;
    bool allowed = false;
    if (pool_->Call({cmd}, NowNs() + std::chrono::nanoseconds(kDeadline).count(), &replies).ok()) {
      auto r = redis::ParseBucketReply(replies[0].get());
      if (r.ok()) {
        allowed = r->allowed;
        *redis_now_us = r->now_us;
        if (!strict_ && admit == sync::SyncEngine::Admit::kUnknown) engine_.Track(key, redis_key, spec, 1);
        if (!strict_ && !allowed) engine_.NoteRejected(key, now, r->decision.retry_after_ns, r->decision.level);
        return allowed;
      } else {
        *failed = true;
      }
    } else {
      *failed = true;
    }
    if (!strict_ && admit == sync::SyncEngine::Admit::kUnknown) engine_.Track(key, redis_key, spec, 1);
    return allowed;
  }

  sync::SyncEngine& engine() { return engine_; }

 private:
  redis::Pool* pool_;
  const bool strict_;
  sync::SyncEngine engine_;
};

// One appliance of packet engines: a pool, the rule set, one engine per core and the
// ShardSync its control thread drives.
class PacketAppliance {
 public:
  PacketAppliance(const redis::Endpoint& ep, const SimOptions& o, const BucketSpec& spec, uint64_t users,
                  int index) {
    packet::RuleConfig rule;
    rule.name = std::string(kRule);
    rule.bucket = spec;
    rule.mode = Mode::kSynced;
    rule.action = packet::Action::kShadow;   // limited heads leave the connection open
    rule.on_store_failure = FailurePolicy::kClosed;
    config_.rules = {rule};
    config_.default_rule = rule;
    config_.default_rule.name = "dflt";
    config_.max_flows = 16;
    config_.reassembly_buffers = 4;
    config_.shard_users = users + users / 4 + 64;
    auto rs = packet::RuleSet::Compile(config_.rules, config_.default_rule);
    if (!rs.ok()) throw std::runtime_error(rs.status().ToString());
    rules_ = std::make_unique<packet::RuleSet>(std::move(rs).value());
    std::vector<packet::PacketEngine*> raw;
    for (int c = 0; c < o.cores_per_appliance; ++c) {
      auto e = packet::PacketEngine::Create(config_, *rules_, packet::HeapAllocator::Instance(),
                                            SipKey{0x1234, static_cast<uint64_t>(index)}, NowNs());
      if (!e.ok()) throw std::runtime_error(e.status().ToString());
      engines_.push_back(std::move(e).value());
      raw.push_back(engines_.back().get());
    }
    pool_ = std::make_unique<redis::Pool>(ep, 2, std::vector<std::string_view>{redis::SettleScript(),
                                                                               redis::kAnnounceScript});
    packet::ShardSyncOptions so;
    so.interval = o.sync_interval;
    so.deadline = kDeadline;
    so.idle_rounds_to_forget = 1 << 30;   // keep the peaks' slots for the bound
    so.record_peaks = true;
    if (o.standing_rounds >= 0) so.standing_rounds = o.standing_rounds;
    so.participant_prefix = "sim-appliance-" + std::to_string(index) + "-" + std::to_string(NowNs());
    auto s = packet::ShardSync::Create(so, pool_.get(), rules_.get(), raw, packet::HeapAllocator::Instance());
    if (!s.ok()) throw std::runtime_error(s.status().ToString());
    sync_ = std::move(s).value();
    // One keep-alive connection per core: a SYN, then one head per segment.
    seq_.assign(engines_.size(), 1001);
    for (size_t c = 0; c < engines_.size(); ++c) {
      packet::testing::SegmentSpec syn = Spec(c);
      syn.seq = 1000;
      syn.flags = 0x02;
      Process(c, syn);
    }
  }

  packet::testing::SegmentSpec Spec(size_t core) const {
    packet::testing::SegmentSpec s;
    s.src.port = static_cast<uint16_t>(20000 + core);
    return s;
  }

  // One request head of `user` on `core` (the core's worker thread only): admitted?
  // *no_lease: limited for want of a lease (Redis reported the bucket full); *lease:
  // admitted against a lease; *wait: neither, the core asked for a lease (the head is
  // to be sent again, as a client's TCP retransmits a dropped segment); *failed: limited
  // by the failure policy (closed) while the store was marked down.
  bool Request(size_t core, const std::string& user, bool* no_lease, bool* lease, bool* wait, bool* failed) {
    packet::testing::SegmentSpec s = Spec(core);
    s.seq = seq_[core];
    s.payload = packet::testing::Head("GET", "/", user);
    seq_[core] += static_cast<uint32_t>(s.payload.size());
    const auto& w = sync_->core(core).counters();
    const uint64_t nl = w.no_lease_limited.load(std::memory_order_relaxed);
    const uint64_t la = w.lease_admitted.load(std::memory_order_relaxed);
    const uint64_t lw = w.lease_waits.load(std::memory_order_relaxed);
    const uint64_t cl = w.closed_limited.load(std::memory_order_relaxed);
    const uint64_t before = engines_[core]->counters().allowed;
    Process(core, s);
    *no_lease = w.no_lease_limited.load(std::memory_order_relaxed) != nl;
    *lease = w.lease_admitted.load(std::memory_order_relaxed) != la;
    *wait = w.lease_waits.load(std::memory_order_relaxed) != lw;
    *failed = w.closed_limited.load(std::memory_order_relaxed) != cl;
    return engines_[core]->counters().allowed != before;
  }

  packet::ShardSync& sync() { return *sync_; }

 private:
  void Process(size_t core, const packet::testing::SegmentSpec& s) {
    const std::vector<uint8_t> f = packet::testing::BuildSegment(s);
    const packet::Frame frame{f.data(), static_cast<uint32_t>(f.size())};
    packet::FrameResult r;
    engines_[core]->ProcessBurst(&frame, 1, NowNs(), &r);
  }

  packet::PacketConfig config_;
  std::unique_ptr<packet::RuleSet> rules_;
  std::vector<std::unique_ptr<packet::PacketEngine>> engines_;
  std::unique_ptr<redis::Pool> pool_;
  std::unique_ptr<packet::ShardSync> sync_;
  std::vector<uint32_t> seq_;
};

}  // namespace

const char* PatternName(Pattern p) {
  switch (p) {
    case Pattern::kUniform: return "uniform";
    case Pattern::kHotUser: return "hot-user";
    case Pattern::kSpread: return "spread";
    case Pattern::kOnOff: return "on-off";
    case Pattern::kManyUsers: return "1e5-users";
    case Pattern::kWithin: return "within";
  }
  return "?";
}

SimResult Run(Pattern pattern, const SimOptions& o) {
  auto ep = redis::ParseUrl(o.redis_url);
  if (!ep.ok()) throw std::runtime_error(ep.status().ToString());
  const int n_participants = o.appliances * o.cores_per_appliance + o.library_processes;
  // Strict mode is checked exactly: every participant calls the bucket script itself and
  // stamps its decision with the Redis time the script decided at, so the oracle runs
  // on the one clock that decided (expected: no over- and no under-admission at all).
  const bool redis_clock = o.mode == Mode::kStrict;
  const int n_cores = redis_clock ? n_participants : o.appliances * o.cores_per_appliance;
  const int n_libs = n_participants - n_cores;
  const Load load = MakeLoad(pattern, n_participants, o.load_scale);
  auto profile = BucketProfile::Make(load.spec);
  if (!profile.ok()) throw std::runtime_error(profile.status().ToString());

  // User IDs unique to this run, so that runs never share buckets.
  static std::atomic<int> run_counter{0};
  const std::string prefix = "sim" + std::to_string(o.seed) + "-" + std::to_string(NowNs()) + "-" +
                             std::to_string(run_counter.fetch_add(1)) + "-";
  std::vector<std::string> ids(load.users), keys(load.users);
  for (uint32_t u = 0; u < load.users; ++u) {
    ids[u] = prefix + std::to_string(u);
    keys[u] = RedisKey(ids[u], kRule);
  }

  // Appliances: a pool and a control thread each, driving their cores' sync engines.
  std::vector<std::unique_ptr<redis::Pool>> pools;
  std::vector<std::unique_ptr<Core>> cores;
  const bool packet_cores = o.packet_cores && o.mode == Mode::kSynced;
  std::vector<std::unique_ptr<PacketAppliance>> appliances;
  if (packet_cores) {
    for (int a = 0; a < o.appliances; ++a) {
      appliances.push_back(std::make_unique<PacketAppliance>(*ep, o, load.spec, load.users, a));
    }
    // The appliance's first round before traffic: the cores are announced.
    for (auto& a : appliances) (void)a->sync().Round(NowNs());
  }
  for (int c = 0; c < n_cores && !packet_cores; ++c) {
    if (c % o.cores_per_appliance == 0) {
      pools.push_back(std::make_unique<redis::Pool>(
          *ep, o.cores_per_appliance + 2,
          std::vector<std::string_view>{redis::BucketScript(), redis::LeaseScript(), redis::kAnnounceScript}));
    }
    cores.push_back(std::make_unique<Core>(pools.back().get(), o, c));
  }
  std::vector<std::unique_ptr<Limiter>> libs;
  for (int i = 0; i < n_libs; ++i) {
    LimiterOptions lo;
    lo.mode = o.mode;
    lo.redis_url = o.redis_url;
    lo.deadline = kDeadline;
    lo.sync_interval = o.sync_interval;
    lo.on_store_failure = FailurePolicy::kClosed;
    auto l = Limiter::Create(lo);
    if (!l.ok()) throw std::runtime_error(l.status().ToString());
    libs.push_back(std::move(*l));
  }

  std::atomic<bool> stop{false};
  std::vector<std::thread> control;
  if (o.mode == Mode::kSynced) {
    for (int a = 0; a < o.appliances; ++a) {
      control.emplace_back([&, a] {
        const int64_t interval_ns = std::chrono::nanoseconds(o.sync_interval).count();
        int64_t next = NowNs() + interval_ns;
        while (!stop.load(std::memory_order_relaxed)) {
          const int64_t now = NowNs();
          if (now < next) {
            std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(next - now, 200'000)));
            continue;
          }
          if (packet_cores) {
            (void)appliances[a]->sync().Round(NowNs());
          } else {
            for (int c = 0; c < o.cores_per_appliance; ++c) {
              (void)cores[a * o.cores_per_appliance + c]->engine().Sync();
            }
          }
          next = std::max(next + interval_ns, NowNs());
        }
      });
    }
  }

  std::vector<std::vector<Event>> events(n_participants);
  std::vector<int64_t> max_decision_ns(n_participants, 0);
  std::vector<uint64_t> lease_dec(n_participants, 0), store_dec(n_participants, 0), failed(n_participants, 0),
      waits(n_participants, 0), waited(n_participants, 0);
  // Packet cores: per core and user, whether the slot was seen and leased yet; per user,
  // the slots created and the requests limited for want of a lease before a slot's
  // first lease.
  std::vector<std::vector<uint8_t>> slot_state(packet_cores ? n_cores : 0, std::vector<uint8_t>(load.users, 0));
  std::vector<std::atomic<uint32_t>> slots_created(load.users), first_round_limited(load.users);
  const int64_t start = NowNs();
  const int64_t end = start + static_cast<int64_t>(o.duration_s * 1e9);
  std::vector<std::thread> workers;
  for (int p = 0; p < n_participants; ++p) {
    workers.emplace_back([&, p] {
      std::mt19937_64 rng(o.seed * 1000 + static_cast<uint64_t>(p));
      const auto [lo, hi] = load.users_of[p];
      std::uniform_int_distribution<uint32_t> pick(lo, hi - 1);
      const double rate = load.rate_per_s[p];
      events[p].reserve(static_cast<size_t>(rate * o.duration_s * 1.1) + 16);
      double issued = 0;
      // Packet cores: heads refused while the core waited for a lease, sent again after
      // two sync intervals (a client's TCP retransmits after its RTO, >= 200 ms; sooner
      // here so that a short run sees the retransmissions decided).
      struct Retry {
        int64_t due_ns;
        uint32_t user;
      };
      std::vector<Retry> retry;
      bool retransmission = false;
      size_t retry_head = 0;
      const int64_t retry_ns = 2 * std::chrono::nanoseconds(o.sync_interval).count();
      for (;;) {
        const int64_t now = NowNs();
        if (now >= end) break;
        const bool retry_due = retry_head < retry.size() && retry[retry_head].due_ns <= now;
        const double due = rate * load.OnTime(static_cast<double>(now - start) / 1e9);
        // A participant that fell far behind (descheduled) does not replay the backlog
        // in one burst of more than 20 ms of its traffic.
        issued = std::max(issued, due - rate * 0.02);
        if (issued + 1 > due && !retry_due) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        for (int k = 0; k < 64 && (issued + 1 <= due || (retry_head < retry.size() && retry[retry_head].due_ns <= NowNs()));
             ++k) {
          uint32_t u;
          retransmission = retry_head < retry.size() && retry[retry_head].due_ns <= NowNs();
          if (retransmission) {
            u = retry[retry_head++].user;
          } else {
            u = pick(rng);
            issued += 1;
          }
          const int64_t t0 = NowNs();
          bool admitted = false;
          bool failed_now = false;
          int64_t redis_now_us = 0;
          if (packet_cores && p < n_cores) {
            bool no_lease = false, leased = false, wait = false, fail = false;
            const int a = p / o.cores_per_appliance;
            const size_t core = static_cast<size_t>(p % o.cores_per_appliance);
            admitted = appliances[a]->Request(core, ids[u], &no_lease, &leased, &wait, &fail);
            failed[p] += fail;
            failed_now = fail;
            if (wait) {
              ++waits[p];
              waited[p] += !retransmission;
              retry.push_back({NowNs() + retry_ns, u});
              continue;
            }
            uint8_t& st = slot_state[p][u];
            if (st == 0) {
              st = 1;
              slots_created[u].fetch_add(1, std::memory_order_relaxed);
            }
            if (leased && st != 2 && u == 0 && std::getenv("DLB_SIM_DEBUG")) {
              std::fprintf(stderr, "core %d user 0: first lease after %.2f ms\n", p, (NowNs() - start) / 1e6);
            }
            if (leased) st = 2;
            if (no_lease && st == 1) first_round_limited[u].fetch_add(1, std::memory_order_relaxed);
            (leased ? lease_dec[p] : store_dec[p]) += 1;
          } else if (p < n_cores) {
            bool local = false, fail = false;
            admitted = cores[p]->Decide(u + 1, keys[u], load.spec, &local, &fail, &redis_now_us);
            (local ? lease_dec[p] : store_dec[p]) += 1;
            failed[p] += fail;
            failed_now = fail;
            if (redis_clock && fail) continue;   // no Redis time to stamp it with
          } else {
            auto d = libs[p - n_cores]->Decide(ids[u], load.spec, 1, kRule);
            if (d.ok()) {
              admitted = d->allowed;
              if (d->source == DecisionSource::kLease) {
                ++lease_dec[p];
              } else if (d->source == DecisionSource::kStore) {
                ++store_dec[p];
              } else {
                ++failed[p];
                failed_now = true;
              }
            } else {
              ++failed[p];
              failed_now = true;
            }
          }
          const int64_t done = NowNs();
          const int64_t stamp = redis_clock ? redis_now_us * 1000 : done;
          max_decision_ns[p] = std::max(max_decision_ns[p], done - t0);
          events[p].push_back({stamp, u, admitted, failed_now, packet_cores && p < n_cores});
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  stop = true;
  for (auto& t : control) t.join();

  SimResult r;
  r.pattern = PatternName(pattern);
  r.seconds = static_cast<double>(NowNs() - start) / 1e9;
  // H: how long a unit can be held before it is used, plus stamping delay.
  int64_t h = 0;
  for (int64_t d : max_decision_ns) h = std::max(h, d);
  int64_t gap = 0;
  for (auto& c : cores) {
    const sync::SyncStats s = c->engine().Stats();
    gap = std::max(gap, s.max_gap_ns);
    r.lease_redis_calls += s.redis_calls;
    r.lease_bucket_ops += s.bucket_ops;
  }
  for (auto& a : appliances) {
    const packet::ShardSyncStats s = a->sync().Stats();
    gap = std::max(gap, s.max_gap_ns);
    r.lease_redis_calls += s.redis_calls;
    r.lease_bucket_ops += s.bucket_ops;
    r.registrations += s.registrations;
    r.credit_admitted += s.credit_admitted;
    r.no_lease_limited += s.no_lease_limited;
    if (std::getenv("DLB_SIM_DEBUG")) {
      std::fprintf(stderr, "appliance: rounds %llu failures %llu resent %llu calls %llu ops %llu granted %llu returned %llu debited %llu tracked %zu gap %.1f ms last round %.2f ms\n",
                   (unsigned long long)s.rounds, (unsigned long long)s.round_failures, (unsigned long long)s.resent_calls,
                   (unsigned long long)s.redis_calls, (unsigned long long)s.bucket_ops, (unsigned long long)s.granted_units,
                   (unsigned long long)s.returned_units, (unsigned long long)s.debited_units, s.tracked, s.max_gap_ns / 1e6,
                   s.last_round_ns / 1e6);
    }
  }
  for (auto& l : libs) gap = std::max(gap, l->Stats().sync_max_gap_us * 1000);
  if (o.mode == Mode::kSynced) gap = std::max(gap, std::chrono::nanoseconds(o.sync_interval).count());
  r.h_ns = redis_clock ? 0 : h + gap;

  // Per-user lease peaks of the appliance cores; library processes count as C each.
  std::vector<uint64_t> lease_peaks(load.users, 0), credit_peaks(load.users, 0);
  if (o.mode == Mode::kSynced) {
    for (uint32_t u = 0; u < load.users; ++u) {
      for (auto& c : cores) lease_peaks[u] += static_cast<uint64_t>(c->engine().PeakLease(u + 1));
      for (auto& a : appliances) {
        lease_peaks[u] += static_cast<uint64_t>(a->sync().PeakLease(keys[u]));
        credit_peaks[u] += static_cast<uint64_t>(a->sync().PeakCredit(keys[u]));
      }
      lease_peaks[u] += static_cast<uint64_t>(n_libs) * static_cast<uint64_t>(load.spec.capacity);
    }
  }
  for (auto& c : cores) (void)c->engine().ReturnAll();
  for (auto& a : appliances) (void)a->sync().ReturnAll(NowNs());
  libs.clear();   // returns the library processes' leases

  // The oracle: every decision in stamp order against one exact bucket per user.
  std::vector<Event> all;
  for (auto& e : events) all.insert(all.end(), e.begin(), e.end());
  std::sort(all.begin(), all.end(), [](const Event& a, const Event& b) { return a.stamp_ns < b.stamp_ns; });
  std::vector<BucketState> state(load.users);
  std::vector<uint64_t> adm(load.users, 0), oracle(load.users, 0), episodes(load.users, 0),
      store_failures(load.users, 0);
  std::vector<bool> rejects_in_segment(load.users, false);
  for (const Event& e : all) {
    if (rejects_in_segment[e.user] && IsEmpty(*profile, state[e.user], e.stamp_ns)) {
      ++episodes[e.user];
      rejects_in_segment[e.user] = false;
    }
    const Decision d = Decide(*profile, state[e.user], e.stamp_ns, 1);
    oracle[e.user] += d.allowed;
    r.false_rejects += d.allowed && !e.admitted && !e.failed;
    r.packet_false_rejects += e.packet && d.allowed && !e.admitted && !e.failed;
    r.packet_decisions += e.packet;
    adm[e.user] += e.admitted;
    store_failures[e.user] += e.failed;
    if (!d.allowed || !e.admitted) rejects_in_segment[e.user] = true;
  }
  const uint64_t jitter =
      redis_clock ? 0 : static_cast<uint64_t>(std::ceil(load.spec.leak_rate_per_s * static_cast<double>(r.h_ns) / 1e9)) + 1;
  for (uint32_t u = 0; u < load.users; ++u) {
    if (rejects_in_segment[u]) ++episodes[u];
    const uint64_t over = adm[u] > oracle[u] ? adm[u] - oracle[u] : 0;
    const uint64_t under = oracle[u] > adm[u] ? oracle[u] - adm[u] : 0;
    // Packet cores: each slot's credit (1 unit) and the room's credit published after a
    // round are admitted before they are charged; a slot's first requests are limited
    // until its first lease (shard_sync.h).
    const uint64_t credits = slots_created[u].load(std::memory_order_relaxed);
    const uint64_t ramp = first_round_limited[u].load(std::memory_order_relaxed);
    r.first_round_limited += ramp;
    const uint64_t over_bound = episodes[u] * (jitter + credit_peaks[u]) + credits;
    // A request the store failed to decide is the failure policy's (closed here), not
    // the protocol's: each may be one more under-admission.
    const uint64_t under_bound = episodes[u] * (lease_peaks[u] + jitter) + store_failures[u] + ramp;
    r.requests += 0;
    r.admitted += adm[u];
    r.oracle_admitted += oracle[u];
    r.over += over;
    r.under += under;
    r.over_bound += over_bound;
    r.under_bound += under_bound;
    if (over > over_bound || under > under_bound) ++r.users_over_bound;
  }
  r.requests = all.size();
  for (int p = 0; p < n_participants; ++p) {
    r.lease_decisions += lease_dec[p];
    r.store_decisions += store_dec[p];
    r.failed_decisions += failed[p];
    r.lease_waits += waits[p];
    r.waited_requests += waited[p];
  }
  return r;
}

std::string Describe(const SimResult& r) {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "%-10s requests %8llu  oracle %8llu  admitted %8llu  over %6llu (%.3f%%)  under %6llu "
                "(%.3f%%)  bound over/under %llu/%llu  users over bound %llu  lease %.1f%%  strict "
                "calls %llu  failed %llu  lease calls/s %.0f (buckets/s %.0f)  H %.1f ms  no-lease %llu "
                "(first round %llu)  false rejects %llu (%.3f%% of decisions; packet cores %llu of %llu, "
                "%.3f%%)  lease waits %llu (requests that waited %llu)",
                r.pattern.c_str(), (unsigned long long)r.requests, (unsigned long long)r.oracle_admitted,
                (unsigned long long)r.admitted, (unsigned long long)r.over, r.over_pct(),
                (unsigned long long)r.under, r.under_pct(), (unsigned long long)r.over_bound,
                (unsigned long long)r.under_bound, (unsigned long long)r.users_over_bound,
                r.requests ? 100.0 * double(r.lease_decisions) / double(r.requests) : 0.0,
                (unsigned long long)r.store_decisions, (unsigned long long)r.failed_decisions,
                double(r.lease_redis_calls) / r.seconds, double(r.lease_bucket_ops) / r.seconds,
                double(r.h_ns) / 1e6, (unsigned long long)r.no_lease_limited,
                (unsigned long long)r.first_round_limited, (unsigned long long)r.false_rejects,
                r.requests ? 100.0 * double(r.false_rejects) / double(r.requests) : 0.0,
                (unsigned long long)r.packet_false_rejects, (unsigned long long)r.packet_decisions,
                r.packet_decisions ? 100.0 * double(r.packet_false_rejects) / double(r.packet_decisions) : 0.0,
                (unsigned long long)r.lease_waits, (unsigned long long)r.waited_requests);
  return buf;
}

}  // namespace dlb::sim
