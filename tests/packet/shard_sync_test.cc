// ShardSync against a real redis-server: the packet engines' synced rules decided
// against leases, new buckets handed over through the ring, idle buckets forgotten,
// the failure policy and exactly-once reconciliation, two appliances sharing one user,
// and the library's strict mode on the same Redis key.
#include "dlb/packet/shard_sync.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <thread>
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

  // One request head sent as a client's TCP sends it: a head refused unanswered (the
  // segment dropped while the core waits for a lease) is sent again after `between`
  // (the client's retransmission timeout; in it the control thread's round runs), up to
  // kMaxRetransmits times. The final verdict; *drops counts the refusals.
  static constexpr int kMaxRetransmits = 8;
  template <typename Between>
  Verdict Send(int core, const std::string& user, int* drops, Between&& between) {
    SegmentSpec syn;
    syn.src.port = static_cast<uint16_t>(10000 + (port_++ % 50000));
    syn.seq = 1000;
    syn.flags = 0x02;
    SegmentSpec data = syn;
    data.seq = 1001;
    data.flags = 0x18;
    data.payload = Head("GET", "/", user);
    Process(core, syn);
    Verdict v = Process(core, data).verdict;
    for (int i = 0; v == Verdict::kDrop && i < kMaxRetransmits; ++i) {
      ++*drops;
      between();
      v = Process(core, data).verdict;
    }
    SegmentSpec rst = syn;
    rst.seq = 1001 + static_cast<uint32_t>(data.payload.size());
    rst.flags = 0x04;
    Process(core, rst);
    return v;
  }
  // As above, with a round of the control thread before each retransmission.
  Verdict Send(int core, const std::string& user, int* drops) {
    return Send(core, user, drops, [&] { EXPECT_TRUE(Round().ok()); });
  }

  int Admitted(int core, const std::string& user, int n) {
    int ok = 0;
    for (int i = 0; i < n; ++i) ok += Request(core, user) == Verdict::kForward;
    return ok;
  }

  Status Round() { return sync_->Round(Now()); }
  FrameResult Segment(int core, const SegmentSpec& s) { return Process(core, s); }
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

  // Runs both appliances' rounds until each counts `live` participants (its cores).
  static bool WaitBothLive(Appliance& a, Appliance& b, int64_t live) {
    return dlb::testing::WaitFor(
        [&] {
          (void)a.Round();
          (void)b.Round();
          return a.sync().Stats().live_participants == live && b.sync().Stats().live_participants == live;
        },
        std::chrono::seconds(20));
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
  // No lease left, and Redis has room: refused unanswered (the client retransmits)
  // until the next round brings a lease; never a 429.
  EXPECT_EQ(a.Request(0, "alice"), Verdict::kDrop);
  EXPECT_EQ(a.sync().Stats().lease_waits, 1u);
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
  // Spent, but not known full (the last round saw room): wait for the round.
  EXPECT_EQ(a.Request(0, "kim"), Verdict::kDrop);
  ASSERT_TRUE(a.Round().ok());  // debit 96: full, nothing over
  EXPECT_DOUBLE_EQ(Level("kim", "syn", spec), 100);
  EXPECT_EQ(a.Request(0, "kim"), Verdict::kReject);     // Redis reported it full
  EXPECT_EQ(a.sync().Stats().debited_units, 1u + 96u);
  EXPECT_EQ(a.sync().Stats().no_lease_limited, 1u);
}

