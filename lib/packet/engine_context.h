// Internal to the engine: what its units (the flow table, the stream reader, the burst
// pipeline in engine.cc) share. One per engine; read and bumped by the owning core only.
#pragma once

#include <cstdint>

#include "dlb/packet/config.h"
#include "dlb/packet/engine.h"
#include "dlb/packet/http.h"

namespace dlb::packet::internal {

struct EngineContext {
  PacketConfig config;
  HeadOptions head_options;  // from config (its identity_header views config's)
  EngineCounters counters;
  int64_t now_ns = 0;  // the clock of the burst being processed
};

}  // namespace dlb::packet::internal
