#include "redis/pool.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "dlb/clock.h"
#include "log/log.h"
#include "redis/cluster.h"
#include "redis/script.h"
#include "redis/sentinel.h"
#include "redis/slot.h"

namespace dlb::redis {
namespace {

int64_t NowMonoNs() { return MonotonicClock::Instance().NowNs(); }

// Resends of one call: a failover or a slot migration settles within a few; beyond
// that something is wrong and the breaker should hear of it.
constexpr int kMaxRounds = 8;
// A TRYAGAIN (a multi-key command during a slot migration) waits this long, within
// the deadline, before the resend.
constexpr int64_t kTryAgainPauseNs = 500'000;

// `deadline_ns` on CLOCK_MONOTONIC as a steady_clock time point (the same clock on
// Linux; computed from the remaining time so that it does not matter).
std::chrono::steady_clock::time_point SteadyDeadline(int64_t deadline_ns) {
  return std::chrono::steady_clock::now() + std::chrono::nanoseconds(std::max<int64_t>(0, deadline_ns - NowMonoNs()));
}

const char kAsking[] = "*1\r\n$6\r\nASKING\r\n";

}  // namespace

struct Pool::Node {
  Endpoint ep;
  HostPort addr;
  uint64_t tag = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Connection>> idle;
  int open = 0;
  bool retired = false;
};

Pool::Pool(Endpoint ep, int max_connections, std::vector<std::string_view> scripts)
    : ep_(std::move(ep)), max_connections_(max_connections), scripts_(std::move(scripts)) {
  for (std::string_view s : scripts_) shas_.push_back(ScriptSha(s));
  switch (ep_.topology) {
    case Topology::kStandalone: {
      auto node = std::make_shared<Node>();
      node->ep = ep_;
      node->addr = {ep_.unix_socket ? ep_.path : ep_.host, ep_.unix_socket ? 0 : ep_.port};
      node->tag = next_tag_++;
      master_tag_ = node->tag;
      nodes_.emplace(node->tag, std::move(node));
      break;
    }
    case Topology::kSentinel:
      break;   // the watcher starts with the first discovery: a pool never used stays quiet
    case Topology::kCluster:
      slot_tags_.assign(kClusterSlots, 0);
      refresher_ = std::thread([this] { RefreshLoop(); });
      break;
  }
}

Pool::~Pool() {
  watcher_.reset();
  if (refresher_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(refresh_mu_);
      refresh_stop_ = true;
    }
    refresh_cv_.notify_all();
    refresher_.join();
  }
}

std::shared_ptr<Pool::Node> Pool::NodeAt(const HostPort& hp) {
  std::unique_lock<std::shared_mutex> lock(nodes_mu_);
  for (const auto& [tag, node] : nodes_) {
    if (node->addr == hp) return node;
  }
  auto node = std::make_shared<Node>();
  node->ep = ep_.At(hp);
  node->addr = hp;
  node->tag = next_tag_++;
  nodes_.emplace(node->tag, node);
  return node;
}

std::shared_ptr<Pool::Node> Pool::NodeByTag(uint64_t tag) const {
  std::shared_lock<std::shared_mutex> lock(nodes_mu_);
  auto it = nodes_.find(tag);
  return it == nodes_.end() ? nullptr : it->second;
}

StatusOr<std::unique_ptr<Connection>> Pool::AcquireFrom(Node& node, int64_t deadline_ns) {
  std::unique_lock<std::mutex> lock(node.mu);
  for (;;) {
    if (node.retired) return Status::Unavailable("Redis server " + node.addr.ToString() + " is no longer in use");
    if (!node.idle.empty()) {
      auto c = std::move(node.idle.back());
      node.idle.pop_back();
      return c;
    }
    if (node.open < max_connections_) break;
    const int64_t left = deadline_ns - NowMonoNs();
    if (left <= 0) return Status::DeadlineExceeded("no Redis connection free within the deadline");
    node.cv.wait_for(lock, std::chrono::nanoseconds(left));
  }
  ++node.open;
  lock.unlock();
  auto conn = Connection::Open(node.ep, deadline_ns);
  Status st = conn.ok() ? SetUp(**conn, deadline_ns) : conn.status();
  if (!st.ok()) {
    lock.lock();
    --node.open;
    node.cv.notify_one();
    return st;
  }
  (*conn)->set_node_tag(node.tag);
  return std::move(*conn);
}

