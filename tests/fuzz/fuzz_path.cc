// libFuzzer target: the normalized path (dlb/path.h). For any target and either flag:
// the result is never longer than the target (or "/"), normalizing it again changes
// nothing, it is a fixed point by dlb_path_is_normal, and dlb_path_is_normal of the
// input holds exactly when normalizing the input leaves it unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dlb/path.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint32_t flags = (data[0] & 1) ? DLB_PATH_FOLD_CASE : 0;
  std::vector<uint8_t> in(data + 1, data + size);  // exact size for ASan
  const uint32_t len = static_cast<uint32_t>(in.size());
  std::vector<uint8_t> once(len + 1);
  const int n = dlb_path_normalize(in.data(), len, once.data(), static_cast<uint32_t>(once.size()), flags);
  const bool unchanged = n >= 0 && static_cast<uint32_t>(n) == len && (len == 0 || std::memcmp(once.data(), in.data(), len) == 0);
  if ((dlb_path_is_normal(in.data(), len, flags) != 0) != unchanged) std::abort();
  if (n < 0) {
    if (n != DLB_PATH_ERR_TOO_LONG && n != DLB_PATH_ERR_BAD_ESCAPE) std::abort();
    return 0;
  }
  if (static_cast<uint32_t>(n) > (len > 1 ? len : 1)) std::abort();
  once.resize(static_cast<size_t>(n));
  std::vector<uint8_t> twice(once.size() + 1);
  const int m = dlb_path_normalize(once.data(), static_cast<uint32_t>(once.size()), twice.data(),
                                   static_cast<uint32_t>(twice.size()), flags);
  if (m != n || (n > 0 && std::memcmp(twice.data(), once.data(), once.size()) != 0)) std::abort();
  if (!dlb_path_is_normal(once.data(), static_cast<uint32_t>(once.size()), flags)) std::abort();
  return 0;
}
