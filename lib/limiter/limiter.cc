// dlb::Limiter: strict mode over Redis with a deadline, a circuit breaker and a failure
// policy; synced mode over leases (lib/sync) with strict calls when a lease runs out;
// local mode over the in-process table.
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "redis/breaker.h"
#include "limiter/local_table.h"
#include "log/log.h"
#include "redis/connection.h"
#include "redis/lease_round.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/script.h"
#include "redis/url.h"
#include "sync/sync_engine.h"

namespace dlb {
namespace {

enum Counter : int {
  kAllowed, kRejected, kStoreDecisions, kLocalDecisions, kFallbackDecisions, kStoreErrors,
  kStoreTimeouts, kBreakerOpens, kReconciled, kOverflow, kLeaseDecisions, kMirrored, kNumCounters
};

// Per-thread stripes of counters: no cache line is written by two busy threads.
struct alignas(64) CounterStripe {
  std::array<std::atomic<uint64_t>, kNumCounters> c{};
  std::array<std::atomic<uint64_t>, LimiterStats::kLatencyBuckets> latency{};
  std::atomic<uint64_t> latency_sum_us{0};
};
constexpr int kCounterStripes = 16;

int ThisThreadStripe() {
  static std::atomic<int> next{0};
  thread_local const int stripe = next.fetch_add(1, std::memory_order_relaxed) % kCounterStripes;
  return stripe;
}

int64_t NowMonoNs() { return MonotonicClock::Instance().NowNs(); }

// Reconciliation runs in the background with a looser budget than a decision.
constexpr int kReconcileChunk = 256;
constexpr int kReconcileDeadlineFactor = 10;
// A debit batch carries a marker per bucket (SET NX in the debit's own script call), so
// that a batch whose fate is unknown (a timeout) can be sent again: the markers live
// kMarkerTtlMs, and a batch is retried for at most half of that, so a late resend
// always finds the marker of a send that ran.
constexpr int64_t kMarkerTtlMs = 600'000;
constexpr int64_t kReconcileGiveUpNs = kMarkerTtlMs * 1'000'000 / 2;
// A debit is a debt that later rejections pay back (redis/script.h): it must land soon
// after the store answers again, so the retries stay frequent.
constexpr int64_t kReconcileRetryMinNs = 20'000'000;
constexpr int64_t kReconcileRetryMaxNs = 40'000'000;
constexpr int64_t kSettleNs = 500'000'000;
// After an outage every participant has debits of its own, and each lands them on its
// reconciler's next retry after the store answers (at most kReconcileRetryMaxNs later):
// a process that found the store back decides by the policy for at least this long, so
// that it does not hand out at the store the room its peers' debits are about to claim
// (a debt the store would take back only later: over C + r*W in the meantime).
constexpr int64_t kPeerSettleNs = 2 * kReconcileRetryMaxNs + 20'000'000;
// Resets kept in the reset log (redis/script.h): a participant that misses more than
// this many between two sync rounds drops all of its leases.
constexpr int64_t kResetLogKeep = 4096;
// Mode strict announces this process in dlb:participants (the sync engine's set and
// script, lib/redis/lease_script.h) every kHeartbeatPeriod with kParticipantTtlMs: a
// process that dies drops out of the count within the TTL (one that stops leaves it at
// once). The TTL is ten periods: on a host so loaded that the store answers little in
// time, live processes' heartbeats were seen to miss a 3 s TTL, and a count that shrank
// for that would enlarge every share of the policy.
constexpr int64_t kParticipantTtlMs = 10'000;
constexpr std::chrono::milliseconds kHeartbeatPeriod{1000};

// Missed deadlines open the breaker only once the store has been silent this long: five
// deadlines, at least 50 ms. A loaded host stalls every caller for tens of milliseconds
// at once now and then (seen: 2-CPU hosts at a load of 10 and more); a stopped server is
// silent for longer, and until it is found out its calls are decided by the policy
// anyway, within their deadline, from the buckets' last levels.
int64_t MinSilenceNs(std::chrono::microseconds deadline) {
  return std::max<int64_t>(50'000'000, std::chrono::nanoseconds(deadline).count() * 5);
}

std::string RandomId() {
  std::random_device rd;
  char buf[24];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

class LimiterImpl final : public Limiter {
 public:
  LimiterImpl(LimiterOptions opts, redis::Endpoint ep)
      : opts_(std::move(opts)),
        ep_(std::move(ep)),
        clock_(opts_.clock != nullptr ? opts_.clock : &MonotonicClock::Instance()),
        table_(opts_.local_max_buckets),
        breaker_(opts_.breaker_threshold, opts_.breaker_timeouts_in_row, MinSilenceNs(opts_.deadline),
                 std::chrono::nanoseconds(opts_.breaker_backoff_min).count(),
                 std::chrono::nanoseconds(opts_.breaker_backoff_max).count()),
        stripes_(std::make_unique<CounterStripe[]>(kCounterStripes)),
        pool_(ep_, opts_.max_connections,
              {redis::BucketScript(), redis::LeaseScript(), redis::kAnnounceScript,
               redis::ResetLogScript()}),
        reconcile_id_(RandomId()),
        participant_id_(RandomId()) {
    if (opts_.mode != Mode::kLocal) {
      reconciler_ = std::thread([this] { ReconcileLoop(); });
    }
    if (opts_.mode == Mode::kSynced) {
      const auto interval = std::chrono::duration_cast<std::chrono::microseconds>(opts_.sync_interval);
      sync::SyncOptions so;
      so.interval = interval;
      // One round trip carries every active bucket: it gets at least one interval.
      so.deadline = std::max(interval, std::chrono::microseconds(opts_.deadline));
      so.max_buckets = opts_.local_max_buckets;
      so.on_breaker_closed = [this] { OnRecovered(); };
      so.on_breaker_opened = [this](const Status& failure) {
        {
          std::lock_guard<std::mutex> lock(error_mu_);
          last_error_ = failure;
        }
        Bump(kStoreErrors);
        OnBreakerOpened(failure);
      };
      sync_ = std::make_unique<sync::SyncEngine>(std::move(so), &pool_, &breaker_);
      syncer_ = std::thread([this] { SyncLoop(); });
    }
  }

  ~LimiterImpl() override {
    if (heartbeat_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(heartbeat_mu_);
        heartbeat_stopping_ = true;
      }
      heartbeat_cv_.notify_all();
      heartbeat_.join();
      // Leave the count at once rather than after the TTL (best effort).
      std::vector<redis::Reply> replies;
      (void)pool_.Call({redis::LeaveCommand(participant_id_)}, NowMonoNs() + BackgroundDeadlineNs(),
                       &replies);
    }
    if (syncer_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(sync_mu_);
        sync_stopping_ = true;
      }
      sync_cv_.notify_all();
      syncer_.join();
      // Unused units go back, so a clean shutdown holds nothing back from the others.
      (void)sync_->ReturnAll();
    }
    {
      std::lock_guard<std::mutex> lock(debits_mu_);
      stopping_ = true;
    }
    debits_cv_.notify_all();
    if (reconciler_.joinable()) reconciler_.join();
  }

