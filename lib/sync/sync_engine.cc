#include "sync/sync_engine.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cmath>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dlb/clock.h"
#include "redis/breaker.h"
#include "log/log.h"
#include "redis/lease_round.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/script.h"

namespace dlb::sync {
namespace {

constexpr int kStripes = 64;
// Reset log entries read per round at most; more means drop every lease.
constexpr int64_t kResetLogReadLimit = 1024;

int64_t NowMonoNs() { return MonotonicClock::Instance().NowNs(); }

std::string RandomParticipantId() {
  std::random_device rd;
  char buf[40];
  std::snprintf(buf, sizeof buf, "p-%08x%08x", rd(), rd());
  return buf;
}

}  // namespace

// One bucket as this participant sees it. Guarded by its stripe's mutex.
struct SyncEngine::Entry {
  std::string redis_key;
  BucketSpec spec;
  int64_t lease_units = 0;      // charged in Redis, not yet used
  int64_t demand_units = 0;     // requests seen since the last sync (for the rate)
  int64_t peak_lease = 0;
  int idle_syncs = 0;
  int64_t reject_until_ns = 0;  // a strict call said no room before then
  double level = 0.0;           // as Redis reported it at the last sync
  int64_t last_sync_ns = 0;     // the snapshot of the last round that included it
  int rounds_since_sync = 0;    // rounds that skipped it since
  int stride = 1;               // rounds between its syncs (1: every round)
  bool starved = false;         // a request found the lease short since the last sync
  bool rejected = false;        // a strict call rejected since the last sync
  // The lease was granted after every reset of this bucket up to this sequence of the
  // reset log: a later read that lists one of those does not drop it.
  int64_t granted_after_reset_seq = 0;
};

struct alignas(64) SyncEngine::Stripe {
  std::mutex mu;
  std::unordered_map<uint64_t, Entry> map;
};

// One bucket of a round trip, snapshotted under its stripe lock (what it returns and
// wants: the round's redis::SettleItem of the same index).
struct SyncEngine::Item {
  uint64_t key;
  Entry* entry;                 // stable: only Sync() erases, and only one runs at a time
};

struct SyncEngine::Counters {
  std::atomic<uint64_t> misses{0}, syncs{0}, sync_failures{0}, redis_calls{0},
      bucket_ops{0}, granted{0}, returned{0}, dropped{0}, reset_drops{0};
};

SyncEngine::SyncEngine(SyncOptions options, redis::Pool* pool, redis::Breaker* breaker)
    : opts_(std::move(options)),
      pool_(pool),
      breaker_(breaker),
      stripes_(std::make_unique<Stripe[]>(kStripes)),
      counters_(std::make_unique<Counters>()) {
  if (opts_.participant_id.empty()) opts_.participant_id = RandomParticipantId();
  if (opts_.chunk < 1) opts_.chunk = 1;
  if (opts_.calls_per_round_trip < 1) opts_.calls_per_round_trip = 1;
}

SyncEngine::~SyncEngine() = default;

SyncEngine::Admit SyncEngine::TryAdmit(uint64_t key, int64_t cost, int64_t now_ns, Verdict* verdict) {
  Stripe& s = stripes_[key % kStripes];
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) {
    counters_->misses.fetch_add(1, std::memory_order_relaxed);
    return Admit::kUnknown;
  }
  Entry& e = it->second;
  e.demand_units += cost;
  if (e.lease_units < cost) {
    e.starved = true;
    if (now_ns < e.reject_until_ns) {
      if (verdict != nullptr) *verdict = {.level = e.level, .retry_after_ns = e.reject_until_ns - now_ns};
      return Admit::kRejected;
    }
    counters_->misses.fetch_add(1, std::memory_order_relaxed);
    return Admit::kNoLease;
  }
  e.lease_units -= cost;
  if (verdict != nullptr) *verdict = {.level = e.level, .retry_after_ns = 0};
  return Admit::kAdmitted;
}

