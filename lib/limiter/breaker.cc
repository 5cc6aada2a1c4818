#include "limiter/breaker.h"

#include <algorithm>

namespace dlb {

Breaker::Breaker(int threshold, int64_t backoff_min_ns, int64_t backoff_max_ns)
    : threshold_(std::max(1, threshold)),
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

bool Breaker::OnSuccess(Permit p) {
  consecutive_failures_.store(0, std::memory_order_relaxed);
  if (p != Permit::kProbe) return false;
  backoff_ns_.store(backoff_min_ns_, std::memory_order_relaxed);
  open_until_ns_.store(0, std::memory_order_release);
  probing_.store(false, std::memory_order_release);
  return true;
}

bool Breaker::OnFailure(Permit p, int64_t now_ns) {
  if (p == Permit::kProbe) {
    const int64_t b = std::min(backoff_ns_.load(std::memory_order_relaxed) * 2, backoff_max_ns_);
    backoff_ns_.store(b, std::memory_order_relaxed);
    open_until_ns_.store(now_ns + b, std::memory_order_release);
    probing_.store(false, std::memory_order_release);
    return false;
  }
  if (consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1 < threshold_) return false;
  int64_t expected = 0;
  const int64_t until = now_ns + backoff_ns_.load(std::memory_order_relaxed);
  return open_until_ns_.compare_exchange_strong(expected, until == 0 ? 1 : until,
                                                std::memory_order_acq_rel);
}

}  // namespace dlb
