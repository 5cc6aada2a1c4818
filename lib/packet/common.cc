// Small shared pieces: the heap allocator.
#include <sys/mman.h>

#include <cstring>

#include "dlb/packet/allocator.h"

namespace dlb::packet {

void* HeapAllocator::Allocate(size_t size_bytes, size_t align_bytes) {
  // Tables are probed at random: with 4 KiB pages nearly every probe of a large table is
  // also a TLB miss (and a prefetch then stalls on the page walk). Large tables are
  // aligned to 2 MiB and asked to be backed by transparent huge pages, as the
  // appliance's hugepage memory is.
  constexpr size_t kHugePageBytes = size_t{2} << 20;
  const bool huge = size_bytes >= kHugePageBytes;
  if (huge) align_bytes = kHugePageBytes;
  if (align_bytes < 64) align_bytes = 64;
  const size_t rounded = (size_bytes + align_bytes - 1) & ~(align_bytes - 1);
  void* p = std::aligned_alloc(align_bytes, rounded == 0 ? align_bytes : rounded);
  if (p == nullptr) return nullptr;
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: 4 KiB pages still work
  std::memset(p, 0, rounded);
  return p;
}

HeapAllocator& HeapAllocator::Instance() {
  static HeapAllocator allocator;
  return allocator;
}

}  // namespace dlb::packet
