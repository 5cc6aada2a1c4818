#include "xdp_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/resource.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <type_traits>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "dlb/key.h"
#include "dlb_xdp.skel.h"
#include "dlb_xdp_small.skel.h"

namespace dlb::xdp {
namespace {

Status Errno(const std::string& what, int err) {
  if (err < 0) err = -err;
  return Status::Internal(what + ": " + std::strerror(err));
}

// The small variant is opened through the full program's skeleton with its own ELF
// bytes: the same source, so the same maps, programs and variables, at the same places.
using FullRodata = std::remove_pointer_t<decltype(dlb_xdp_bpf::rodata)>;
using SmallRodata = std::remove_pointer_t<decltype(dlb_xdp_small_bpf::rodata)>;
static_assert(sizeof(dlb_xdp_bpf) == sizeof(dlb_xdp_small_bpf) &&
                  sizeof(FullRodata) == sizeof(SmallRodata) &&
                  offsetof(FullRodata, dlb_record_last) == offsetof(SmallRodata, dlb_record_last) &&
                  offsetof(FullRodata, dlb_replay_heads) == offsetof(SmallRodata, dlb_replay_heads),
              "the small variant has the full program's skeleton");

dlb_xdp_bpf* OpenSmall() {
  auto* skel = static_cast<dlb_xdp_bpf*>(std::calloc(1, sizeof(dlb_xdp_bpf)));
  if (skel == nullptr) return nullptr;
  if (dlb_xdp_bpf__create_skeleton(skel) == 0) {
    skel->skeleton->data = const_cast<void*>(dlb_xdp_small_bpf__elf_bytes(&skel->skeleton->data_sz));
    if (bpf_object__open_skeleton(skel->skeleton, nullptr) == 0) return skel;
  }
  const int err = errno;
  dlb_xdp_bpf__destroy(skel);
  errno = err;
  return nullptr;
}

StatusOr<dlb_xdp_bpf*> OpenSkeleton(const ProgramOptions& options, ProgramVariant variant) {
  dlb_xdp_bpf* skel = variant == ProgramVariant::kSmall ? OpenSmall() : dlb_xdp_bpf__open();
  if (skel == nullptr) return Errno("opening the XDP program", errno);
  skel->rodata->dlb_record_last = options.record_last ? 1 : 0;
  skel->rodata->dlb_replay_heads = options.replay_heads ? 1 : 0;
  // Each of the two user maps (short and long IDs) holds up to max_users users.
  for (bpf_map* m : {skel->maps.dlb_users_short, skel->maps.dlb_users}) {
    if (int err = bpf_map__set_max_entries(m, options.max_users); err) {
      dlb_xdp_bpf__destroy(skel);
      return Errno("sizing the user maps", err);
    }
  }
  // The client-to-server flows of the service ports whose next head is followed
  // (LRU: a flow evicted while live has its next data refused).
  if (int err = bpf_map__set_max_entries(skel->maps.dlb_streams, options.max_flows); err) {
    dlb_xdp_bpf__destroy(skel);
    return Errno("sizing the stream map", err);
  }
  if (int err = bpf_map__set_max_entries(skel->maps.dlb_partial, options.max_held_heads); err) {
    dlb_xdp_bpf__destroy(skel);
    return Errno("sizing the held-head map", err);
  }
  return skel;
}

// Whether a user key goes to the short map (its first sizeof(dlb_xdp_user_skey) bytes
// are that map's key).
bool IsShort(const dlb_xdp_user_key& key) { return key.id_len <= DLB_XDP_SHORT_ID; }

// libbpf's messages during one load (the verifier's log of a program it failed to load).
std::string* g_libbpf_log = nullptr;

int CaptureLibbpf(enum libbpf_print_level, const char* fmt, va_list args) {
  if (g_libbpf_log == nullptr) return 0;
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return n;
  std::string buf(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(buf.data(), buf.size(), fmt, args);
  buf.resize(static_cast<size_t>(n));
  g_libbpf_log->append(buf);
  return n;
}

class LibbpfCapture {
 public:
  explicit LibbpfCapture(std::string* out) {
    g_libbpf_log = out;
    prev_ = libbpf_set_print(CaptureLibbpf);
  }
  ~LibbpfCapture() {
    libbpf_set_print(prev_);
    g_libbpf_log = nullptr;
  }
  LibbpfCapture(const LibbpfCapture&) = delete;
  LibbpfCapture& operator=(const LibbpfCapture&) = delete;

 private:
  libbpf_print_fn_t prev_ = nullptr;
};

// The phrases of the verifier's messages when a program is over one of its limits
// (kernel/bpf/verifier.c: "BPF program is too large. Processed N insn", "The sequence
// of N jumps is too complex.", "combined stack size ... Too large", ...).
bool SaysLimit(std::string_view line) {
  std::string lower(line);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const char* phrase : {"too large", "too complex", "exceeds", "complexity limit", "too many"}) {
    if (lower.find(phrase) != std::string::npos) return true;
  }
  return false;
}

// The verifier's last word in libbpf's messages of a failed load: the line before the
// statistics at the end of the last "PROG LOAD LOG", "" when there is none. libbpf
// would have printed the log to stderr; the error then carries this line instead.
std::string VerifierLastLine(std::string_view log) {
  const size_t end = log.rfind("-- END PROG LOAD LOG --");
  if (end == std::string_view::npos) return "";
  const size_t begin = log.rfind("-- BEGIN PROG LOAD LOG --", end);
  std::string_view body = log.substr(0, end);
  if (begin != std::string_view::npos) body.remove_prefix(begin);
  std::string last;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t e = body.find('\n', pos);
    if (e == std::string_view::npos) e = body.size();
    std::string_view line = body.substr(pos, e - pos);
    pos = e + 1;
    if (line.empty() || line.find("PROG LOAD LOG") != std::string_view::npos) continue;
    if (line.rfind("processed ", 0) == 0 || line.rfind("verification time", 0) == 0 ||
        line.rfind("stack depth", 0) == 0) {
      continue;
    }
    last = std::string(line);
  }
  return last;
}

// libxdp's messages during one attach (all levels), to tell why it used no dispatcher.
std::string* g_libxdp_log = nullptr;

int CaptureLibxdp(enum libxdp_print_level, const char* fmt, va_list args) {
  if (g_libxdp_log == nullptr) return 0;
  char buf[512];
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n > 0) g_libxdp_log->append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  return n;
}

