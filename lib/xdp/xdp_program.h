// The XDP program's handle in the agent: the libbpf skeleton (one cleanup path),
// attachment through libxdp's dispatcher (so other XDP programs on the interface stay),
// the maps written from a compiled config, the control program that changes user
// buckets atomically, and the per-CPU counters summed on read.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/key.h"
#include "dlb/status.h"
#include "dlb_xdp.h"
#include "xdp_config.h"

struct dlb_xdp_bpf;
struct xdp_program;

namespace dlb::xdp {

enum class AttachMode { kNative, kSkb };

// Which build of the program is loaded (docs/xdp.md, "The verifier"): the full one, or
// the small variant (dlb_xdp_small.bpf.o: heads up to DLB_XDP_SMALL_SCAN_BYTES, longer
// ones refused by on_oversize_head) for kernels whose verifier rejects the full one.
// kAuto loads the full one and falls back to the small one only when the kernel rejects
// the full one for the verifier's limits (IsVerifierLimit).
enum class ProgramVariant { kAuto, kFull, kSmall };
const char* VariantName(ProgramVariant v);
// "auto", "full" or "small"; InvalidArgument otherwise.
StatusOr<ProgramVariant> ParseVariant(std::string_view name);

// Whether a failed load (err: errno, either sign) whose verifier log is `log` is the
// verifier's limit, which the small variant may stay under: E2BIG, or EACCES/EINVAL with
// a log that says the program is too large, too complex or over a limit. Any other
// failure (no permission, a helper the kernel lacks) would fail the small one too.
bool IsVerifierLimit(int err, std::string_view log);
// The last line of a verifier log that says why it stopped (e.g. "BPF program is too
// large. Processed 1000001 insn"), "" when none does.
std::string VerifierReason(std::string_view log);

struct ProgramOptions {
  // Entries of each user map: up to max_users users with IDs of at most
  // DLB_XDP_SHORT_ID bytes (and source addresses), and as many with longer IDs.
  uint32_t max_users = 65536;
  // Client-to-server flows of the service ports followed at once (an LRU map of 64
  // bytes an entry with its key): a live flow evicted from it has its next data refused.
  uint32_t max_flows = 262144;
  // Heads begun and not ended held at once (2 KiB each): an LRU map, so a flow that
  // stalls mid-head gives its entry back under pressure (its next data is then refused).
  uint32_t max_held_heads = 4096;
  // Tests: the program keeps each CPU's last head scan and decision for ReadLast. Off,
  // the verifier removes that bookkeeping from the program.
  bool record_last = false;
  // Benchmarks and tests that run one frame many times (bpf_prog_test_run's repeat):
  // every data segment is read as its flow's next head, without following flows. Never
  // for an attached program: a client could then have body bytes decided as heads.
  bool replay_heads = false;
  // The build to load (ProgramVariant): the agent's --program, auto by default.
  ProgramVariant variant = ProgramVariant::kAuto;
  // Tests: under kAuto, the full program's load is taken as rejected by the verifier
  // (E2BIG, "too large", marked simulated) without asking the kernel, so that the
  // fallback runs on a kernel that accepts the full program.
  bool test_reject_full = false;
};

// Counters summed over CPUs.
struct XdpCounters {
  std::array<uint64_t, DLB_XDP_COUNTER_COUNT> c{};
  std::array<uint64_t, DLB_XDP_MAX_RULES> rule_allowed{};
  std::array<uint64_t, DLB_XDP_MAX_RULES> rule_limited{};
  uint64_t operator[](int i) const { return c[static_cast<size_t>(i)]; }
};

class XdpProgram {
 public:
  // Opens and loads the program (not attached): enough for bpf_prog_test_run.
  static StatusOr<std::unique_ptr<XdpProgram>> Load(const ProgramOptions& options);
  // Opens, then loads and attaches through libxdp on `iface`: native mode, falling back
  // to generic (skb) mode; `mode_used` tells which.
  static StatusOr<std::unique_ptr<XdpProgram>> LoadAndAttach(const ProgramOptions& options,
                                                             const std::string& iface,
                                                             AttachMode* mode_used,
                                                             std::string* native_error);
  // Removes every dlb_xdp program from `iface` (after a crash of the agent). Returns how
  // many were removed.
  static StatusOr<int> DetachAll(const std::string& iface);
  ~XdpProgram();
  XdpProgram(const XdpProgram&) = delete;
  XdpProgram& operator=(const XdpProgram&) = delete;

  Status Detach();