void SyncEngine::NoteRejected(uint64_t key, int64_t now_ns, int64_t retry_after_ns, double level) {
  Stripe& s = stripes_[key % kStripes];
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return;
  // Hold the bucket off at least until about the next sync, whose lease then takes the
  // room that leaked meanwhile, instead of one strict call per emission interval; but
  // never so long that more than half the bucket could drain unused.
  const Entry& e = it->second;
  int64_t hold_ns = retry_after_ns;
  if (e.spec.leak_rate_per_s > 0) {
    const double half_bucket_ns = 0.5 * static_cast<double>(e.spec.capacity) * 1e9 / e.spec.leak_rate_per_s;
    const int64_t interval_ns = std::chrono::nanoseconds(opts_.interval).count();
    hold_ns = std::max(hold_ns, std::min(interval_ns, static_cast<int64_t>(half_bucket_ns)));
  }
  it->second.rejected = true;
  // kNever and huge waits stay representable.
  it->second.reject_until_ns = hold_ns > INT64_MAX - now_ns ? INT64_MAX : now_ns + hold_ns;
  it->second.level = level;
}

bool SyncEngine::Track(uint64_t key, std::string_view redis_key, const BucketSpec& spec,
                       int64_t cost) {
  Stripe& s = stripes_[key % kStripes];
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) {
    if (tracked_.load(std::memory_order_relaxed) >= opts_.max_buckets) return false;
    tracked_.fetch_add(1, std::memory_order_relaxed);
    it = s.map.try_emplace(key).first;
    it->second.redis_key = redis_key;
    it->second.spec = spec;
    it->second.last_sync_ns = NowMonoNs();
  }
  it->second.demand_units += cost;
  return true;
}

void SyncEngine::Forget(uint64_t key) {
  Stripe& s = stripes_[key % kStripes];
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.map.erase(key) != 0) tracked_.fetch_sub(1, std::memory_order_relaxed);
}

Status SyncEngine::Sync() { return RoundTrip(false); }

Status SyncEngine::ReturnAll() { return RoundTrip(true); }

void SyncEngine::DropLeases(const std::vector<std::string>& keys, const std::vector<int64_t>& seqs, bool all) {
  std::unordered_map<std::string_view, int64_t> reset;
  for (size_t i = 0; i < keys.size(); ++i) reset.emplace(keys[i], i < seqs.size() ? seqs[i] : INT64_MAX);
  uint64_t dropped = 0;
  for (int si = 0; si < kStripes; ++si) {
    Stripe& s = stripes_[si];
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& [key, e] : s.map) {
      if (!all) {
        auto r = reset.find(e.redis_key);
        // Not reset, or reset before the lease call that granted what it holds.
        if (r == reset.end() || r->second <= e.granted_after_reset_seq) continue;
      }
      // Charged in the bucket that was deleted: neither used nor given back to the new one.
      dropped += static_cast<uint64_t>(e.lease_units);
      e.lease_units = 0;
      e.reject_until_ns = 0;
      e.level = 0.0;
      e.stride = 1;
    }
  }
  counters_->dropped.fetch_add(dropped, std::memory_order_relaxed);
  counters_->reset_drops.fetch_add(all ? 1 : keys.size(), std::memory_order_relaxed);
}

Status SyncEngine::ReadResets(int64_t deadline_ns) {
  std::vector<std::string> cmds;
  redis::AppendResetLogRead(&cmds, std::max<int64_t>(0, reset_seq_), kResetLogReadLimit);
  std::vector<redis::Reply> replies;
  Status s = pool_->Call(cmds, deadline_ns, &replies);
  counters_->redis_calls.fetch_add(cmds.size(), std::memory_order_relaxed);
  if (!s.ok()) return s;
  redis::ResetLogRead log;
  if (Status ps = redis::ParseResetLogRead(replies.data(), &log); !ps.ok()) {
    // The store answered (so the round and the breaker go on), but the log cannot be
    // read, e.g. an ACL user without the sorted-set commands: resets are not followed.
    DLB_LOG_EVERY(1000, spdlog::level::warn, "dlb: reset log not readable: {}", ps.message());
    reset_log_readable_ = false;
    return Status::Ok();
  }
  if (reset_seq_ >= 0) {
    // A log that went backwards (the store lost it) or lost entries this participant had
    // not read yet (trimmed), or a read that hit its limit: some reset may be unseen, so
    // every lease goes.
    const bool missed = log.max_seq < reset_seq_ || log.floor_seq > reset_seq_ ||
                        log.keys.size() >= static_cast<size_t>(kResetLogReadLimit);
    if (missed) {
      DLB_LOG_EVERY(1000, spdlog::level::warn,
                    "dlb: reset log at sequence {} (floor {}), this participant read up to {}: "
                    "dropping every lease", log.max_seq, log.floor_seq, reset_seq_);
      DropLeases({}, {}, true);
    } else if (!log.keys.empty()) {
      DropLeases(log.keys, log.seqs, false);
    }
  }
  reset_seq_ = log.max_seq;
  reset_log_readable_ = true;
  return Status::Ok();
}

