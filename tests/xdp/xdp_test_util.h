// Running the XDP program on test frames (bpf_prog_test_run_opts) and reading frames
// back with the packet engine's parser, independent of the BPF code.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sched.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../packet/frames.h"
#include "dlb/packet/config.h"
#include "xdp_program.h"

namespace dlb::xdp::xdptest {

struct RunResult {
  int action = -1;                 // XDP_PASS, XDP_TX, XDP_DROP ...
  std::vector<uint8_t> frame;      // the frame after the program
};

// Runs the program once on `frame` on the calling CPU (tests pin themselves to one CPU
// so that per-CPU records are read from the right slot).
inline RunResult RunXdp(int prog_fd, const std::vector<uint8_t>& frame) {
  RunResult r;
  r.frame.assign(4096, 0);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.frame.data(),
              .data_size_in = static_cast<__u32>(frame.size()),
              .data_size_out = static_cast<__u32>(r.frame.size()), .repeat = 1);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) return r;
  r.action = static_cast<int>(opts.retval);
  r.frame.resize(opts.data_size_out);
  return r;
}

// The client's SYN of the flow `data` is sent on (its ISN one below data.seq): the
// program follows client-to-server flows from their SYN and refuses data of flows it has
// not seen open.
inline std::vector<uint8_t> SynOf(const packet::testing::SegmentSpec& data) {
  packet::testing::SegmentSpec syn = data;
  syn.seq = data.seq - 1;
  syn.ack = 0;
  syn.flags = 0x02;
  syn.payload.clear();
  return packet::testing::BuildSegment(syn);
}

// Opens the flow of `data` with its SYN, then runs `data` on it.
inline RunResult RunXdpOnNewFlow(int prog_fd, const packet::testing::SegmentSpec& data) {
  const RunResult syn = RunXdp(prog_fd, SynOf(data));
  if (syn.action != XDP_PASS) return syn;
  return RunXdp(prog_fd, packet::testing::BuildSegment(data));
}

inline int PinToCpu0() {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  return sched_setaffinity(0, sizeof set, &set);
}

}  // namespace dlb::xdp::xdptest
