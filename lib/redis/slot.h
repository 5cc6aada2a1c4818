// Redis Cluster key slots: CRC16-CCITT (XModem: poly 0x1021, init 0, no reflection)
// of the key, or of its hash tag, mod 16384. The hash tag is the part between the
// first '{' and the next '}' when that part is non-empty; keys `dlb:{<digest>}:<rule>`
// therefore put all rules of one user in one slot.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redis/lease_script.h"

namespace dlb::redis {

inline constexpr int kClusterSlots = 16384;

uint16_t Crc16(std::string_view data);
// The hash tag of `key`, braces included ("{...}"), when the part between the first '{'
// and the next '}' is non-empty; empty otherwise (the whole key is hashed).
std::string_view HashTag(std::string_view key);
// The cluster slot of `key`, in [0, 16384).
uint16_t KeySlot(std::string_view key);

// Items of one lease call that a Redis Cluster can run atomically: all keys in `slot`.
// `indices` are positions in the caller's item list, in their original order.
struct LeaseSlotGroup {
  uint16_t slot = 0;
  std::vector<size_t> indices;
};

// Groups `items` by key slot, in order of each slot's first item. A lease call over
// keys of several users names several slots; Redis Cluster refuses that (CROSSSLOT),
// so a caller on Cluster issues one AppendLeaseCall per group (standalone and
// Sentinel take any mix in one call).
std::vector<LeaseSlotGroup> GroupLeaseItemsBySlot(std::span<const LeaseItem> items);

// The key of one settle call's round record (lease_script.h): `dlb:round:<participant>:
// <call>`, or on Cluster `dlb:{tag}:round:...` with the hash tag of `slot_key` (any key
// of the call: they share one slot), so that the call's keys never cross a slot.
std::string SettleRoundKey(std::string_view participant_id, size_t call_index, std::string_view slot_key = {});

}  // namespace dlb::redis