Status SyncEngine::RoundTrip(bool returning_all) {
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  const int64_t now = NowMonoNs();
  last_sync_ns_ = now;
  counters_->syncs.fetch_add(1, std::memory_order_relaxed);
  ++round_;

  redis::Breaker::Permit permit = redis::Breaker::Permit::kCall;
  if (breaker_ != nullptr && !returning_all) permit = breaker_->Acquire(now);

  // First the reset log, in a round trip of its own before the snapshot, so that a
  // lease of a bucket reset meanwhile is dropped rather than given back to the new
  // bucket (room that was never charged there). Its small, read-only round trip is also
  // the breaker's probe: a probe that times out on a stalled server and runs later
  // charges and returns nothing.
  Status failure;
  if (permit != redis::Breaker::Permit::kRefuse) {
    failure = ReadResets(NowMonoNs() + std::chrono::nanoseconds(opts_.deadline).count());
    if (!failure.ok()) {
      if (breaker_ != nullptr && !returning_all &&
          breaker_->OnFailure(permit, NowMonoNs(), failure) && opts_.on_breaker_opened) {
        opts_.on_breaker_opened(failure);
      }
      permit = redis::Breaker::Permit::kRefuse;
    } else if (permit == redis::Breaker::Permit::kProbe) {
      if (breaker_->OnSuccess(permit, NowMonoNs()) && opts_.on_breaker_closed) opts_.on_breaker_closed();
      permit = redis::Breaker::Permit::kCall;
    }
  }

  const bool refuse = permit == redis::Breaker::Permit::kRefuse;
  std::vector<Item> items;
  std::vector<redis::SettleItem> asks;
  Snapshot(returning_all, refuse, now, &items, &asks);
  if (refuse) {
    counters_->sync_failures.fetch_add(1, std::memory_order_relaxed);
    return failure.ok() ? Status::Unavailable("circuit breaker open") : failure;
  }

  bool any_success = false;
  failure = Exchange(items, asks, returning_all, now, &any_success);
  if (breaker_ != nullptr && !returning_all) {
    if (failure.ok() || any_success) {
      if (breaker_->OnSuccess(permit, NowMonoNs()) && opts_.on_breaker_closed) opts_.on_breaker_closed();
    } else {
      if (breaker_->OnFailure(permit, NowMonoNs(), failure) && opts_.on_breaker_opened) opts_.on_breaker_opened(failure);
    }
  }
  if (!failure.ok()) counters_->sync_failures.fetch_add(1, std::memory_order_relaxed);
  return failure;
}

// Snapshot: take the unused units out of the local leases of the buckets this round
// syncs (they are being given back, so they must not be used meanwhile) and size
// their next lease. A bucket is synced when it has no lease, when its lease runs
// short of one round's demand, or every `stride` rounds; hot and contended buckets
// every round (see the header). With `refuse` (the store is down) nothing is sent.
void SyncEngine::Snapshot(bool returning_all, bool refuse, int64_t now, std::vector<Item>* items,
                          std::vector<redis::SettleItem>* asks) {
  uint64_t dropped = 0;
  int64_t max_gap = 0;
  for (int si = 0; si < kStripes; ++si) {
    Stripe& s = stripes_[si];
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto it = s.map.begin(); it != s.map.end();) {
      Entry& e = it->second;
      const int64_t held = e.lease_units;
      const int rounds = e.rounds_since_sync + 1;
      // Demand per round since this bucket's last sync.
      const double rate = static_cast<double>(e.demand_units) / rounds;
      // A strided lease that saw no demand goes back when its stride is over, with the rest.
      bool due = returning_all || refuse || held == 0 || e.starved || rounds >= e.stride ||
                 static_cast<double>(held) < rate;
      if (!due) {
        ++e.rounds_since_sync;
        ++it;
        continue;
      }
      max_gap = std::max(max_gap, now - e.last_sync_ns);
      const int64_t want = NextLease(e, returning_all, now, rounds, rate);
      if (refuse) {
        // The store is down: the lease cannot be given back; it leaks away in Redis.
        dropped += static_cast<uint64_t>(held);
      } else if (held > 0 || want > 0) {
        items->push_back({it->first, &e});
        asks->push_back(
            {.key = e.redis_key, .spec = e.spec, .return_units = held, .debit_units = 0, .want_units = want});
      }
      if (held == 0 && want == 0 && e.idle_syncs >= opts_.idle_syncs_to_forget) {
        it = s.map.erase(it);
        tracked_.fetch_sub(1, std::memory_order_relaxed);
      } else {
        ++it;
      }
    }
  }
  if (max_gap > max_gap_ns_.load(std::memory_order_relaxed)) max_gap_ns_.store(max_gap, std::memory_order_relaxed);
  counters_->dropped.fetch_add(dropped, std::memory_order_relaxed);
}

