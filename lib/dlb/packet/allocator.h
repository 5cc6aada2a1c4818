// Memory for the per-core tables, injected so that the appliance can hand out hugepage
// memory (rte_malloc_socket) while tests, fuzzers and the XDP agent use the heap.
// Tables take all their memory at construction; nothing on the data plane allocates.
#pragma once

#include <cstddef>
#include <cstdlib>

namespace dlb::packet {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Zeroed memory of `size_bytes`, aligned to `align_bytes` (a power of two >= 64), or
  // nullptr when none is left.
  virtual void* Allocate(size_t size_bytes, size_t align_bytes) = 0;
  virtual void Free(void* p) = 0;
};

// The process heap (aligned_alloc + memset).
class HeapAllocator final : public Allocator {
 public:
  void* Allocate(size_t size_bytes, size_t align_bytes) override;
  void Free(void* p) override { std::free(p); }
  static HeapAllocator& Instance();
};

}  // namespace dlb::packet
