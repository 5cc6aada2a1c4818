// Circuit breaker in front of the store.
//
// closed: every call goes to the store; `threshold` consecutive failures open it.
// open:   calls fail fast (the failure policy decides) until the back-off has passed;
//         then exactly one caller gets a probe. A successful probe closes the breaker
//         and resets the back-off; a failed one reopens it with the back-off doubled,
//         up to the maximum. Only a probe closes it: a call that was in flight when the
//         breaker opened proves little.
// Lock-free: callers on the decision path only read an atomic when closed.
#pragma once

#include <atomic>
#include <cstdint>

namespace dlb {

class Breaker {
 public:
  Breaker(int threshold, int64_t backoff_min_ns, int64_t backoff_max_ns);

  enum class Permit { kCall, kProbe, kRefuse };
  Permit Acquire(int64_t now_ns);
  // True if this success closed an open breaker (the store has recovered).
  bool OnSuccess(Permit p);
  // True if this failure opened a closed breaker.
  bool OnFailure(Permit p, int64_t now_ns);
  bool open() const { return open_until_ns_.load(std::memory_order_acquire) != 0; }
  int64_t backoff_ns() const { return backoff_ns_.load(std::memory_order_relaxed); }

 private:
  const int threshold_;
  const int64_t backoff_min_ns_;
  const int64_t backoff_max_ns_;
  std::atomic<int> consecutive_failures_{0};
  std::atomic<int64_t> open_until_ns_{0};  // 0 = closed
  std::atomic<bool> probing_{false};
  std::atomic<int64_t> backoff_ns_;
};

}  // namespace dlb
