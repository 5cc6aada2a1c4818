// Redis Sentinel: finding the master of a monitored set and noticing its failover.
//
// Discovery asks the sentinels one after the other (`SENTINEL get-master-addr-by-name`)
// within the caller's deadline; the pool then verifies with ROLE, on every new
// connection, that the node it reached is a master. A failover is noticed three ways:
// a connection failure, a -READONLY reply (the old master came back as a replica),
// and the sentinels' +switch-master message, which a SentinelWatcher thread listens for.
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "dlb/status.h"
#include "redis/url.h"

namespace dlb::redis {

// The master's address as the sentinels of `ep` report it. Sentinels are asked in
// turn starting at `*next_sentinel`, which is left at the one that answered.
StatusOr<HostPort> AskSentinels(const Endpoint& ep, int64_t deadline_ns, size_t* next_sentinel);

// True for a ROLE reply of a master.
bool IsMasterRole(const redisReply* r);
// -READONLY: the node is (now) a replica; the command did not run.
bool IsReadOnlyError(const redisReply* r);
// A pub/sub message on +switch-master about `master_name`
// ("<name> <old ip> <old port> <new ip> <new port>"); the new master into `*new_master`
// when given.
bool IsSwitchMasterFor(const redisReply* r, std::string_view master_name, HostPort* new_master = nullptr);

// Subscribes to +switch-master on one sentinel at a time (the next one when a
// connection fails) and calls `on_switch` with the new master's address for each
// failover of the endpoint's master.
class SentinelWatcher {
 public:
  SentinelWatcher(Endpoint ep, std::function<void(const HostPort&)> on_switch);
  ~SentinelWatcher();
  SentinelWatcher(const SentinelWatcher&) = delete;
  SentinelWatcher& operator=(const SentinelWatcher&) = delete;

  // Switches seen, for tests and logs.
  uint64_t switches() const { return switches_.load(std::memory_order_relaxed); }

 private:
  void Run();

  const Endpoint ep_;
  const std::function<void(const HostPort&)> on_switch_;
  std::atomic<uint64_t> switches_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace dlb::redis
