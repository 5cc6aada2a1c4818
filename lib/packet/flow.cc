#include "flow.h"

#include <cstring>

namespace dlb::packet::internal {

bool ReassemblyPool::Init(Allocator& allocator, uint32_t count, uint32_t buffer_bytes) {
  allocator_ = &allocator;
  count_ = count;
  bytes_ = (buffer_bytes + 63) & ~63u;
  words_ = bytes_ / 64;
  if (count == 0) return true;
  data_ = static_cast<uint8_t*>(allocator.Allocate(size_t(count) * bytes_, 64));
  bits_ = static_cast<uint64_t*>(allocator.Allocate(size_t(count) * words_ * 8, 64));
  free_ = static_cast<int32_t*>(allocator.Allocate(size_t(count) * sizeof(int32_t), 64));
  owner_ = static_cast<FlowSlot**>(allocator.Allocate(size_t(count) * sizeof(FlowSlot*), 64));
  since_ns_ = static_cast<int64_t*>(allocator.Allocate(size_t(count) * sizeof(int64_t), 64));
  if (!data_ || !bits_ || !free_ || !owner_ || !since_ns_) return false;
  for (uint32_t i = 0; i < count; ++i) {
    owner_[i] = nullptr;
    since_ns_[i] = 0;
  }
  std::memset(bits_, 0, size_t(count) * words_ * 8);
  for (uint32_t i = 0; i < count; ++i) free_[i] = static_cast<int32_t>(count - 1 - i);
  free_top_ = count;
  return true;
}

void ReassemblyPool::Destroy() {
  if (allocator_ == nullptr) return;
  if (data_) allocator_->Free(data_);
  if (bits_) allocator_->Free(bits_);
  if (free_) allocator_->Free(free_);
  if (owner_) allocator_->Free(owner_);
  if (since_ns_) allocator_->Free(since_ns_);
  owner_ = nullptr;
  since_ns_ = nullptr;
  data_ = nullptr;
  bits_ = nullptr;
  free_ = nullptr;
  allocator_ = nullptr;
}

int32_t ReassemblyPool::Acquire(FlowSlot* owner, int64_t now_ns) {
  if (free_top_ == 0) return -1;
  const int32_t index = free_[--free_top_];
  owner_[index] = owner;
  since_ns_[index] = now_ns;
  return index;
}

void ReassemblyPool::Release(int32_t index) {
  // A released buffer's bitmap is cleared here, so that Acquire hands out an empty one.
  std::memset(Bits(index), 0, size_t(words_) * 8);
  owner_[index] = nullptr;
  free_[free_top_++] = index;
}

void ReassemblyPool::Write(int32_t index, uint32_t off, const uint8_t* src, uint32_t len) {
  uint8_t* data = Data(index);
  uint64_t* bits = Bits(index);
  const uint32_t end = off + len;
  uint32_t pos = off;
  while (pos < end) {
    const uint32_t w = pos / 64;
    const uint32_t lo = pos % 64;
    const uint32_t hi = (end - w * 64) < 64 ? (end - w * 64) : 64;  // exclusive, in word
    const uint64_t mask = (hi == 64 ? ~uint64_t{0} : ((uint64_t{1} << hi) - 1)) & (~uint64_t{0} << lo);
    const uint64_t present = bits[w] & mask;
    if (present == 0) {
      std::memcpy(data + pos, src + (pos - off), hi - lo);
    } else if (present != mask) {
      for (uint32_t b = lo; b < hi; ++b) {
        if (!(bits[w] >> b & 1)) data[w * 64 + b] = src[w * 64 + b - off];
      }
    }  // all present: the first copy stays
    bits[w] |= mask;
    pos = w * 64 + hi;
  }
}

uint32_t ReassemblyPool::ContiguousEnd(int32_t index, uint32_t from) const {
  const uint64_t* bits = Bits(index);
  uint32_t w = from / 64;
  if (w >= words_) return bytes_;
  uint64_t absent = ~bits[w] & (~uint64_t{0} << (from % 64));
  while (absent == 0) {
    if (++w == words_) return bytes_;
    absent = ~bits[w];
  }
  return w * 64 + static_cast<uint32_t>(__builtin_ctzll(absent));
}

bool ReassemblyPool::AnyFrom(int32_t index, uint32_t from) const {
  const uint64_t* bits = Bits(index);
  uint32_t w = from / 64;
  if (w >= words_) return false;
  if (bits[w] & (~uint64_t{0} << (from % 64))) return true;
  for (++w; w < words_; ++w) {
    if (bits[w]) return true;
  }
  return false;
}

void ReassemblyPool::Clear(int32_t index, uint32_t from, uint32_t to) {
  uint64_t* bits = Bits(index);
  if (to > bytes_) to = bytes_;
  for (uint32_t pos = from; pos < to;) {
    const uint32_t w = pos / 64;
    const uint32_t lo = pos % 64;
    const uint32_t hi = (to - w * 64) < 64 ? (to - w * 64) : 64;
    const uint64_t mask = (hi == 64 ? ~uint64_t{0} : ((uint64_t{1} << hi) - 1)) & (~uint64_t{0} << lo);
    bits[w] &= ~mask;
    pos = w * 64 + hi;
  }
}

void ReassemblyPool::ShiftLeft(int32_t index, uint32_t n) {
  uint8_t* data = Data(index);
  uint64_t* bits = Bits(index);
  std::memmove(data, data + n, bytes_ - n);
  const uint32_t ws = n / 64;
  const uint32_t bs = n % 64;
  for (uint32_t w = 0; w < words_; ++w) {
    const uint32_t src = w + ws;
    uint64_t v = src < words_ ? bits[src] >> bs : 0;
    if (bs != 0 && src + 1 < words_) v |= bits[src + 1] << (64 - bs);
    bits[w] = v;
  }
}

}  // namespace dlb::packet::internal
