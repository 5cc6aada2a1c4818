#include "redis/slot.h"

#include <array>
#include <unordered_map>

namespace dlb::redis {
namespace {

constexpr std::array<uint16_t, 256> MakeTable() {
  std::array<uint16_t, 256> t{};
  for (int i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b) {
      crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    t[static_cast<size_t>(i)] = crc;
  }
  return t;
}

constexpr std::array<uint16_t, 256> kTable = MakeTable();

}  // namespace

uint16_t Crc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc = static_cast<uint16_t>((crc << 8) ^ kTable[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

std::string_view HashTag(std::string_view key) {
  const size_t open = key.find('{');
  if (open == std::string_view::npos) return {};
  const size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return {};
  return key.substr(open, close - open + 1);
}

uint16_t KeySlot(std::string_view key) {
  if (const std::string_view tag = HashTag(key); !tag.empty()) key = tag.substr(1, tag.size() - 2);
  return static_cast<uint16_t>(Crc16(key) & (kClusterSlots - 1));
}

std::string SettleRoundKey(std::string_view participant_id, size_t call_index, std::string_view slot_key) {
  std::string key = "dlb:";
  if (const std::string_view tag = HashTag(slot_key); !tag.empty()) {
    key += tag;
    key += ':';
  }
  key += "round:";
  key += participant_id;
  key += ':';
  key += std::to_string(call_index);
  return key;
}

std::vector<LeaseSlotGroup> GroupLeaseItemsBySlot(std::span<const LeaseItem> items) {
  std::vector<LeaseSlotGroup> groups;
  std::unordered_map<uint16_t, size_t> where;
  for (size_t i = 0; i < items.size(); ++i) {
    const uint16_t slot = KeySlot(items[i].key);
    auto [it, fresh] = where.emplace(slot, groups.size());
    if (fresh) groups.push_back({.slot = slot, .indices = {}});
    groups[it->second].indices.push_back(i);
  }
  return groups;
}

}  // namespace dlb::redis
