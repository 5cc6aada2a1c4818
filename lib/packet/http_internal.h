// Internal to the packet library and its tests: which chunk scanner the head parser
// uses (chosen once from the CPU's features; tests force each one to check them all).
#pragma once

namespace dlb::packet::internal {

enum class HeadScanner { kAuto, kSse2, kAvx2, kAvx512 };

// Not thread-safe: for tests, before any parsing. False if the CPU lacks the feature.
bool ForceHeadScanner(HeadScanner scanner);

}  // namespace dlb::packet::internal
