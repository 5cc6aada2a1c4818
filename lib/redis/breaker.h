// Circuit breaker in front of the store.
//
// A slow store is not a down store. A call that misses its deadline says only that this
// one reply was late (a fork for a snapshot, a slow command, this caller losing the
// CPU); the caller decides that request by the failure policy against the bucket's
// last known state, and the breaker stays closed. It opens on evidence of an outage:
//   - `threshold` consecutive hard failures (connection refused or reset, the server
//     closing the connection, a protocol error), across all callers;
//   - `timeouts_in_row` consecutive missed deadlines across all callers with no
//     success in between, spanning at least `min_silence_ns` (a server that stopped
//     answering: SIGSTOP, a black hole). The span keeps a scheduling stall of a loaded
//     host (every caller's reply late for a few milliseconds at once) from opening it;
//   - hard failures in at least half of the calls over the last one to two windows of
//     kWindowNs, once at least kMinWindowCalls calls were made in them (missed
//     deadlines count as calls only: a store starved of CPU is slow, not down).
// open:   calls fail fast (the failure policy decides) until the back-off has passed;
//         then exactly one caller gets a probe. A successful probe closes the breaker
//         and resets the back-off; a failed one reopens it with the back-off doubled,
//         up to the maximum (tens of milliseconds by default, so that a store that
//         answers again takes over within that). Only a probe closes it: a call that
//         was in flight when the breaker opened proves little.
// Lock-free: callers on the decision path only read an atomic when closed.
#pragma once

#include <atomic>
#include <cstdint>

#include "dlb/status.h"

namespace dlb::redis {

class Breaker {
 public:
  static constexpr int64_t kWindowNs = 1'000'000'000;
  static constexpr uint32_t kMinWindowCalls = 20;

  // `by_failure_rate` false leaves only the two runs (for callers whose every call is a
  // round of their own, as the packet sync's).
  Breaker(int threshold, int timeouts_in_row, int64_t min_silence_ns, int64_t backoff_min_ns,
          int64_t backoff_max_ns, bool by_failure_rate = true);

  enum class Permit { kCall, kProbe, kRefuse };
  Permit Acquire(int64_t now_ns);
  // True if this success closed an open breaker (the store has recovered).
  bool OnSuccess(Permit p, int64_t now_ns);
  // True if this failure opened a closed breaker. A kDeadlineExceeded `failure` is a
  // missed deadline; any other code is a hard failure.
  bool OnFailure(Permit p, int64_t now_ns, const Status& failure);
  bool open() const { return open_until_ns_.load(std::memory_order_acquire) != 0; }
  int64_t backoff_ns() const { return backoff_ns_.load(std::memory_order_relaxed); }

 private:
  // Counts one call in the window of `now_ns`; returns whether the failure rate over
  // this window and the previous one has reached one half.
  bool CountInWindow(int64_t now_ns, bool failed);
  bool Open(int64_t now_ns);

  const int threshold_;
  const int timeouts_in_row_;
  const int64_t min_silence_ns_;
  const bool by_failure_rate_;
  const int64_t backoff_min_ns_;
  const int64_t backoff_max_ns_;
  std::atomic<int> hard_in_row_{0};
  std::atomic<int> timeouts_in_row_seen_{0};
  std::atomic<int64_t> first_timeout_ns_{0};   // of the current run of missed deadlines
  std::atomic<int64_t> open_until_ns_{0};  // 0 = closed
  std::atomic<bool> probing_{false};
  std::atomic<int64_t> backoff_ns_;
  // The sliding window: two slots indexed by window number parity. A slot is reset by
  // the first caller that finds it holding an older window; a count racing with that
  // reset may be lost, which only delays an opening by a call.
  struct Slot {
    std::atomic<int64_t> window{-1};
    std::atomic<uint32_t> calls{0};
    std::atomic<uint32_t> failures{0};
  };
  Slot slots_[2];
};

}  // namespace dlb::redis
