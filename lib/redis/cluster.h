// Redis Cluster protocol pieces used by the pool: which key routes a command, the
// slot map from CLUSTER SLOTS, and the MOVED / ASK redirections.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "dlb/status.h"
#include "redis/url.h"

namespace dlb::redis {

// The key whose slot decides where a complete RESP command runs: the first key of
// EVAL/EVALSHA/FCALL (none when numkeys is 0), nothing for server commands (PING,
// SCRIPT, CLUSTER, ...), else the first argument. nullopt also for malformed RESP.
std::optional<std::string_view> RoutingKey(std::string_view command);

struct SlotRange {
  uint16_t first = 0;
  uint16_t last = 0;   // inclusive
  HostPort master;
};

// The master of each slot range from a CLUSTER SLOTS reply. An empty host in the
// reply means "the node you asked", given as `asked`.
StatusOr<std::vector<SlotRange>> ParseClusterSlots(const redisReply* r, const HostPort& asked);

struct Redirect {
  bool ask = false;     // ASK: this command only, after ASKING; MOVED: the slot moved
  uint16_t slot = 0;
  HostPort target;
};

// A "-MOVED <slot> <host>:<port>" or "-ASK ..." error reply; nullopt for any other.
// An empty host means the host of the node that answered (`asked`).
std::optional<Redirect> ParseRedirect(const redisReply* r, const HostPort& asked);

// Error replies after which the command did not run and may be sent again (to the
// same node after a pause, or after a fresh slot map).
bool IsRetryableClusterError(const redisReply* r);

}  // namespace dlb::redis