  // Writes rules first, then the config (whose rule_count makes them live).
  Status Push(const XdpTables& tables);
  Status SetStoreDown(bool down);
  StatusOr<XdpCounters> ReadCounters() const;
  // The last head scanned and decided on `cpu`; only for a program loaded with
  // record_last (InvalidArgument otherwise).
  StatusOr<dlb_xdp_last> ReadLast(int cpu) const;

  // User keys are struct dlb_xdp_user_key whatever their length: the program keeps
  // IDs of at most DLB_XDP_SHORT_ID bytes in a map of short keys, longer ones in a map
  // of full keys, and these calls pick the map by id_len.
  // Runs the control program over `cmds` (in place).
  Status Control(std::span<dlb_xdp_ctl> cmds);
  // Calls f(key) for every user in the two maps (a snapshot of the keys).
  Status ForEachUser(const std::function<void(const dlb_xdp_user_key&)>& f) const;
  Status DeleteUser(const dlb_xdp_user_key& key);
  StatusOr<dlb_xdp_user> LookupUser(const dlb_xdp_user_key& key) const;
  // Empties the user and flow maps and zeroes the counters (tests reuse one load).
  Status ClearState();

  int prog_fd() const;
  int ifindex() const { return ifindex_; }
  AttachMode mode() const { return mode_; }
  // Whether the program runs through libxdp's dispatcher (other XDP programs attached
  // through libxdp share the interface). When not, dispatcher_note() tells why, in
  // libxdp's words (e.g. its compatibility check failed, or no bpffs at /sys/fs/bpf).
  // Instructions the kernel's verifier processed to load each program of the object
  // (bpf_prog_info.verified_insns; 0 on kernels older than 5.16). A program near the
  // verifier's limit (kVerifierInsnLimit) on one kernel can be over it on the next, so
  // the tests hold every program under a fraction of it.
  struct VerifierCount {
    std::string program;
    uint32_t verified_insns = 0;
  };
  static constexpr uint32_t kVerifierInsnLimit = 1000000;
  StatusOr<std::vector<VerifierCount>> VerifierCounts() const;
  // The build loaded: kFull or kSmall.
  ProgramVariant variant() const { return variant_; }
  // Why the full program was not loaded under kAuto (the errno and the verifier's
  // words), "" when it was or when the variant was chosen.
  const std::string& fallback_reason() const { return fallback_reason_; }
  // The agent's one line when it fell back to the small variant: the reason, what the
  // small one refuses and its verifier counts; "" when it did not fall back.
  std::string FallbackLine() const;
  bool dispatcher() const { return dispatcher_; }
  const std::string& dispatcher_note() const { return dispatcher_note_; }

 private:
  XdpProgram() = default;
  int UsersFd(const dlb_xdp_user_key& key) const;   // the map that holds `key`
  // Opens the variant's object (kFull or kSmall) and runs `load` on it (a load, or an
  // attach through libxdp), falling back under kAuto as ProgramVariant says.
  using LoadStep = std::function<Status(XdpProgram& p, int* err)>;
  static StatusOr<std::unique_ptr<XdpProgram>> LoadChosen(const ProgramOptions& options,
                                                          const LoadStep& load);
  Status AttachTo(unsigned ifindex, const std::string& iface, std::string* native_error, int* err_out);
  ProgramVariant variant_ = ProgramVariant::kFull;
  std::string fallback_reason_;
  dlb_xdp_bpf* skel_ = nullptr;
  xdp_program* xdp_prog_ = nullptr;
  int ifindex_ = 0;
  AttachMode mode_ = AttachMode::kNative;
  bool dispatcher_ = false;
  std::string dispatcher_note_;
  dlb_xdp_config pushed_{};
  bool have_pushed_ = false;
};

// The user ID whose bucket a key names (the identity header's bytes, or
// dlb::SourceAddressUserId of the client's address for source-IP keys); "" for a digest
// key (DLB_XDP_KEY_DIGEST: an ID longer than a key holds, known only by its digest).
std::string UserIdOf(const dlb_xdp_user_key& key);
// dlb::DigestUserId of the key's user ID: the digest a digest key holds, else that of
// UserIdOf(key).
UserDigest DigestOf(const dlb_xdp_user_key& key);
// The Redis key of the key's bucket of `rule`: dlb::RedisKey(user ID, rule), the same
// key as every other form's, for every kind of key (AppendRedisKey of DigestOf).
std::string RedisKeyOf(const dlb_xdp_user_key& key, std::string_view rule);

}  // namespace dlb::xdp