StatusOr<std::unique_ptr<Connection>> Pool::Acquire(int64_t deadline_ns) {
  switch (ep_.topology) {
    case Topology::kStandalone:
      return AcquireFrom(*NodeByTag(master_tag_), deadline_ns);
    case Topology::kSentinel: {
      Status last;
      for (int attempt = 0; attempt < 3 && NowMonoNs() < deadline_ns; ++attempt) {
        auto node = Master(deadline_ns);
        if (!node.ok()) return node.status();
        auto c = AcquireFrom(**node, deadline_ns);
        if (c.ok()) return c;
        ForgetMaster((*node)->tag);
        last = c.status();
      }
      return last.ok() ? Status::DeadlineExceeded("Sentinel master not reached within the deadline") : last;
    }
    case Topology::kCluster: {
      if (!HaveSlotMap()) (void)RefreshSlots(deadline_ns, deadline_ns - NowMonoNs());
      uint64_t tag = 0;
      {
        std::shared_lock<std::shared_mutex> lock(nodes_mu_);
        for (uint64_t t : slot_tags_) {
          if (t != 0) {
            tag = t;
            break;
          }
        }
      }
      auto node = tag != 0 ? NodeByTag(tag) : nullptr;
      if (node == nullptr) node = NodeAt(ep_.seeds[0]);
      return AcquireFrom(*node, deadline_ns);
    }
  }
  return Status::Internal("unknown Redis topology");
}

void Pool::Release(std::unique_ptr<Connection> c) {
  auto node = NodeByTag(c->node_tag());
  if (node == nullptr) return;  // its server was dropped (a failover): close it
  std::lock_guard<std::mutex> lock(node->mu);
  if (c->broken() || node->retired) {
    --node->open;
  } else {
    node->idle.push_back(std::move(c));
  }
  node->cv.notify_one();
}

// ROLE (Sentinel: the node must be a master) and SCRIPT LOAD of every script, in one
// pipeline; each SCRIPT LOAD reply is the script's SHA1.
Status Pool::SetUp(Connection& c, int64_t deadline_ns) {
  const bool check_role = ep_.topology == Topology::kSentinel;
  std::string req;
  if (check_role) CommandWriter(req).Begin(1).Arg("ROLE");
  for (std::string_view s : scripts_) CommandWriter(req).Begin(3).Arg("SCRIPT").Arg("LOAD").Arg(s);
  std::vector<Reply> replies;
  if (Status s = c.Exchange(req, scripts_.size() + (check_role ? 1 : 0), deadline_ns, &replies); !s.ok()) {
    return s;
  }
  size_t k = 0;
  if (check_role && !IsMasterRole(replies[k++].get())) {
    c.MarkBroken();
    return Status::Unavailable("the node the sentinels named for '" + ep_.master_name +
                               "' is not a master (" + DescribeReply(replies[0].get()) + ")");
  }
  for (size_t i = 0; i < scripts_.size(); ++i, ++k) {
    const redisReply* r = replies[k].get();
    if (r->type != REDIS_REPLY_STRING || std::string_view(r->str, r->len) != shas_[i]) {
      return Status::Protocol("SCRIPT LOAD: " + DescribeReply(r));
    }
  }
  return Status::Ok();
}

Status Pool::LoadScripts(Connection& c, int64_t deadline_ns) {
  std::string req;
  for (std::string_view s : scripts_) CommandWriter(req).Begin(3).Arg("SCRIPT").Arg("LOAD").Arg(s);
  std::vector<Reply> replies;
  if (Status s = c.Exchange(req, scripts_.size(), deadline_ns, &replies); !s.ok()) return s;
  for (size_t i = 0; i < scripts_.size(); ++i) {
    const redisReply* r = replies[i].get();
    if (r->type != REDIS_REPLY_STRING || std::string_view(r->str, r->len) != shas_[i]) {
      return Status::Protocol("SCRIPT LOAD: " + DescribeReply(r));
    }
  }
  return Status::Ok();
}

