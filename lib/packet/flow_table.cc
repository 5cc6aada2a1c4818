// The flow table's memory: taken once at start, returned when the engine goes.
#include "flow_table.h"

#include <new>

namespace dlb::packet::internal {

FlowTable::~FlowTable() {
  if (slots_ != nullptr) allocator_->Free(slots_);
  if (responses_ != nullptr) allocator_->Free(responses_);
  if (proxy_clients_ != nullptr) allocator_->Free(proxy_clients_);
}

Status FlowTable::Init(Allocator& allocator, const SipKey& flow_key) {
  const PacketConfig& config = ctx_.config;
  allocator_ = &allocator;
  flow_key_ = flow_key;
  // Flow slots: a power of two with room to spare, so that the 8-slot window rarely
  // fills before max_flows are live.
  uint32_t slots = 16;
  while (slots < config.max_flows + config.max_flows / 2) slots <<= 1;
  slots_ = static_cast<FlowSlot*>(allocator.Allocate(size_t(slots) * sizeof(FlowSlot), 64));
  if (slots_ == nullptr) return Status::Unavailable("flow table: allocation failed");
  for (uint32_t i = 0; i < slots; ++i) new (&slots_[i]) FlowSlot();
  mask_ = slots - 1;
  responses_ = static_cast<ResponseSlot*>(allocator.Allocate(size_t(slots) * sizeof(ResponseSlot), 64));
  if (responses_ == nullptr) return Status::Unavailable("response table: allocation failed");
  for (uint32_t i = 0; i < slots; ++i) new (&responses_[i]) ResponseSlot();
  if (config.proxy_protocol != ProxyProtocol::kOff) {
    proxy_clients_ =
        static_cast<ClientAddress*>(allocator.Allocate(size_t(slots) * sizeof(ClientAddress), 64));
    if (proxy_clients_ == nullptr) return Status::Unavailable("PROXY client table: allocation failed");
    for (uint32_t i = 0; i < slots; ++i) new (&proxy_clients_[i]) ClientAddress();
  }
  if (!pool_.Init(allocator, config.reassembly_buffers, config.max_head_bytes)) {
    return Status::Unavailable("reassembly pool: allocation failed");
  }
  return Status::Ok();
}

size_t FlowTable::memory_bytes() const {
  return (size_t(mask_) + 1) * (sizeof(FlowSlot) + sizeof(ResponseSlot) +
                                (proxy_clients_ != nullptr ? sizeof(ClientAddress) : 0)) +
         pool_.memory_bytes();
}

}  // namespace dlb::packet::internal
