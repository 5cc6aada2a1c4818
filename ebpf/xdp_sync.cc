#include "xdp_sync.h"

#include <time.h>

#include <cmath>
#include <random>
#include <vector>

#include "dlb/key.h"
#include "log/log.h"
#include "redis/lease_script.h"

namespace dlb::xdp {
namespace {

int64_t MonoNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string RandomId() {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof buf, "xdp-%08x%08x", rd(), rd());
  return buf;
}

// The local share bucket's TAT for a global `level` (units in a bucket of `capacity`):
// the same fill scaled to the local bucket (local_capacity, local_interval_ns), from
// `now` (a count for a bucket that never leaks).
uint64_t LocalTat(const dlb_xdp_rule& r, int64_t capacity, double level, int64_t now) {
  if (level < 0) level = 0;
  const double units = capacity > 0 ? level * static_cast<double>(r.local_capacity) / static_cast<double>(capacity) : 0;
  if (r.local_interval_ns == 0) return static_cast<uint64_t>(std::ceil(units));   // a count
  const double ns = std::ceil(units * static_cast<double>(r.local_interval_ns));
  constexpr double kMaxNs = 4e18;   // far in the future, no overflow past now
  return static_cast<uint64_t>(now) + static_cast<uint64_t>(std::min(ns, kMaxNs - static_cast<double>(now)));
}

}  // namespace

XdpSync::XdpSync(SyncOptions options, redis::Pool* pool, XdpProgram* program, XdpTables* tables)
    : opts_(std::move(options)), pool_(pool), program_(program), tables_(tables) {
  if (opts_.participant_id.empty()) opts_.participant_id = RandomId();
}

Status XdpSync::Round() { return RunRound(false); }
Status XdpSync::ReturnAll() { return RunRound(true); }

