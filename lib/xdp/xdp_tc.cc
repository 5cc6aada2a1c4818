#include "xdp_tc.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "dlb_tc.skel.h"

namespace dlb::xdp {
namespace {

Status Errno(const std::string& what, int err) {
  if (err < 0) err = -err;
  return Status::Internal(what + ": " + std::strerror(err));
}

}  // namespace

int FindProgramMap(int prog_fd, const std::string& name) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len)) return -1;
  std::vector<uint32_t> ids(info.nr_map_ids);
  if (ids.empty()) return -1;
  bpf_prog_info again{};
  again.nr_map_ids = static_cast<uint32_t>(ids.size());
  again.map_ids = reinterpret_cast<uint64_t>(ids.data());
  len = sizeof again;
  if (bpf_obj_get_info_by_fd(prog_fd, &again, &len)) return -1;
  for (uint32_t k = 0; k < again.nr_map_ids && k < ids.size(); ++k) {
    const int fd = bpf_map_get_fd_by_id(ids[k]);
    if (fd < 0) continue;
    bpf_map_info mi{};
    uint32_t ml = sizeof mi;
    if (bpf_obj_get_info_by_fd(fd, &mi, &ml) == 0 && name == mi.name) return fd;
    close(fd);
  }
  return -1;
}

TcReject::~TcReject() {
  (void)Detach();
  if (skel_ != nullptr) dlb_tc_bpf__destroy(skel_);
  if (tc_on_fd_ >= 0) close(tc_on_fd_);
}

int TcReject::prog_fd() const {
  return skel_ == nullptr ? -1 : bpf_program__fd(skel_->progs.dlb_tc_reject);
}

Status TcReject::SetHandOver(bool on) {
  if (tc_on_fd_ < 0) return Status::Internal("the XDP program has no dlb_tc_on map");
  const uint32_t zero = 0, v = on ? 1 : 0;
  if (bpf_map_update_elem(tc_on_fd_, &zero, &v, BPF_ANY)) return Errno("writing dlb_tc_on", errno);
  return Status::Ok();
}

Status TcReject::Attach(int ifindex, int xdp_prog_fd) {
  if (attached()) return Status::Ok();
  if (tc_on_fd_ < 0) tc_on_fd_ = FindProgramMap(xdp_prog_fd, "dlb_tc_on");
  if (tc_on_fd_ < 0) return Status::Internal("the XDP program has no dlb_tc_on map");
  if (skel_ == nullptr) {
    skel_ = dlb_tc_bpf__open_and_load();
    if (skel_ == nullptr) return Errno("loading the TC program", errno);
  }
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  const int created = bpf_tc_hook_create(&hook);
  if (created != 0 && created != -EEXIST) return Errno("creating the clsact qdisc", created);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd(), .flags = BPF_TC_F_REPLACE,
              .handle = kTcHandle, .priority = kTcPriority);
  if (int err = bpf_tc_attach(&hook, &opts); err) {
    if (created == 0) {
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      (void)bpf_tc_hook_destroy(&hook);
    }
    return Errno("attaching the TC program", err);
  }
  created_hook_ = created == 0;
  ifindex_ = ifindex;
  if (Status s = SetHandOver(true); !s.ok()) {
    (void)Detach();
    return s;
  }
  return Status::Ok();
}

Status TcReject::Detach() {
  if (!attached()) return Status::Ok();
  Status first = SetHandOver(false);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
  if (int err = bpf_tc_detach(&hook, &opts); err && err != -ENOENT && first.ok()) {
    first = Errno("detaching the TC program", err);
  }
  if (created_hook_) {
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    (void)bpf_tc_hook_destroy(&hook);
    created_hook_ = false;
  }
  ifindex_ = 0;
  return first;
}

TcReject::Counts TcReject::ReadCounts() const {
  Counts out;
  if (skel_ == nullptr) return out;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> per(static_cast<size_t>(ncpu));
  uint64_t* fields[3] = {&out.clones, &out.server_resets, &out.failures};
  for (uint32_t k = 0; k < 3; ++k) {
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.dlb_tc_counters), &k, per.data())) continue;
    for (uint64_t v : per) *fields[k] += v;
  }
  return out;
}

StatusOr<bool> TcReject::DetachAll(const std::string& iface) {
  const unsigned ifindex = if_nametoindex(iface.c_str());
  if (ifindex == 0) return Status::InvalidArgument("interface '" + iface + "': no such interface");
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
  const int err = bpf_tc_detach(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return false;   // no filter (or no clsact qdisc)
  if (err) return Errno("detaching the TC program from " + iface, err);
  return true;
}

}  // namespace dlb::xdp
