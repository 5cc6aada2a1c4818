#include "redis/breaker.h"

#include <algorithm>

namespace dlb::redis {

Breaker::Breaker(int threshold, int timeouts_in_row, int64_t min_silence_ns, int64_t backoff_min_ns,
                 int64_t backoff_max_ns, bool by_failure_rate)
    : threshold_(std::max(1, threshold)),
      timeouts_in_row_(std::max(1, timeouts_in_row)),
      min_silence_ns_(std::max<int64_t>(0, min_silence_ns)),
      by_failure_rate_(by_failure_rate),
      backoff_min_ns_(std::max<int64_t>(1, backoff_min_ns)),
      backoff_max_ns_(std::max(backoff_min_ns_, backoff_max_ns)),
      backoff_ns_(backoff_min_ns_) {}

Breaker::Permit Breaker::Acquire(int64_t now_ns) {
  const int64_t until = open_until_ns_.load(std::memory_order_acquire);
  if (until == 0) return Permit::kCall;
  if (now_ns < until) return Permit::kRefuse;
  bool expected = false;
  if (probing_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
    return Permit::kProbe;
  }
  return Permit::kRefuse;
}

bool Breaker::CountInWindow(int64_t now_ns, bool failed) {
  const int64_t w = now_ns / kWindowNs;
  Slot& cur = slots_[w & 1];
  int64_t seen = cur.window.load(std::memory_order_acquire);
  if (seen != w && cur.window.compare_exchange_strong(seen, w, std::memory_order_acq_rel)) {
    cur.calls.store(0, std::memory_order_relaxed);
    cur.failures.store(0, std::memory_order_relaxed);
  }
  const uint32_t calls = cur.calls.fetch_add(1, std::memory_order_relaxed) + 1;
  const uint32_t failures = cur.failures.fetch_add(failed ? 1 : 0, std::memory_order_relaxed) + (failed ? 1 : 0);
  if (!failed) return false;
  const Slot& prev = slots_[(w + 1) & 1];
  uint32_t all_calls = calls, all_failures = failures;
  if (prev.window.load(std::memory_order_acquire) == w - 1) {
    all_calls += prev.calls.load(std::memory_order_relaxed);
    all_failures += prev.failures.load(std::memory_order_relaxed);
  }
  return all_calls >= kMinWindowCalls && 2 * all_failures >= all_calls;
}

bool Breaker::OnSuccess(Permit p, int64_t now_ns) {
  hard_in_row_.store(0, std::memory_order_relaxed);
  timeouts_in_row_seen_.store(0, std::memory_order_relaxed);
  first_timeout_ns_.store(0, std::memory_order_relaxed);
  if (by_failure_rate_) (void)CountInWindow(now_ns, false);
  if (p != Permit::kProbe) return false;
  backoff_ns_.store(backoff_min_ns_, std::memory_order_relaxed);
  open_until_ns_.store(0, std::memory_order_release);
  probing_.store(false, std::memory_order_release);
  return true;
}

bool Breaker::Open(int64_t now_ns) {
  int64_t expected = 0;
  const int64_t until = now_ns + backoff_ns_.load(std::memory_order_relaxed);
  return open_until_ns_.compare_exchange_strong(expected, until == 0 ? 1 : until,
                                                std::memory_order_acq_rel);
}

bool Breaker::OnFailure(Permit p, int64_t now_ns, const Status& failure) {
  if (p == Permit::kProbe) {
    const int64_t b = std::min(backoff_ns_.load(std::memory_order_relaxed) * 2, backoff_max_ns_);
    backoff_ns_.store(b, std::memory_order_relaxed);
    open_until_ns_.store(now_ns + b, std::memory_order_release);
    probing_.store(false, std::memory_order_release);
    return false;
  }
  const bool timeout = failure.code() == StatusCode::kDeadlineExceeded;
  // Missed deadlines count as calls, not as failures, in the rate: a store starved of
  // CPU misses many of them and is still up (the run of misses catches a silent one).
  bool evidence = by_failure_rate_ && CountInWindow(now_ns, !timeout);
  if (timeout) {
    const int seen = timeouts_in_row_seen_.fetch_add(1, std::memory_order_relaxed) + 1;
    // Racing with a success that restarts the run only shifts its start: approximate,
    // and never opens on fewer than timeouts_in_row misses.
    if (seen == 1) first_timeout_ns_.store(now_ns, std::memory_order_relaxed);
    int64_t first = first_timeout_ns_.load(std::memory_order_relaxed);
    if (first == 0) first = now_ns;
    evidence |= seen >= timeouts_in_row_ && now_ns - first >= min_silence_ns_;
  } else {
    evidence |= hard_in_row_.fetch_add(1, std::memory_order_relaxed) + 1 >= threshold_;
  }
  return evidence && Open(now_ns);
}

}  // namespace dlb::redis
