// ShardSync against a real redis-server: the packet engines' synced rules decided
// against leases, new buckets handed over through the ring, idle buckets forgotten,
// the failure policy and exactly-once reconciliation, two appliances sharing one user,
// and the library's strict mode on the same Redis key.
#include "dlb/packet/shard_sync.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dlb/clock.h"
#include "dlb/key.h"
#include "dlb/limiter.h"
#include "dlb/packet/engine.h"
#include "frames.h"
#include "redis/lease_script.h"
#include "redis/pool.h"
#include "redis/script.h"
#include "redis/slot.h"
#include "redis/url.h"
#include "redis_cluster.h"
#include "redis_server.h"

namespace dlb::packet {
namespace {

using testing::BuildSegment;
using testing::Head;
using testing::SegmentSpec;

int64_t Now() { return MonotonicClock::Instance().NowNs(); }

// One appliance: `cores` engines, one pool, one ShardSync.
class Appliance {
 public:
  Appliance(const std::string& url, int cores, std::vector<RuleConfig> rules, ShardSyncOptions o = {},
            RuleConfig default_rule = DefaultRuleConfig()) {
    config_.max_flows = 256;
    config_.reassembly_buffers = 8;
    config_.shard_users = 4096;
    config_.rules = std::move(rules);
    config_.default_rule = default_rule;
    auto rs = RuleSet::Compile(config_.rules, config_.default_rule);
    EXPECT_TRUE(rs.ok()) << rs.status().ToString();
    rules_ = std::make_unique<RuleSet>(std::move(rs).value());
    for (int i = 0; i < cores; ++i) {
      auto e = PacketEngine::Create(config_, *rules_, HeapAllocator::Instance(), SipKey{11, 22}, Now());
      EXPECT_TRUE(e.ok()) << e.status().ToString();
      engines_.push_back(std::move(e).value());
      raw_.push_back(engines_.back().get());
    }
    auto ep = redis::ParseUrl(url);
    EXPECT_TRUE(ep.ok());
    pool_ = std::make_unique<redis::Pool>(
        *ep, 2, std::vector<std::string_view>{redis::SettleScript(), redis::kAnnounceScript});
    o.deadline = std::chrono::milliseconds(200);  // sanitizer builds on a loaded machine
    auto s = ShardSync::Create(o, pool_.get(), rules_.get(), raw_, HeapAllocator::Instance());
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    sync_ = std::move(s).value();
  }

  // One request head from `user` on `core`, on a connection of its own.
  Verdict Request(int core, const std::string& user, const std::string& path = "/") {
    SegmentSpec syn;
    syn.src.port = static_cast<uint16_t>(10000 + (port_++ % 50000));
    syn.seq = 1000;
    syn.flags = 0x02;
    SegmentSpec data = syn;
    data.seq = 1001;
    data.flags = 0x18;
    data.payload = Head("GET", path, user);
    Process(core, syn);
    const FrameResult r = Process(core, data);
    // Close the flow so that the table never fills.
    SegmentSpec rst = syn;
    rst.seq = 1001 + static_cast<uint32_t>(data.payload.size());
    rst.flags = 0x04;
    Process(core, rst);
    return r.verdict;
  }

  int Admitted(int core, const std::string& user, int n) {
    int ok = 0;
    for (int i = 0; i < n; ++i) ok += Request(core, user) == Verdict::kForward;
    return ok;
  }

  Status Round() { return sync_->Round(Now()); }
  ShardSync& sync() { return *sync_; }
  PacketEngine& engine(int i) { return *engines_[i]; }

 private:
  FrameResult Process(int core, const SegmentSpec& s) {
    frames_.push_back(BuildSegment(s));
    const Frame f{frames_.back().data(), static_cast<uint32_t>(frames_.back().size())};
    FrameResult r;
    engines_[core]->ProcessBurst(&f, 1, Now(), &r);
    if (frames_.size() > 64) frames_.erase(frames_.begin());
    return r;
  }