class LibxdpCapture {
 public:
  explicit LibxdpCapture(std::string* out) {
    g_libxdp_log = out;
    prev_ = libxdp_set_print(CaptureLibxdp);
  }
  ~LibxdpCapture() {
    libxdp_set_print(prev_);
    g_libxdp_log = nullptr;
  }
  LibxdpCapture(const LibxdpCapture&) = delete;
  LibxdpCapture& operator=(const LibxdpCapture&) = delete;

 private:
  libxdp_print_fn_t prev_ = nullptr;
};

// The lines of libxdp's log that tell why it used no dispatcher, joined with "; ".
std::string DispatcherLines(const std::string& log) {
  std::string out;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t end = log.find('\n', pos);
    if (end == std::string::npos) end = log.size();
    std::string line = log.substr(pos, end - pos);
    pos = end + 1;
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    line = line.substr(first);
    if (line.rfind("libxdp: ", 0) == 0) line = line.substr(8);
    // The failures only (libxdp's progress lines say nothing about why).
    bool keep = false;
    for (const char* word : {"fail", "Fail", "can't", "Can't", "No bpffs", "not permitted", "not a dispatcher"}) {
      if (line.find(word) != std::string::npos) keep = true;
    }
    if (!keep) continue;
    if (out.find(line) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out;
}

// What is attached to `ifindex` now: "" when nothing, else the programs' names and
// whether they run through libxdp's dispatcher.
std::string DescribeAttached(int ifindex) {
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (mp == nullptr || libxdp_get_error(mp)) return "";
  std::string names;
  for (xdp_program* prog = xdp_multiprog__next_prog(nullptr, mp); prog != nullptr;
       prog = xdp_multiprog__next_prog(prog, mp)) {
    names += std::string(names.empty() ? "" : ", ") + "'" + xdp_program__name(prog) + "'";
  }
  std::string out;
  if (xdp_multiprog__is_legacy(mp)) {
    xdp_program* main = xdp_multiprog__main_prog(mp);
    if (main != nullptr) out = "XDP program '" + std::string(xdp_program__name(main)) + "' attached alone (no libxdp dispatcher)";
  } else if (!names.empty()) {
    out = "libxdp's dispatcher with " + names;
  }
  xdp_multiprog__close(mp);
  return out;
}

}  // namespace