void Pool::DropNodeConnections(Node& node) {
  std::lock_guard<std::mutex> lock(node.mu);
  node.retired = true;
  node.open -= static_cast<int>(node.idle.size());
  node.idle.clear();
  node.cv.notify_all();
}

// ---- Sentinel -------------------------------------------------------------------

StatusOr<std::shared_ptr<Pool::Node>> Pool::Master(int64_t deadline_ns) {
  {
    std::shared_lock<std::shared_mutex> lock(nodes_mu_);
    if (master_tag_ != 0) return nodes_.at(master_tag_);
  }
  std::unique_lock<std::timed_mutex> discovering(discover_mu_, std::defer_lock);
  if (!discovering.try_lock_until(SteadyDeadline(deadline_ns))) {
    return Status::DeadlineExceeded("Sentinel discovery did not finish within the deadline");
  }
  {
    std::shared_lock<std::shared_mutex> lock(nodes_mu_);
    if (master_tag_ != 0) return nodes_.at(master_tag_);
  }
  if (watcher_ == nullptr) {
    watcher_ = std::make_unique<SentinelWatcher>(ep_, [this](const HostPort& new_master) {
      // Already following the new master (a failed call found it first): keep it.
      std::shared_ptr<Node> current;
      {
        std::shared_lock<std::shared_mutex> lock(nodes_mu_);
        if (master_tag_ != 0) current = nodes_.at(master_tag_);
      }
      if (current == nullptr || !(current->addr == new_master)) ForgetMaster(0);
    });
  }
  auto hp = AskSentinels(ep_, deadline_ns, &next_sentinel_);
  if (!hp.ok()) return hp.status();
  auto node = NodeAt(*hp);
  {
    std::unique_lock<std::shared_mutex> lock(nodes_mu_);
    master_tag_ = node->tag;
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    ++stats_.discoveries;
  }
  DLB_LOG_EVERY(1000, spdlog::level::info, "dlb: Sentinel names {} the master of '{}'", hp->ToString(),
                ep_.master_name);
  return node;
}

void Pool::ForgetMaster(uint64_t tag) {
  std::shared_ptr<Node> node;
  {
    std::unique_lock<std::shared_mutex> lock(nodes_mu_);
    if (master_tag_ == 0 || (tag != 0 && master_tag_ != tag)) return;
    auto it = nodes_.find(master_tag_);
    if (it != nodes_.end()) {
      node = it->second;
      nodes_.erase(it);
    }
    master_tag_ = 0;
  }
  if (node != nullptr) DropNodeConnections(*node);
}

// ---- Cluster --------------------------------------------------------------------

bool Pool::HaveSlotMap() const {
  std::shared_lock<std::shared_mutex> lock(nodes_mu_);
  for (uint64_t t : slot_tags_) {
    if (t != 0) return true;
  }
  return false;
}

void Pool::RequestRefresh() {
  slots_stale_.store(true);
  {
    std::lock_guard<std::mutex> lock(refresh_mu_);
    refresh_requested_ = true;
  }
  refresh_cv_.notify_one();
}

// Background refreshes: one node gets at most kRefreshPerNodeNs, a failed round is
// retried after kRefreshRetry (the map in use keeps routing meanwhile).
void Pool::RefreshLoop() {
  constexpr int64_t kRefreshPerNodeNs = 500'000'000;
  constexpr auto kRefreshRetry = std::chrono::milliseconds(100);
  std::unique_lock<std::mutex> lock(refresh_mu_);
  while (!refresh_stop_) {
    refresh_cv_.wait(lock, [this] { return refresh_stop_ || refresh_requested_; });
    if (refresh_stop_) break;
    refresh_requested_ = false;
    lock.unlock();
    const Status s = RefreshSlots(NowMonoNs() + 4 * kRefreshPerNodeNs, kRefreshPerNodeNs);
    lock.lock();
    if (!s.ok() || slots_stale_.load()) {
      refresh_cv_.wait_for(lock, kRefreshRetry, [this] { return refresh_stop_; });
      refresh_requested_ = true;
    }
  }
}

