// The chunk scanners of the head parser, one header per instruction set (as DPDK's
// l3fwd keeps them): the baseline is SSE2 on x86-64 (or any target with SSE2) and a
// byte-at-a-time scanner elsewhere; on x86-64, AVX2 and AVX-512BW variants are picked
// at start when the CPU has them (head_classify.cc).
#pragma once

#include "scan_masks.h"

#if defined(__SSE2__)
#include "scan_sse2.h"
namespace dlb::packet::scan {
using ScanBaseline = ScanSse2;
}
#else
#include "scan_scalar.h"
namespace dlb::packet::scan {
using ScanBaseline = ScanScalar;
}
#endif

#if defined(__x86_64__)
#include "scan_avx2.h"
#include "scan_avx512.h"
#endif
