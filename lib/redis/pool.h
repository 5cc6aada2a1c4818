// A bounded pool of Redis connections that have the library's scripts loaded.
//
// Shared by the Limiter (strict decisions, reconciliation) and the sync engine
// (leases). Every new connection runs SCRIPT LOAD for each script before its first
// EVALSHA, so that after a restart or a failover the scripts are there; a pipeline
// whose commands hit NOSCRIPT anyway (SCRIPT FLUSH under our feet) gets the scripts
// again and only the commands that did not run are resent, so nothing is charged
// twice.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/status.h"
#include "redis/connection.h"
#include "redis/url.h"

namespace dlb::redis {

class Pool {
 public:
  // `scripts` are the Lua texts that every connection loads (their SHA1 is checked).
  Pool(Endpoint ep, int max_connections, std::vector<std::string_view> scripts);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // An idle connection, or a new one (connect + SCRIPT LOAD) if fewer than
  // max_connections are open; otherwise waits until `deadline_ns` (CLOCK_MONOTONIC).
  StatusOr<std::unique_ptr<Connection>> Acquire(int64_t deadline_ns);
  // Returns a connection; a broken one is dropped.
  void Release(std::unique_ptr<Connection> c);

  // Runs `cmds` (complete RESP commands) as one pipeline on a pooled connection,
  // all before `deadline_ns`; one reply per command.
  Status Call(const std::vector<std::string>& cmds, int64_t deadline_ns,
              std::vector<Reply>* replies);

  const Endpoint& endpoint() const { return ep_; }

 private:
  Status LoadScripts(Connection& c, int64_t deadline_ns);

  const Endpoint ep_;
  const int max_connections_;
  std::vector<std::string_view> scripts_;
  std::vector<std::string> shas_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  int open_connections_ = 0;
};

}  // namespace dlb::redis