  PacketConfig config_;
  std::unique_ptr<RuleSet> rules_;
  std::vector<std::unique_ptr<PacketEngine>> engines_;
  std::vector<PacketEngine*> raw_;
  std::unique_ptr<redis::Pool> pool_;
  std::unique_ptr<ShardSync> sync_;
  std::vector<std::vector<uint8_t>> frames_;
  uint32_t port_ = 0;
};

RuleConfig SyncedRule(int64_t capacity, double rate, FailurePolicy on_failure = FailurePolicy::kLocal) {
  RuleConfig r;
  r.name = "syn";
  r.bucket = {.capacity = capacity, .leak_rate_per_s = rate};
  r.mode = Mode::kSynced;
  r.on_store_failure = on_failure;
  return r;
}

class ShardSyncTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new dlb::testing::RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { server_->Command("FLUSHALL"); }

  // The bucket's level in Redis (requests), read with the bucket script's peek.
  static double Level(const std::string& user, const std::string& rule, const BucketSpec& spec) {
    std::string cmd;
    redis::CommandWriter w(cmd);
    auto ep = redis::ParseUrl(server_->Url());
    redis::Pool pool(*ep, 1, {redis::BucketScript()});
    redis::AppendBucketCall(w, redis::BucketScriptSha(), RedisKey(user, rule), redis::BucketOp::kPeek, spec, 1);
    std::vector<redis::Reply> replies;
    EXPECT_TRUE(pool.Call({cmd}, Now() + 2'000'000'000, &replies).ok());
    auto r = redis::ParseBucketReply(replies[0].get());
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->decision.level : -1;
  }

  static dlb::testing::RedisServer* server_;
};
dlb::testing::RedisServer* ShardSyncTest::server_ = nullptr;

// A new bucket is admitted on its credit, handed to the control thread, charged at the
// next round, and then decided against a lease sized to its demand.
TEST_F(ShardSyncTest, LeasesAreGrantedAndUsed) {
  // Never leaks: Redis's level is an exact count of what was charged.
  const BucketSpec spec{.capacity = 100, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.max_credit = 0;  // leases only (the room's credit: CreditIsAShareOfTheRoom)
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  EXPECT_EQ(a.Request(0, "alice"), Verdict::kForward);  // the new bucket's credit
  ASSERT_TRUE(a.Round().ok());
  EXPECT_EQ(a.sync().Stats().tracked, 1u);
  EXPECT_DOUBLE_EQ(Level("alice", "syn", spec), 1 + 3);  // the debit + a lease of 1.5*1+1 -> 3
  EXPECT_EQ(a.Admitted(0, "alice", 3), 3);
  const auto st = a.sync().Stats();
  EXPECT_EQ(st.lease_admitted, 3u);
  EXPECT_EQ(st.credit_admitted, 1u);
  EXPECT_EQ(st.debited_units, 1u);
  EXPECT_EQ(st.granted_units, 3u);
  // No lease left: limited until the next round brings one.
  EXPECT_EQ(a.Request(0, "alice"), Verdict::kReject);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_GE(a.Admitted(0, "alice", 4), 4);
}

// After a round each core may admit its share of the room Redis reported,
// floor(floor(C - level) / N), before it is charged: a user far from its limit is
// never limited for want of a lease, and the shares of all N participants fit.
TEST_F(ShardSyncTest, CreditIsAShareOfTheRoom) {
  const BucketSpec spec{.capacity = 100, .leak_rate_per_s = 0};
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)});
  ASSERT_TRUE(a.Round().ok());  // announced: 1 participant
  EXPECT_EQ(a.Request(0, "kim"), Verdict::kForward);   // the new slot's credit
  ASSERT_TRUE(a.Round().ok());  // debit 1, lease 3: level 4, room 96
  EXPECT_DOUBLE_EQ(Level("kim", "syn", spec), 4);
  EXPECT_EQ(a.Admitted(0, "kim", 99), 99);             // 3 leased + 96 credit
  EXPECT_EQ(a.Request(0, "kim"), Verdict::kReject);
  ASSERT_TRUE(a.Round().ok());  // debit 96: full, nothing over
  EXPECT_DOUBLE_EQ(Level("kim", "syn", spec), 100);
  EXPECT_EQ(a.Request(0, "kim"), Verdict::kReject);
  EXPECT_EQ(a.sync().Stats().debited_units, 1u + 96u);
}

// A strict rule is charged before it is admitted: a new slot has no credit, a lease is
// the demand seen, no headroom and no credit.
TEST_F(ShardSyncTest, StrictRulesAreLeasedOneRequestAtATime) {
  const BucketSpec spec{.capacity = 5, .leak_rate_per_s = 0};
  RuleConfig strict = SyncedRule(spec.capacity, spec.leak_rate_per_s);
  strict.mode = Mode::kStrict;
  Appliance a(server_->Url(), 1, {strict});
  EXPECT_EQ(a.Request(0, "lou"), Verdict::kReject);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_DOUBLE_EQ(Level("lou", "syn", spec), 1);      // a lease of the 1 request seen
  EXPECT_EQ(a.Request(0, "lou"), Verdict::kForward);
  EXPECT_EQ(a.Request(0, "lou"), Verdict::kReject);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(a.Round().ok());
    a.Admitted(0, "lou", 3);
  }
  ASSERT_TRUE(a.Round().ok());
  EXPECT_EQ(a.sync().Stats().lease_admitted, 5u);
  EXPECT_EQ(a.sync().Stats().credit_admitted, 0u);
  EXPECT_DOUBLE_EQ(Level("lou", "syn", spec), 5);
}

