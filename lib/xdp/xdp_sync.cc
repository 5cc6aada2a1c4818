#include "xdp_sync.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "dlb/key.h"
#include "log/log.h"
#include "redis/lease_round.h"
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
  if (opts_.chunk == 0) opts_.chunk = 1;
  std::random_device rd;
  round_base_ = ((uint64_t{rd()} << 32) | rd()) >> 2;
}

Status XdpSync::Round() { return RunRound(false); }
Status XdpSync::ReturnAll() { return RunRound(true); }

// `waited` is (monotonic ns >> 20) | 1 of the last head that waited for a lease.
bool XdpSync::WaitedRecently(uint64_t waited, int64_t now_ns) {
  constexpr int64_t kLeaseWaitKeepNs = 3'000'000'000;
  const uint32_t now_units = static_cast<uint32_t>(static_cast<uint64_t>(now_ns) >> 20) | 1;
  const uint32_t age = now_units - static_cast<uint32_t>(waited);   // wraps with the counter
  return static_cast<int64_t>(age) << 20 <= kLeaseWaitKeepNs;
}

void XdpSync::ForgetDrainedLocalUsers(int64_t now_ns) {
  if (now_ns - last_local_sweep_ns_ < 1'000'000'000) return;
  last_local_sweep_ns_ = now_ns;
  const int64_t idle_ns = std::chrono::nanoseconds(opts_.idle_to_forget).count();
  std::vector<dlb_xdp_user_key> local;
  (void)program_->ForEachUser([&](const dlb_xdp_user_key& k) {
    if (k.rule < tables_->info.size() && tables_->info[k.rule].mode == Mode::kLocal) local.push_back(k);
  });
  for (const dlb_xdp_user_key& k : local) {
    auto u = program_->LookupUser(k);
    if (!u.ok()) continue;
    // The program's clock is CLOCK_MONOTONIC, as MonoNs. A bucket whose TAT is past
    // holds no level: forgetting it changes no decision. A quota (a rule that never
    // leaks; its TAT counts units) never drains: forgetting it would hand out a new one.
    const bool quota = tables_->rules[k.rule].interval_ns == 0;
    const bool drained = quota ? u->tat_ns == 0 : static_cast<int64_t>(u->tat_ns) <= now_ns;
    if (!drained || now_ns - static_cast<int64_t>(u->last_seen_ns) <= idle_ns) continue;
    if (program_->DeleteUser(k).ok()) ++stats_.forgotten_users;
  }
}

Status XdpSync::RunRound(bool returning_all) {
  // 0. A round whose reply was lost goes first, verbatim: it is applied once, and the
  //    buckets it carries are not collected again before its grants are known.
  if (pending_) {
    ++stats_.resent_rounds;
    stats_.resent_calls += pending_->calls.cmds.size();
    if (Status s = Send(std::move(pending_)); !s.ok()) return s;
  }
  const int64_t now = MonoNs();
  if (!returning_all) ForgetDrainedLocalUsers(now);
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

  auto trip = std::make_unique<Trip>();
  trip->returning_all = returning_all;
  trip->collected_ns = now;
  std::vector<std::string> redis_keys;  // the items' Redis keys
  trip->items.reserve(cmds.size());
  for (const dlb_xdp_ctl& c : cmds) {
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
    // A head of this user waited for a lease (dropped, its retransmission due within
    // about a second): the lease is kept for it through rounds without demand, so
    // that the retransmission finds it (given back after kLeaseWaitKeepNs).
    if (!returning_all && c.out_waited != 0 && WaitedRecently(c.out_waited, now)) {
      want = std::max<int64_t>(want, std::max<int64_t>(unused, info.cost));
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
    trip->items.push_back({.key = c.key, .rule = c.key.rule, .returned = unused, .debt = debt,
                           .want_lease = want});
    redis_keys.push_back(RedisKeyOf(c.key, info.name));
  }

  // 2. One pipelined round trip: the announce, then settle calls of up to `chunk`
  //    buckets (lib/redis/lease_round.h; on a Cluster a call never crosses a slot). The
  //    debt is asked for with the new lease (not debited): what Redis has no room for
  //    stays debt in the program, never forgiven.
  const int64_t ttl_ns = std::chrono::nanoseconds(opts_.participant_ttl).count();
  const bool announce = !returning_all && (last_announce_ns_ == 0 || now - last_announce_ns_ >= ttl_ns / 3);
  // One trip: no limit of calls per trip.
  redis::LeaseRound round({.script = redis::RoundScript::kSettle,
                           .cluster = pool_->endpoint().topology == redis::Topology::kCluster,
                           .chunk = opts_.chunk,
                           .participant_id = opts_.participant_id,
                           .round_id = static_cast<int64_t>(round_base_ + ++round_seq_),
                           .reply_ttl_ms = std::max<int64_t>(1, opts_.round_reply_ttl.count())});
  const int64_t ttl_ms = std::chrono::milliseconds(opts_.participant_ttl).count();
  if (announce) round.Lead(redis::AnnounceCommand(opts_.participant_id, ttl_ms));
  std::vector<redis::SettleItem> settle;
  settle.reserve(trip->items.size());
  for (size_t i = 0; i < trip->items.size(); ++i) {
    const Item& it = trip->items[i];
    settle.push_back({.key = redis_keys[i],
                      .spec = tables_->info[it.rule].spec,
                      .return_units = it.returned,
                      .debit_units = 0,
                      .want_units = it.debt + it.want_lease});
  }
  std::vector<redis::LeaseTrip> calls = round.Plan(settle);
  ++stats_.rounds;
  if (calls.empty()) {
    consecutive_failures_ = 0;
    return Status::Ok();
  }
  trip->calls = std::move(calls.front());
  return Send(std::move(trip));
}

Status XdpSync::Fail(std::unique_ptr<Trip> trip, Status cause) {
  ++stats_.failed_rounds;
  pending_ = std::move(trip);
  if (++consecutive_failures_ >= opts_.failures_to_open && !stats_.store_down) {
    stats_.store_down = true;
    (void)program_->SetStoreDown(true);
    DLB_LOG_WARN("store down after {} failed sync rounds ({}): rules apply on_store_failure",
                 consecutive_failures_, cause.ToString());
  }
  return cause;
}

Status XdpSync::Send(std::unique_ptr<Trip> trip) {
  stats_.redis_calls += trip->calls.cmds.size();
  const redis::TripReply r =
      redis::SendTrip(*pool_, trip->calls, MonoNs() + std::chrono::nanoseconds(opts_.deadline).count());
  // The round's fate is unknown: it waits for a verbatim re-send (applied once by its
  // round id), with the units it collected.
  if (!r.status.ok()) return Fail(std::move(trip), r.status);
  // Replies: grants per bucket; a call refused with an error reply (the script checks
  // its arguments before it changes anything) would be refused again: its debt goes
  // back to the program (charged by a later round), its returned lease is left to leak.
  int64_t live = -1;
  Status refusal = Status::Ok();
  for (size_t i = 0; i < trip->calls.cmds.size(); ++i) {
    if (trip->calls.items_per_call[i] == 0) {
      auto l = redis::ParseAnnounceReply(r.replies[i].get());
      if (l.ok()) live = *l;
      continue;
    }
    // NOSCRIPT the pool could not repair: not run, the whole round is sent again.
    if (r.calls[i].code() == StatusCode::kUnavailable) return Fail(std::move(trip), r.calls[i]);
    if (!r.calls[i].ok()) refusal = r.calls[i];
  }
  if (!refusal.ok()) ReturnRefusedDebt(*trip, r, refusal);
  if (live > 0) {
    last_announce_ns_ = trip->collected_ns;
    if (live != stats_.live_participants) {
      stats_.live_participants = live;
      ApplyShare(*tables_, 1.0 / static_cast<double>(live));
      share_changed_ = true;
    }
  }
  consecutive_failures_ = 0;
  if (stats_.store_down) {
    stats_.store_down = false;
    (void)program_->SetStoreDown(false);
    DLB_LOG_INFO("store reachable again: leases resume, local admissions reconciled");
  }
  if (Status s = Apply(*trip, r); !s.ok()) return s;
  return refusal;
}

void XdpSync::ReturnRefusedDebt(const Trip& trip, const redis::TripReply& r, const Status& refusal) {
  ++stats_.discarded_rounds;
  DLB_LOG_EVERY(1000, spdlog::level::err, "xdp sync: Redis refused a settle call: {}", refusal.ToString());
  std::vector<dlb_xdp_ctl> back;
  for (size_t i = 0; i < trip.items.size(); ++i) {
    const Item& it = trip.items[i];
    if (r.calls[r.items[i].call].ok() || it.debt == 0) continue;
    dlb_xdp_ctl c{};
    c.key = it.key;
    c.op = DLB_XDP_CTL_ADD_DEBT;
    c.in_debt = static_cast<uint64_t>(it.debt);
    back.push_back(c);
  }
  if (!back.empty()) (void)program_->Control(back);
}

Status XdpSync::Apply(const Trip& trip, const redis::TripReply& r) {
  // 3. Grants: the debt first, the rest is the new lease; no room = hold. Debt Redis
  //    had no room for is not forgiven: it stays debt, charged first by the next rounds
  //    as the bucket leaks. The local share bucket is set to the global level (plus
  //    that debt, less the new lease, which the program adds as it spends it) scaled to
  //    this host's share: it admits only what the global bucket has room for, so what
  //    it admits fits when charged, and no less (leases returned by others free it).
  const int64_t granted_at = MonoNs();
  std::vector<dlb_xdp_ctl> out;
  out.reserve(trip.items.size());
  for (size_t i = 0; i < trip.items.size() && i < r.items.size(); ++i) {
    const Item& it = trip.items[i];
    if (!r.calls[r.items[i].call].ok()) continue;
    const redis::LeaseGrant& g = r.items[i].grant;
    ++stats_.bucket_ops;
    stats_.returned_units += static_cast<uint64_t>(it.returned);
    stats_.granted_units += static_cast<uint64_t>(g.granted_units);
    stats_.debt_units += static_cast<uint64_t>(it.debt);
    const int64_t covered = std::min(g.granted_units, it.debt);
    const int64_t uncovered = it.debt - covered;
    if (uncovered > 0) stats_.over_admitted_units += static_cast<uint64_t>(uncovered);
    const int64_t lease = g.granted_units - covered;
    if (trip.returning_all) continue;
    // A reload between the collect and the reply may have removed the rule: the debt
    // stays with the user, the hold and local bucket wait for the next round.
    const bool rule_known = it.rule < tables_->info.size() && it.rule < tables_->rules.size();
    dlb_xdp_ctl o{};
    o.key = it.key;
    o.op = DLB_XDP_CTL_GRANT;
    o.in_lease = lease;
    o.in_debt = static_cast<uint64_t>(uncovered);
    o.in_hold_until_ns = 0;
    if (rule_known) {
      const XdpRuleInfo& info = tables_->info[it.rule];
      // The global level with the debt not yet charged; for the local bucket without
      // this host's new lease (the program fills the local bucket as it spends the lease).
      const double level = g.level + static_cast<double>(uncovered);
      const dlb_xdp_rule& rule = tables_->rules[it.rule];
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
    }
    out.push_back(o);
  }
  if (!out.empty()) {
    if (Status s = program_->Control(out); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace dlb::xdp