Status Pool::RefreshSlots(int64_t deadline_ns, int64_t per_node_ns) {
  bool have_map = false;
  std::vector<HostPort> candidates;
  {
    std::shared_lock<std::shared_mutex> lock(nodes_mu_);
    for (uint64_t t : slot_tags_) have_map |= t != 0;
    for (const auto& [tag, node] : nodes_) candidates.push_back(node->addr);
  }
  for (const HostPort& s : ep_.seeds) {
    if (std::find(candidates.begin(), candidates.end(), s) == candidates.end()) candidates.push_back(s);
  }
  // With a map, a refresh already under way is enough; without one, wait for it.
  std::unique_lock<std::timed_mutex> refreshing(discover_mu_, std::defer_lock);
  if (have_map ? !refreshing.try_lock() : !refreshing.try_lock_until(SteadyDeadline(deadline_ns))) {
    return have_map ? Status::Ok() : Status::DeadlineExceeded("Cluster slot map not loaded within the deadline");
  }
  if (!slots_stale_.load()) return Status::Ok();
  std::string req;
  CommandWriter(req).Begin(2).Arg("CLUSTER").Arg("SLOTS");
  std::string errors;
  for (const HostPort& hp : candidates) {
    if (NowMonoNs() >= deadline_ns) break;
    const int64_t node_deadline = std::min(deadline_ns, NowMonoNs() + per_node_ns);
    auto node = NodeAt(hp);
    auto conn = AcquireFrom(*node, node_deadline);
    std::vector<Reply> replies;
    Status st = conn.ok() ? (*conn)->Exchange(req, 1, node_deadline, &replies) : conn.status();
    if (conn.ok()) Release(std::move(*conn));
    StatusOr<std::vector<SlotRange>> ranges = st.ok() ? ParseClusterSlots(replies[0].get(), hp) : st;
    if (!ranges.ok() || ranges->empty()) {
      errors += (errors.empty() ? "" : "; ") + hp.ToString() + ": " +
                (ranges.ok() ? std::string("no slots assigned") : ranges.status().message());
      continue;
    }
    std::vector<uint64_t> tags(kClusterSlots, 0);
    for (const SlotRange& r : *ranges) {
      const uint64_t t = NodeAt(r.master)->tag;
      for (int s = r.first; s <= r.last; ++s) tags[static_cast<size_t>(s)] = t;
    }
    {
      std::unique_lock<std::shared_mutex> lock(nodes_mu_);
      slot_tags_.swap(tags);
    }
    slots_stale_.store(false);
    std::lock_guard<std::mutex> lock(stats_mu_);
    ++stats_.slot_refreshes;
    return Status::Ok();
  }
  DLB_LOG_EVERY(1000, spdlog::level::warn, "dlb: cannot load the Redis Cluster slot map: {}", errors);
  if (NowMonoNs() >= deadline_ns) return Status::DeadlineExceeded("Cluster slot map not loaded within the deadline");
  return Status::Unavailable("cannot load the Redis Cluster slot map: " + errors);
}

Status Pool::Call(const std::vector<std::string>& cmds, int64_t deadline_ns,
                  std::vector<Reply>* replies) {
  if (ep_.topology == Topology::kCluster) return CallCluster(cmds, deadline_ns, replies);
  return CallSingle(cmds, deadline_ns, replies);
}

