// Configuration of the packet engine: plain structs with designated-initializer
// defaults (docs/style.md: never filled by position). Turned into compiled rules and sized
// tables once at start (rules.h, engine.h); nothing here is read per packet as text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/policy.h"

namespace dlb::packet {

// How a rule's decisions are made (dlb/policy.h). The engine always decides in its own
// shard; the mode tells the appliance's sync layer what to do with the shard's state
// (strict: one store call per request, synced: leases, local: none).
using Mode = ::dlb::Mode;
// What a limited request gets.
enum class Action : uint8_t {
  kReject,  // 429 to the client (Connection: close), RST to the server
  kDrop,    // drop the segment that completes the head; the client retransmits it
  kShadow,  // count only (dry run)
};
// What the rule does while the store is unreachable (dlb/policy.h).
using FailurePolicy = ::dlb::FailurePolicy;
// A new key that finds its shard full (no slot without level in its probe window).
enum class OverflowPolicy : uint8_t {
  kAllow,   // fail open: admit without a bucket
  kLimit,   // fail closed: treat as limited (the rule's action applies)
};
// A head without the identity header (or with an empty value).
enum class MissingIdentityPolicy : uint8_t {
  kSourceIp,  // key the bucket by the client's address (IPv4 or IPv6)
  kLimit,     // treat as limited (the rule's action applies)
  kPass,      // forward without a decision
};
// A head that is not HTTP, malformed or too large, where a decision cannot be made.
enum class HeadPolicy : uint8_t {
  kForward,  // forward, stop inspecting this connection
  kDrop,     // drop the segment, keep inspecting
  kReset,    // RST to both sides
};
// IP fragments (not reassembled by the engine) and malformed frames.
enum class FramePolicy : uint8_t { kForward, kDrop };

inline constexpr int kMaxTrustedProxies = 8;

// Whether client flows start with a PROXY protocol header (dlb/packet/proxy_protocol.h),
// and which versions are accepted.
enum class ProxyProtocol : uint8_t { kOff, kV1, kV2, kAny };

struct RuleConfig {
  // A token of [A-Za-z0-9_.-], at most 64 bytes: it appears in the Redis key, in metric
  // labels and quoted in the RateLimit headers.
  std::string name;
  // Match conditions; empty matches anything. The method is compared exactly (methods
  // are case-sensitive), the host case-insensitively without its port, the path as a
  // byte prefix of the request's normalized path (dlb/path.h, docs/paths.md); the
  // prefix itself must be a normalized path.
  std::string method;
  std::string path_prefix;
  std::string host;
  // Compare paths with ASCII letters folded to lower case, for servers that route
  // case-insensitively.
  bool fold_case = false;
  dlb::BucketSpec bucket = {.capacity = 100, .leak_rate_per_s = 10.0};
  int64_t cost = 1;
  Mode mode = Mode::kSynced;
  Action action = Action::kReject;
  FailurePolicy on_store_failure = FailurePolicy::kLocal;
  // A full shard fails to the rule's limit by default: a quota rule (leak rate 0) never
  // frees its entries, and admitting new keys without a bucket would be a bypass.
  OverflowPolicy on_table_full = OverflowPolicy::kLimit;
};

// The rule that applies when no other matches: named "default", the defaults above.
inline RuleConfig DefaultRuleConfig() {
  RuleConfig r;
  r.name = "default";
  return r;
}

struct PacketConfig {
  // TCP destination ports of the HTTP services; other traffic is forwarded untouched.
  std::vector<uint16_t> service_ports = {80};

  std::string identity_header = "X-User-ID";
  uint32_t max_identity_bytes = 256;
  MissingIdentityPolicy on_missing_identity = MissingIdentityPolicy::kSourceIp;
  // The client address that `source_ip` keys by, behind proxies (docs/identity.md).
  // 0: the packet's source address. N >= 1: the N trusted proxies in front each append
  // the address they received from to X-Forwarded-For, so the client is the N-th
  // address from the right of the last X-Forwarded-For line; a head without one is
  // treated as having no client address (limited, as on_missing_identity: limit).
  uint8_t trusted_proxies = 0;
  // Every client flow on a service port begins with a PROXY protocol header of an
  // accepted version (kOff: none may). Its source address is the client of the flow's
  // heads, under trusted_proxies 0; with trusted_proxies N >= 1, X-Forwarded-For names
  // the client and the header is only checked and forwarded (docs/identity.md). A flow
  // without a valid header is refused (on_malformed_head; forward counts as reset).
  ProxyProtocol proxy_protocol = ProxyProtocol::kOff;

  uint32_t max_head_bytes = 8192;       // also the reassembly buffer size
  uint32_t max_header_lines = 128;
  uint8_t max_ipv6_extension_headers = 8;

  // A connection whose first bytes are not HTTP is left alone (on_not_http applies only
  // there: not-HTTP after a request is a desync and resets the connection); heads that
  // are malformed or too large are refused, since a server that accepts what we could
  // not parse would admit a request nobody counted.
  HeadPolicy on_not_http = HeadPolicy::kForward;
  HeadPolicy on_malformed_head = HeadPolicy::kReset;
  HeadPolicy on_oversize_head = HeadPolicy::kReset;
  // Data of a connection whose start the engine did not see (joined mid-stream, or no
  // flow slot): where its heads begin is unknown, so it is refused. kReset or kDrop;
  // kForward is rejected at Create.
  HeadPolicy on_untracked_flow = HeadPolicy::kReset;
  // IP fragments and malformed frames that may be for a service port (TCP to one, or
  // ports unknown): dropped, since Linux may accept what the engine cannot inspect.
  FramePolicy on_fragment = FramePolicy::kDrop;
  FramePolicy on_malformed_frame = FramePolicy::kDrop;
  // Segments the engine reads (client segments with data, SYN, FIN or RST to a service
  // port; the servers' segments with data or control flags) are dropped when their IPv4
  // header or TCP checksum is wrong, unless the NIC reported them good: Linux drops
  // them, and a segment the server never took must not move the stream the engine
  // follows. Off only where every frame was checked before (a port whose NIC verifies
  // and whose driver does not report it), or for frames carrying partial checksums of a
  // local sender's offload (veth with tx checksumming on).
  bool verify_checksums = true;

  // Per-core flow table and reassembly pool.
  uint32_t max_flows = 65536;
  uint32_t reassembly_buffers = 1024;
  int64_t flow_idle_timeout_ns = 120'000'000'000;  // 120 s: beyond common keep-alives
  // A partial head holding a reassembly buffer this long (since the head started) may
  // lose the buffer when the pool runs out; its connection is then reset. Bounds how
  // long a few stalled connections can starve split heads of buffers.
  int64_t partial_head_timeout_ns = 5'000'000'000;

  // Per-core bucket shard: sized for this many users at start.
  uint64_t shard_users = 1'000'000;

  std::vector<RuleConfig> rules;
  RuleConfig default_rule = DefaultRuleConfig();
};

}  // namespace dlb::packet
