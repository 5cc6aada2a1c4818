#include "dlb/packet/shard_sync.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <unordered_map>

#include "dlb/clock.h"
#include "dlb/key.h"
#include "dlb/packet/engine.h"
#include "redis/breaker.h"
#include "log/log.h"
#include "redis/lease_round.h"
#include "redis/lease_script.h"
#include "redis/pool.h"

namespace dlb::packet {

// --- control thread ----------------------------------------------------------------

namespace {

// A tracked bucket whose rule a reload removed (no RuleSet holds kMaxRules rules).
constexpr uint16_t kNoRule = 0xffff;
static_assert(kNoRule >= kMaxRules);

int64_t NowMonoNs() { return MonotonicClock::Instance().NowNs(); }

uint64_t RandomU64() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

// The user ID of an identity: the header's bytes, or the address's (dlb/key.h).
std::string UserId(const SyncRegistration& r) {
  if (r.kind == IdentityKind::kHeader) {
    return std::string(reinterpret_cast<const char*>(r.identity), r.identity_len);
  }
  return SourceAddressUserId(r.kind == IdentityKind::kIpv4 ? 4 : 6, r.identity);
}

}  // namespace

struct ShardSync::Impl {
  struct Core {
    std::unique_ptr<CoreSync> sync;
    PacketEngine* engine = nullptr;
    SyncRegistration* ring = nullptr;
    const BucketShard* shard = nullptr;
    std::string participant_id;
  };
  // One tracked bucket of one core.
  struct Tracked {
    std::string key;           // Redis key
    SyncSlot* slot = nullptr;
    BucketSpec spec;
    uint32_t gen = 0;          // bumped when the entry is freed: stale replies are ignored
    uint32_t last_demand = 0;
    // What avail held when the control thread last set it: `lease` units charged in
    // Redis and `credit` units not charged (a new slot's, or the room share published
    // after a round). The worker consumes whatever is there; units are taken as used
    // lease first, so that the debit is the least the consumption implies.
    int64_t lease = 0;
    int64_t credit = 0;
    int32_t since_seen = 0;    // rounds since the last request
    uint64_t rule_key = 0;     // CompiledRule::bucket_key: finds the rule again after a reload
    uint16_t rule = 0;         // its index in `rules`; kNoRule when a reload removed it
    uint16_t core = 0;
    bool live = false;
    bool strict = false;
  };
  // One bucket in a round trip.
  struct Item {
    uint32_t tracked;
    uint32_t gen;
    int32_t keep;
    bool release;
  };
  // One round trip: its calls (lib/redis/lease_round.h) and the buckets they carry, in
  // the order of its results (by tracked index).
  struct Trip {
    redis::LeaseTrip calls;
    std::vector<Item> items;
  };

  ShardSyncOptions opts;
  redis::Pool* pool = nullptr;
  const RuleSet* rules = nullptr;
  Allocator* allocator = nullptr;
  std::vector<Core> cores;
  std::vector<Tracked> tracked;
  std::vector<uint32_t> free_tracked;
  size_t live_tracked = 0;
  redis::Breaker breaker;
  std::unique_ptr<Trip> pending;  // a trip whose replies were lost: re-sent verbatim
  uint64_t round_base = RandomU64() >> 2;
  uint64_t round_seq = 0;
  int64_t last_round_ns = 0;
  int64_t last_announce_ns = 0;
  bool store_down = false;
  ShardSyncStats stats;
  std::unordered_map<std::string, std::vector<int64_t>> peaks;

  explicit Impl(const ShardSyncOptions& o)
      : opts(o),
        // Every round trip counts, missed deadlines as much as broken connections: a
        // round is one call per interval, not one per request.
        breaker(o.failure_threshold, o.failure_threshold, 0, std::chrono::nanoseconds(o.backoff_min).count(),
                std::chrono::nanoseconds(o.backoff_max).count(), /*by_failure_rate=*/false) {}

  ~Impl() {
    for (Core& c : cores) {
      // The engine decides its synced rules in its shard alone from now on.
      if (c.engine != nullptr) c.engine->AttachSync(nullptr);
      if (c.ring != nullptr) allocator->Free(c.ring);
    }
  }

