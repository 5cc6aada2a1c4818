// Small shared pieces: the heap allocator, enum names.
#include <sys/mman.h>

#include <cstring>

#include "dlb/packet/allocator.h"
#include "dlb/packet/config.h"

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

const char* ActionName(Action a) {
  switch (a) {
    case Action::kReject: return "reject";
    case Action::kDrop: return "drop";
    case Action::kShadow: return "shadow";
  }
  return "?";
}
const char* OverflowPolicyName(OverflowPolicy p) {
  switch (p) {
    case OverflowPolicy::kAllow: return "allow";
    case OverflowPolicy::kLimit: return "limit";
  }
  return "?";
}
const char* MissingIdentityPolicyName(MissingIdentityPolicy p) {
  switch (p) {
    case MissingIdentityPolicy::kSourceIp: return "source_ip";
    case MissingIdentityPolicy::kLimit: return "limit";
    case MissingIdentityPolicy::kPass: return "pass";
  }
  return "?";
}
const char* HeadPolicyName(HeadPolicy p) {
  switch (p) {
    case HeadPolicy::kForward: return "forward";
    case HeadPolicy::kDrop: return "drop";
    case HeadPolicy::kReset: return "reset";
  }
  return "?";
}
const char* FramePolicyName(FramePolicy p) {
  switch (p) {
    case FramePolicy::kForward: return "forward";
    case FramePolicy::kDrop: return "drop";
  }
  return "?";
}

}  // namespace dlb::packet
