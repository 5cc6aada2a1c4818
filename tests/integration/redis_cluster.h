// A local Redis Cluster for integration tests and benchmarks: three masters (no
// replicas) started with RedisServer, joined with `redis-cli --cluster create`, all
// 16384 slots assigned. The constructor returns when every node reports cluster_state
// ok (bounded; throws std::runtime_error otherwise); the destructor stops the nodes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "redis_server.h"

namespace dlb::testing {

inline std::string Field(const std::string& info, const std::string& name) {
  const size_t at = info.find(name + ":");
  if (at == std::string::npos) return "";
  const size_t end = info.find_first_of("\r\n", at);
  return info.substr(at + name.size() + 1, end - at - name.size() - 1);
}

// A loopback port that is free right now (for a node's cluster bus).
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(fd);
  if (!ok) throw std::runtime_error("no free port");
  return ntohs(a.sin_port);
}

// Three masters, no replicas, all 16384 slots assigned.
class Cluster {
 public:
  Cluster() {
    for (int i = 0; i < 3; ++i) {
      RedisServerOptions o;
      // The bus port defaults to port + 10000, which overflows for high free ports.
      o.extra_args = {"--cluster-enabled", "yes", "--cluster-node-timeout", "5000", "--cluster-port",
                      std::to_string(FreePort())};
      nodes_.push_back(std::make_unique<RedisServer>(o));
    }
    std::string cmd = "redis-cli --cluster create";
    for (auto& n : nodes_) cmd += " 127.0.0.1:" + std::to_string(n->port());
    const std::string log = nodes_[0]->dir() + "/cluster-create.log";
    cmd += " --cluster-replicas 0 --cluster-yes >" + log + " 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::ifstream in(log);
      std::stringstream ss;
      ss << in.rdbuf();
      throw std::runtime_error("redis-cli --cluster create failed:\n" + ss.str());
    }
    const bool ok = WaitFor(
        [&] {
          for (auto& n : nodes_) {
            if (Field(n->Command("CLUSTER INFO").str, "cluster_state") != "ok") return false;
            // Every node knows every slot's owner.
            if (Field(n->Command("CLUSTER INFO").str, "cluster_slots_assigned") != "16384") return false;
            if (Field(n->Command("CLUSTER INFO").str, "cluster_known_nodes") != "3") return false;
          }
          return true;
        },
        std::chrono::milliseconds(30000), std::chrono::milliseconds(20));
    if (!ok) throw std::runtime_error("cluster did not reach state ok");
  }

  std::string Url() const {
    // Two seeds: the client finds the third node from the slot map.
    return "redis-cluster://127.0.0.1:" + std::to_string(nodes_[0]->port()) + ",127.0.0.1:" +
           std::to_string(nodes_[1]->port());
  }
  RedisServer& node(size_t i) { return *nodes_[i]; }
  std::string Id(size_t i) { return nodes_[i]->Command("CLUSTER MYID").str; }
  // Index of the node that owns `slot` according to node 0.
  size_t Owner(uint16_t slot) {
    const RedisValue slots = nodes_[0]->Command("CLUSTER SLOTS");
    for (const RedisValue& r : slots.elements) {
      if (r.elements[0].integer <= slot && slot <= r.elements[1].integer) {
        for (size_t i = 0; i < nodes_.size(); ++i) {
          if (r.elements[2].elements[1].integer == nodes_[i]->port()) return i;
        }
      }
    }
    throw std::runtime_error("slot " + std::to_string(slot) + " has no owner");
  }

  // Moves `slot` from node `from` to node `to` by hand, as redis-cli --cluster reshard
  // does, calling `between` after each key moved (the slot is then half migrated).
  template <typename F>
  void MigrateSlot(uint16_t slot, size_t from, size_t to, F between) {
    const std::string s = std::to_string(slot);
    Check(node(to).Command({"CLUSTER", "SETSLOT", s, "IMPORTING", Id(from)}));
    Check(node(from).Command({"CLUSTER", "SETSLOT", s, "MIGRATING", Id(to)}));
    for (;;) {
      const RedisValue keys = node(from).Command({"CLUSTER", "GETKEYSINSLOT", s, "1"});
      if (keys.elements.empty()) break;
      Check(node(from).Command({"MIGRATE", "127.0.0.1", std::to_string(node(to).port()), keys.elements[0].str,
                                "0", "5000"}));
      between();
    }
    // The new owner first, then the old one, then the third node (as redis-cli does).
    Check(node(to).Command({"CLUSTER", "SETSLOT", s, "NODE", Id(to)}));
    Check(node(from).Command({"CLUSTER", "SETSLOT", s, "NODE", Id(to)}));
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (i != from && i != to) Check(node(i).Command({"CLUSTER", "SETSLOT", s, "NODE", Id(to)}));
    }
  }

  static void Check(const RedisValue& v) {
    if (v.is_error()) throw std::runtime_error("cluster command: " + v.Describe());
  }

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace dlb::testing
