// Pass 1 of the head parser (ParseRequestHead, http.cc): 64-byte chunks of a request
// head classified into bit masks per chunk, up to the empty line that ends the head.
// Internal to the packet library; the scanners are in scan.h, the known header names
// in header_names.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dlb::packet::internal {

inline constexpr size_t kMaxChunks = (65536 + 63) / 64;  // max_head_bytes <= 64 KiB

// Per chunk, side by side (separate arrays of 8 KiB each would put a chunk's words
// 8 KiB apart).
struct ChunkBits {
  uint64_t lf;
  uint64_t colon;        // full pass (and the lean pass's first and last chunks)
  uint64_t ctl;          // as colon
  uint64_t start;        // first byte of each header line
  uint64_t first_colon;  // each header line's first ':' (full pass only)
  // The first ':' of each header line whose name is as long as a known header's
  // (header_names.h) or (when below 64) the identity header's: the lines we may look at.
  uint64_t wanted;
};
inline constexpr size_t kChunkWords = sizeof(ChunkBits) / sizeof(uint64_t);

struct HeadMasks {
  ChunkBits c[kMaxChunks];
};

// One mask of every chunk, as an array indexed by chunk.
struct MaskRow {
  const uint64_t* first;
  uint64_t operator[](size_t c) const { return first[c * kChunkWords]; }
};
inline MaskRow Row(const HeadMasks& hm, uint64_t ChunkBits::*field) { return MaskRow{&(hm.c[0].*field)}; }

struct Classified {
  size_t end_lf = SIZE_MAX;  // the LF of the empty line that ends the head
  bool bad = false;          // a NUL or a bare CR in the head (full pass)
  size_t header_lines = 0;
  // Some header line may be malformed (a name with whitespace or controls, no colon,
  // an empty name, a folded line): walk the lines one by one to say which. The lean
  // pass also sets it for a NUL, a bare CR or no end found: then the full pass runs.
  bool suspect = false;
  // The lean pass: bit c set when chunk c holds a wanted colon (heads of < 64 chunks).
  bool chunks_known = false;
  uint64_t wanted_chunks = 0;
};

// Classifies data[0, limit) (the head and what follows, limit <= 64 KiB) into `hm`:
// the lean pass first, then, if it saw anything unusual (or the identity name is 64
// bytes or more), the full one; `full`: the full one only. `id_bytes`: the identity
// header name's length. One instance per chunk scanner; g_classify is the one picked
// for this CPU at start (ForceHeadScanner, http_internal.h, changes it for tests).
using ClassifyFn = Classified (*)(const uint8_t* data, size_t limit, size_t id_bytes, HeadMasks& hm, bool full);
extern ClassifyFn g_classify;

inline Classified ClassifyHead(const uint8_t* data, size_t limit, size_t id_bytes, HeadMasks& hm, bool full) {
  return g_classify(data, limit, id_bytes, hm, full);
}

}  // namespace dlb::packet::internal