const char* VariantName(ProgramVariant v) {
  switch (v) {
    case ProgramVariant::kAuto: return "auto";
    case ProgramVariant::kFull: return "full";
    case ProgramVariant::kSmall: return "small";
  }
  return "?";
}

StatusOr<ProgramVariant> ParseVariant(std::string_view name) {
  for (ProgramVariant v : {ProgramVariant::kAuto, ProgramVariant::kFull, ProgramVariant::kSmall}) {
    if (name == VariantName(v)) return v;
  }
  return Status::InvalidArgument("program '" + std::string(name) + "': auto, full or small");
}

std::string VerifierReason(std::string_view log) {
  std::string reason;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t end = log.find('\n', pos);
    if (end == std::string_view::npos) end = log.size();
    std::string_view line = log.substr(pos, end - pos);
    pos = end + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (SaysLimit(line)) reason = std::string(line);
  }
  return reason;
}

bool IsVerifierLimit(int err, std::string_view log) {
  const int e = err < 0 ? -err : err;
  if (e == E2BIG) return true;
  return (e == EACCES || e == EINVAL) && !VerifierReason(log).empty();
}

StatusOr<std::unique_ptr<XdpProgram>> XdpProgram::LoadChosen(const ProgramOptions& options,
                                                             const LoadStep& load) {
  std::string reason;   // why the full program was not loaded, under kAuto
  if (options.variant != ProgramVariant::kSmall) {
    auto skel = OpenSkeleton(options, ProgramVariant::kFull);
    if (!skel.ok()) return skel.status();
    std::unique_ptr<XdpProgram> p(new XdpProgram());
    p->skel_ = *skel;
    p->variant_ = ProgramVariant::kFull;
    std::string log;
    int err = 0;
    Status s;
    if (options.test_reject_full && options.variant == ProgramVariant::kAuto) {
      err = -E2BIG;
      log = "BPF program is too large. Processed 1000001 insn (simulated: test_reject_full)\n";
      s = Status::Internal("loading the XDP program: simulated rejection");
    } else {
      LibbpfCapture capture(&log);
      s = load(*p, &err);
    }
    if (s.ok()) return p;
    const std::string why = VerifierReason(log);
    if (options.variant == ProgramVariant::kFull || !IsVerifierLimit(err, log)) {
      const std::string last = why.empty() ? VerifierLastLine(log) : why;
      return last.empty() ? s : Status::Internal(s.message() + " (verifier: " + last + ")");
    }
    reason = std::string(std::strerror(err < 0 ? -err : err)) + (why.empty() ? "" : ": " + why);
  }
  auto skel = OpenSkeleton(options, ProgramVariant::kSmall);
  if (!skel.ok()) return skel.status();
  std::unique_ptr<XdpProgram> p(new XdpProgram());
  p->skel_ = *skel;
  p->variant_ = ProgramVariant::kSmall;
  p->fallback_reason_ = reason;
  std::string log;
  int err = 0;
  Status s;
  {
    LibbpfCapture capture(&log);
    s = load(*p, &err);
  }
  if (s.ok()) return p;
  std::string why = VerifierReason(log);
  if (why.empty()) why = VerifierLastLine(log);
  std::string msg = s.message() + (why.empty() ? "" : " (verifier: " + why + ")");
  if (!reason.empty()) {
    msg = "the kernel's verifier rejected the full XDP program (" + reason +
          ") and its small variant failed too: " + msg;
  } else {
    msg = "the small variant of the XDP program: " + msg;
  }
  return Status::Internal(msg);
}