  // Warms one connection so the first decision does not pay for connect + SCRIPT LOAD,
  // and (mode strict) announces this process, so the fallback share is known before
  // the first decision; then keeps announcing it in the background.
  void Warm() {
    const int64_t deadline =
        NowMonoNs() + std::chrono::nanoseconds(std::max<std::chrono::microseconds>(opts_.deadline, kStartDeadline)).count();
    auto c = pool_.Acquire(deadline);
    if (!c.ok()) {
      DLB_LOG_WARN("dlb: Redis at {} is not reachable yet ({}); deciding by policy '{}' until it is",
                   ep_.Describe(), c.status().message(), FailurePolicyName(opts_.on_store_failure));
    } else {
      pool_.Release(std::move(*c));
      if (opts_.mode == Mode::kStrict) (void)Announce(deadline);
    }
    if (opts_.mode == Mode::kStrict) heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  }

  StatusOr<LimitDecision> Decide(std::string_view user_id, const BucketSpec& spec, int64_t cost,
                                 std::string_view rule) override {
    LimitRequest r{.user_id = user_id, .spec = spec, .cost = cost, .rule = rule};
    if (opts_.mode == Mode::kSynced) {
      if (Status s = Validate(r); !s.ok()) return s;
      const uint64_t key = table_.KeyOf(user_id, rule, spec);
      const int64_t now = clock_->NowNs();
      sync::SyncEngine::Verdict v;
      const auto admit = sync_->TryAdmit(key, cost, now, &v);
      if (admit == sync::SyncEngine::Admit::kAdmitted || admit == sync::SyncEngine::Admit::kRejected) {
        return LeaseDecision(spec, admit == sync::SyncEngine::Admit::kAdmitted, v);
      }
      std::vector<StatusOr<LimitDecision>> out;
      out.emplace_back(LimitDecision{});
      const size_t idx = 0;
      DecideStore(std::span<const LimitRequest>(&r, 1), {idx}, out);
      AfterStore(key, admit, r, now, out[0]);
      if (out[0].ok()) Bump(out[0]->allowed ? kAllowed : kRejected);
      return std::move(out[0]);
    }
    if (opts_.mode == Mode::kLocal) {
      // The in-process path stays free of the batch's vectors.
      if (Status s = Validate(r); !s.ok()) return s;
      LimitDecision d = DecideLocal(r, DecisionSource::kLocal, 1.0);
      Bump(d.allowed ? kAllowed : kRejected);
      return d;
    }
    auto out = DecideBatch(std::span<const LimitRequest>(&r, 1));
    return std::move(out[0]);
  }

  std::vector<StatusOr<LimitDecision>> DecideBatch(std::span<const LimitRequest> reqs) override {
    std::vector<StatusOr<LimitDecision>> out;
    out.reserve(reqs.size());
    std::vector<size_t> to_store;
    // Mode synced: the table key and TryAdmit's answer of each request sent to the store.
    std::vector<std::pair<uint64_t, sync::SyncEngine::Admit>> missed;
    const int64_t now = opts_.mode == Mode::kSynced ? clock_->NowNs() : 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
      Status s = Validate(reqs[i]);
      out.emplace_back(s.ok() ? StatusOr<LimitDecision>(LimitDecision{}) : StatusOr<LimitDecision>(s));
      if (!s.ok()) continue;
      if (opts_.mode == Mode::kLocal) {
        out[i] = DecideLocal(reqs[i], DecisionSource::kLocal, 1.0);
      } else if (opts_.mode == Mode::kSynced) {
        const uint64_t key = table_.KeyOf(reqs[i].user_id, reqs[i].rule, reqs[i].spec);
        sync::SyncEngine::Verdict v;
        const auto admit = sync_->TryAdmit(key, reqs[i].cost, now, &v);
        if (admit == sync::SyncEngine::Admit::kAdmitted || admit == sync::SyncEngine::Admit::kRejected) {
          out[i] = LeaseDecision(reqs[i].spec, admit == sync::SyncEngine::Admit::kAdmitted, v);
          continue;
        }
        to_store.push_back(i);
        missed.emplace_back(key, admit);
      } else {
        to_store.push_back(i);
      }
    }
    if (!to_store.empty()) DecideStore(reqs, to_store, out);
    for (size_t k = 0; k < missed.size(); ++k) {
      AfterStore(missed[k].first, missed[k].second, reqs[to_store[k]], now, out[to_store[k]]);
    }
    for (size_t i = 0; i < out.size(); ++i) {
      // Lease admissions were counted where they were decided.
      if (out[i].ok() && out[i]->source != DecisionSource::kLease) {
        Bump(out[i]->allowed ? kAllowed : kRejected);
      }
    }
    return out;
  }

  StatusOr<BucketInfo> Inspect(std::string_view user_id, const BucketSpec& spec,
                               std::string_view rule) override {
    LimitRequest r{.user_id = user_id, .spec = spec, .cost = 1, .rule = rule};
    if (Status s = Validate(r); !s.ok()) return s;
    BucketInfo info;
    if (opts_.mode == Mode::kLocal) {
      const uint64_t key = table_.KeyOf(user_id, rule, spec);
      auto profile = BucketProfile::Make(spec);
      info.state = table_.Peek(key, *profile, clock_->NowNs());
      char buf[32];
      std::snprintf(buf, sizeof buf, "local:%016llx", static_cast<unsigned long long>(key));
      info.key = buf;
      return info;
    }
    info.key = KeyFor(r);
    std::vector<redis::Reply> replies;
    if (Status s = Call({BucketCall(info.key, redis::BucketOp::kPeek, spec, 1)}, Deadline(), &replies);
        !s.ok()) {
      return s;
    }
    auto parsed = redis::ParseBucketReply(replies[0].get());
    if (!parsed.ok()) return parsed.status();
    info.state = parsed->decision;
    return info;
  }

