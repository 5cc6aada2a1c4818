// Injected clocks: the bucket core never reads time itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace dlb {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic nanoseconds; only differences matter.
  virtual int64_t NowNs() const = 0;
};

// CLOCK_MONOTONIC: the process's own clock for what it decides locally.
class MonotonicClock final : public Clock {
 public:
  int64_t NowNs() const override {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  }
  // Never destroyed: a process-wide limiter (DefaultLimiter) is destroyed at exit after
  // statics constructed later, and its threads still read the clock while it stops.
  static const MonotonicClock& Instance() {
    static const MonotonicClock* const clock = new MonotonicClock;
    return *clock;
  }
};

// A clock that tests set by hand.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ns = 1'000'000'000) : now_ns_(start_ns) {}
  int64_t NowNs() const override { return now_ns_.load(std::memory_order_relaxed); }
  void Set(int64_t now_ns) { now_ns_.store(now_ns, std::memory_order_relaxed); }
  void Advance(int64_t delta_ns) { now_ns_.fetch_add(delta_ns, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace dlb