StatusOr<std::unique_ptr<XdpProgram>> XdpProgram::Load(const ProgramOptions& options) {
  return LoadChosen(options, [](XdpProgram& p, int* err) {
    *err = dlb_xdp_bpf__load(p.skel_);
    return *err ? Errno("loading the XDP program", *err) : Status::Ok();
  });
}

std::string XdpProgram::FallbackLine() const {
  if (variant_ != ProgramVariant::kSmall || fallback_reason_.empty()) return "";
  std::string counts;
  if (auto c = VerifierCounts(); c.ok()) {
    for (const VerifierCount& v : *c) {
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.1f", 100.0 * v.verified_insns / kVerifierInsnLimit);
      counts += std::string(counts.empty() ? "" : ", ") + v.program + " " +
                std::to_string(v.verified_insns) + " (" + pct + "%)";
    }
  }
  return "the kernel's verifier rejected the full XDP program (" + fallback_reason_ +
         "); loaded its small variant instead: heads over " + std::to_string(DLB_XDP_SMALL_SCAN_BYTES) +
         " bytes are refused by on_oversize_head; verifier instructions: " + counts;
}

// libxdp's dispatcher and its programs are charged to RLIMIT_MEMLOCK on kernels that
// still count BPF memory there (before 5.11, or where memcg accounting is off); a
// limit of a few MiB then makes the dispatcher fail to load ("Operation not
// permitted") and the program attach alone. Raise the limit as far as this process may:
// unlimited, else up to the hard limit.
static void RaiseMemlockLimit() {
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  if (setrlimit(RLIMIT_MEMLOCK, &unlimited) == 0) return;
  rlimit cur{};
  if (getrlimit(RLIMIT_MEMLOCK, &cur) == 0 && cur.rlim_cur < cur.rlim_max) {
    cur.rlim_cur = cur.rlim_max;
    (void)setrlimit(RLIMIT_MEMLOCK, &cur);
  }
}

StatusOr<std::unique_ptr<XdpProgram>> XdpProgram::LoadAndAttach(const ProgramOptions& options,
                                                                const std::string& iface,
                                                                AttachMode* mode_used,
                                                                std::string* native_error) {
  const unsigned ifindex = if_nametoindex(iface.c_str());
  if (ifindex == 0) return Status::InvalidArgument("interface '" + iface + "': no such interface");
  RaiseMemlockLimit();
  auto p = LoadChosen(options, [&](XdpProgram& prog, int* err) {
    return prog.AttachTo(ifindex, iface, native_error, err);
  });
  if (p.ok() && mode_used) *mode_used = (*p)->mode_;
  return p;
}