// A strict rule is charged before it is admitted: a new slot has no credit (its first
// request waits for a lease: refused unanswered, not limited), a lease is the demand
// seen, no headroom and no credit.
TEST_F(ShardSyncTest, StrictRulesAreLeasedOneRequestAtATime) {
  const BucketSpec spec{.capacity = 5, .leak_rate_per_s = 0};
  RuleConfig strict = SyncedRule(spec.capacity, spec.leak_rate_per_s);
  strict.mode = Mode::kStrict;
  Appliance a(server_->Url(), 1, {strict});
  EXPECT_EQ(a.Request(0, "lou"), Verdict::kDrop);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_DOUBLE_EQ(Level("lou", "syn", spec), 1);      // a lease of the 1 request seen
  EXPECT_EQ(a.Request(0, "lou"), Verdict::kForward);
  EXPECT_EQ(a.Request(0, "lou"), Verdict::kDrop);
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
  EXPECT_EQ(a.Request(0, "max"), Verdict::kDrop);     // waits for the next round
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
  ASSERT_TRUE(WaitBothLive(a, b, 4));
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

// No false 429 (one participant). 20 new users of a rule C = 3, r = 0.01/s each send 3
// requests: spread out (a burst of 20 rounds, 0.1 s at 5 ms, between a user's
// requests) and in a burst within one interval. None is answered 429: a request that
// found no lease was refused unanswered and admitted when retransmitted after the next
// round. A fourth request, over the limit, is still limited: Redis's ledger proves the
// bucket full.
TEST_F(ShardSyncTest, NewUsersWithinTheLimitAreNeverRejected) {
  const BucketSpec spec{.capacity = 3, .leak_rate_per_s = 0.01};
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)});
  ASSERT_TRUE(a.Round().ok());  // announced: 1 participant
  int forwarded = 0, rejected[2] = {0, 0}, drops[2] = {0, 0};
  auto send = [&](int burst, const std::string& user) {
    const Verdict v = a.Send(0, user, &drops[burst]);
    forwarded += v == Verdict::kForward;
    rejected[burst] += v == Verdict::kReject;
  };
  for (int k = 0; k < 3; ++k) {
    for (int u = 0; u < 20; ++u) send(0, "spread" + std::to_string(u));
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(a.Round().ok());
  }
  for (int u = 0; u < 20; ++u) {
    for (int k = 0; k < 3; ++k) send(1, "burst" + std::to_string(u));
  }
  EXPECT_EQ(rejected[0], 0);
  EXPECT_EQ(rejected[1], 0);
  EXPECT_EQ(forwarded, 120);
  std::printf("[ figures ] 20 users x 3 requests at C = 3: spread: %d of 60 rejected, %d drops; "
              "burst: %d of 60 rejected, %d drops\n",
              rejected[0], drops[0], rejected[1], drops[1]);
  ASSERT_TRUE(a.Round().ok());
  for (int u = 0; u < 20; ++u) {
    int over_drops = 0;
    EXPECT_EQ(a.Send(0, "spread" + std::to_string(u), &over_drops), Verdict::kReject) << u;
    EXPECT_EQ(a.Send(0, "burst" + std::to_string(u), &over_drops), Verdict::kReject) << u;
    EXPECT_EQ(over_drops, 0) << u;
    EXPECT_NEAR(Level("spread" + std::to_string(u), "syn", spec), 3, 0.01) << u;
  }
  EXPECT_EQ(a.sync().Stats().no_lease_limited, 40u);
}

// Two pipelined heads of a new user in one segment: the first is admitted on the new
// bucket's credit, the second waits. The engine forwards the segment cut before it
// (never a 429, the server's answer to the first is not touched); the client
// retransmits the rest, which the next round's lease admits.
TEST_F(ShardSyncTest, PipelinedHeadThatWaitsIsCutOffAndDecidedOnRetransmission) {
  Appliance a(server_->Url(), 1, {SyncedRule(100, 0)});
  ASSERT_TRUE(a.Round().ok());
  SegmentSpec syn;
  syn.src.port = 41000;
  syn.seq = 1000;
  syn.flags = 0x02;
  a.Segment(0, syn);
  const std::string first = Head("GET", "/", "pia");
  const std::string second = Head("GET", "/", "pia");
  SegmentSpec data = syn;
  data.seq = 1001;
  data.flags = 0x18;
  data.payload = first + second;
  FrameResult r = a.Segment(0, data);
  EXPECT_EQ(r.verdict, Verdict::kForwardPrefix);
  EXPECT_EQ(r.forward_bytes, first.size());
  EXPECT_EQ(a.engine(0).counters().lease_wait_drops, 1u);
  EXPECT_EQ(a.engine(0).counters().rejected, 0u);
  ASSERT_TRUE(a.Round().ok());
  data.seq = 1001 + static_cast<uint32_t>(first.size());
  data.payload = second;
  r = a.Segment(0, data);
  EXPECT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(a.engine(0).counters().allowed, 2u);
}

// A rule whose requests cost several units is leased in units: its heads wait for one
// round at most, then each is admitted until the bucket is full, then limited.
TEST_F(ShardSyncTest, LeasesCoverTheRulesCost) {
  const BucketSpec spec{.capacity = 100, .leak_rate_per_s = 0};
  RuleConfig rule = SyncedRule(spec.capacity, spec.leak_rate_per_s);
  rule.cost = 5;
  Appliance a(server_->Url(), 1, {rule});
  ASSERT_TRUE(a.Round().ok());
  int drops = 0;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a.Send(0, "cy", &drops), Verdict::kForward) << i;
  EXPECT_LE(drops, 20);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_EQ(a.Send(0, "cy", &drops), Verdict::kReject);
  ASSERT_TRUE(a.Round().ok());
  EXPECT_DOUBLE_EQ(Level("cy", "syn", spec), 100);
}

