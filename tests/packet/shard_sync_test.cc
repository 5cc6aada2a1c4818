// ShardSync against a real redis-server: the packet engines' synced rules decided
// against leases, new buckets handed over through the ring, idle buckets forgotten,
// the failure policy and exactly-once reconciliation, two appliances sharing one user,
// and the library's strict mode on the same Redis key.
#include "dlb/packet/shard_sync.h"

#include <gtest/gtest.h>

#include <memory>
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
#include "redis/url.h"
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
  Appliance a(server_->Url(), 1, {SyncedRule(spec.capacity, spec.leak_rate_per_s)});
  EXPECT_EQ(a.Request(0, "alice"), Verdict::kForward);  // credit (1 participant: C)
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

}  // namespace
}  // namespace dlb::packet