// libxdp loads the object (as its dispatcher's extension, else alone) and attaches it.
Status XdpProgram::AttachTo(unsigned ifindex, const std::string& iface, std::string* native_error,
                            int* err_out) {
  ifindex_ = static_cast<int>(ifindex);
  xdp_prog_ = xdp_program__from_bpf_obj(skel_->obj, "xdp");
  if (libxdp_get_error(xdp_prog_)) {
    const long err = libxdp_get_error(xdp_prog_);
    xdp_prog_ = nullptr;
    ifindex_ = 0;
    *err_out = static_cast<int>(err);
    return Errno("libxdp: opening the program", static_cast<int>(err));
  }
  // libxdp attaches through its dispatcher (programs share the interface) when it can,
  // else alone; its messages tell which and why.
  std::string libxdp_log;
  int err = 0;
  int native_err = 0;
  {
    LibxdpCapture capture(&libxdp_log);
    err = xdp_program__attach(xdp_prog_, ifindex_, XDP_MODE_NATIVE, 0);
    mode_ = AttachMode::kNative;
    // E2BIG: the verifier's limit, the same in generic mode (not verified again)
    if (err && err != -E2BIG) {
      native_err = err;
      if (native_error) *native_error = std::strerror(-err);
      err = xdp_program__attach(xdp_prog_, ifindex_, XDP_MODE_SKB, 0);
      mode_ = AttachMode::kSkb;
    }
  }
  *err_out = err;
  const std::string why = DispatcherLines(libxdp_log);
  if (err) {
    ifindex_ = 0;
    const std::string other = DescribeAttached(static_cast<int>(ifindex));
    if (!other.empty() && (native_err == -EBUSY || native_err == -EEXIST || err == -EBUSY || err == -EEXIST)) {
      // Another program holds the interface: never replaced.
      return Status::Unavailable("attaching to " + iface + ": " + other + "; dlb-xdp does not replace it" +
                                 (why.empty() ? std::string() : " (libxdp: " + why + ")") +
                                 ". Detach it first, or attach both through libxdp's dispatcher");
    }
    Status s = Errno("attaching to " + iface, err);
    if (!why.empty()) s = Status::Internal(s.message() + " (libxdp: " + why + ")");
    return s;
  }
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex_);
  if (mp != nullptr && !libxdp_get_error(mp)) {
    dispatcher_ = !xdp_multiprog__is_legacy(mp);
    xdp_multiprog__close(mp);
  }
  if (!dispatcher_) dispatcher_note_ = why.empty() ? "libxdp attached the program alone" : why;
  return Status::Ok();
}

StatusOr<int> XdpProgram::DetachAll(const std::string& iface) {
  const unsigned ifindex = if_nametoindex(iface.c_str());
  if (ifindex == 0) return Status::InvalidArgument("interface '" + iface + "': no such interface");
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(static_cast<int>(ifindex));
  if (libxdp_get_error(mp)) return 0;   // nothing attached
  const enum xdp_attach_mode mode = xdp_multiprog__attach_mode(mp);
  std::vector<xdp_program*> ours;
  for (xdp_program* prog = xdp_multiprog__next_prog(nullptr, mp); prog != nullptr;
       prog = xdp_multiprog__next_prog(prog, mp)) {
    if (std::strcmp(xdp_program__name(prog), "dlb_xdp") == 0) ours.push_back(prog);
  }
  if (ours.empty()) {
    xdp_program* main = xdp_multiprog__main_prog(mp);
    if (main != nullptr && !xdp_multiprog__is_legacy(mp)) {
      // dispatcher without our program
    } else if (main != nullptr && std::strcmp(xdp_program__name(main), "dlb_xdp") == 0) {
      ours.push_back(main);
    }
  }
  int removed = 0;
  for (xdp_program* prog : ours) {
    if (int err = xdp_program__detach(prog, static_cast<int>(ifindex), mode, 0); err) {
      xdp_multiprog__close(mp);
      return Errno("detaching from " + iface, err);
    }
    ++removed;
  }
  xdp_multiprog__close(mp);
  return removed;
}

XdpProgram::~XdpProgram() {
  (void)Detach();
  if (xdp_prog_ != nullptr) xdp_program__close(xdp_prog_);
  if (skel_ != nullptr) dlb_xdp_bpf__destroy(skel_);
}

Status XdpProgram::Detach() {
  if (xdp_prog_ == nullptr || ifindex_ == 0) return Status::Ok();
  const int err = xdp_program__detach(xdp_prog_, ifindex_,
                                      mode_ == AttachMode::kNative ? XDP_MODE_NATIVE : XDP_MODE_SKB, 0);
  ifindex_ = 0;
  if (err) return Errno("detaching", err);
  return Status::Ok();
}

int XdpProgram::prog_fd() const { return bpf_program__fd(skel_->progs.dlb_xdp); }