  Status Reset(std::string_view user_id, const BucketSpec& spec, std::string_view rule) override {
    LimitRequest r{.user_id = user_id, .spec = spec, .cost = 1, .rule = rule};
    if (Status s = Validate(r); !s.ok()) return s;
    if (opts_.mode == Mode::kLocal) {
      table_.Erase(table_.KeyOf(user_id, rule, spec));
      return Status::Ok();
    }
    // Mode synced: no round runs until the key is gone, and this process's lease of
    // the old bucket is forgotten, so no unit charged before the reset is admitted after.
    std::unique_lock<std::mutex> rounds;
    if (sync_) {
      rounds = sync_->LockRounds();
      sync_->Forget(table_.KeyOf(user_id, rule, spec));
    }
    // If synced participants are live (they announce themselves in dlb:participants),
    // the reset is logged: each reads the log at the start of its next round and drops
    // its lease of this bucket, so the reset holds for all of them within one sync
    // interval. Outside Cluster the key goes in the same step as the log entry, so no
    // lease call falls between the two (lib/redis/lease_script.h); on Cluster (the log
    // on another slot) the key goes first.
    const std::string key = KeyFor(r);
    const bool cluster = ep_.topology == redis::Topology::kCluster;
    std::string exists;
    redis::CommandWriter(exists).Begin(2).Arg("EXISTS").Arg(redis::kParticipantsKey);
    std::vector<redis::Reply> replies;
    if (Status s = Call({exists}, Deadline(), &replies); !s.ok()) return s;
    const bool participants = !(replies[0]->type == REDIS_REPLY_INTEGER && replies[0]->integer == 0);
    if (cluster || !participants) {
      std::string del;
      redis::CommandWriter(del).Begin(2).Arg("DEL").Arg(key);
      if (Status s = Call({del}, Deadline(), &replies); !s.ok()) return s;
      if (replies[0]->type != REDIS_REPLY_INTEGER) {
        return Status::Protocol("DEL: " + redis::DescribeReply(replies[0].get()));
      }
      if (!participants) return Status::Ok();
    }
    std::string log;
    redis::CommandWriter log_w(log);
    redis::AppendResetLogCall(log_w, key, kResetLogKeep, /*and_delete=*/!cluster);
    Status s = Call({log}, Deadline(), &replies);
    if (!cluster && (!s.ok() || replies[0]->type != REDIS_REPLY_INTEGER)) {
      // The log and the key go together: a failed step (say, an ACL user without the
      // sorted-set commands on dlb:resets) deleted nothing. The key goes alone then;
      // synced participants give their leases back at their next round, as before the
      // log existed.
      std::string del;
      redis::CommandWriter(del).Begin(2).Arg("DEL").Arg(key);
      std::vector<redis::Reply> del_replies;
      if (Status d = Call({del}, Deadline(), &del_replies); !d.ok()) return d;
      if (del_replies[0]->type != REDIS_REPLY_INTEGER) {
        return Status::Protocol("DEL: " + redis::DescribeReply(del_replies[0].get()));
      }
    }
    if (!s.ok() || replies[0]->type != REDIS_REPLY_INTEGER) {
      // The bucket is reset; only the recall of other participants' leases is missing
      // (a failure, or an ACL user without the sorted-set commands on dlb:resets):
      // they give theirs back at their next round, as before the log existed.
      DLB_LOG_EVERY(1000, spdlog::level::warn,
                    "dlb: reset of {} not logged ({}); synced participants keep their leases of it",
                    key, s.ok() ? redis::DescribeReply(replies[0].get()) : s.message());
    }
    return Status::Ok();
  }

  LimiterStats Stats() const override {
    LimiterStats s;
    uint64_t c[kNumCounters] = {};
    for (int i = 0; i < kCounterStripes; ++i) {
      for (int k = 0; k < kNumCounters; ++k) c[k] += stripes_[i].c[k].load(std::memory_order_relaxed);
      for (int k = 0; k < LimiterStats::kLatencyBuckets; ++k) {
        s.store_latency_hist[k] += stripes_[i].latency[k].load(std::memory_order_relaxed);
      }
      s.store_latency_sum_us += stripes_[i].latency_sum_us.load(std::memory_order_relaxed);
    }
    s.allowed = c[kAllowed];
    s.rejected = c[kRejected];
    s.store_decisions = c[kStoreDecisions];
    s.local_decisions = c[kLocalDecisions];
    s.fallback_decisions = c[kFallbackDecisions];
    s.store_errors = c[kStoreErrors];
    s.store_timeouts = c[kStoreTimeouts];
    s.breaker_opens = c[kBreakerOpens];
    s.reconciled_requests = c[kReconciled];
    s.fallback_overflow = c[kOverflow];
    s.lease_decisions = c[kLeaseDecisions];
    s.mirrored_levels = c[kMirrored];
    s.breaker_open = breaker_.open();
    s.live_participants = live_participants_.load(std::memory_order_relaxed);
    if (sync_) {
      const sync::SyncStats ss = sync_->Stats();
      s.live_participants = ss.live_participants;
      s.sync_max_gap_us = ss.max_gap_ns / 1000;
    }
    return s;
  }

  const LimiterOptions& options() const override { return opts_; }

  Status LastStoreError() const override {
    std::lock_guard<std::mutex> lock(error_mu_);
    return last_error_;
  }

 private:
  static Status Validate(const LimitRequest& r) {
    if (r.user_id.empty()) return Status::InvalidArgument("user_id must not be empty");
    if (Status s = ValidateSpec(r.spec); !s.ok()) return s;
    return ValidateCost(r.spec, r.cost);
  }

  void Bump(Counter k, uint64_t n = 1) {
    stripes_[ThisThreadStripe()].c[k].fetch_add(n, std::memory_order_relaxed);
  }

  void RecordLatency(int64_t ns) {
    const int64_t us = ns / 1000;
    CounterStripe& s = stripes_[ThisThreadStripe()];
    int b = 0;
    while (b < LimiterStats::kLatencyBuckets - 1 && us >= LimiterStats::kLatencyBoundsUs[b]) ++b;
    s.latency[b].fetch_add(1, std::memory_order_relaxed);
    s.latency_sum_us.fetch_add(static_cast<uint64_t>(us), std::memory_order_relaxed);
  }

