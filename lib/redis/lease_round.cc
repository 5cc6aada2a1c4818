#include "redis/lease_round.h"

#include <algorithm>
#include <utility>

#include "redis/pool.h"
#include "redis/slot.h"

namespace dlb::redis {
namespace {

// Candidates [0, n) stably sorted by key slot, and each one's slot.
void SlotOrder(size_t n, const LeaseRound::KeyFn& key_of, std::vector<size_t>* order,
               std::vector<uint16_t>* slots) {
  slots->resize(n);
  order->resize(n);
  for (size_t i = 0; i < n; ++i) {
    (*slots)[i] = KeySlot(key_of(i));
    (*order)[i] = i;
  }
  std::stable_sort(order->begin(), order->end(),
                   [&](size_t a, size_t b) { return (*slots)[a] < (*slots)[b]; });
}

void AppendLeaseCallOf(CommandWriter& w, std::span<const SettleItem> items, int64_t resets_after_seq) {
  std::vector<LeaseItem> lease;
  lease.reserve(items.size());
  for (const SettleItem& it : items) {
    lease.push_back(
        {.key = it.key, .spec = it.spec, .return_units = it.return_units, .want_units = it.want_units});
  }
  AppendLeaseCall(w, lease, resets_after_seq);
}

// Parses every call of `trip` into r->calls and r->items (in call order).
void ParseCalls(const LeaseTrip& trip, TripReply* r) {
  r->calls.resize(trip.cmds.size());
  r->items.reserve(trip.items.size());
  std::vector<LeaseGrant> grants;
  size_t first = 0;
  for (size_t c = 0; c < trip.cmds.size(); ++c) {
    const size_t n = trip.items_per_call[c];
    if (n == 0) continue;
    grants.clear();
    r->calls[c] = ParseLeaseReply(r->replies[c].get(), n, &grants, trip.guarded);
    if (!r->calls[c].ok()) grants.assign(n, LeaseGrant{});
    for (size_t k = 0; k < n; ++k) {
      r->items.push_back({.index = trip.items[first + k], .call = c, .grant = grants[k]});
    }
    first += n;
  }
}

}  // namespace

LeaseRound::LeaseRound(LeaseRoundOptions options) : opts_(std::move(options)) {
  trip_.guarded = opts_.script == RoundScript::kLease && opts_.resets_after_seq >= 0;
}

void LeaseRound::Lead(std::string cmd) {
  trip_.cmds.push_back(std::move(cmd));
  trip_.items_per_call.push_back(0);
}

void LeaseRound::Trail(std::string cmd) { trailing_.push_back(std::move(cmd)); }

void LeaseRound::Run(size_t n, const KeyFn& key_of, const ItemFn& item_of, const TripFn& take) {
  std::vector<size_t> order;
  std::vector<uint16_t> slots;
  if (opts_.cluster) SlotOrder(n, key_of, &order, &slots);
  SettleItem item;
  for (size_t o = 0; o < n; ++o) {
    const size_t i = opts_.cluster ? order[o] : o;
    const uint16_t slot = opts_.cluster ? slots[i] : 0;
    // A new slot closes the call before its first candidate is asked for: a trip that
    // this completes and that fails must leave that candidate untouched (its snapshot
    // would be in no trip: a debit never charged, a released bucket never settled).
    // The candidates come in slot order, so a call closed here had no more items.
    if (!call_.empty() && slot != call_slot_) {
      CloseCall();
      if (TripFull() && !Emit(take)) return;
    }
    if (!item_of(i, &item)) continue;
    call_slot_ = slot;
    call_.push_back(item);
    call_items_.push_back(i);
    if (call_.size() >= opts_.chunk) {
      CloseCall();
      // The last candidate's trip waits for the trailing commands.
      if (o + 1 < n && TripFull() && !Emit(take)) return;
    }
  }
  CloseCall();
  for (std::string& cmd : trailing_) {
    trip_.cmds.push_back(std::move(cmd));
    trip_.items_per_call.push_back(0);
  }
  trailing_.clear();
  if (!trip_.cmds.empty()) Emit(take);
}

std::vector<LeaseTrip> LeaseRound::Plan(std::span<const SettleItem> items) {
  std::vector<LeaseTrip> trips;
  Run(
      items.size(), [&](size_t i) { return items[i].key; },
      [&](size_t i, SettleItem* item) {
        *item = items[i];
        return true;
      },
      [&](LeaseTrip trip) {
        trips.push_back(std::move(trip));
        return true;
      });
  return trips;
}

void LeaseRound::CloseCall() {
  if (call_.empty()) return;
  std::string cmd;
  CommandWriter w(cmd);
  if (opts_.script == RoundScript::kLease) {
    AppendLeaseCallOf(w, call_, opts_.resets_after_seq);
  } else {
    // On Cluster the round key takes the hash tag of the call's buckets (one slot).
    const std::string round_key =
        SettleRoundKey(opts_.participant_id, calls_, opts_.cluster ? call_.front().key : std::string_view());
    AppendSettleCall(w, round_key, opts_.round_id, opts_.reply_ttl_ms, call_);
  }
  ++calls_;
  trip_.cmds.push_back(std::move(cmd));
  trip_.items_per_call.push_back(call_.size());
  trip_.items.insert(trip_.items.end(), call_items_.begin(), call_items_.end());
  call_.clear();
  call_items_.clear();
}

bool LeaseRound::Emit(const TripFn& take) {
  LeaseTrip trip = std::move(trip_);
  trip_ = LeaseTrip();
  trip_.guarded = trip.guarded;
  return take(std::move(trip));
}

std::string AnnounceCommand(std::string_view participant_id, int64_t ttl_ms) {
  std::string cmd;
  CommandWriter w(cmd);
  AppendAnnounceCall(w, participant_id, ttl_ms);
  return cmd;
}

std::string LeaveCommand(std::string_view participant_id) {
  std::string cmd;
  CommandWriter(cmd).Begin(3).Arg("ZREM").Arg(kParticipantsKey).Arg(participant_id);
  return cmd;
}

TripReply SendTrip(Pool& pool, const LeaseTrip& trip, int64_t deadline_ns) {
  TripReply r;
  r.status = pool.Call(trip.cmds, deadline_ns, &r.replies);
  if (r.status.ok() && r.replies.size() != trip.cmds.size()) {
    r.status = Status::Protocol("lease round: reply count");
  }
  if (!r.status.ok()) return r;
  ParseCalls(trip, &r);
  std::sort(r.items.begin(), r.items.end(),
            [](const LeaseResult& a, const LeaseResult& b) { return a.index < b.index; });
  return r;
}

}  // namespace dlb::redis
