// The TC half of dlb-xdp's reject: ebpf/dlb_tc.bpf.c on the clsact ingress hook of the
// interface the XDP program runs on. While attached, the XDP program hands each 429 to
// it (struct dlb_xdp_tc_meta) instead of sending it with XDP_TX: the TC program clones
// the 429 to the client and turns the head into a RST to the local server, which frees
// the connection at once. Without it the server is reset at the client's next segment.
#pragma once

#include <cstdint>
#include <string>

#include "dlb/status.h"

struct dlb_tc_bpf;

namespace dlb::xdp {

// The filter's handle and priority on the ingress hook: fixed, so that a restarted
// agent replaces its predecessor's filter and --detach finds it after a crash.
inline constexpr uint32_t kTcHandle = 0xd1b;
inline constexpr uint32_t kTcPriority = 0xd1b;

class TcReject {
 public:
  TcReject() = default;
  ~TcReject();
  TcReject(const TcReject&) = delete;
  TcReject& operator=(const TcReject&) = delete;

  // Loads the TC program, attaches it to `ifindex`'s clsact ingress (creating the
  // clsact qdisc when there is none) and turns the hand-over on in the XDP program
  // whose fd is `xdp_prog_fd` (its dlb_tc_on map).
  Status Attach(int ifindex, int xdp_prog_fd);
  // Turns the hand-over off first (the XDP program answers with XDP_TX again), then
  // removes the filter, and the clsact qdisc if Attach created it.
  Status Detach();
  bool attached() const { return ifindex_ != 0; }

  // Outcomes summed over CPUs: clones sent to clients, RSTs to the server, failures.
  struct Counts {
    uint64_t clones = 0, server_resets = 0, failures = 0;
  };
  Counts ReadCounts() const;
  int prog_fd() const;

  // Removes a dlb-xdp TC filter from `iface` (after a crash of the agent): whether one
  // was there.
  static StatusOr<bool> DetachAll(const std::string& iface);

 private:
  Status SetHandOver(bool on);
  dlb_tc_bpf* skel_ = nullptr;
  int ifindex_ = 0;
  int tc_on_fd_ = -1;
  bool created_hook_ = false;
};

// The fd of the map named `name` used by the program `prog_fd` (-1 when none); the
// caller closes it.
int FindProgramMap(int prog_fd, const std::string& name);

}  // namespace dlb::xdp