  int64_t Deadline() const {
    return NowMonoNs() + std::chrono::nanoseconds(opts_.deadline).count();
  }
  int64_t BackgroundDeadlineNs() const {
    return std::chrono::nanoseconds(opts_.deadline).count() * kReconcileDeadlineFactor;
  }

  // ---- participants (mode strict; mode synced announces in its sync rounds) --------

  // Not through Call(): a late heartbeat is not a store error of any decision.
  //
  // Outside Cluster it also reads the store's clock (TIME, in the same round trip), so
  // that the first takes already carry their deadline (NotAfterUs): before the offset
  // was known, a take that missed its deadline at the caller still charged when it ran,
  // and with 32 threads starting at once that cost 4% of a 3 s run's limit (the policy
  // decided those requests as well).
  Status Announce(int64_t deadline_ns) {
    std::vector<std::string> cmds = {redis::AnnounceCommand(participant_id_, kParticipantTtlMs)};
    const bool read_clock = ep_.topology != redis::Topology::kCluster;
    if (read_clock) cmds.emplace_back("*1\r\n$4\r\nTIME\r\n");
    std::vector<redis::Reply> replies;
    if (Status s = pool_.Call(cmds, deadline_ns, &replies); !s.ok()) return s;
    if (read_clock && replies.size() == 2) LearnStoreClockFromTime(replies[1].get(), NowMonoNs());
    auto n = redis::ParseAnnounceReply(replies[0].get());
    if (!n.ok()) return n.status();
    // The largest count of the last TTL: a store that restarted empty counts only the
    // processes that announced again since, and a smaller N would enlarge every share.
    // A process that left is out of the count one TTL later, as in the set itself.
    const int64_t now = NowMonoNs();
    if (*n >= live_participants_.load(std::memory_order_relaxed) ||
        now - live_max_at_ns_ > kParticipantTtlMs * 1'000'000) {
      live_participants_.store(*n, std::memory_order_relaxed);
      live_max_at_ns_ = now;
    }
    return Status::Ok();
  }

  void HeartbeatLoop() {
    std::unique_lock<std::mutex> lock(heartbeat_mu_);
    while (!heartbeat_stopping_) {
      if (heartbeat_cv_.wait_for(lock, kHeartbeatPeriod, [this] { return heartbeat_stopping_; })) break;
      lock.unlock();
      // A failure keeps the last count: while the store is down, the processes that
      // were live are assumed to go on sharing the limit. No caller waits on it, so it
      // may take up to a period: a heartbeat that misses a loaded host's short deadline
      // three times would drop this process out of everyone's count.
      (void)Announce(NowMonoNs() + std::chrono::nanoseconds(kHeartbeatPeriod).count());
      lock.lock();
    }
  }

  static std::string KeyFor(const LimitRequest& r) {
    if (!r.rule.empty()) return RedisKey(r.user_id, r.rule);
    return RedisKey(r.user_id, RuleNameForSpec(r.spec.capacity, r.spec.leak_rate_per_s));
  }

  // Runs `cmds` (complete RESP commands) as one pipeline on a pooled connection
  // (NOSCRIPT is handled by the pool: nothing is charged twice).
  Status Call(const std::vector<std::string>& cmds, int64_t deadline_ns,
              std::vector<redis::Reply>* replies) {
    const int64_t t0 = NowMonoNs();
    Status s = pool_.Call(cmds, deadline_ns, replies);
    RecordLatency(NowMonoNs() - t0);
    if (!s.ok()) {
      {
        std::lock_guard<std::mutex> lock(error_mu_);
        last_error_ = s;
      }
      Bump(kStoreErrors);
      if (s.code() == StatusCode::kDeadlineExceeded) Bump(kStoreTimeouts);
    }
    return s;
  }

