// The header names the head parser looks at besides the identity header: name (lower
// case), length and id in one table. Pass 1 (head_classify.cc) marks the lines whose
// name is as long as one of them; OnHeader (http.cc) then compares the name. A new
// name here also needs its XorLf in scan_avx512.h (a static_assert there counts them)
// and its handling in OnHeader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

namespace dlb::packet {

enum class KnownHeader : uint8_t { kHost, kContentLength, kTransferEncoding };

struct KnownHeaderName {
  std::string_view name;  // lower case; its size() is the length pass 1 looks for
  KnownHeader id;
};

inline constexpr KnownHeaderName kKnownHeaders[] = {
    {"host", KnownHeader::kHost},
    {"content-length", KnownHeader::kContentLength},
    {"transfer-encoding", KnownHeader::kTransferEncoding},
};

// Pass 1 shifts line starts by these lengths within one 64-bit word.
static_assert([] {
  for (const KnownHeaderName& k : kKnownHeaders) {
    if (k.name.empty() || k.name.size() >= 63) return false;
  }
  return true;
}());

namespace detail {
template <size_t... I>
constexpr bool IsKnownHeaderLength(size_t name_bytes, std::index_sequence<I...>) {
  return ((name_bytes == kKnownHeaders[I].name.size()) || ...);
}
}  // namespace detail

// Whether a name of `name_bytes` bytes may be a known header (one compare per name,
// unrolled: this is asked per header line).
constexpr bool IsKnownHeaderLength(size_t name_bytes) {
  return detail::IsKnownHeaderLength(name_bytes, std::make_index_sequence<std::size(kKnownHeaders)>());
}

}  // namespace dlb::packet
