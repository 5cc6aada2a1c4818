// The floor programs that bench_xdp runs beside dlb_xdp (tests/bench/xdp/xdp_floor.bpf.c)
// in the real kernel: their scan finds exactly the end of the head (the first LF after an
// LF or after CR LF, within 640 bytes), checked against a byte-at-a-time specification
// on generated heads of every length and on random bytes; so the floor they measure is
// that of a scan that does the whole job.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "../packet/frames.h"
#include "xdp_floor.skel.h"
#include "xdp_test_util.h"

namespace dlb::xdp {
namespace {

using packet::testing::BuildSegment;
using packet::testing::SegmentSpec;
using xdptest::RunXdp;

constexpr size_t kScanBytes = 640;

// The specification: whether the head ends within the first 640 bytes of the payload.
// Payloads below 8 bytes are not scanned (no head is that short).
bool HeadEnds(const std::string& p) {
  if (p.size() < 8) return false;
  for (size_t i = 1; i < p.size() && i < kScanBytes; ++i) {
    if (p[i] == '\n' && (p[i - 1] == '\n' || (p[i - 1] == '\r' && i >= 2 && p[i - 2] == '\n'))) return true;
  }
  return false;
}

class XdpFloorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    floor_ = xdp_floor_bpf__open_and_load();
    ASSERT_NE(floor_, nullptr) << "cannot load xdp_floor.bpf.o";
  }
  void TearDown() override { xdp_floor_bpf__destroy(floor_); }

  // Every head-scanning program on the payload, each against the specification.
  void Expect(const std::string& payload) {
    SegmentSpec s;
    s.payload = payload;
    const std::vector<uint8_t> frame = BuildSegment(s);
    const int want = HeadEnds(payload) ? XDP_PASS : XDP_DROP;
    for (bpf_program* p : {floor_->progs.floor_scan, floor_->progs.floor_all}) {
      ASSERT_EQ(RunXdp(bpf_program__fd(p), frame).action, want)
          << bpf_program__name(p) << " on " << payload.size() << " bytes: " << ::testing::PrintToString(payload);
    }
  }

  xdp_floor_bpf* floor_ = nullptr;
};

TEST_F(XdpFloorTest, ScanFindsTheEndOfHeadsOfEveryLength) {
  for (size_t n = 8; n <= 700; ++n) {
    std::string crlf = "GET / HTTP/1.1\r\nHost: a\r\nX-User-ID: ";
    crlf.resize(n > 4 ? n - 4 : 0, 'u');
    crlf += "\r\n\r\n";
    std::string lf;   // the same lines ended by LF alone: "\n\n" ends the head too
    for (char c : crlf) {
      if (c != '\r') lf += c;
    }
    Expect(crlf);
    Expect(crlf.substr(0, crlf.size() - 1));   // no end: the last LF missing
    Expect(crlf + "body\n\nmore");
    Expect(lf);
  }
}

TEST_F(XdpFloorTest, ScanAgreesWithTheSpecificationOnRandomBytes) {
  std::mt19937 rng(7);
  const std::string alphabet = "ab: \r\n\v\t";
  for (int i = 0; i < 4000; ++i) {
    std::string p(1 + rng() % 700, 'a');
    for (char& c : p) c = alphabet[rng() % alphabet.size()];
    Expect(p);
  }
}

}  // namespace
}  // namespace dlb::xdp
