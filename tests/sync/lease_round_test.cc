// The lease round client (lib/redis/lease_round.h): calls chunked and grouped into
// trips, the caller's own commands placed first or last, results in the caller's order,
// settle calls applied once per round id, and on Redis Cluster calls that never cross a
// slot, against a real redis-server and a three-master cluster.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "dlb/key.h"
#include "redis/lease_round.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/script.h"
#include "redis/slot.h"
#include "redis/url.h"
#include "redis_cluster.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

constexpr BucketSpec kQuota{.capacity = 10, .leak_rate_per_s = 0};

redis::Pool MakePool(const std::string& url) {
  auto ep = redis::ParseUrl(url);
  if (!ep.ok()) throw std::runtime_error(ep.status().ToString());
  return redis::Pool(
      *ep, 2, {redis::LeaseScript(), redis::SettleScript(), redis::kAnnounceScript, redis::ResetLogScript()});
}

std::string Ping() {
  std::string cmd;
  redis::CommandWriter(cmd).Begin(1).Arg("PING");
  return cmd;
}

int64_t Deadline() { return MonoNowNs() + 2'000'000'000; }

redis::LeaseRoundOptions Settle(size_t chunk, size_t calls_per_trip, bool cluster = false) {
  redis::LeaseRoundOptions o;
  o.cluster = cluster;
  o.chunk = chunk;
  o.calls_per_trip = calls_per_trip;
  o.participant_id = "p1";
  o.round_id = 42;
  o.reply_ttl_ms = 60000;
  return o;
}

std::vector<redis::SettleItem> Items(const std::vector<std::string>& keys, int64_t want) {
  std::vector<redis::SettleItem> items;
  for (const std::string& k : keys) {
    items.push_back({.key = k, .spec = kQuota, .return_units = 0, .debit_units = 0, .want_units = want});
  }
  return items;
}

TEST(LeaseRound, CallsAreChunkedAndTripsCarryTheCallersCommands) {
  const std::vector<std::string> keys = {"a", "b", "c", "d", "e"};
  redis::LeaseRound round(Settle(/*chunk=*/2, /*calls_per_trip=*/2));
  round.Lead(Ping());
  round.Trail(Ping());
  const auto trips = round.Plan(Items(keys, 1));
  ASSERT_EQ(trips.size(), 2u);
  // The leading command counts in the first trip; the trailing one rides on the last.
  EXPECT_EQ(trips[0].items_per_call, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(trips[0].items, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(trips[1].items_per_call, (std::vector<size_t>{2, 1, 0}));
  EXPECT_EQ(trips[1].items, (std::vector<size_t>{2, 3, 4}));
}

TEST(LeaseRound, TrailingCommandsGoWithTheTripOfTheLastCall) {
  redis::LeaseRound round(Settle(/*chunk=*/2, /*calls_per_trip=*/1));
  round.Trail(Ping());
  const auto trips = round.Plan(Items({"a", "b", "c", "d"}, 1));
  ASSERT_EQ(trips.size(), 2u);
  EXPECT_EQ(trips[0].items_per_call, (std::vector<size_t>{2}));
  EXPECT_EQ(trips[1].items_per_call, (std::vector<size_t>{2, 0}));
  // No item: a trip of the caller's commands alone.
  redis::LeaseRound empty(Settle(2, 1));
  empty.Trail(Ping());
  const auto alone = empty.Plan({});
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(alone[0].items_per_call, (std::vector<size_t>{0}));
  EXPECT_TRUE(redis::LeaseRound(Settle(2, 1)).Plan({}).empty());
}

TEST(LeaseRound, ARefusedTripEndsTheRoundBeforeTheNextItemIsTaken) {
  redis::LeaseRound round(Settle(/*chunk=*/1, /*calls_per_trip=*/1));
  const std::vector<std::string> keys = {"a", "b", "c"};
  std::vector<size_t> asked;
  int trips = 0;
  round.Run(
      keys.size(), [&](size_t i) -> std::string_view { return keys[i]; },
      [&](size_t i, redis::SettleItem* item) {
        asked.push_back(i);
        *item = {.key = keys[i], .spec = kQuota, .return_units = 0, .debit_units = 0, .want_units = 1};
        return true;
      },
      [&](redis::LeaseTrip) {
        ++trips;
        return false;
      });
  EXPECT_EQ(trips, 1);
  EXPECT_EQ(asked, (std::vector<size_t>{0}));
}

// On Cluster, a trip completed by a slot change and refused leaves the candidate that
// opened the new slot untouched: the appliance snapshots (takes units from the cores)
// when asked, and a snapshot in no trip would be a debit never charged.
TEST(LeaseRound, ARefusedTripCompletedByASlotChangeTakesNoItemOfTheNewSlot) {
  std::vector<std::string> keys;
  for (int u = 0; keys.size() < 4; ++u) {
    const std::string k = RedisKey("sc-" + std::to_string(u), "r");
    bool new_slot = true;
    for (const std::string& o : keys) new_slot = new_slot && redis::KeySlot(o) != redis::KeySlot(k);
    if (new_slot) keys.push_back(k);
  }
  redis::LeaseRound round(Settle(/*chunk=*/8, /*calls_per_trip=*/1, /*cluster=*/true));
  std::vector<size_t> asked;
  std::vector<size_t> in_trips;
  round.Run(
      keys.size(), [&](size_t i) -> std::string_view { return keys[i]; },
      [&](size_t i, redis::SettleItem* item) {
        asked.push_back(i);
        *item = {.key = keys[i], .spec = kQuota, .return_units = 0, .debit_units = 1, .want_units = 1};
        return true;
      },
      [&](redis::LeaseTrip trip) {
        in_trips.insert(in_trips.end(), trip.items.begin(), trip.items.end());
        return false;
      });
  // One call per slot, one call per trip: the first trip is complete when the second
  // slot begins, and it is refused before the second slot's item is asked for.
  EXPECT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked, in_trips) << "every item asked for is in a trip";
}

class LeaseRoundTest : public ::testing::Test {
 protected:
  RedisServer server_;
  redis::Pool pool_ = MakePool(server_.Url());
};

TEST_F(LeaseRoundTest, ResultsComeBackInTheCallersOrderAndEachCallHasARoundKey) {
  std::vector<std::string> keys;
  for (int i = 0; i < 7; ++i) keys.push_back(RedisKey("u" + std::to_string(i), "r"));
  auto items = Items(keys, 0);
  for (size_t i = 0; i < items.size(); ++i) items[i].want_units = static_cast<int64_t>(i) + 1;
  redis::LeaseRound round(Settle(/*chunk=*/3, /*calls_per_trip=*/16));
  const auto trips = round.Plan(items);
  ASSERT_EQ(trips.size(), 1u);
  const redis::TripReply r = redis::SendTrip(pool_, trips[0], Deadline());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.items.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(r.items[i].index, i);
    EXPECT_EQ(r.items[i].call, i / 3);
    EXPECT_TRUE(r.calls[r.items[i].call].ok()) << r.calls[r.items[i].call].ToString();
    EXPECT_EQ(r.items[i].grant.granted_units, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(server_.Command({"GET", keys[i]}).str, std::to_string(i + 1));
  }
  for (int call = 0; call < 3; ++call) {
    const std::string round_key = "dlb:round:p1:" + std::to_string(call);
    EXPECT_TRUE(server_.Command({"GET", round_key}).str.starts_with("42|")) << round_key;
    EXPECT_GT(server_.Command({"PTTL", round_key}).integer, 0) << round_key;
  }
}

TEST_F(LeaseRoundTest, ATripSentAgainIsAppliedOnce) {
  const std::vector<std::string> keys = {RedisKey("ann", "r"), RedisKey("bob", "r")};
  const auto trips = redis::LeaseRound(Settle(1, 16)).Plan(Items(keys, 4));
  ASSERT_EQ(trips.size(), 1u);
  for (int attempt = 0; attempt < 2; ++attempt) {
    const redis::TripReply r = redis::SendTrip(pool_, trips[0], Deadline());
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    for (const redis::LeaseResult& res : r.items) EXPECT_EQ(res.grant.granted_units, 4) << attempt;
  }
  for (const std::string& k : keys) EXPECT_EQ(server_.Command({"GET", k}).str, "4");
}

TEST_F(LeaseRoundTest, ARefusedCallFailsOnlyItsOwnItems) {
  const std::vector<std::string> keys = {RedisKey("ok1", "r"), RedisKey("bad", "r"), RedisKey("ok2", "r")};
  auto items = Items(keys, 2);
  items[1].spec.capacity = 0;  // the script refuses the call's arguments
  const auto trips = redis::LeaseRound(Settle(/*chunk=*/1, 16)).Plan(items);
  ASSERT_EQ(trips.size(), 1u);
  const redis::TripReply r = redis::SendTrip(pool_, trips[0], Deadline());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.calls.size(), 3u);
  EXPECT_TRUE(r.calls[0].ok());
  EXPECT_EQ(r.calls[1].code(), StatusCode::kProtocol) << r.calls[1].ToString();
  EXPECT_TRUE(r.calls[2].ok());
  EXPECT_EQ(r.items[0].grant.granted_units, 2);
  EXPECT_EQ(r.items[1].grant.granted_units, 0);
  EXPECT_EQ(r.items[2].grant.granted_units, 2);
}

TEST_F(LeaseRoundTest, GuardedLeaseCallsReportResetsAfterTheCallersRead) {
  const std::string reset = RedisKey("reset", "r"), kept = RedisKey("kept", "r");
  std::string cmd;
  redis::CommandWriter w(cmd);
  redis::AppendResetLogCall(w, reset, 100, /*and_delete=*/true);
  std::vector<redis::Reply> replies;
  ASSERT_TRUE(pool_.Call({cmd}, Deadline(), &replies).ok());
  ASSERT_EQ(replies[0]->type, REDIS_REPLY_INTEGER) << redis::DescribeReply(replies[0].get());
  const int64_t seq = replies[0]->integer;

  redis::LeaseRoundOptions o;
  o.script = redis::RoundScript::kLease;
  o.resets_after_seq = 0;
  const std::vector<std::string> keys = {reset, kept};
  const auto trips = redis::LeaseRound(o).Plan(Items(keys, 3));
  ASSERT_EQ(trips.size(), 1u);
  EXPECT_TRUE(trips[0].guarded);
  const redis::TripReply r = redis::SendTrip(pool_, trips[0], Deadline());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_TRUE(r.calls[0].ok()) << r.calls[0].ToString();
  EXPECT_EQ(r.items[0].grant.reset_seq, seq);
  EXPECT_EQ(r.items[1].grant.reset_seq, 0);
  EXPECT_EQ(r.items[1].grant.granted_units, 3);
}

// Users on every node, several of them sharing slots: no call names two slots (Redis
// would refuse it: CROSSSLOT), each round key lives on its call's slot, and every
// bucket is charged exactly what it asked for.
TEST(LeaseRoundCluster, CallsNeverCrossASlot) {
  Cluster c;
  redis::Pool pool = MakePool(c.Url());
  std::vector<std::string> keys;
  for (int i = 0; i < 24; ++i) {
    // Two rules per user: pairs of keys in one slot.
    keys.push_back(RedisKey("cu-" + std::to_string(i), "r1"));
    keys.push_back(RedisKey("cu-" + std::to_string(i), "r2"));
  }
  auto items = Items(keys, 0);
  for (size_t i = 0; i < items.size(); ++i) items[i].want_units = static_cast<int64_t>(i % 5) + 1;
  const auto trips =
      redis::LeaseRound(Settle(/*chunk=*/3, /*calls_per_trip=*/4, /*cluster=*/true)).Plan(items);
  ASSERT_GT(trips.size(), 1u);
  std::map<size_t, int64_t> granted;
  int round_keys = 0;
  uint16_t last_slot = 0;
  for (const redis::LeaseTrip& trip : trips) {
    size_t first = 0;
    for (size_t n : trip.items_per_call) {
      const uint16_t slot = redis::KeySlot(keys[trip.items[first]]);
      EXPECT_GE(slot, last_slot) << "calls in slot order";
      last_slot = slot;
      for (size_t k = first; k < first + n; ++k) EXPECT_EQ(redis::KeySlot(keys[trip.items[k]]), slot);
      first += n;
    }
    const redis::TripReply r = redis::SendTrip(pool, trip, Deadline());
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    for (const Status& s : r.calls) EXPECT_TRUE(s.ok()) << s.ToString();
    for (size_t k = 1; k < r.items.size(); ++k) EXPECT_LT(r.items[k - 1].index, r.items[k].index);
    for (const redis::LeaseResult& res : r.items) granted[res.index] = res.grant.granted_units;
    round_keys += static_cast<int>(trip.cmds.size());
  }
  ASSERT_EQ(granted.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(granted[i], items[i].want_units) << keys[i];
    EXPECT_EQ(c.node(c.Owner(redis::KeySlot(keys[i]))).Command({"GET", keys[i]}).str,
              std::to_string(items[i].want_units))
        << keys[i];
  }
  // Call n's round key carries the hash tag of its buckets.
  int found = 0;
  for (int n = 0; n < round_keys; ++n) {
    for (size_t node = 0; node < 3; ++node) {
      const RedisValue v = c.node(node).Command({"KEYS", "dlb:{*}:round:p1:" + std::to_string(n)});
      found += static_cast<int>(v.elements.size());
    }
  }
  EXPECT_EQ(found, round_keys);
}

}  // namespace
}  // namespace dlb::testing
