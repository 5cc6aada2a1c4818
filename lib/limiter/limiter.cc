// dlb::Limiter: strict mode over Redis with a deadline, a circuit breaker and a failure
// policy; local mode over the in-process table.
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "dlb/key.h"
#include "dlb/limiter.h"
#include "limiter/breaker.h"
#include "limiter/local_table.h"
#include "log/log.h"
#include "redis/connection.h"
#include "redis/script.h"
#include "redis/url.h"

namespace dlb {
namespace {

enum Counter : int {
  kAllowed, kRejected, kStoreDecisions, kLocalDecisions, kFallbackDecisions, kStoreErrors,
  kStoreTimeouts, kBreakerOpens, kReconciled, kOverflow, kNumCounters
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

class LimiterImpl final : public Limiter {
 public:
  LimiterImpl(LimiterOptions opts, redis::Endpoint ep)
      : opts_(std::move(opts)),
        ep_(std::move(ep)),
        clock_(opts_.clock != nullptr ? opts_.clock : &MonotonicClock::Instance()),
        table_(opts_.local_max_buckets),
        breaker_(opts_.breaker_threshold,
                 std::chrono::nanoseconds(opts_.breaker_backoff_min).count(),
                 std::chrono::nanoseconds(opts_.breaker_backoff_max).count()),
        stripes_(std::make_unique<CounterStripe[]>(kCounterStripes)) {
    if (opts_.mode == Mode::kStrict) {
      reconciler_ = std::thread([this] { ReconcileLoop(); });
    }
  }

  ~LimiterImpl() override {
    {
      std::lock_guard<std::mutex> lock(debits_mu_);
      stopping_ = true;
    }
    debits_cv_.notify_all();
    if (reconciler_.joinable()) reconciler_.join();
  }

  // Warms one connection so the first decision does not pay for connect + SCRIPT LOAD.
  void Warm() {
    const int64_t deadline = Deadline();
    auto c = Acquire(deadline);
    if (!c.ok()) {
      DLB_LOG_WARN("dlb: Redis at {} is not reachable yet ({}); deciding by policy '{}' until it is",
                   ep_.Describe(), c.status().message(), FailurePolicyName(opts_.on_store_failure));
      return;
    }
    Release(std::move(*c));
  }