Status XdpSync::RunRound(bool returning_all) {
  const int64_t now = MonoNs();
  // 1. Collect every synced user's lease, demand and debt.
  std::vector<dlb_xdp_ctl> cmds;
  Status st = program_->ForEachUser([&](const dlb_xdp_user_key& k) {
    if (k.rule >= tables_->info.size()) return;
    if (tables_->info[k.rule].mode == Mode::kLocal) return;
    dlb_xdp_ctl c{};
    c.key = k;
    c.op = DLB_XDP_CTL_COLLECT;
    cmds.push_back(c);
  });
  if (!st.ok()) return st;
  if (!cmds.empty()) {
    if (Status s = program_->Control(cmds); !s.ok()) return s;
  }

  struct Item {
    size_t cmd;
    std::string redis_key;
    int64_t debt;
    int64_t want_lease;
  };
  std::vector<Item> items;
  std::vector<redis::LeaseItem> lease_items;
  items.reserve(cmds.size());
  for (size_t i = 0; i < cmds.size(); ++i) {
    const dlb_xdp_ctl& c = cmds[i];
    if (!c.found) continue;
    const XdpRuleInfo& info = tables_->info[c.key.rule];
    const int64_t unused = c.out_lease > 0 ? c.out_lease : 0;
    const int64_t debt = static_cast<int64_t>(c.out_debt);
    const int64_t demand = static_cast<int64_t>(c.out_demand);
    int64_t want = 0;
    if (!returning_all && demand > 0) {
      want = static_cast<int64_t>(std::ceil(1.5 * static_cast<double>(demand))) + 1;
      if (want > info.spec.capacity) want = info.spec.capacity;
    }
    if (unused == 0 && debt == 0 && want == 0) {
      if (now - static_cast<int64_t>(c.out_last_seen_ns) >
          std::chrono::nanoseconds(opts_.idle_to_forget).count()) {
        (void)program_->DeleteUser(c.key);
        ++stats_.forgotten_users;
      }
      continue;
    }
    items.push_back({.cmd = i, .redis_key = RedisKey(UserIdOf(c.key), info.name), .debt = debt,
                     .want_lease = want});
  }
  for (const Item& it : items) {
    const dlb_xdp_ctl& c = cmds[it.cmd];
    lease_items.push_back({.key = it.redis_key,
                           .spec = tables_->info[c.key.rule].spec,
                           .return_units = c.out_lease > 0 ? c.out_lease : 0,
                           .want_units = it.debt + it.want_lease});
  }

  // 2. One pipelined round trip: lease calls of up to 256 buckets, then the announce.
  constexpr size_t kChunk = 256;
  std::vector<std::string> calls;
  for (size_t i = 0; i < lease_items.size(); i += kChunk) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendLeaseCall(w, std::span(lease_items).subspan(i, std::min(kChunk, lease_items.size() - i)));
    calls.push_back(std::move(cmd));
  }
  const int64_t ttl_ns = std::chrono::nanoseconds(opts_.participant_ttl).count();
  const bool announce = !returning_all && (last_announce_ns_ == 0 || now - last_announce_ns_ >= ttl_ns / 3);
  if (announce) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    redis::AppendAnnounceCall(w, opts_.participant_id, std::chrono::milliseconds(opts_.participant_ttl).count());
    calls.push_back(std::move(cmd));
  }
  ++stats_.rounds;
  Status rt = Status::Ok();
  std::vector<redis::LeaseGrant> grants;
  if (!calls.empty()) {
    std::vector<redis::Reply> replies;
    rt = pool_->Call(calls, MonoNs() + std::chrono::nanoseconds(opts_.deadline).count(), &replies);
    if (rt.ok()) {
      for (size_t i = 0, j = 0; i < lease_items.size(); i += kChunk, ++j) {
        const size_t n = std::min(kChunk, lease_items.size() - i);
        rt = redis::ParseLeaseReply(replies[j].get(), n, &grants);
        if (!rt.ok()) break;
      }
      if (rt.ok() && announce) {
        auto live = redis::ParseAnnounceReply(replies.back().get());
        if (live.ok()) {
          last_announce_ns_ = now;
          if (*live != stats_.live_participants && *live > 0) {
            stats_.live_participants = *live;
            ApplyShare(*tables_, 1.0 / static_cast<double>(*live));
            share_changed_ = true;
          }
        }
      }
    }
  }

  if (!rt.ok()) {
    ++stats_.failed_rounds;
    for (const Item& it : items) {
      const dlb_xdp_ctl& c = cmds[it.cmd];
      if (c.out_lease > 0) stats_.dropped_units += static_cast<uint64_t>(c.out_lease);
    }
    // The debt was not charged: give it back to the program so that the next round
    // that reaches Redis charges it (reconciled once).
    // ADD_DEBT leaves the hold as it was (a round that failed learned nothing new).
    std::vector<dlb_xdp_ctl> back;
    for (const Item& it : items) {
      if (it.debt == 0) continue;
      dlb_xdp_ctl c{};
      c.key = cmds[it.cmd].key;
      c.op = DLB_XDP_CTL_ADD_DEBT;
      c.in_debt = static_cast<uint64_t>(it.debt);
      back.push_back(c);
    }
    if (!back.empty()) (void)program_->Control(back);
    if (++consecutive_failures_ >= opts_.failures_to_open && !stats_.store_down) {
      stats_.store_down = true;
      (void)program_->SetStoreDown(true);
      DLB_LOG_WARN("store down after {} failed sync rounds ({}): rules apply on_store_failure",
                   consecutive_failures_, rt.ToString());
    }
    return rt;
  }
  consecutive_failures_ = 0;
  if (stats_.store_down) {
    stats_.store_down = false;
    (void)program_->SetStoreDown(false);
    DLB_LOG_INFO("store reachable again: leases resume, local admissions reconciled");
  }

  // 3. Grants: the debt first, the rest is the new lease; no room = hold. Debt Redis
  //    had no room for is not forgiven: it stays debt, charged first by the next rounds
  //    as the bucket leaks. The local share bucket is set to the global level (plus
  //    that debt, less the new lease, which the program adds as it spends it) scaled to
  //    this host's share: it admits only what the global bucket has room for, so what
  //    it admits fits when charged, and no less (leases returned by others free it).
  const int64_t granted_at = MonoNs();
  std::vector<dlb_xdp_ctl> out;
  out.reserve(items.size());
  for (size_t i = 0; i < items.size() && i < grants.size(); ++i) {
    const Item& it = items[i];
    const dlb_xdp_ctl& c = cmds[it.cmd];
    const XdpRuleInfo& info = tables_->info[c.key.rule];
    const redis::LeaseGrant& g = grants[i];
    ++stats_.bucket_ops;
    stats_.returned_units += static_cast<uint64_t>(c.out_lease > 0 ? c.out_lease : 0);
    stats_.granted_units += static_cast<uint64_t>(g.granted_units);
    stats_.debt_units += static_cast<uint64_t>(it.debt);
    const int64_t covered = std::min(g.granted_units, it.debt);
    const int64_t uncovered = it.debt - covered;
    if (uncovered > 0) stats_.over_admitted_units += static_cast<uint64_t>(uncovered);
    const int64_t lease = g.granted_units - covered;
    if (returning_all) continue;
    // The global level with the debt not yet charged; for the local bucket without
    // this host's new lease (the program fills the local bucket as it spends the lease).
    const double level = g.level + static_cast<double>(uncovered);
    dlb_xdp_ctl o{};
    o.key = c.key;
    o.op = DLB_XDP_CTL_GRANT;
    o.in_lease = lease;
    o.in_debt = static_cast<uint64_t>(uncovered);
    o.in_hold_until_ns = 0;
    const dlb_xdp_rule& rule = tables_->rules[c.key.rule];
    o.in_tat_ns = LocalTat(rule, info.spec.capacity, level - static_cast<double>(lease), granted_at);
    o.in_tat_unit_ns = rule.local_interval_ns == 0 ? 1 : rule.local_interval_ns;
    if (lease < info.cost && g.granted_units < it.debt + it.want_lease) {
      // Redis had no room for this request: hold until the first request fits.
      const double c_units = static_cast<double>(info.spec.capacity);
      const double excess = level + static_cast<double>(info.cost) - c_units;
      int64_t wait_ns;
      if (info.spec.leak_rate_per_s <= 0) {
        wait_ns = int64_t{365} * 24 * 3600 * 1'000'000'000;
      } else {
        wait_ns = excess > 0 ? static_cast<int64_t>(std::ceil(excess / info.spec.leak_rate_per_s * 1e9)) : 0;
      }
      if (wait_ns > 0) o.in_hold_until_ns = static_cast<uint64_t>(granted_at + wait_ns);
    }
    out.push_back(o);
  }
  if (!out.empty()) {
    if (Status s = program_->Control(out); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace dlb::xdp