StatusOr<std::vector<XdpProgram::VerifierCount>> XdpProgram::VerifierCounts() const {
  std::vector<VerifierCount> out;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel_->obj) {
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (int err = bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len); err) {
      return Errno(std::string("reading the info of program ") + bpf_program__name(prog), err);
    }
    out.push_back({.program = bpf_program__name(prog), .verified_insns = info.verified_insns});
  }
  return out;
}

Status XdpProgram::Push(const XdpTables& tables) {
  const int rules_fd = bpf_map__fd(skel_->maps.dlb_rules);
  for (uint32_t i = 0; i < tables.rules.size(); ++i) {
    if (bpf_map_update_elem(rules_fd, &i, &tables.rules[i], BPF_ANY)) {
      return Errno("writing rule " + std::to_string(i), errno);
    }
  }
  dlb_xdp_config c = tables.config;
  c.store_down = have_pushed_ ? pushed_.store_down : 0;
  const uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.dlb_config), &zero, &c, BPF_ANY)) {
    return Errno("writing the config", errno);
  }
  pushed_ = c;
  have_pushed_ = true;
  return Status::Ok();
}

Status XdpProgram::SetStoreDown(bool down) {
  if (!have_pushed_) return Status::Internal("no config pushed");
  pushed_.store_down = down ? 1 : 0;
  const uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.dlb_config), &zero, &pushed_, BPF_ANY)) {
    return Errno("writing the config", errno);
  }
  return Status::Ok();
}

StatusOr<XdpCounters> XdpProgram::ReadCounters() const {
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return Errno("counting CPUs", ncpu);
  std::vector<dlb_xdp_counters> per(static_cast<size_t>(ncpu));
  const uint32_t zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.dlb_counters), &zero, per.data())) {
    return Errno("reading counters", errno);
  }
  XdpCounters sum;
  for (const dlb_xdp_counters& c : per) {
    for (int i = 0; i < DLB_XDP_COUNTER_COUNT; ++i) sum.c[i] += c.c[i];
    for (int i = 0; i < DLB_XDP_MAX_RULES; ++i) {
      sum.rule_allowed[i] += c.rule_allowed[i];
      sum.rule_limited[i] += c.rule_limited[i];
    }
  }
  return sum;
}

StatusOr<dlb_xdp_last> XdpProgram::ReadLast(int cpu) const {
  if (!skel_->rodata->dlb_record_last) {
    return Status::InvalidArgument("the program was loaded without record_last");
  }
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0 || cpu < 0 || cpu >= ncpu) return Status::InvalidArgument("cpu out of range");
  std::vector<dlb_xdp_last> per(static_cast<size_t>(ncpu));
  const uint32_t zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.dlb_last), &zero, per.data())) {
    return Errno("reading the last decision", errno);
  }
  return per[static_cast<size_t>(cpu)];
}

Status XdpProgram::Control(std::span<dlb_xdp_ctl> cmds) {
  const int fd = bpf_program__fd(skel_->progs.dlb_xdp_control);
  for (size_t i = 0; i < cmds.size(); i += DLB_XDP_CTL_BATCH) {
    const size_t n = std::min<size_t>(DLB_XDP_CTL_BATCH, cmds.size() - i);
    const size_t bytes = n * sizeof(dlb_xdp_ctl);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = &cmds[i], .data_out = &cmds[i],
                .data_size_in = static_cast<__u32>(bytes), .data_size_out = static_cast<__u32>(bytes),
                .repeat = 1);
    if (int err = bpf_prog_test_run_opts(fd, &opts); err) return Errno("control program", err);
  }
  return Status::Ok();
}

