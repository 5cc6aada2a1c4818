// The library's Limiter counters as `dlb_limiter_*` families. The list in
// docs/metrics.md ("Library") mirrors this file.
#include <cstdint>

#include "dlb/limiter.h"
#include "dlb/metrics.h"

namespace dlb::metrics {

namespace {

constexpr double kMicro = 1e-6;

}  // namespace

CollectFn LimiterCollector(const ::dlb::Limiter& limiter) {
  return [&limiter](Writer& w) {
    const LimiterStats s = limiter.Stats();
    const auto d = [](uint64_t v) { return static_cast<double>(v); };

    w.Counter("dlb_limiter_decisions_total", "Requests decided, by result.",
              {{"result", "allowed"}}, d(s.allowed));
    w.Counter("dlb_limiter_decisions_total", "Requests decided, by result.",
              {{"result", "rejected"}}, d(s.rejected));

    static constexpr const char* kSourceHelp =
        "Requests decided, by where the decision was made: store (Redis script), local "
        "(mode local), lease (mode synced, no Redis call), fallback (failure policy).";
    w.Counter("dlb_limiter_source_decisions_total", kSourceHelp, {{"source", "store"}},
              d(s.store_decisions));
    w.Counter("dlb_limiter_source_decisions_total", kSourceHelp, {{"source", "local"}},
              d(s.local_decisions));
    w.Counter("dlb_limiter_source_decisions_total", kSourceHelp, {{"source", "lease"}},
              d(s.lease_decisions));
    w.Counter("dlb_limiter_source_decisions_total", kSourceHelp, {{"source", "fallback"}},
              d(s.fallback_decisions));

    w.Counter("dlb_limiter_store_errors_total", "Redis calls that failed (any error).", {},
              d(s.store_errors));
    w.Counter("dlb_limiter_store_timeouts_total",
              "Redis calls that missed their deadline.", {}, d(s.store_timeouts));
    w.Counter("dlb_limiter_breaker_opens_total", "Times the circuit breaker opened.", {},
              d(s.breaker_opens));
    w.Gauge("dlb_limiter_breaker_open",
            "1 while the circuit breaker is open (decisions follow the failure policy).", {},
            s.breaker_open ? 1.0 : 0.0);
    w.Counter("dlb_limiter_reconciled_requests_total",
              "Requests admitted by the failure policy and debited to Redis on recovery.", {},
              d(s.reconciled_requests));
    w.Counter("dlb_limiter_fallback_overflow_total",
              "New keys refused because the local fallback table was full.", {},
              d(s.fallback_overflow));

    // LimiterStats buckets are per interval (latency < bound); Prometheus wants
    // cumulative counts. The last bound is "unbounded": the +Inf bucket.
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;
    uint64_t running = 0;
    for (int i = 0; i < LimiterStats::kLatencyBuckets; ++i) {
      running += s.store_latency_hist[i];
      if (i + 1 < LimiterStats::kLatencyBuckets) {
        bounds.push_back(static_cast<double>(LimiterStats::kLatencyBoundsUs[i]) * kMicro);
        cumulative.push_back(running);
      }
    }
    w.Histogram("dlb_limiter_store_latency_seconds",
                "Latency of Redis calls made for decisions.", {}, bounds, cumulative, running,
                static_cast<double>(s.store_latency_sum_us) * kMicro);

    w.Gauge("dlb_limiter_live_participants",
            "Mode synced: participants announced within their TTL (0 = unknown).", {},
            static_cast<double>(s.live_participants));
    w.Gauge("dlb_limiter_sync_max_gap_seconds",
            "Mode synced: the longest time between two sync rounds.", {},
            static_cast<double>(s.sync_max_gap_us) * kMicro);
  };
}

}  // namespace dlb::metrics