  int64_t DeadlineNs() const { return NowMonoNs() + std::chrono::nanoseconds(opts.deadline).count(); }

  void SetStoreDown(bool down) {
    if (down == store_down) return;
    store_down = down;
    for (Core& c : cores) c.sync->SetStoreDown(down);
    if (down) {
      DLB_LOG_WARN("dlb: packet sync: store unreachable, rules fall back to on_store_failure");
    } else {
      DLB_LOG_INFO("dlb: packet sync: store reachable again, owed units are charged");
    }
  }

  void Track(uint16_t core, const SyncRegistration& r) {
    const bool known = rules != nullptr && r.rule < rules->size();
    const CompiledRule* rule = known ? &rules->rule(r.rule) : nullptr;
    SyncSlot& slot = cores[core].shard->sync_slot(r.slot);
    if (rule == nullptr || rule->mode == Mode::kLocal) {
      // Reloaded to a local rule meanwhile: the bucket is the shard's alone. What its
      // credit admitted is not charged anywhere (the rule no longer syncs).
      ++stats.rejected_registrations;
      slot.avail.store(kNotSynced, std::memory_order_release);
      return;
    }
    uint32_t idx;
    if (!free_tracked.empty()) {
      idx = free_tracked.back();
      free_tracked.pop_back();
    } else {
      idx = static_cast<uint32_t>(tracked.size());
      tracked.emplace_back();
    }
    Tracked& t = tracked[idx];
    t.key = RedisKey(UserId(r), rule->name);
    t.slot = &slot;
    t.spec = rule->profile.spec();
    t.last_demand = 0;
    t.lease = 0;
    t.credit = r.credit;
    t.since_seen = 0;
    t.rule_key = rule->bucket_key;
    t.rule = r.rule;
    t.core = core;
    t.live = true;
    t.strict = rule->mode == Mode::kStrict;
    ++live_tracked;
    ++stats.tracked_total;
  }

  void Untrack(uint32_t idx) {
    Tracked& t = tracked[idx];
    t.live = false;
    ++t.gen;
    t.slot = nullptr;
    std::string().swap(t.key);
    free_tracked.push_back(idx);
    --live_tracked;
  }