// Unused leased units go back at the next round; a bucket with demand keeps what the
// next interval needs (no rejection while the round is in flight).
TEST_F(ShardSyncTest, RoundReclaimsAndReturnsUnusedUnits) {
  const BucketSpec spec{.capacity = 100, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.standing_rounds = 0;
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  EXPECT_EQ(a.Request(0, "dave"), Verdict::kForward);
  ASSERT_TRUE(a.Round().ok());  // debit 1, lease 3
  EXPECT_DOUBLE_EQ(Level("dave", "syn", spec), 4);
  EXPECT_EQ(a.Admitted(0, "dave", 2), 2);
  // Demand 2: target ceil(1.5*2)+1 = 4; the remaining unit is kept, 3 more asked for.
  ASSERT_TRUE(a.Round().ok());
  EXPECT_DOUBLE_EQ(Level("dave", "syn", spec), 4 + 3);
  EXPECT_EQ(a.sync().Stats().returned_units, 0u);
  // No demand: all 4 units go back.
  ASSERT_TRUE(a.Round().ok());
  EXPECT_DOUBLE_EQ(Level("dave", "syn", spec), 3);
  EXPECT_EQ(a.sync().Stats().returned_units, 4u);
  EXPECT_EQ(a.sync().Stats().tracked, 1u);
}

// A bucket seen recently keeps one leased unit between its requests (standing), and
// gives it back after standing_rounds rounds without a request.
TEST_F(ShardSyncTest, StandingUnitIsKeptThenReturned) {
  const BucketSpec spec{.capacity = 100, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.standing_rounds = 3;
  o.max_credit = 0;
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  EXPECT_EQ(a.Request(0, "max"), Verdict::kForward);
  ASSERT_TRUE(a.Round().ok());  // debit 1, lease 3
  ASSERT_TRUE(a.Round().ok());  // no demand: keeps 1, returns 2
  EXPECT_DOUBLE_EQ(Level("max", "syn", spec), 2);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_DOUBLE_EQ(Level("max", "syn", spec), 2);
  EXPECT_EQ(a.Request(0, "max"), Verdict::kForward);  // the standing unit
  EXPECT_EQ(a.Request(0, "max"), Verdict::kReject);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.Round().ok());
  // Demand 2 leases 4, then the standing unit is kept for 3 rounds, then nothing: the
  // two admitted requests stay charged, every unit not used is back.
  EXPECT_DOUBLE_EQ(Level("max", "syn", spec), 2);
  EXPECT_EQ(a.sync().Stats().lease_admitted, 1u);
}

// Every new synced bucket of every core reaches the control thread and is tracked
// under the key every form uses: the identity header, or the client's address.
TEST_F(ShardSyncTest, NewBucketsAreHandedOverThroughTheRing) {
  const BucketSpec spec{.capacity = 100, .leak_rate_per_s = 0};
  Appliance a(server_->Url(), 2, {SyncedRule(spec.capacity, spec.leak_rate_per_s)});
  for (int u = 0; u < 10; ++u) EXPECT_EQ(a.Request(u % 2, "user" + std::to_string(u)), Verdict::kForward);
  EXPECT_EQ(a.Request(0, ""), Verdict::kForward);  // keyed by the source address
  EXPECT_EQ(a.sync().Stats().registrations, 11u);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_EQ(a.sync().Stats().tracked, 11u);
  for (int u = 0; u < 10; ++u) EXPECT_GE(Level("user" + std::to_string(u), "syn", spec), 1) << u;
  // The address's user ID is the one every form uses (dlb::SourceAddressUserId; the
  // XDP agent's UserIdOf too), so one client has one Redis bucket.
  const uint8_t client[4] = {10, 0, 0, 1};
  EXPECT_EQ(SourceAddressUserId(4, client), "ip:10.0.0.1");
  EXPECT_GE(Level(SourceAddressUserId(4, client), "syn", spec), 1);
  EXPECT_EQ(Level("ip:10.0.0.1", "syn", spec), Level(SourceAddressUserId(4, client), "syn", spec));
  // A header naming the address is another user, charged in a bucket of its own.
  EXPECT_EQ(Level("10.0.0.1", "syn", spec), 0);
  EXPECT_EQ(a.Request(0, "10.0.0.1"), Verdict::kForward);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_GE(Level("10.0.0.1", "syn", spec), 1);
  // The same user on another core is another participant's slot of the same bucket.
  EXPECT_EQ(a.Request(1, "user0"), Verdict::kForward);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_EQ(a.sync().Stats().tracked, 13u);
}

// A full ring refuses the registration (counted); the bucket is then decided by its
// share and registered by a later request once the ring has room.
TEST_F(ShardSyncTest, FullRingLeavesTheBucketLocal) {
  const BucketSpec spec{.capacity = 100, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.ring_entries = 2;
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  for (int u = 0; u < 5; ++u) EXPECT_EQ(a.Request(0, "r" + std::to_string(u)), Verdict::kForward);
  ShardSyncStats st = a.sync().Stats();
  EXPECT_EQ(st.registrations, 2u);
  EXPECT_EQ(st.ring_full, 3u);
  EXPECT_EQ(st.share_admitted, 3u);
  EXPECT_EQ(st.credit_admitted, 2u);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_EQ(a.sync().Stats().tracked, 2u);
  EXPECT_EQ(a.Request(0, "r2"), Verdict::kForward);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_EQ(a.sync().Stats().tracked, 3u);
  EXPECT_GE(Level("r2", "syn", spec), 1);
}

// A bucket idle for idle_rounds_to_forget rounds is settled and untracked; its entry is
// the worker's again, and the user's next request registers it anew.
TEST_F(ShardSyncTest, IdleBucketsAreForgotten) {
  const BucketSpec spec{.capacity = 100, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.idle_rounds_to_forget = 3;
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  EXPECT_EQ(a.Request(0, "erin"), Verdict::kForward);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(a.Round().ok());
  ShardSyncStats st = a.sync().Stats();
  EXPECT_EQ(st.tracked, 0u);
  EXPECT_EQ(st.forgotten, 1u);
  EXPECT_DOUBLE_EQ(Level("erin", "syn", spec), 1);  // the lease came back, the use stays
  EXPECT_EQ(a.Request(0, "erin"), Verdict::kForward);
  EXPECT_EQ(a.sync().Stats().registrations, 2u);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_EQ(a.sync().Stats().tracked, 1u);
  EXPECT_DOUBLE_EQ(Level("erin", "syn", spec), 2 + 3);
}

// Redis killed: after the breaker opens each rule's on_store_failure decides (local =
// the core's share, open, closed). Restarted (empty): what was admitted meanwhile is
// charged exactly once.
TEST_F(ShardSyncTest, FailurePolicyAndReconciliationAfterRestart) {
  const BucketSpec spec{.capacity = 8, .leak_rate_per_s = 0};
  RuleConfig loc = SyncedRule(spec.capacity, 0, FailurePolicy::kLocal);
  loc.name = "loc";
  loc.path_prefix = "/l";
  RuleConfig opn = SyncedRule(spec.capacity, 0, FailurePolicy::kOpen);
  opn.name = "opn";
  opn.path_prefix = "/o";
  RuleConfig cls = SyncedRule(spec.capacity, 0, FailurePolicy::kClosed);
  cls.name = "cls";
  cls.path_prefix = "/c";
  ShardSyncOptions o;
  o.participant_ttl = std::chrono::milliseconds(600000);
  o.standing_rounds = 0;
  Appliance a(server_->Url(), 1, {loc, opn, cls}, o);
  ASSERT_TRUE(a.Round().ok());  // announced: 1 participant
  EXPECT_EQ(a.Request(0, "fay", "/l"), Verdict::kForward);
  EXPECT_EQ(a.Request(0, "fay", "/o"), Verdict::kForward);
  EXPECT_EQ(a.Request(0, "fay", "/c"), Verdict::kForward);
  ASSERT_TRUE(a.Round().ok());
  server_->Kill();
  ASSERT_TRUE(dlb::testing::WaitFor(
      [&] {
        (void)a.Round();
        return a.sync().Stats().store_down;
      },
      std::chrono::seconds(20)));
  // The rounds that found Redis gone took the unused leases back (they are returned
  // with the failed round's re-send): the policies decide everything.
  int loc_ok = 0, opn_ok = 0, cls_ok = 0;
  for (int i = 0; i < 12; ++i) {
    loc_ok += a.Request(0, "fay", "/l") == Verdict::kForward;
    opn_ok += a.Request(0, "fay", "/o") == Verdict::kForward;
    cls_ok += a.Request(0, "fay", "/c") == Verdict::kForward;
  }
  // local: the share bucket of 1 participant (C = 8, fresh).
  EXPECT_EQ(loc_ok, 8);
  EXPECT_EQ(opn_ok, 12);
  EXPECT_EQ(cls_ok, 0);
  const ShardSyncStats st = a.sync().Stats();
  EXPECT_EQ(st.share_admitted, 8u);
  EXPECT_EQ(st.open_admitted, 12u);
  EXPECT_EQ(st.closed_limited, 12u);

  server_->Restart();
  ASSERT_TRUE(dlb::testing::WaitFor(
      [&] {
        (void)a.Round();
        return !a.sync().Stats().store_down && a.sync().Stats().rounds > 0;
      },
      std::chrono::seconds(20)));
  // Two more rounds without demand: everything owed is charged, every lease returned.
  ASSERT_TRUE(a.Round().ok());
  ASSERT_TRUE(a.Round().ok());
  ASSERT_TRUE(a.Round().ok());
  // The restarted Redis lost what was charged before; what was admitted during the
  // outage beyond the old leases is charged once (saturating at C).
  EXPECT_DOUBLE_EQ(Level("fay", "loc", spec), 8);
  EXPECT_DOUBLE_EQ(Level("fay", "opn", spec), 8);
  EXPECT_DOUBLE_EQ(Level("fay", "cls", spec), 0);
  // Charged once: the three first requests' credits, then the 8 + 12 admitted on the
  // share and open; nothing was sent twice.
  EXPECT_EQ(a.sync().Stats().debited_units, 3u + 8u + 12u);
}

// A round whose reply is lost (the server stopped past the deadline, then resumed and
// ran it) is re-sent verbatim and applied once: the replay returns the stored reply.
TEST_F(ShardSyncTest, LostReplyIsAppliedExactlyOnce) {
  const BucketSpec spec{.capacity = 1000, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.new_bucket_credit = 1000;
  o.standing_rounds = 0;
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.Request(0, "gus"), Verdict::kForward);  // credit
  server_->Stop();
  EXPECT_FALSE(a.Round().ok());
  server_->Cont();
  ASSERT_TRUE(dlb::testing::WaitFor([&] { return a.Round().ok(); }, std::chrono::seconds(20)));
  const ShardSyncStats st = a.sync().Stats();
  EXPECT_GE(st.resent_calls, 1u);
  // The re-sent round charged the debit of 5 and leased ceil(1.5*5)+1 = 9 units, once
  // (its grant learned from the stored reply); the round after it, without demand,
  // gave the 9 back.
  EXPECT_EQ(st.granted_units, 9u);
  EXPECT_EQ(st.returned_units, 9u);
  EXPECT_DOUBLE_EQ(Level("gus", "syn", spec), 5);
}

// Two appliances (two ShardSyncs, two cores each) share one user's bucket: together they
// admit its capacity, not twice it.
TEST_F(ShardSyncTest, TwoAppliancesShareOneLimit) {
  const BucketSpec spec{.capacity = 20, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.participant_ttl = std::chrono::milliseconds(300);  // announced every 100 ms
  Appliance a(server_->Url(), 2, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  Appliance b(server_->Url(), 2, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  // Before traffic, both count 4 participants (the credit of a new slot is C/4).
  ASSERT_TRUE(dlb::testing::WaitFor(
      [&] {
        (void)a.Round();
        (void)b.Round();
        return a.sync().Stats().live_participants == 4 && b.sync().Stats().live_participants == 4;
      },
      std::chrono::seconds(20)));
  int admitted = 0;
  for (int round = 0; round < 10; ++round) {
    for (int core = 0; core < 2; ++core) {
      admitted += a.Admitted(core, "hal", 4);
      admitted += b.Admitted(core, "hal", 4);
    }
    ASSERT_TRUE(a.Round().ok());
    ASSERT_TRUE(b.Round().ok());
  }
  // C, plus at most the four slots' credits of one unit (admitted before any round
  // charged them): the bound's over-admission term. Alone, each would have taken 20.
  EXPECT_GE(admitted, 20);
  EXPECT_LE(admitted, 20 + 4);
  EXPECT_DOUBLE_EQ(Level("hal", "syn", spec), 20);
}

// On Redis Cluster a round's settle calls never cross a slot (the round key takes the
// calls' hash tag): users on every node are leased, and once the leases are given back
// each bucket in Redis holds exactly what its user was admitted.
TEST(ShardSyncClusterTest, SettleCallsAreSplitPerSlot) {
  dlb::testing::Cluster c;
  const BucketSpec spec{.capacity = 6, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.participant_ttl = std::chrono::milliseconds(300);
  Appliance a(c.Url(), 2, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  std::vector<std::string> users;
  std::set<size_t> owners;
  for (int i = 0; i < 12; ++i) {
    users.push_back("cl-" + std::to_string(i));
    owners.insert(c.Owner(redis::KeySlot(RedisKey(users.back(), "syn"))));
  }
  ASSERT_EQ(owners.size(), 3u) << "the users' buckets are spread over all nodes";
  ASSERT_TRUE(dlb::testing::WaitFor(
      [&] {
        (void)a.Round();
        return a.sync().Stats().live_participants == 2;
      },
      std::chrono::seconds(20)));
  std::vector<int> admitted(users.size(), 0);
  for (int round = 0; round < 6; ++round) {
    for (size_t u = 0; u < users.size(); ++u) {
      for (int core = 0; core < 2; ++core) admitted[u] += a.Admitted(core, users[u], 2);
    }
    const Status s = a.Round();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  ASSERT_TRUE(a.sync().ReturnAll(Now()).ok());
  for (size_t u = 0; u < users.size(); ++u) {
    // C, plus at most the two cores' new-slot credits of one unit.
    EXPECT_GE(admitted[u], spec.capacity) << users[u];
    EXPECT_LE(admitted[u], spec.capacity + 2) << users[u];
    const std::string key = RedisKey(users[u], "syn");
    EXPECT_EQ(c.node(c.Owner(redis::KeySlot(key))).Command({"GET", key}).str,
              std::to_string(admitted[u]))
        << users[u];
  }
}

// The library's strict mode and the appliance's synced rule of the same name decide one
// bucket: the same Redis key.
TEST_F(ShardSyncTest, SharesTheBucketWithTheLibrarysStrictMode) {
  const BucketSpec spec{.capacity = 10, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.max_credit = 0;
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  LimiterOptions lo;
  lo.mode = Mode::kStrict;
  lo.redis_url = server_->Url();
  auto lib = Limiter::Create(lo);
  ASSERT_TRUE(lib.ok()) << lib.status().ToString();
  int admitted = 0;
  for (int i = 0; i < 4; ++i) {
    auto d = (*lib)->Decide("ivy", spec, 1, "syn");
    ASSERT_TRUE(d.ok());
    admitted += d->allowed;
  }
  EXPECT_EQ(admitted, 4);
  ASSERT_TRUE(a.Round().ok());
  // A new slot's credit (1) is charged at the next round: debit 1, lease 3.
  EXPECT_EQ(a.Request(0, "ivy"), Verdict::kForward);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_DOUBLE_EQ(Level("ivy", "syn", spec), 5 + 3);
  for (int i = 0; i < 10; ++i) admitted += a.Request(0, "ivy") == Verdict::kForward;
  for (int i = 0; i < 4; ++i) {
    auto d = (*lib)->Decide("ivy", spec, 1, "syn");
    ASSERT_TRUE(d.ok());
    admitted += d->allowed;
  }
  ASSERT_TRUE(a.Round().ok());
  EXPECT_EQ(admitted + 1, 10);
  EXPECT_DOUBLE_EQ(Level("ivy", "syn", spec), 10);
}

}  // namespace
}  // namespace dlb::packet