Status Pool::CallSingle(const std::vector<std::string>& cmds, int64_t deadline_ns,
                        std::vector<Reply>* replies) {
  replies->clear();
  replies->resize(cmds.size());
  std::vector<size_t> pending(cmds.size());
  for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  for (int round = 0;; ++round) {
    auto conn = Acquire(deadline_ns);
    if (!conn.ok()) return conn.status();
    std::string req;
    for (size_t i : pending) req += cmds[i];
    std::vector<Reply> got;
    Status s = (*conn)->Exchange(req, pending.size(), deadline_ns, &got);
    if (!s.ok()) {
      // The master may be gone: the next call asks the sentinels again.
      if (ep_.topology == Topology::kSentinel) ForgetMaster((*conn)->node_tag());
      Release(std::move(*conn));
      return s;
    }
    std::vector<size_t> again;
    bool noscript = false, readonly = false;
    for (size_t k = 0; k < pending.size(); ++k) {
      const redisReply* r = got[k].get();
      if (IsNoScript(r)) {
        noscript = true;
        again.push_back(pending[k]);
      } else if (ep_.topology == Topology::kSentinel && IsReadOnlyError(r)) {
        readonly = true;
        again.push_back(pending[k]);
      }
      (*replies)[pending[k]] = std::move(got[k]);
    }
    if (readonly) {
      DLB_LOG_EVERY(1000, spdlog::level::warn,
                    "dlb: the Sentinel master of '{}' became a replica (READONLY); asking the sentinels again",
                    ep_.master_name);
      (*conn)->MarkBroken();
      ForgetMaster((*conn)->node_tag());
    } else if (noscript) {
      DLB_LOG_EVERY(1000, spdlog::level::warn,
                    "dlb: Redis does not have the library's scripts (NOSCRIPT); loading them again");
      s = LoadScripts(**conn, deadline_ns);
    }
    Release(std::move(*conn));
    if (!s.ok() || again.empty()) return s;
    if (round + 1 >= kMaxRounds || NowMonoNs() >= deadline_ns) {
      return readonly ? Status::Unavailable("the Sentinel master of '" + ep_.master_name + "' is read-only")
                      : Status::DeadlineExceeded("Redis commands not run within the deadline (NOSCRIPT)");
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.resent += again.size();
    }
    pending = std::move(again);
  }
}

