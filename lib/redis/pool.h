// A bounded pool of Redis connections that have the library's scripts loaded, and the
// routing to the right server for the three deployments of Redis.
//
// Shared by the Limiter (strict decisions, reconciliation) and the sync engine
// (leases). Every new connection runs SCRIPT LOAD for each script before its first
// EVALSHA, so that after a restart or a failover the scripts are there; a pipeline
// whose commands hit NOSCRIPT anyway (SCRIPT FLUSH under our feet) gets the scripts
// again and only the commands that did not run are resent, so nothing is charged
// twice. Only replies that prove a command did not run (NOSCRIPT, READONLY, MOVED,
// ASK, TRYAGAIN, CLUSTERDOWN) lead to a resend; after an I/O error or a missed
// deadline a command's fate is unknown and the call fails.
//
//   standalone: one server.
//   Sentinel:   the master named by the sentinels (discovered within the caller's
//               deadline, checked with ROLE on each new connection); a connection
//               failure, a -READONLY reply or a +switch-master message drops the
//               master's connections and the next call discovers again.
//   Cluster:    a slot map (CLUSTER SLOTS) and max_connections per node; each
//               command goes to the master of its first key's slot, a pipeline is
//               split per node (sent to all nodes, then read) and its replies are
//               put back in order. MOVED updates the map and resends, ASK resends to
//               the importing node after ASKING. A command's keys must share a slot
//               (the keys of one user do; lease_round.h splits lease and settle
//               calls over many users per slot).
// Every call, discovery and redirections included, ends by its deadline.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dlb/status.h"
#include "redis/connection.h"
#include "redis/url.h"

namespace dlb::redis {

class SentinelWatcher;

class Pool {
 public:
  // `scripts` are the Lua texts that every connection loads (their SHA1 is checked).
  // `max_connections` bounds the connections to each server.
  Pool(Endpoint ep, int max_connections, std::vector<std::string_view> scripts);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // An idle connection, or a new one (connect + SCRIPT LOAD) if fewer than
  // max_connections are open; otherwise waits until `deadline_ns` (CLOCK_MONOTONIC).
  // Sentinel: a connection to the master; Cluster: to some master node.
  StatusOr<std::unique_ptr<Connection>> Acquire(int64_t deadline_ns);
  // Returns a connection; a broken one, or one to a server no longer in use, is dropped.
  void Release(std::unique_ptr<Connection> c);

  // Runs `cmds` (complete RESP commands) as one pipeline (on Cluster: one per node),
  // all before `deadline_ns`; one reply per command, in the order of `cmds`.
  Status Call(const std::vector<std::string>& cmds, int64_t deadline_ns,
              std::vector<Reply>* replies);

  const Endpoint& endpoint() const { return ep_; }

  // Counters for tests and logs.
  struct Stats {
    uint64_t discoveries = 0;    // Sentinel: master addresses learned
    uint64_t slot_refreshes = 0; // Cluster: slot maps loaded
    uint64_t moved = 0;          // Cluster: MOVED replies followed
    uint64_t ask = 0;            // Cluster: ASK replies followed
    uint64_t resent = 0;         // commands sent again after a reply proved they did not run
  };
  Stats stats() const;
  // Cluster: the node that serves `slot` in the current map ("" if none), for tests.
  std::string NodeOfSlot(uint16_t slot) const;

 private:
  struct Node;

  std::shared_ptr<Node> NodeAt(const HostPort& hp);
  std::shared_ptr<Node> NodeByTag(uint64_t tag) const;
  StatusOr<std::unique_ptr<Connection>> AcquireFrom(Node& node, int64_t deadline_ns);
  Status SetUp(Connection& c, int64_t deadline_ns);
  Status LoadScripts(Connection& c, int64_t deadline_ns);
  void DropNodeConnections(Node& node);

  // Sentinel.
  StatusOr<std::shared_ptr<Node>> Master(int64_t deadline_ns);
  void ForgetMaster(uint64_t tag);   // tag 0: whatever the master is
  // Cluster. Loads the slot map, asking one node after the other, each for at most
  // `per_node_ns`. Callers load it themselves only when there is none yet; later
  // refreshes run on the refresher thread, so a silent node never spends a caller's
  // deadline on a map that still routes everything else.
  Status RefreshSlots(int64_t deadline_ns, int64_t per_node_ns);
  bool HaveSlotMap() const;
  void RequestRefresh();
  void RefreshLoop();
  Status CallCluster(const std::vector<std::string>& cmds, int64_t deadline_ns,
                     std::vector<Reply>* replies);
  Status CallSingle(const std::vector<std::string>& cmds, int64_t deadline_ns,
                    std::vector<Reply>* replies);

  const Endpoint ep_;
  const int max_connections_;
  std::vector<std::string_view> scripts_;
  std::vector<std::string> shas_;

  // Servers by tag (tags are never reused, so a stale connection finds no home).
  mutable std::shared_mutex nodes_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Node>> nodes_;
  uint64_t next_tag_ = 1;
  uint64_t master_tag_ = 0;                 // standalone and Sentinel; 0 = unknown
  std::vector<uint64_t> slot_tags_;         // Cluster: node tag per slot, 0 = unknown
  std::atomic<bool> slots_stale_{true};

  std::timed_mutex discover_mu_;            // one discovery / slot refresh at a time
  size_t next_sentinel_ = 0;

  mutable std::mutex stats_mu_;
  Stats stats_;

  std::mutex refresh_mu_;
  std::condition_variable refresh_cv_;
  bool refresh_stop_ = false;
  bool refresh_requested_ = false;
  std::thread refresher_;

  std::unique_ptr<SentinelWatcher> watcher_;
};

}  // namespace dlb::redis