// Takes a due bucket's lease out (the caller sends it back) and returns the next lease
// to ask for.
int64_t SyncEngine::NextLease(Entry& e, bool returning_all, int64_t now, int rounds, double rate) {
  e.lease_units = 0;
  e.rounds_since_sync = 0;
  e.starved = false;
  const bool was_rejected = e.rejected;
  e.rejected = false;
  e.last_sync_ns = now;
  int64_t want = 0;
  // The demand of the rounds that just ended predicts the next ones. Rounds are the
  // actual time between them, not the configured interval: when rounds are slow
  // (many buckets, a loaded Redis) leases grow to cover them, and H, the time a unit
  // can be held, grows with them (the bound is written in measured H). A bucket far
  // from its limit with little demand is synced every `stride` rounds and its lease
  // covers them; one near its limit (level above half) or with a round's demand of
  // hot_demand or more is synced every round.
  if (!returning_all && e.demand_units >= opts_.min_demand_for_lease * rounds) {
    int stride = 1;
    const bool contended = was_rejected || e.level * 2 > static_cast<double>(e.spec.capacity);
    while (!contended && stride * 2 <= opts_.max_stride && rate * stride * 2 <= opts_.hot_demand) stride *= 2;
    e.stride = stride;
    want = std::min<int64_t>(e.spec.capacity,
                             static_cast<int64_t>(std::ceil(opts_.headroom * rate * stride)) + 1);
  } else {
    e.stride = 1;
  }
  e.idle_syncs = e.demand_units == 0 ? e.idle_syncs + rounds : 0;
  e.demand_units = 0;
  return want;
}

// The lease calls of the round (redis/lease_round.h), trip by trip, with the announce
// (or, returning all, the ZREM) after the last call. Returns the last failure; sets
// *any_success when a round trip got through.
Status SyncEngine::Exchange(const std::vector<Item>& items, const std::vector<redis::SettleItem>& asks,
                            bool returning_all, int64_t now, bool* any_success) {
  const int64_t ttl_ms = opts_.participant_ttl.count();
  const bool announce = !returning_all && (last_announce_ns_ == 0 || now - last_announce_ns_ >= ttl_ms * 1'000'000 / 3);
  const bool cluster = pool_->endpoint().topology == redis::Topology::kCluster;
  // The lease calls check the reset log themselves (lib/redis/lease_script.h): a reset
  // between this round's read of the log and its call neither gets the units of the
  // deleted bucket back nor drops the lease granted in the new one at the next read.
  // Not on Cluster (the log is on another slot) nor before the log was read.
  const bool guarded = !cluster && reset_log_readable_ && reset_seq_ >= 0;
  redis::LeaseRound round({.script = redis::RoundScript::kLease,
                           .cluster = cluster,
                           .chunk = opts_.chunk,
                           .calls_per_trip = opts_.calls_per_round_trip,
                           .resets_after_seq = guarded ? reset_seq_ : -1});
  if (announce) {
    round.Trail(redis::AnnounceCommand(opts_.participant_id, ttl_ms));
  } else if (returning_all) {
    round.Trail(redis::LeaveCommand(opts_.participant_id));
  }
  Status failure;
  uint64_t dropped = 0;
  for (const redis::LeaseTrip& trip : round.Plan(asks)) {
    const int64_t deadline = NowMonoNs() + std::chrono::nanoseconds(opts_.deadline).count();
    const redis::TripReply r = redis::SendTrip(*pool_, trip, deadline);
    counters_->redis_calls.fetch_add(trip.cmds.size(), std::memory_order_relaxed);
    if (!r.status.ok()) {
      // Returned units and grants of this round trip are unknown: count both as lost
      // (a grant that did happen leaks away in Redis: under-admission only).
      failure = r.status;
      for (size_t i : trip.items) dropped += static_cast<uint64_t>(asks[i].return_units);
      continue;
    }
    *any_success = true;
    ApplyGrants(items, asks, trip, r, &failure);
    if (announce && trip.items_per_call.back() == 0) {
      auto n = redis::ParseAnnounceReply(r.replies.back().get());
      if (n.ok()) {
        live_participants_.store(*n, std::memory_order_relaxed);
        last_announce_ns_ = now;
      }
    }
  }
  counters_->dropped.fetch_add(dropped, std::memory_order_relaxed);
  return failure;
}