  // Snapshots one bucket for the round: what to return, debit and ask for. False when
  // there is nothing to send.
  bool Snapshot(uint32_t idx, bool release_all, redis::SettleItem* si, Item* item) {
    Tracked& t = tracked[idx];
    const uint32_t d = t.slot->demand.load(std::memory_order_relaxed);
    const uint32_t n = d - t.last_demand;
    t.last_demand = d;
    t.since_seen = n > 0 ? 0 : (t.since_seen < (1 << 30) ? t.since_seen + 1 : t.since_seen);
    const int64_t c = t.spec.capacity;
    // Demand counts requests, leases units: a request costs the rule's cost (a lease
    // smaller than one request would leave its heads waiting for ever).
    const double cost = rules != nullptr && t.rule < rules->size() ? static_cast<double>(rules->rule(t.rule).cost) : 1.0;
    int64_t target = 0;
    if (n > 0) {
      target = static_cast<int64_t>(t.strict ? n * cost : std::ceil(opts.headroom * n * cost) + cost);
    } else if (!t.strict && t.since_seen < opts.standing_rounds) {
      // One standing request, not more: a unit held while the ledger leaks is one that
      // may be admitted twice (the r*H term of the bound).
      target = static_cast<int64_t>(cost);
    }
    target = std::min<int64_t>(target, std::min<int64_t>(c, int64_t{1} << 30));
    const bool rule_gone = rules == nullptr || t.rule >= rules->size() ||
                           rules->rule(t.rule).mode == Mode::kLocal;
    const bool release = release_all || rule_gone || (n == 0 && t.since_seen >= opts.idle_rounds_to_forget);
    int64_t ret = 0, debit = 0, keep = 0, credit_left = 0;
    // Take avail: keep part of the unused lease and the unused credit (release:
    // nothing), so that the worker is not left short while the round is in flight; the
    // reply sets the credit to the new share.
    int32_t a = t.slot->avail.load(std::memory_order_acquire);
    for (;;) {
      const int64_t used = t.lease + t.credit - a;          // since the last set
      const int64_t lease_left = std::max<int64_t>(0, t.lease - std::max<int64_t>(0, used));
      keep = release ? 0 : std::min(lease_left, target);
      debit = std::max<int64_t>(0, used - t.lease);
      credit_left = release ? 0 : std::max<int64_t>(0, t.credit - debit);
      ret = lease_left - keep;
      // Nothing to settle: avail (and the credit in it) stays as it is.
      if (!release && ret == 0 && debit == 0 && target <= keep) return false;
      // keep + credit_left is a - ret unless the worker owes units (a < 0): those are
      // in the debit, and avail starts again from what is left.
      const int32_t next = release ? kNotSynced : static_cast<int32_t>(keep + credit_left);
      if (t.slot->avail.compare_exchange_weak(a, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
        break;
      }
    }
    t.lease = keep;
    t.credit = credit_left;
    if (release) target = 0;
    const int64_t want = std::max<int64_t>(0, target - keep);
    *item = {idx, t.gen, static_cast<int32_t>(keep), release};
    *si = {.key = t.key, .spec = t.spec, .return_units = ret, .debit_units = debit, .want_units = want};
    stats.returned_units += static_cast<uint64_t>(ret);
    stats.debited_units += static_cast<uint64_t>(debit);
    if (release) {
      if (!release_all) ++stats.forgotten;
      return true;  // always sent: the key must be settled before the entry is freed
    }
    return ret != 0 || debit != 0 || want != 0;
  }

  // The credit kept through a round was admissible while the round was in flight;
  // without its reply it is withdrawn (avail may go below 0: units used, debited
  // later), so that what a core admits uncharged while Redis does not answer stays the
  // failure policy's.
  void WithdrawCredit(const Trip& trip) {
    for (const Item& it : trip.items) {
      Tracked& t = tracked[it.tracked];
      if (it.release || !t.live || t.gen != it.gen || t.credit == 0) continue;
      t.slot->avail.fetch_sub(static_cast<int32_t>(t.credit), std::memory_order_acq_rel);
      t.credit = 0;
    }
  }

  // Sends a trip; on success applies its replies. A failed trip is kept for a verbatim
  // re-send (its calls are idempotent by round id).
  Status Send(std::unique_ptr<Trip> trip, int64_t now_ns) {
    const redis::Breaker::Permit permit = breaker.Acquire(now_ns);
    if (permit == redis::Breaker::Permit::kRefuse) {
      ++stats.round_failures;
      WithdrawCredit(*trip);
      pending = std::move(trip);
      return Status::Unavailable("packet sync: store marked down (breaker open)");
    }
    stats.redis_calls += trip->calls.cmds.size();
    const redis::TripReply r = redis::SendTrip(*pool, trip->calls, DeadlineNs());
    // Any failed call leaves the whole trip for a re-send.
    Status s = r.status.ok() ? ApplyAnnounces(trip->calls, r) : r.status;
    if (!s.ok()) {
      ++stats.round_failures;
      if (breaker.OnFailure(permit, NowMonoNs(), s) || breaker.open()) SetStoreDown(true);
      DLB_LOG_EVERY(1000, spdlog::level::warn, "dlb: packet sync round trip failed: {}", s.message());
      WithdrawCredit(*trip);
      pending = std::move(trip);
      return s;
    }
    breaker.OnSuccess(permit, NowMonoNs());
    if (!breaker.open()) SetStoreDown(false);
    for (size_t k = 0; k < trip->items.size(); ++k) ApplyGrant(trip->items[k], r.items[k].grant, now_ns);
    return Status::Ok();
  }

  // The announce replies, in call order up to the first call that failed (returned).
  Status ApplyAnnounces(const redis::LeaseTrip& calls, const redis::TripReply& r) {
    for (size_t i = 0; i < calls.cmds.size(); ++i) {
      if (calls.items_per_call[i] != 0) {
        if (!r.calls[i].ok()) return r.calls[i];
        continue;
      }
      auto live = redis::ParseAnnounceReply(r.replies[i].get());
      if (live.ok()) {
        stats.live_participants = *live;
        for (Core& c : cores) c.sync->SetParticipants(static_cast<int32_t>(std::min<int64_t>(*live, 1 << 30)));
      }
    }
    return Status::Ok();
  }

  // One bucket's grant: the new lease, this core's credit and the full-bucket proof.
  void ApplyGrant(const Item& it, const redis::LeaseGrant& grant, int64_t now_ns) {
    const int64_t g = grant.granted_units;
    ++stats.bucket_ops;
    stats.granted_units += static_cast<uint64_t>(g);
    Tracked& t = tracked[it.tracked];
    if (it.release || !t.live || t.gen != it.gen) {
      // Only released buckets lose their tracking, and they ask for nothing.
      return;
    }
    // Credit: this core's share of the room Redis reported (none for strict rules),
    // admitted before it is charged. N shares of the room fit in it.
    int64_t credit = 0;
    if (!t.strict) {
      const double room = std::floor(static_cast<double>(t.spec.capacity) - grant.level + 1e-9);
      const int64_t n = std::max<int64_t>(1, stats.live_participants);
      if (room >= static_cast<double>(n)) {
        credit = std::min<int64_t>(static_cast<int64_t>(room) / n, opts.max_credit);
      }
    }
    t.slot->full_until_ns.store(FullUntil(t, grant.level, now_ns), std::memory_order_release);
    // The credit kept through the round (t.credit, some of it maybe used meanwhile)
    // becomes the new share: avail may go below 0 for a moment when the share shrank
    // after the worker used the old one; the next round debits it as used credit.
    const int64_t delta = g + credit - t.credit;
    t.lease += g;
    t.credit = credit;
    if (delta != 0) t.slot->avail.fetch_add(static_cast<int32_t>(delta), std::memory_order_acq_rel);
    if (opts.record_peaks) {
      auto& v = peaks[t.key];
      if (v.size() < 2 * cores.size()) v.resize(2 * cores.size(), 0);
      v[t.core] = std::max<int64_t>(v[t.core], it.keep + g);
      v[cores.size() + t.core] = std::max<int64_t>(v[cores.size() + t.core], credit);
    }
  }

  // Full in Redis's ledger (no room for one request after this step, the lease just
  // granted counted): the worker may limit a request that finds no lease until this
  // core's share (1/N) of what leaks from now on makes room for one, counted from
  // the round's start (earlier than Redis's reading: the proof expires early, never
  // late); then it claims one share per request that waits. Not full: 0, every
  // request that finds no lease waits and asks.
  int64_t FullUntil(const Tracked& t, double level, int64_t now_ns) const {
    const CompiledRule* rule = rules != nullptr && t.rule < rules->size() ? &rules->rule(t.rule) : nullptr;
    const double cost = rule != nullptr ? static_cast<double>(rule->cost) : 1.0;
    const double cap = static_cast<double>(t.spec.capacity);
    if (!(std::floor(cap + 1e-9 + cap * 4e-15 - level) < cost)) return 0;
    if (t.spec.leak_rate_per_s <= 0) return std::numeric_limits<int64_t>::max();
    const double n = static_cast<double>(std::max<int64_t>(1, stats.live_participants));
    const double wait_ns = (n * cost - (cap - level)) * 1e9 / t.spec.leak_rate_per_s;
    return now_ns + static_cast<int64_t>(std::min(std::max(wait_ns, 1.0), 1e18));
  }

  Status Resend(int64_t now_ns) {
    std::unique_ptr<Trip> trip = std::move(pending);
    stats.resent_calls += trip->calls.cmds.size();
    return Send(std::move(trip), now_ns);
  }

  Status RoundImpl(int64_t now_ns, bool release_all) {
    if (last_round_ns != 0) stats.max_gap_ns = std::max(stats.max_gap_ns, now_ns - last_round_ns);
    last_round_ns = now_ns;
    ++stats.rounds;
    // New buckets first, so that they are settled in this round.
    SyncRegistration r;
    for (size_t c = 0; c < cores.size(); ++c) {
      while (cores[c].sync->Pop(&r)) Track(static_cast<uint16_t>(c), r);
    }
    if (pending) {
      Status s = Resend(now_ns);
      if (!s.ok()) return s;
    }
    const int64_t ttl_ms = opts.participant_ttl.count();
    const bool announce = !release_all && (last_announce_ns == 0 || now_ns - last_announce_ns >= ttl_ms * 1'000'000 / 3);
    redis::LeaseRound round({.script = redis::RoundScript::kSettle,
                             .cluster = pool->endpoint().topology == redis::Topology::kCluster,
                             .chunk = opts.chunk,
                             .calls_per_trip = opts.calls_per_round_trip,
                             .participant_id = cores[0].participant_id,
                             .round_id = static_cast<int64_t>(round_base + ++round_seq),
                             .reply_ttl_ms = std::chrono::milliseconds(opts.round_reply_ttl).count()});
    if (announce) {
      last_announce_ns = now_ns;
      for (Core& c : cores) round.Lead(redis::AnnounceCommand(c.participant_id, ttl_ms));
    }
    // Snapshots are taken trip by trip (LeaseRound::Run): a failed trip leaves later
    // buckets untouched.
    std::vector<Item> taken;  // snapshots, in call order
    size_t sent = 0;
    Status result = Status::Ok();
    round.Run(
        tracked.size(), [&](size_t i) -> std::string_view { return tracked[i].key; },
        [&](size_t i, redis::SettleItem* si) {
          Item it{};
          if (!tracked[i].live || !Snapshot(static_cast<uint32_t>(i), release_all, si, &it)) return false;
          taken.push_back(it);
          return true;
        },
        [&](redis::LeaseTrip calls) {
          auto trip = std::make_unique<Trip>();
          trip->items.assign(taken.begin() + static_cast<std::ptrdiff_t>(sent),
                             taken.begin() + static_cast<std::ptrdiff_t>(sent + calls.items.size()));
          sent += calls.items.size();
          trip->calls = std::move(calls);
          result = SendTaken(std::move(trip), now_ns);
          return result.ok();
        });
    return result;
  }

  // Sends a trip of the round: buckets released in it are freed now (their slots went
  // back to the workers at the snapshot; a reply for them carries nothing).
  Status SendTaken(std::unique_ptr<Trip> trip, int64_t now_ns) {
    for (const Item& it : trip->items) {
      if (it.release) Untrack(it.tracked);
    }
    // In the order of the trip's results.
    std::sort(trip->items.begin(), trip->items.end(),
              [](const Item& a, const Item& b) { return a.tracked < b.tracked; });
    return Send(std::move(trip), now_ns);
  }
};

StatusOr<std::unique_ptr<ShardSync>> ShardSync::Create(ShardSyncOptions options, redis::Pool* pool,
                                                      const RuleSet* rules,
                                                      std::span<PacketEngine* const> engines,
                                                      Allocator& allocator) {
  if (pool == nullptr) return Status::InvalidArgument("packet sync: no Redis pool");
  if (engines.empty()) return Status::InvalidArgument("packet sync: no engines");
  if (engines.size() > 65535) return Status::InvalidArgument("packet sync: too many engines");
  if (options.ring_entries < 2 || (options.ring_entries & (options.ring_entries - 1)) != 0) {
    return Status::InvalidArgument("packet sync: ring_entries must be a power of two >= 2");
  }
  if (options.chunk < 1 || options.calls_per_round_trip < 1) {
    return Status::InvalidArgument("packet sync: chunk and calls_per_round_trip must be >= 1");
  }
  if (!(options.headroom >= 1.0) || options.interval.count() <= 0 || options.deadline.count() <= 0) {
    return Status::InvalidArgument("packet sync: headroom >= 1, interval and deadline > 0");
  }
  if (options.participant_prefix.empty()) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "a-%016llx", static_cast<unsigned long long>(RandomU64()));
    options.participant_prefix = buf;
  }
  auto impl = std::make_unique<Impl>(options);
  impl->pool = pool;
  impl->rules = rules;
  impl->allocator = &allocator;
  for (size_t i = 0; i < engines.size(); ++i) {
    if (!engines[i]->shard().has_sync()) {
      return Status::InvalidArgument("packet sync: engine " + std::to_string(i) + " has no sync slots");
    }
    Impl::Core c;
    c.ring = static_cast<SyncRegistration*>(
        allocator.Allocate(options.ring_entries * sizeof(SyncRegistration), 64));
    if (c.ring == nullptr) return Status::Unavailable("packet sync: ring allocation failed");
    c.sync = std::make_unique<CoreSync>(c.ring, options.ring_entries, static_cast<int>(i));
    c.sync->SetParticipants(options.initial_participants);
    c.sync->SetNewBucketCredit(options.new_bucket_credit);
    c.shard = &engines[i]->shard();
    c.engine = engines[i];
    c.participant_id = options.participant_prefix + ":" + std::to_string(i);
    impl->cores.push_back(std::move(c));
  }
  for (size_t i = 0; i < engines.size(); ++i) engines[i]->AttachSync(impl->cores[i].sync.get());
  return std::unique_ptr<ShardSync>(new ShardSync(std::move(impl)));
}