  StatusOr<LimitDecision> Decide(std::string_view user_id, const BucketSpec& spec, int64_t cost,
                                 std::string_view rule) override {
    LimitRequest r{.user_id = user_id, .spec = spec, .cost = cost, .rule = rule};
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
    for (size_t i = 0; i < reqs.size(); ++i) {
      Status s = Validate(reqs[i]);
      out.emplace_back(s.ok() ? StatusOr<LimitDecision>(LimitDecision{}) : StatusOr<LimitDecision>(s));
      if (!s.ok()) continue;
      if (opts_.mode == Mode::kLocal) {
        out[i] = DecideLocal(reqs[i], DecisionSource::kLocal, 1.0);
      } else {
        to_store.push_back(i);
      }
    }
    if (!to_store.empty()) DecideStore(reqs, to_store, out);
    for (const auto& r : out) {
      if (r.ok()) Bump(r->allowed ? kAllowed : kRejected);
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
    std::string del;
    redis::CommandWriter(del).Begin(2).Arg("DEL").Arg(KeyFor(r));
    std::vector<redis::Reply> replies;
    if (Status s = Call({del}, Deadline(), &replies); !s.ok()) return s;
    if (replies[0]->type != REDIS_REPLY_INTEGER) {
      return Status::Protocol("DEL: " + redis::DescribeReply(replies[0].get()));
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
    s.breaker_open = breaker_.open();
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

  static std::string KeyFor(const LimitRequest& r) {
    if (!r.rule.empty()) return RedisKey(r.user_id, r.rule);
    return RedisKey(r.user_id, RuleNameForSpec(r.spec.capacity, r.spec.leak_rate_per_s));
  }

  // ---- connection pool -------------------------------------------------------------

  StatusOr<std::unique_ptr<redis::Connection>> Acquire(int64_t deadline_ns) {
    std::unique_lock<std::mutex> lock(pool_mu_);
    for (;;) {
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      if (open_connections_ < opts_.max_connections) break;
      const int64_t left = deadline_ns - NowMonoNs();
      if (left <= 0) return Status::DeadlineExceeded("no Redis connection free within the deadline");
      pool_cv_.wait_for(lock, std::chrono::nanoseconds(left));
    }
    ++open_connections_;
    lock.unlock();
    auto conn = redis::Connection::Open(ep_, deadline_ns);
    Status st = conn.ok() ? LoadScript(**conn, deadline_ns) : conn.status();
    if (!st.ok()) {
      lock.lock();
      --open_connections_;
      pool_cv_.notify_one();
      return st;
    }
    return std::move(*conn);
  }

  void Release(std::unique_ptr<redis::Connection> c) {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (c->broken()) {
      --open_connections_;
    } else {
      idle_.push_back(std::move(c));
    }
    pool_cv_.notify_one();
  }

  // SCRIPT LOAD on every new connection: after a Redis restart or a failover the script
  // is there before the first EVALSHA, and the reply is its SHA1.
  Status LoadScript(redis::Connection& c, int64_t deadline_ns) {
    std::string req;
    redis::CommandWriter(req).Begin(3).Arg("SCRIPT").Arg("LOAD").Arg(redis::kBucketScript);
    std::vector<redis::Reply> replies;
    if (Status s = c.Exchange(req, 1, deadline_ns, &replies); !s.ok()) return s;
    const redisReply* r = replies[0].get();
    if (r->type != REDIS_REPLY_STRING ||
        std::string_view(r->str, r->len) != redis::BucketScriptSha()) {
      return Status::Protocol("SCRIPT LOAD: " + redis::DescribeReply(r));
    }
    return Status::Ok();
  }

  // Runs `cmds` (complete RESP commands) as one pipeline on a pooled connection.
  // Commands that hit NOSCRIPT (SCRIPT FLUSH, a restart, a failover to a replica
  // without the script) did not run: they alone are sent again after SCRIPT LOAD, so
  // nothing is charged twice.
  Status Call(const std::vector<std::string>& cmds, int64_t deadline_ns,
              std::vector<redis::Reply>* replies) {
    const int64_t t0 = NowMonoNs();
    auto conn = Acquire(deadline_ns);
    Status s = conn.status();
    if (conn.ok()) {
      std::string req;
      for (const std::string& c : cmds) req += c;
      s = (*conn)->Exchange(req, cmds.size(), deadline_ns, replies);
      std::vector<size_t> lost;
      for (size_t i = 0; s.ok() && i < replies->size(); ++i) {
        if (redis::IsNoScript((*replies)[i].get())) lost.push_back(i);
      }
      if (!lost.empty()) {
        DLB_LOG_EVERY(1000, spdlog::level::warn,
                      "dlb: Redis does not have the bucket script (NOSCRIPT); loading it again");
        s = LoadScript(**conn, deadline_ns);
        std::string again;
        for (size_t i : lost) again += cmds[i];
        std::vector<redis::Reply> retried;
        if (s.ok()) s = (*conn)->Exchange(again, lost.size(), deadline_ns, &retried);
        for (size_t k = 0; s.ok() && k < lost.size(); ++k) (*replies)[lost[k]] = std::move(retried[k]);
      }
      Release(std::move(*conn));
    }
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
                                int64_t cost) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendBucketCall(w, redis::BucketScriptSha(), key, op, spec, cost);
    return cmd;
  }

  // ---- strict mode ----------------------------------------------------------------

  void DecideStore(std::span<const LimitRequest> reqs, const std::vector<size_t>& idx,
                   std::vector<StatusOr<LimitDecision>>& out) {
    const int64_t now = NowMonoNs();
    const Breaker::Permit permit = breaker_.Acquire(now);
    std::vector<std::string> keys;
    keys.reserve(idx.size());
    for (size_t i : idx) keys.push_back(KeyFor(reqs[i]));
    Status failure;
    if (permit != Breaker::Permit::kRefuse) {
      std::vector<std::string> cmds;
      cmds.reserve(idx.size());
      for (size_t k = 0; k < idx.size(); ++k) {
        cmds.push_back(BucketCall(keys[k], redis::BucketOp::kTake, reqs[idx[k]].spec, reqs[idx[k]].cost));
      }
      std::vector<redis::Reply> replies;
      failure = Call(cmds, Deadline(), &replies);
      if (failure.ok()) {
        if (breaker_.OnSuccess(permit)) OnRecovered();
        for (size_t k = 0; k < idx.size(); ++k) {
          auto parsed = redis::ParseBucketReply(replies[k].get());
          if (parsed.ok()) {
            LimitDecision d;
            static_cast<Decision&>(d) = parsed->decision;
            d.source = DecisionSource::kStore;
            out[idx[k]] = d;
            Bump(kStoreDecisions);
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
      if (breaker_.OnFailure(permit, NowMonoNs())) {
        Bump(kBreakerOpens);
        // One line per transition, but at most one a second: a breaker that flaps under
        // overload must not flood the log (the counter has every transition).
        DLB_LOG_EVERY(1000, spdlog::level::warn,
                      "dlb: Redis at {} failed ({}); circuit breaker open, deciding by policy '{}' "
                      "({} openings so far)",
                      ep_.Describe(), failure.message(), FailurePolicyName(opts_.on_store_failure),
                      Stats().breaker_opens);
      }
    }
    for (size_t k = 0; k < idx.size(); ++k) out[idx[k]] = Fallback(reqs[idx[k]], keys[k]);
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
    d = DecideLocal(r, DecisionSource::kFallbackLocal, opts_.fallback_share);
    if (d.allowed) RecordDebit(redis_key, r.spec, r.cost);
    return d;
  }

  // ---- local decisions ------------------------------------------------------------

  LimitDecision DecideLocal(const LimitRequest& r, DecisionSource source, double share) {
    BucketSpec spec = r.spec;
    int64_t cost = r.cost;
    if (share < 1.0) {
      spec.capacity = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(spec.capacity) * share));
      spec.leak_rate_per_s *= share;
      if (spec.leak_rate_per_s != 0 && spec.leak_rate_per_s < 1e-6) spec.leak_rate_per_s = 1e-6;
      cost = std::min(cost, spec.capacity);
    }
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
  };

  void RecordDebit(const std::string& key, const BucketSpec& spec, int64_t cost) {
    std::lock_guard<std::mutex> lock(debits_mu_);
    auto it = debits_.find(key);
    if (it == debits_.end()) {
      // Bounded like the local table: past it, admissions are no longer reconciled.
      if (debits_.size() >= opts_.local_max_buckets) return;
      it = debits_.emplace(key, Debit{spec, 0}).first;
    }
    it->second.cost = std::min(it->second.cost + cost, spec.capacity);
  }

  void OnRecovered() {
    DLB_LOG_EVERY(1000, spdlog::level::info, "dlb: Redis at {} answers again; circuit breaker closed",
                  ep_.Describe());
    {
      std::lock_guard<std::mutex> lock(debits_mu_);
      reconcile_pending_ = true;
    }
    debits_cv_.notify_all();
  }

  void ReconcileLoop() {
    std::unique_lock<std::mutex> lock(debits_mu_);
    for (;;) {
      debits_cv_.wait(lock, [this] { return stopping_ || reconcile_pending_; });
      if (stopping_) return;
      reconcile_pending_ = false;
      std::unordered_map<std::string, Debit> batch;
      batch.swap(debits_);
      lock.unlock();
      ReconcileBatch(batch);
      lock.lock();
    }
  }

  // Sends the admissions made during the outage as debits, once: a chunk that fails is
  // not resent (its fate is unknown after a timeout), so nothing is charged twice.
  void ReconcileBatch(const std::unordered_map<std::string, Debit>& batch) {
    if (batch.empty()) return;
    uint64_t sent = 0, lost = 0;
    auto it = batch.begin();
    while (it != batch.end()) {
      std::vector<std::string> cmds;
      uint64_t chunk_cost = 0;
      for (; it != batch.end() && cmds.size() < kReconcileChunk; ++it) {
        cmds.push_back(BucketCall(it->first, redis::BucketOp::kDebit, it->second.spec, it->second.cost));
        chunk_cost += static_cast<uint64_t>(it->second.cost);
      }
      const int64_t deadline =
          NowMonoNs() + std::chrono::nanoseconds(opts_.deadline).count() * kReconcileDeadlineFactor;
      std::vector<redis::Reply> replies;
      if (Call(cmds, deadline, &replies).ok()) {
        sent += chunk_cost;
      } else {
        lost += chunk_cost;
      }
    }
    Bump(kReconciled, sent);
    DLB_LOG_EVERY(1000, spdlog::level::info,
                  "dlb: reconciled {} requests admitted locally during the outage into Redis ({} lost)",
                  sent, lost);
  }

  const LimiterOptions opts_;
  const redis::Endpoint ep_;
  const Clock* const clock_;
  LocalTable table_;
  Breaker breaker_;
  std::unique_ptr<CounterStripe[]> stripes_;

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<redis::Connection>> idle_;
  int open_connections_ = 0;

  mutable std::mutex error_mu_;
  Status last_error_;

  std::mutex debits_mu_;
  std::condition_variable debits_cv_;
  std::unordered_map<std::string, Debit> debits_;
  bool reconcile_pending_ = false;
  bool stopping_ = false;
  std::thread reconciler_;
};

}  // namespace

StatusOr<std::unique_ptr<Limiter>> Limiter::Create(LimiterOptions opts) {
  log::InitFromEnvironment();
  if (opts.deadline.count() <= 0) return Status::InvalidArgument("deadline must be > 0");
  if (!(opts.fallback_share > 0.0 && opts.fallback_share <= 1.0)) {
    return Status::InvalidArgument("fallback_share must be in (0, 1]");
  }
  if (opts.breaker_threshold < 1) return Status::InvalidArgument("breaker_threshold must be >= 1");
  if (opts.breaker_backoff_min.count() <= 0 || opts.breaker_backoff_max < opts.breaker_backoff_min) {
    return Status::InvalidArgument("breaker back-off must satisfy 0 < min <= max");
  }
  if (opts.max_connections < 1) return Status::InvalidArgument("max_connections must be >= 1");
  if (opts.local_max_buckets < 1) return Status::InvalidArgument("local_max_buckets must be >= 1");
  auto ep = redis::ParseUrl(opts.redis_url);
  if (!ep.ok()) return ep.status();
  if (ep->username.empty()) ep->username = opts.username;
  if (ep->password.empty()) ep->password = opts.password;
  auto impl = std::make_unique<LimiterImpl>(std::move(opts), std::move(*ep));
  if (impl->options().mode == Mode::kStrict) impl->Warm();
  return std::unique_ptr<Limiter>(std::move(impl));
}

}  // namespace dlb