Status Pool::CallCluster(const std::vector<std::string>& cmds, int64_t deadline_ns,
                         std::vector<Reply>* replies) {
  const size_t n = cmds.size();
  replies->clear();
  replies->resize(n);
  std::vector<int> slot(n, -1);
  for (size_t i = 0; i < n; ++i) {
    if (auto key = RoutingKey(cmds[i])) slot[i] = KeySlot(*key);
  }
  std::vector<uint64_t> ask_tag(n, 0);
  std::vector<size_t> pending(n);
  for (size_t i = 0; i < n; ++i) pending[i] = i;

  struct Group {
    std::shared_ptr<Node> node;
    std::vector<size_t> idx;
    std::unique_ptr<Connection> conn;
    Status st;
    bool sent = false;
    std::vector<Reply> got;
  };
  Status unknown_fate;  // an I/O failure after sending: reported, never resent
  Status retry_cause;
  for (int round = 0; round < kMaxRounds; ++round) {
    // Without a map the caller loads one; with one, refreshes run in the background
    // while the map in use routes (a slot it cannot route fails below).
    if (!HaveSlotMap()) (void)RefreshSlots(deadline_ns, deadline_ns - NowMonoNs());
    std::vector<Group> groups;
    {
      std::unordered_map<uint64_t, size_t> by_tag;
      std::shared_lock<std::shared_mutex> lock(nodes_mu_);
      uint64_t any = 0;
      for (uint64_t t : slot_tags_) {
        if (t != 0) {
          any = t;
          break;
        }
      }
      for (size_t i : pending) {
        const uint64_t tag = ask_tag[i] != 0 ? ask_tag[i] : slot[i] < 0 ? any : slot_tags_[static_cast<size_t>(slot[i])];
        auto node = nodes_.find(tag);
        if (tag == 0 || node == nodes_.end()) {
          lock.unlock();
          RequestRefresh();
          return Status::Unavailable("Redis Cluster slot " + std::to_string(slot[i]) +
                                     " is not served by any known node (slot map not loaded?)");
        }
        auto [it, fresh] = by_tag.emplace(tag, groups.size());
        if (fresh) groups.push_back(Group{.node = node->second, .idx = {}, .conn = nullptr, .st = {}, .sent = false, .got = {}});
        groups[it->second].idx.push_back(i);
      }
    }
    // Send to every node, then read every node: the round trips overlap.
    for (Group& g : groups) {
      auto c = AcquireFrom(*g.node, deadline_ns);
      if (!c.ok()) {
        g.st = c.status();
        continue;
      }
      g.conn = std::move(*c);
      std::string req;
      for (size_t i : g.idx) {
        if (ask_tag[i] != 0) req += kAsking;
        req += cmds[i];
      }
      g.st = g.conn->Send(req, deadline_ns);
      g.sent = true;
    }
    std::vector<size_t> again;
    bool pause = false;
    for (Group& g : groups) {
      if (g.st.ok() && g.sent) {
        size_t n_replies = g.idx.size();
        for (size_t i : g.idx) n_replies += ask_tag[i] != 0 ? 1 : 0;
        g.st = g.conn->Receive(n_replies, deadline_ns, &g.got);
      }
      if (!g.st.ok()) {
        RequestRefresh();   // the node may be gone: ask the others for the map
        if (g.sent) {
          unknown_fate = g.st;
        } else {
          retry_cause = g.st;       // nothing was sent: safe to resend elsewhere
          again.insert(again.end(), g.idx.begin(), g.idx.end());
        }
        if (g.conn) Release(std::move(g.conn));
        continue;
      }
      bool noscript = false;
      size_t k = 0;
      for (size_t i : g.idx) {
        if (ask_tag[i] != 0) ++k;  // ASKING's +OK
        Reply& r = g.got[k++];
        ask_tag[i] = 0;
        if (auto rd = ParseRedirect(r.get(), g.node->addr)) {
          auto target = NodeAt(rd->target);
          std::lock_guard<std::mutex> lock(stats_mu_);
          if (rd->ask) {
            ask_tag[i] = target->tag;
            ++stats_.ask;
          } else {
            std::unique_lock<std::shared_mutex> nodes_lock(nodes_mu_);
            slot_tags_[rd->slot] = target->tag;
            ++stats_.moved;
          }
          retry_cause = Status::Unavailable(DescribeReply(r.get()));
          again.push_back(i);
        } else if (IsNoScript(r.get())) {
          noscript = true;
          retry_cause = Status::Unavailable("NOSCRIPT");
          again.push_back(i);
        } else if (IsRetryableClusterError(r.get())) {
          pause = true;
          if (std::string_view(r->str, r->len).starts_with("CLUSTERDOWN")) RequestRefresh();
          retry_cause = Status::Unavailable(DescribeReply(r.get()));
          again.push_back(i);
        }
        (*replies)[i] = std::move(r);
      }
      if (noscript) {
        DLB_LOG_EVERY(1000, spdlog::level::warn,
                      "dlb: Redis node {} does not have the library's scripts (NOSCRIPT); loading them again",
                      g.node->addr.ToString());
        if (Status s = LoadScripts(*g.conn, deadline_ns); !s.ok()) retry_cause = s;
      }
      Release(std::move(g.conn));
    }
    if (!unknown_fate.ok()) return unknown_fate;
    if (again.empty()) return Status::Ok();
    if (NowMonoNs() >= deadline_ns) {
      return Status::DeadlineExceeded("Redis Cluster call not settled within the deadline (last: " +
                                      retry_cause.message() + ")");
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.resent += again.size();
    }
    if (pause) {
      std::this_thread::sleep_for(
          std::chrono::nanoseconds(std::min<int64_t>(kTryAgainPauseNs, deadline_ns - NowMonoNs())));
    }
    std::sort(again.begin(), again.end());
    pending = std::move(again);
  }
  return Status::Unavailable("Redis Cluster call not settled after " + std::to_string(kMaxRounds) +
                             " rounds (last: " + retry_cause.message() + ")");
}

Pool::Stats Pool::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

std::string Pool::NodeOfSlot(uint16_t slot) const {
  std::shared_lock<std::shared_mutex> lock(nodes_mu_);
  if (slot_tags_.empty() || slot_tags_[slot] == 0) return "";
  auto it = nodes_.find(slot_tags_[slot]);
  return it == nodes_.end() ? "" : it->second->addr.ToString();
}

}  // namespace dlb::redis