ShardSync::ShardSync(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ShardSync::~ShardSync() = default;

Status ShardSync::Round(int64_t now_ns) { return impl_->RoundImpl(now_ns, false); }

bool ShardSync::RoundWanted() {
  bool wanted = false;
  for (Impl::Core& c : impl_->cores) wanted = c.sync->TakeRoundWanted() || wanted;
  return wanted;
}

Status ShardSync::ReturnAll(int64_t now_ns) {
  Status s = impl_->RoundImpl(now_ns, true);
  if (!s.ok()) return s;
  // Leave the participant set: this appliance's cores no longer take a share.
  std::vector<std::string> cmds;
  for (const Impl::Core& c : impl_->cores) cmds.push_back(redis::LeaveCommand(c.participant_id));
  std::vector<redis::Reply> replies;
  (void)impl_->pool->Call(cmds, impl_->DeadlineNs(), &replies);
  return Status::Ok();
}

void ShardSync::SetRules(const RuleSet* rules) {
  impl_->rules = rules;
  // Buckets follow their rule by name (CompiledRule::bucket_key), in the shards as in
  // Redis: a tracked bucket whose rule moved takes the rule's new index; one whose rule
  // is gone is released at the next round.
  std::unordered_map<uint64_t, uint16_t> index_of;
  for (uint16_t i = 0; rules != nullptr && i < rules->size(); ++i) index_of.emplace(rules->rule(i).bucket_key, i);
  for (Impl::Tracked& t : impl_->tracked) {
    if (!t.live) continue;
    const auto it = index_of.find(t.rule_key);
    t.rule = it != index_of.end() ? it->second : kNoRule;
  }
}

ShardSyncStats ShardSync::Stats() const {
  ShardSyncStats s = impl_->stats;
  s.tracked = impl_->live_tracked;
  s.store_down = impl_->store_down;
  for (const Impl::Core& c : impl_->cores) {
    const CoreSync::Counters& w = c.sync->counters();
#define DLB_X(field, name) s.field += w.field.load(std::memory_order_relaxed);
    DLB_SYNC_WORKER_COUNTERS(DLB_X)
#undef DLB_X
  }
  return s;
}

int64_t ShardSync::PeakLease(std::string_view redis_key) const {
  auto it = impl_->peaks.find(std::string(redis_key));
  if (it == impl_->peaks.end()) return 0;
  int64_t sum = 0;
  for (size_t i = 0; i < impl_->cores.size() && i < it->second.size(); ++i) sum += it->second[i];
  return sum;
}

int64_t ShardSync::PeakCredit(std::string_view redis_key) const {
  auto it = impl_->peaks.find(std::string(redis_key));
  if (it == impl_->peaks.end()) return 0;
  int64_t sum = 0;
  for (size_t i = impl_->cores.size(); i < it->second.size(); ++i) sum += it->second[i];
  return sum;
}

CoreSync& ShardSync::core(size_t i) { return *impl_->cores[i].sync; }
size_t ShardSync::cores() const { return impl_->cores.size(); }

}  // namespace dlb::packet