  static std::string BucketCall(std::string_view key, redis::BucketOp op, const BucketSpec& spec,
                                int64_t cost, int64_t not_after_us = 0) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendBucketCall(w, redis::BucketScriptSha(), key, op, spec, cost, not_after_us);
    return cmd;
  }

  // ---- the store's clock, seen from here ------------------------------------------
  //
  // A take carries the instant after which its caller no longer waits, on the store's
  // clock (takeby, redis/script.h), so that a take delayed past its deadline charges
  // nothing. That instant is this process's deadline plus a lower bound of (store TIME
  // - local monotonic time): every reply ran before it was received, so its TIME minus
  // the receive time is such a bound, and the largest seen in the last second is the
  // tightest. A lower bound can only make a take that ran in time look late (decided
  // then by the policy, never charged twice); a store whose clock jumps forward (a
  // failover) makes takes look late until its replies raise the bound, one that jumps
  // back lets late takes charge (as without takeby) for at most a second. Cluster
  // nodes have clocks of their own: takes there carry no deadline.
  static constexpr int64_t kOffsetUnknown = INT64_MIN;
  static constexpr int64_t kOffsetKeepNs = 1'000'000'000;

  void LearnStoreClock(int64_t store_now_us, int64_t received_ns) {
    const int64_t candidate = store_now_us - received_ns / 1000;
    const int64_t cur = store_offset_us_.load(std::memory_order_relaxed);
    if (cur == kOffsetUnknown || candidate > cur ||
        received_ns - store_offset_at_ns_.load(std::memory_order_relaxed) > kOffsetKeepNs) {
      store_offset_us_.store(candidate, std::memory_order_relaxed);
      store_offset_at_ns_.store(received_ns, std::memory_order_relaxed);
    }
  }

  // A TIME reply: [seconds, microseconds] as bulk strings.
  void LearnStoreClockFromTime(const redisReply* r, int64_t received_ns) {
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return;
    const redisReply* sec = r->element[0];
    const redisReply* usec = r->element[1];
    if (sec->type != REDIS_REPLY_STRING || usec->type != REDIS_REPLY_STRING) return;
    LearnStoreClock(std::atoll(sec->str) * 1'000'000 + std::atoll(usec->str), received_ns);
  }

  int64_t NotAfterUs(int64_t deadline_ns) const {
    if (ep_.topology == redis::Topology::kCluster) return 0;
    const int64_t off = store_offset_us_.load(std::memory_order_relaxed);
    if (off == kOffsetUnknown) return 0;
    const int64_t v = deadline_ns / 1000 + off;
    return v > 0 ? v : 0;
  }

  // ---- strict mode ----------------------------------------------------------------

  void DecideStore(std::span<const LimitRequest> reqs, const std::vector<size_t>& idx,
                   std::vector<StatusOr<LimitDecision>>& out) {
    const int64_t now = NowMonoNs();
    redis::Breaker::Permit permit = breaker_.Acquire(now);
    if (permit == redis::Breaker::Permit::kCall && now < settle_until_ns_.load(std::memory_order_relaxed)) {
      permit = redis::Breaker::Permit::kRefuse;   // OnRecovered: the debits are on their way
    }
    std::vector<std::string> keys;
    keys.reserve(idx.size());
    for (size_t i : idx) keys.push_back(KeyFor(reqs[i]));
    Status failure;
    const int64_t deadline = Deadline();
    const int64_t not_after_us = NotAfterUs(deadline);
    if (permit == redis::Breaker::Permit::kProbe && not_after_us == 0) {
      // The probe is the request itself when its take carries its deadline: one that
      // times out on a stalled server charges nothing when the server resumes. Without
      // one (the store's clock not learned yet, Cluster), the probe is a PING: a plain
      // take that ran late would charge a request that the failure policy decided
      // (and, under `local`, debits again).
      std::vector<redis::Reply> replies;
      failure = Call({std::string("*1\r\n$4\r\nPING\r\n")}, deadline, &replies);
      if (failure.ok()) {
        if (breaker_.OnSuccess(permit, NowMonoNs())) OnRecovered();
        permit = redis::Breaker::Permit::kCall;
      } else {
        (void)breaker_.OnFailure(permit, NowMonoNs(), failure);
        permit = redis::Breaker::Permit::kRefuse;
      }
    }
    if (permit != redis::Breaker::Permit::kRefuse) {
      std::vector<std::string> cmds;
      cmds.reserve(idx.size());
      for (size_t k = 0; k < idx.size(); ++k) {
        cmds.push_back(
            BucketCall(keys[k], redis::BucketOp::kTake, reqs[idx[k]].spec, reqs[idx[k]].cost, not_after_us));
      }
      std::vector<redis::Reply> replies;
      failure = Call(cmds, deadline, &replies);
      if (failure.ok()) {
        const int64_t received = NowMonoNs();
        // Debits also wait after failures too few to open the breaker: the first success
        // sends them (one relaxed load on the decision path).
        if (breaker_.OnSuccess(permit, NowMonoNs())) {
          OnRecovered();
        } else if (debits_waiting_.load(std::memory_order_relaxed)) {
          KickReconciler();
        }
        for (size_t k = 0; k < idx.size(); ++k) {
          auto parsed = redis::ParseBucketReply(replies[k].get());
          if (parsed.ok()) LearnStoreClock(parsed->now_us, received);
          if (parsed.ok() && parsed->late) {
            // Ran after its deadline (this reply was received in time, so that is the
            // bound's slack): nothing was charged, the policy decides.
            MirrorLevel(reqs[idx[k]], keys[k], parsed->decision.level);
            out[idx[k]] = Fallback(reqs[idx[k]], keys[k]);
          } else if (parsed.ok()) {
            LimitDecision d;
            static_cast<Decision&>(d) = parsed->decision;
            d.source = DecisionSource::kStore;
            out[idx[k]] = d;
            Bump(kStoreDecisions);
            MirrorLevel(reqs[idx[k]], keys[k], d.level);
          } else {
            // A script error on one key (say, a foreign value under our key) is that
            // request's failure, not the store's.
            Bump(kStoreErrors);
            {
              std::lock_guard<std::mutex> lock(error_mu_);
              last_error_ = parsed.status();
            }
            DLB_LOG_EVERY(1000, spdlog::level::warn, "dlb: bucket script failed for {}: {}",
                          keys[k], parsed.status().message());
            out[idx[k]] = Fallback(reqs[idx[k]], keys[k]);
          }
        }
        return;
      }
      // A missed deadline alone leaves the breaker closed (breaker.h); either way this
      // request is decided by the policy, under `local` from the bucket's last level.
      if (breaker_.OnFailure(permit, NowMonoNs(), failure)) OnBreakerOpened(failure);
    }
    for (size_t k = 0; k < idx.size(); ++k) out[idx[k]] = Fallback(reqs[idx[k]], keys[k]);
  }

  void OnBreakerOpened(const Status& failure) {
    Bump(kBreakerOpens);
    // One line per transition, but at most one a second: a breaker that flaps under
    // overload must not flood the log (the counter has every transition).
    DLB_LOG_EVERY(1000, spdlog::level::warn,
                  "dlb: Redis at {} failed ({}); circuit breaker open, deciding by policy '{}' "
                  "({} openings so far)",
                  ep_.Describe(), failure.message(), FailurePolicyName(opts_.on_store_failure),
                  Stats().breaker_opens);
  }

  LimitDecision Fallback(const LimitRequest& r, const std::string& redis_key) {
    Bump(kFallbackDecisions);
    LimitDecision d;
    switch (opts_.on_store_failure) {
      case FailurePolicy::kOpen:
        d.allowed = true;
        d.remaining = r.spec.capacity - r.cost;
        d.source = DecisionSource::kFallbackOpen;
        return d;
      case FailurePolicy::kClosed:
        d.allowed = false;
        d.retry_after_ns = breaker_.backoff_ns();
        d.source = DecisionSource::kFallbackClosed;
        return d;
      case FailurePolicy::kLocal:
        break;
    }
    d = DecideLocal(r, DecisionSource::kFallbackLocal, FallbackShare());
    if (d.allowed) RecordDebit(redis_key, table_.KeyOf(r.user_id, r.rule, r.spec), r.spec, r.cost);
    return d;
  }

  // The share of each limit enforced locally while the store is down: the option if
  // set, else 1/N of the live participants as last announced (1 until one is known).
  double FallbackShare() const {
    if (opts_.fallback_share > 0) return opts_.fallback_share;
    const int64_t n = sync_ ? sync_->live_participants() : live_participants_.load(std::memory_order_relaxed);
    return n > 1 ? 1.0 / static_cast<double>(n) : 1.0;
  }

  // The local fallback's bucket for `spec` at `share`: capacity and leak rate scaled.
  // Its capacity in time (C x T) is never more than the global one, so a level copied
  // as a fill (level x T, the same duration in both) means the same room.
  static void ScaleForShare(double share, BucketSpec* spec, int64_t* cost) {
    if (share >= 1.0) return;
    spec->capacity = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(spec->capacity) * share));
    spec->leak_rate_per_s *= share;
    if (spec->leak_rate_per_s != 0 && spec->leak_rate_per_s < 1e-6) spec->leak_rate_per_s = 1e-6;
    *cost = std::min(*cost, spec->capacity);
  }

  // After a store reply: the bucket's level there, as a local copy on this process's
  // clock (the time of the reply plus the reported fill; Redis's timestamps are never
  // used), in the fallback's scaled bucket. The fallback starts from it, so a user at
  // the limit stays at the limit when the store stops answering.
  //
  // The store's level lacks this process's debits that have not landed yet: they are
  // added (room the fallback already handed out is not handed out again). Its peers'
  // debits are unknown; in the settling after an outage, while they land, a reply only
  // raises the copy.
  void MirrorLevel(const LimitRequest& r, const std::string& redis_key, double global_level) {
    if (debits_unlanded_.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> lock(debits_mu_);
      auto it = unlanded_.find(redis_key);
      if (it != unlanded_.end()) global_level += static_cast<double>(it->second);
    }
    const bool raise_only = NowMonoNs() < settle_until_ns_.load(std::memory_order_relaxed);
    MirrorLevel(table_.KeyOf(r.user_id, r.rule, r.spec), r.spec, global_level, raise_only);
  }
  void MirrorLevel(uint64_t table_key, const BucketSpec& global_spec, double global_level,
                   bool raise_only = false) {
    if (opts_.on_store_failure != FailurePolicy::kLocal) return;
    const double share = FallbackShare();
    BucketSpec spec = global_spec;
    int64_t cost = 1;
    ScaleForShare(share, &spec, &cost);
    const BucketProfile* profile = CachedProfile(spec);
    if (profile == nullptr) return;
    if (table_.SetLevel(table_key, *profile, clock_->NowNs(), global_level * share, raise_only)) {
      Bump(kMirrored);
    }
  }

  // ---- synced mode ------------------------------------------------------------------

  // A request decided locally in mode synced: admitted against the lease, or rejected
  // because a strict call said there is no room yet. Level as Redis last reported it.
  LimitDecision LeaseDecision(const BucketSpec& spec, bool allowed, const sync::SyncEngine::Verdict& v) {
    LimitDecision d;
    d.allowed = allowed;
    d.source = DecisionSource::kLease;
    d.level = v.level;
    d.retry_after_ns = allowed ? 0 : v.retry_after_ns;
    d.remaining = std::max<int64_t>(0, static_cast<int64_t>(static_cast<double>(spec.capacity) - d.level));
    d.reset_after_ns = spec.leak_rate_per_s == 0
                           ? (d.level > 0 ? kNever : 0)
                           : static_cast<int64_t>(d.level / spec.leak_rate_per_s * 1e9);
    Bump(kLeaseDecisions);
    Bump(allowed ? kAllowed : kRejected);
    return d;
  }

  // After a strict call of mode synced: track a new bucket (its demand sizes the next
  // lease) and remember a rejection until its retry_after.
  void AfterStore(uint64_t key, sync::SyncEngine::Admit admit, const LimitRequest& r, int64_t now,
                  const StatusOr<LimitDecision>& d) {
    if (admit == sync::SyncEngine::Admit::kUnknown) sync_->Track(key, KeyFor(r), r.spec, r.cost);
    if (d.ok() && d->source == DecisionSource::kStore && !d->allowed) {
      sync_->NoteRejected(key, now, d->retry_after_ns, d->level);
    }
  }

  void SyncLoop() {
    const auto interval = opts_.sync_interval;
    std::unique_lock<std::mutex> lock(sync_mu_);
    auto next = std::chrono::steady_clock::now() + interval;
    while (!sync_stopping_) {
      if (sync_cv_.wait_until(lock, next, [this] { return sync_stopping_; })) break;
      lock.unlock();
      if (sync_->Sync().ok() && debits_waiting_.load(std::memory_order_relaxed) && !breaker_.open()) {
        KickReconciler();
      }
      lock.lock();
      next += interval;
      // A sync that overran does not trigger a burst of catch-up syncs.
      const auto now = std::chrono::steady_clock::now();
      if (next < now) next = now;
    }
  }

  // ---- local decisions ------------------------------------------------------------

  LimitDecision DecideLocal(const LimitRequest& r, DecisionSource source, double share) {
    BucketSpec spec = r.spec;
    int64_t cost = r.cost;
    ScaleForShare(share, &spec, &cost);
    LimitDecision d;
    d.source = source;
    const BucketProfile* profile = CachedProfile(spec);
    if (profile == nullptr) return d;   // unreachable: validated, and scaling keeps it valid
    const uint64_t key = table_.KeyOf(r.user_id, r.rule, r.spec);
    Decision dec;
    if (table_.Decide(key, *profile, clock_->NowNs(), cost, &dec) == LocalTable::Outcome::kOverflow) {
      Bump(kOverflow);
      DLB_LOG_EVERY(1000, spdlog::level::warn,
                    "dlb: local bucket table full ({} slots); refusing new keys", table_.capacity());
      d.allowed = false;
      d.retry_after_ns = 1'000'000'000;
      return d;
    }
    static_cast<Decision&>(d) = dec;
    if (source == DecisionSource::kLocal) Bump(kLocalDecisions);
    return d;
  }

  // Turning a spec into a profile costs a long double division; callers mostly repeat
  // a few specs, so each thread keeps the last few.
  static const BucketProfile* CachedProfile(const BucketSpec& spec) {
    struct Entry {
      BucketSpec spec{};
      BucketProfile profile;
    };
    static constexpr int kEntries = 4;
    thread_local Entry cache[kEntries];
    thread_local int next = 0;
    for (Entry& e : cache) {
      if (e.spec.capacity == spec.capacity && e.spec.leak_rate_per_s == spec.leak_rate_per_s) {
        return &e.profile;
      }
    }
    auto p = BucketProfile::Make(spec);
    if (!p.ok()) return nullptr;
    Entry& e = cache[next];
    next = (next + 1) % kEntries;
    e.spec = spec;
    e.profile = *p;
    return &e.profile;
  }

  // ---- reconciliation -------------------------------------------------------------

  struct Debit {
    BucketSpec spec;
    int64_t cost = 0;
    uint64_t table_key = 0;   // of the local copy, refreshed by the debit's reply
  };

  void RecordDebit(const std::string& key, uint64_t table_key, const BucketSpec& spec, int64_t cost) {
    std::lock_guard<std::mutex> lock(debits_mu_);
    auto it = debits_.find(key);
    if (it == debits_.end()) {
      // Bounded like the local table: past it, admissions are no longer reconciled.
      if (debits_.size() >= opts_.local_max_buckets) return;
      if (debits_.empty()) debits_cv_.notify_one();
      it = debits_.emplace(key, Debit{spec, 0, table_key}).first;
    }
    const int64_t before = it->second.cost;
    it->second.cost = std::min(before + cost, spec.capacity);
    unlanded_[key] += it->second.cost - before;
    debits_waiting_.store(true, std::memory_order_relaxed);
    debits_unlanded_.store(true, std::memory_order_relaxed);
  }

  void OnRecovered() {
    DLB_LOG_EVERY(1000, spdlog::level::info, "dlb: Redis at {} answers again; circuit breaker closed",
                  ep_.Describe());
    {
      // The store's levels lack what the policy admitted meanwhile until the debits
      // land: deciding there before that would hand out the room the fallback used
      // (taken back later as a debt, but admitted twice meanwhile). So the policy goes
      // on deciding until the reconciler has sent them (the batches up to settle_seq_:
      // not the debits of this settling itself), for at most kSettleNs.
      std::lock_guard<std::mutex> lock(debits_mu_);
      const int64_t now = NowMonoNs();
      // Alone (the last count of live participants), there are no peers to wait for.
      const int64_t peers = sync_ ? sync_->live_participants() : live_participants_.load(std::memory_order_relaxed);
      peer_settle_until_ns_ = peers > 1 ? now + kPeerSettleNs : 0;
      if (!debits_.empty() || !pending_.empty()) {
        settle_seq_ = reconcile_seq_ + (debits_.empty() ? 0 : 1);
        settle_until_ns_.store(now + kSettleNs, std::memory_order_relaxed);
      } else if (peer_settle_until_ns_ != 0) {
        settle_until_ns_.store(peer_settle_until_ns_, std::memory_order_relaxed);
      }
    }
    KickReconciler();
  }

  void KickReconciler() {
    {
      std::lock_guard<std::mutex> lock(debits_mu_);
      reconcile_pending_ = true;
    }
    debits_cv_.notify_all();
  }

  // A batch of debits with its id: the markers of its calls are `<bucket key>:rid:<id>`.
  struct PendingBatch {
    std::string id;
    uint64_t seq = 0;
    std::vector<std::pair<std::string, Debit>> items;
    int64_t first_try_ns = 0;
  };

  void ReconcileLoop() {
    std::unique_lock<std::mutex> lock(debits_mu_);
    int64_t retry_ns = kReconcileRetryMinNs;
    for (;;) {
      if (pending_.empty() && debits_.empty()) {
        debits_cv_.wait(lock, [this] { return stopping_ || reconcile_pending_ || !debits_.empty(); });
      } else {
        // Debits are batched for one retry interval and sent also while the breaker is
        // open: missed deadlines may have opened it while the store went on admitting
        // other processes, and the debit is the debt that makes them pay the fallback's
        // admissions back (a stopped store runs a late batch once: its markers). A batch
        // whose fate is unknown is sent again after a back-off.
        debits_cv_.wait_for(lock, std::chrono::nanoseconds(retry_ns),
                            [this] { return stopping_ || reconcile_pending_; });
      }
      if (stopping_) return;
      {
        reconcile_pending_ = false;
        // While a batch's fate is unknown (the store does not answer), new debits wait
        // in debits_, merged per bucket, instead of forming a batch each interval: on
        // recovery there are two batches to send, not one per interval of the outage.
        if (!debits_.empty() && pending_.empty()) {
          PendingBatch b;
          b.seq = ++reconcile_seq_;
          b.id = reconcile_id_ + "-" + std::to_string(b.seq);
          b.items.assign(std::make_move_iterator(debits_.begin()), std::make_move_iterator(debits_.end()));
          b.first_try_ns = NowMonoNs();
          debits_.clear();
          debits_waiting_.store(false, std::memory_order_relaxed);
          pending_.push_back(std::move(b));
        }
      }
      if (pending_.empty()) continue;
      std::deque<PendingBatch> work;
      work.swap(pending_);
      lock.unlock();
      bool all_done = true;
      for (PendingBatch& b : work) all_done = ReconcileBatch(b) && all_done;
      lock.lock();
      // Batches not done go back in front of any that arrived meanwhile, in order.
      for (auto it = work.rbegin(); it != work.rend(); ++it) {
        if (!it->items.empty()) pending_.push_front(std::move(*it));
      }
      retry_ns = all_done ? kReconcileRetryMinNs : std::min(retry_ns * 2, kReconcileRetryMaxNs);
      const bool settled = reconcile_seq_ >= settle_seq_ &&
                           std::all_of(pending_.begin(), pending_.end(),
                                       [this](const PendingBatch& b) { return b.seq > settle_seq_; });
      if (settled && settle_until_ns_.load(std::memory_order_relaxed) != 0) {
        // Own debits landed; the peers' land within kPeerSettleNs of the recovery.
        settle_until_ns_.store(NowMonoNs() < peer_settle_until_ns_ ? peer_settle_until_ns_ : 0,
                               std::memory_order_relaxed);
      }
      if (all_done && !debits_.empty()) reconcile_pending_ = true;   // what waited behind them, now
      if (pending_.empty() && debits_.empty()) debits_unlanded_.store(false, std::memory_order_relaxed);
    }
  }

  // Sends a batch's debits; each reply (applied now, or found applied by an earlier
  // send) takes its bucket out of the batch. A chunk that failed stays, to be sent again
  // with the same markers: exactly once. True if the batch is done.
  bool ReconcileBatch(PendingBatch& b) {
    uint64_t sent = 0, duplicates = 0, lost = 0;
    size_t pos = 0;
    std::vector<std::pair<std::string, Debit>> left;
    std::vector<std::pair<std::string, int64_t>> done;   // landed, found applied, or lost
    while (pos < b.items.size()) {
      const size_t end = std::min(b.items.size(), pos + kReconcileChunk);
      std::vector<std::string> cmds;
      for (size_t i = pos; i < end; ++i) {
        const auto& [key, debit] = b.items[i];
        std::string cmd;
        redis::CommandWriter w(cmd);
        redis::AppendDebitOnceCall(w, key, key + ":rid:" + b.id, debit.spec, debit.cost, kMarkerTtlMs);
        cmds.push_back(std::move(cmd));
      }
      const int64_t deadline =
          NowMonoNs() + std::chrono::nanoseconds(opts_.deadline).count() * kReconcileDeadlineFactor;
      std::vector<redis::Reply> replies;
      if (!Call(cmds, deadline, &replies).ok()) {
        for (size_t i = pos; i < end; ++i) left.push_back(std::move(b.items[i]));
      } else {
        for (size_t i = pos; i < end; ++i) {
          auto parsed = redis::ParseBucketReply(replies[i - pos].get());
          const auto cost = static_cast<uint64_t>(b.items[i].second.cost);
          done.emplace_back(b.items[i].first, b.items[i].second.cost);
          if (!parsed.ok()) {
            // A script error (a foreign value under the key) will not go away: not resent.
            lost += cost;
          } else if (parsed->duplicate) {
            duplicates += cost;
          } else {
            sent += cost;
          }
          // The reply's level has what the store admitted to others meanwhile: while the
          // breaker is open on missed deadlines only, the store may well be admitting
          // them, and the local copy then follows it every debit interval.
          if (parsed.ok()) {
            MirrorLevel(b.items[i].second.table_key, b.items[i].second.spec, parsed->decision.level,
                        /*raise_only=*/true);
          }
        }
      }
      pos = end;
    }
    b.items.swap(left);
    if (!b.items.empty() && NowMonoNs() - b.first_try_ns > kReconcileGiveUpNs) {
      // Past this, a marker could have expired and a resend could charge twice.
      for (const auto& it : b.items) {
        lost += static_cast<uint64_t>(it.second.cost);
        done.emplace_back(it.first, it.second.cost);
      }
      b.items.clear();
    }
    if (!done.empty()) {
      std::lock_guard<std::mutex> lock(debits_mu_);
      for (const auto& [key, cost] : done) {
        auto it = unlanded_.find(key);
        if (it != unlanded_.end() && (it->second -= cost) <= 0) unlanded_.erase(it);
      }
    }
    Bump(kReconciled, sent);
    if (sent != 0 || duplicates != 0 || lost != 0) {
      DLB_LOG_EVERY(1000, spdlog::level::info,
                    "dlb: reconciled {} requests admitted locally during the outage into Redis "
                    "(batch {}: {} found applied by an earlier send, {} lost, {} buckets left to resend)",
                    sent, b.id, duplicates, lost, b.items.size());
    }
    return b.items.empty();
  }

  const LimiterOptions opts_;
  const redis::Endpoint ep_;
  const Clock* const clock_;
  LocalTable table_;
  redis::Breaker breaker_;
  std::unique_ptr<CounterStripe[]> stripes_;

  redis::Pool pool_;
  std::unique_ptr<sync::SyncEngine> sync_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool sync_stopping_ = false;
  std::thread syncer_;

  mutable std::mutex error_mu_;
  Status last_error_;

  std::mutex debits_mu_;
  std::condition_variable debits_cv_;
  std::unordered_map<std::string, Debit> debits_;
  std::unordered_map<std::string, int64_t> unlanded_;   // per bucket: debited, not known landed
  std::deque<PendingBatch> pending_;
  std::atomic<bool> debits_waiting_{false};   // debits_ is not empty
  std::atomic<bool> debits_unlanded_{false};  // debits_ or pending_ is not empty
  const std::string reconcile_id_;
  uint64_t reconcile_seq_ = 0;
  uint64_t settle_seq_ = 0;   // OnRecovered: the last batch holding debits of the outage
  int64_t peer_settle_until_ns_ = 0;   // OnRecovered: + kPeerSettleNs
  bool reconcile_pending_ = false;
  bool stopping_ = false;
  std::thread reconciler_;

  const std::string participant_id_;
  std::atomic<int64_t> live_participants_{0};
  std::atomic<int64_t> store_offset_us_{kOffsetUnknown};
  std::atomic<int64_t> store_offset_at_ns_{0};
  std::atomic<int64_t> settle_until_ns_{0};
  int64_t live_max_at_ns_ = 0;   // Announce(): when live_participants_ was last set
  std::mutex heartbeat_mu_;
  std::condition_variable heartbeat_cv_;
  bool heartbeat_stopping_ = false;
  std::thread heartbeat_;
};

}  // namespace