// No false 429 at speed (one participant): a user of C = r = 1e8 sends as fast as one
// core decides while the control thread runs its rounds on its own thread (every 5 ms,
// or at once when a worker waited). Leases run out between rounds; the heads that find
// none are retransmitted after the next round, never answered 429.
TEST_F(ShardSyncTest, HighRateUserFarFromItsLimitIsNeverRejected) {
  const BucketSpec spec{.capacity = 100'000'000, .leak_rate_per_s = 1e8};
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)});
  ASSERT_TRUE(a.Round().ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rounds{0};
  std::thread control([&] {
    int64_t next = Now();
    while (!stop.load()) {
      if (a.sync().RoundWanted() || Now() >= next) {
        (void)a.Round();
        rounds.fetch_add(1);
        next = Now() + 5'000'000;
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
  });
  // A retransmission after two more rounds: the first may have taken its snapshot
  // before the wait.
  auto after_a_round = [&] {
    const uint64_t r0 = rounds.load();
    while (rounds.load() < r0 + 2) std::this_thread::sleep_for(std::chrono::microseconds(50));
  };
  constexpr int kRequests = 20000;
  int forwarded = 0, rejected = 0, drops = 0;
  const int64_t start = Now();
  for (int i = 0; i < kRequests; ++i) {
    const Verdict v = a.Send(0, "whale", &drops, after_a_round);
    forwarded += v == Verdict::kForward;
    rejected += v == Verdict::kReject;
  }
  const double seconds = static_cast<double>(Now() - start) / 1e9;
  stop = true;
  control.join();
  EXPECT_EQ(rejected, 0);
  EXPECT_EQ(forwarded, kRequests);
  std::printf("[ figures ] C = r = 1e8, %d requests at %.0f/s: %d rejected, %d drops (%.3f%%), %llu rounds\n",
              kRequests, kRequests / seconds, rejected, drops, 100.0 * drops / kRequests,
              static_cast<unsigned long long>(rounds.load()));
}

// Two appliances (one core each) share a user at its limit (C = 20, never leaks): each
// request goes to one of them at random, rounds in between. Together they admit C plus
// at most the credits; a 429 is answered only while the exact bucket's room is below
// the request's cost plus the units the other participant held leased at most (the
// only room a participant cannot see; shard_sync.h, "No false 429").
TEST_F(ShardSyncTest, TwoParticipantsNearTheLimitRejectOnlyWhatTheOthersLeaseHides) {
  const BucketSpec spec{.capacity = 20, .leak_rate_per_s = 0};
  ShardSyncOptions o;
  o.participant_ttl = std::chrono::milliseconds(300);
  o.record_peaks = true;
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  Appliance b(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)}, o);
  ASSERT_TRUE(WaitBothLive(a, b, 2));
  std::mt19937 rng(19);
  Appliance* side[2] = {&a, &b};
  int admitted = 0, rejected = 0, false_rejects = 0, drops = 0;
  int64_t max_room_at_reject[2] = {-1, -1};
  for (int i = 0; i < 60; ++i) {
    const int p = static_cast<int>(rng() % 2);
    const Verdict v = side[p]->Send(0, "zoe", &drops, [&] {
      ASSERT_TRUE(a.Round().ok());
      ASSERT_TRUE(b.Round().ok());
    });
    ASSERT_NE(v, Verdict::kDrop) << "a retransmission after rounds finds a lease or a proof";
    if (v == Verdict::kForward) ++admitted;
    if (v == Verdict::kReject) {
      ++rejected;
      const int64_t room = spec.capacity - admitted;
      false_rejects += room >= 1;
      max_room_at_reject[p] = std::max(max_room_at_reject[p], room);
    }
    if (rng() % 3 == 0) {
      ASSERT_TRUE(a.Round().ok());
      ASSERT_TRUE(b.Round().ok());
    }
  }
  const std::string key = RedisKey("zoe", "syn");
  const int64_t lease[2] = {a.sync().PeakLease(key), b.sync().PeakLease(key)};
  const int64_t credit = a.sync().PeakCredit(key) + b.sync().PeakCredit(key);
  EXPECT_LE(admitted, spec.capacity + 2 + credit);  // + each slot's first credit
  EXPECT_GE(admitted + lease[0] + lease[1], spec.capacity);
  EXPECT_GT(rejected, 0);
  for (int p = 0; p < 2; ++p) EXPECT_LT(max_room_at_reject[p], 1 + lease[1 - p]) << p;
  std::printf("[ figures ] two participants, C = 20, 60 requests: %d admitted, %d rejected, of "
              "which %d with room left (rooms %lld/%lld, peak leases %lld/%lld), %d drops\n",
              admitted, rejected, false_rejects, static_cast<long long>(max_room_at_reject[0]),
              static_cast<long long>(max_room_at_reject[1]), static_cast<long long>(lease[0]),
              static_cast<long long>(lease[1]), drops);
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
  lo.deadline = std::chrono::milliseconds(200);  // a store failure would decide locally
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