Status XdpProgram::ForEachUser(const std::function<void(const dlb_xdp_user_key&)>& f) const {
  std::vector<dlb_xdp_user_key> keys;
  // The short map's keys, as user keys (zero past the short key).
  {
    const int fd = bpf_map__fd(skel_->maps.dlb_users_short);
    dlb_xdp_user_skey key{};
    dlb_xdp_user_skey next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      dlb_xdp_user_key k{};
      std::memcpy(&k, &next, sizeof next);
      keys.push_back(k);
      key = next;
      prev = &key;
    }
  }
  {
    const int fd = bpf_map__fd(skel_->maps.dlb_users);
    dlb_xdp_user_key key{};
    dlb_xdp_user_key next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      keys.push_back(next);
      key = next;
      prev = &key;
    }
  }
  for (const dlb_xdp_user_key& k : keys) f(k);
  return Status::Ok();
}

int XdpProgram::UsersFd(const dlb_xdp_user_key& key) const {
  return bpf_map__fd(IsShort(key) ? skel_->maps.dlb_users_short : skel_->maps.dlb_users);
}

Status XdpProgram::DeleteUser(const dlb_xdp_user_key& key) {
  if (bpf_map_delete_elem(UsersFd(key), &key) && errno != ENOENT) {
    return Errno("deleting a user", errno);
  }
  return Status::Ok();
}

StatusOr<dlb_xdp_user> XdpProgram::LookupUser(const dlb_xdp_user_key& key) const {
  dlb_xdp_user u{};
  if (bpf_map_lookup_elem_flags(UsersFd(key), &key, &u, BPF_F_LOCK)) {
    return Status::Internal("no such user");
  }
  return u;
}

Status XdpProgram::ClearState() {
  std::vector<dlb_xdp_user_key> users;
  (void)ForEachUser([&](const dlb_xdp_user_key& k) { users.push_back(k); });
  for (const auto& k : users) (void)DeleteUser(k);
  for (bpf_map* m : {skel_->maps.dlb_rejected, skel_->maps.dlb_streams, skel_->maps.dlb_partial}) {
    const int fd = bpf_map__fd(m);
    dlb_xdp_flow_key fk{}, next{};
    while (bpf_map_get_next_key(fd, nullptr, &next) == 0) {
      fk = next;
      if (bpf_map_delete_elem(fd, &fk)) break;
    }
  }
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return Errno("counting CPUs", ncpu);
  const uint32_t zero = 0;
  std::vector<dlb_xdp_counters> c(static_cast<size_t>(ncpu));
  std::vector<dlb_xdp_last> l(static_cast<size_t>(ncpu));
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.dlb_counters), &zero, c.data(), BPF_ANY) ||
      bpf_map_update_elem(bpf_map__fd(skel_->maps.dlb_last), &zero, l.data(), BPF_ANY)) {
    return Errno("zeroing counters", errno);
  }
  if (have_pushed_) (void)SetStoreDown(false);
  return Status::Ok();
}

static_assert(DLB_XDP_DIGEST_BYTES == kDigestBytes, "a digest key holds a dlb::UserDigest");

std::string UserIdOf(const dlb_xdp_user_key& key) {
  if (key.kind == DLB_XDP_KEY_IPV4 || key.kind == DLB_XDP_KEY_IPV6) {
    return SourceAddressUserId(key.kind == DLB_XDP_KEY_IPV4 ? 4 : 6, key.id);
  }
  if (key.kind == DLB_XDP_KEY_DIGEST) return {};
  const size_t n = key.id_len > DLB_XDP_MAX_ID ? DLB_XDP_MAX_ID : key.id_len;
  return std::string(reinterpret_cast<const char*>(key.id), n);
}

UserDigest DigestOf(const dlb_xdp_user_key& key) {
  if (key.kind != DLB_XDP_KEY_DIGEST) return DigestUserId(UserIdOf(key));
  UserDigest d;
  std::memcpy(d.data(), key.id, d.size());
  return d;
}

std::string RedisKeyOf(const dlb_xdp_user_key& key, std::string_view rule) {
  std::string out;
  out.reserve(8 + kDigestChars + rule.size());
  AppendRedisKey(DigestOf(key), rule, out);
  return out;
}

}  // namespace dlb::xdp