StatusOr<std::unique_ptr<Limiter>> Limiter::Create(LimiterOptions opts) {
  log::InitFromEnvironment();
  if (opts.deadline.count() <= 0) return Status::InvalidArgument("deadline must be > 0");
  if (!(opts.fallback_share >= 0.0 && opts.fallback_share <= 1.0)) {
    return Status::InvalidArgument("fallback_share must be in (0, 1], or 0 for 1/N of the live participants");
  }
  if (opts.breaker_threshold < 1) return Status::InvalidArgument("breaker_threshold must be >= 1");
  if (opts.breaker_timeouts_in_row < 1) return Status::InvalidArgument("breaker_timeouts_in_row must be >= 1");
  if (opts.breaker_backoff_min.count() <= 0 || opts.breaker_backoff_max < opts.breaker_backoff_min) {
    return Status::InvalidArgument("breaker back-off must satisfy 0 < min <= max");
  }
  if (opts.max_connections < 1) return Status::InvalidArgument("max_connections must be >= 1");
  if (opts.local_max_buckets < 1) return Status::InvalidArgument("local_max_buckets must be >= 1");
  if (opts.sync_interval.count() <= 0) return Status::InvalidArgument("sync_interval must be > 0");
  auto ep = redis::ParseUrl(opts.redis_url);
  if (!ep.ok()) return ep.status();
  if (ep->username.empty()) ep->username = opts.username;
  if (ep->password.empty()) ep->password = opts.password;
  auto impl = std::make_unique<LimiterImpl>(std::move(opts), std::move(*ep));
  if (impl->options().mode != Mode::kLocal) impl->Warm();
  return std::unique_ptr<Limiter>(std::move(impl));
}

}  // namespace dlb