// The grants of one round trip that got through; a call that failed sets *failure.
void SyncEngine::ApplyGrants(const std::vector<Item>& items, const std::vector<redis::SettleItem>& asks,
                             const redis::LeaseTrip& trip, const redis::TripReply& r, Status* failure) {
  counters_->bucket_ops.fetch_add(trip.items.size(), std::memory_order_relaxed);
  for (size_t c = 0; c < r.calls.size(); ++c) {
    if (r.calls[c].ok()) continue;
    DLB_LOG_EVERY(1000, spdlog::level::warn, "dlb: lease call failed: {}", r.calls[c].message());
    *failure = r.calls[c];
  }
  uint64_t granted = 0, returned = 0;
  for (const redis::LeaseResult& res : r.items) {
    if (!r.calls[res.call].ok()) continue;
    const Item& it = items[res.index];
    const redis::LeaseGrant& g = res.grant;
    returned += static_cast<uint64_t>(asks[res.index].return_units);
    granted += static_cast<uint64_t>(std::max<int64_t>(0, g.granted_units));
    Stripe& s = stripes_[it.key % kStripes];
    std::lock_guard<std::mutex> lock(s.mu);
    it.entry->lease_units += std::max<int64_t>(0, g.granted_units);
    if (g.granted_units > 0) it.entry->reject_until_ns = 0;
    it.entry->peak_lease = std::max(it.entry->peak_lease, it.entry->lease_units);
    it.entry->level = g.level;
    if (trip.guarded) it.entry->granted_after_reset_seq = std::max(reset_seq_, g.reset_seq);
  }
  counters_->granted.fetch_add(granted, std::memory_order_relaxed);
  counters_->returned.fetch_add(returned, std::memory_order_relaxed);
}

SyncStats SyncEngine::Stats() const {
  SyncStats s;
  s.misses = counters_->misses.load(std::memory_order_relaxed);
  s.syncs = counters_->syncs.load(std::memory_order_relaxed);
  s.sync_failures = counters_->sync_failures.load(std::memory_order_relaxed);
  s.redis_calls = counters_->redis_calls.load(std::memory_order_relaxed);
  s.bucket_ops = counters_->bucket_ops.load(std::memory_order_relaxed);
  s.granted_units = counters_->granted.load(std::memory_order_relaxed);
  s.returned_units = counters_->returned.load(std::memory_order_relaxed);
  s.dropped_units = counters_->dropped.load(std::memory_order_relaxed);
  s.reset_drops = counters_->reset_drops.load(std::memory_order_relaxed);
  s.live_participants = live_participants();
  s.max_gap_ns = max_gap_ns_.load(std::memory_order_relaxed);
  for (int i = 0; i < kStripes; ++i) {
    std::lock_guard<std::mutex> lock(stripes_[i].mu);
    s.active_buckets += stripes_[i].map.size();
  }
  return s;
}

int64_t SyncEngine::PeakLease(uint64_t key) const {
  Stripe& s = stripes_[key % kStripes];
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.map.find(key);
  return it == s.map.end() ? 0 : it->second.peak_lease;
}

}  // namespace dlb::sync
