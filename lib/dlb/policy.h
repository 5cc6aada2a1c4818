// Accuracy modes and failure policies (docs/design.md, "Accuracy modes" and "Failure
// policy"): one definition for the library, the packet engine and the agents.
#pragma once

#include <cstdint>
#include <string_view>

#include "dlb/status.h"

namespace dlb {

// strict: one atomic store call per decision; synced: against a lease of the global
// bucket; local: this process's (or core's) own buckets only.
enum class Mode : uint8_t { kStrict, kLocal, kSynced };
// What decides while the store is unreachable.
enum class FailurePolicy : uint8_t { kLocal, kOpen, kClosed };

const char* ModeName(Mode m);
const char* FailurePolicyName(FailurePolicy p);
StatusOr<Mode> ParseMode(std::string_view s);
StatusOr<FailurePolicy> ParseFailurePolicy(std::string_view s);

}  // namespace dlb
