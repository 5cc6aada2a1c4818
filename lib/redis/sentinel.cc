#include "redis/sentinel.h"

#include <charconv>
#include <chrono>
#include <vector>

#include "dlb/clock.h"
#include "log/log.h"
#include "redis/connection.h"

namespace dlb::redis {
namespace {

int64_t NowNs() { return MonotonicClock::Instance().NowNs(); }

// How long the watcher waits for one message before it looks at its stop flag, and
// how long it rests after a sentinel failed.
constexpr int64_t kWatchPollNs = 200'000'000;
constexpr int64_t kWatchConnectNs = 1'000'000'000;
constexpr auto kWatchRetry = std::chrono::milliseconds(200);

std::string_view Str(const redisReply* r) {
  return (r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
             ? std::string_view(r->str, r->len)
             : std::string_view{};
}

}  // namespace

StatusOr<HostPort> AskSentinels(const Endpoint& ep, int64_t deadline_ns, size_t* next_sentinel) {
  if (ep.seeds.empty()) return Status::InvalidArgument("no sentinels configured");
  std::string req;
  CommandWriter(req).Begin(3).Arg("SENTINEL").Arg("get-master-addr-by-name").Arg(ep.master_name);
  std::string errors;
  for (size_t k = 0; k < ep.seeds.size(); ++k) {
    if (NowNs() >= deadline_ns) break;
    const size_t i = (*next_sentinel + k) % ep.seeds.size();
    const HostPort& s = ep.seeds[i];
    auto conn = Connection::Open(ep.At(s, /*sentinel=*/true), deadline_ns);
    std::vector<Reply> replies;
    Status st = conn.ok() ? (*conn)->Exchange(req, 1, deadline_ns, &replies) : conn.status();
    if (!st.ok()) {
      errors += (errors.empty() ? "" : "; ") + s.ToString() + ": " + st.message();
      continue;
    }
    const redisReply* r = replies[0].get();
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
      HostPort hp{std::string(Str(r->element[0])), 0};
      const std::string_view port = Str(r->element[1]);
      auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), hp.port);
      if (!hp.host.empty() && ec == std::errc() && p == port.data() + port.size() && hp.port > 0 &&
          hp.port <= 65535) {
        *next_sentinel = i;
        return hp;
      }
    }
    errors += (errors.empty() ? "" : "; ") + s.ToString() + ": " +
              (r->type == REDIS_REPLY_NIL ? "does not know master '" + ep.master_name + "'"
                                          : DescribeReply(r));
  }
  if (NowNs() >= deadline_ns) {
    return Status::DeadlineExceeded("sentinel discovery of master '" + ep.master_name +
                                    "' exceeded the deadline" + (errors.empty() ? "" : " (" + errors + ")"));
  }
  return Status::Unavailable("no sentinel reported master '" + ep.master_name + "': " + errors);
}

bool IsMasterRole(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && Str(r->element[0]) == "master";
}

bool IsReadOnlyError(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ERROR) return false;
  const std::string_view e(r->str, r->len);
  // Scripts report a refused write inside them with the script's error prefix.
  return e.starts_with("READONLY") || e.find("-READONLY") != std::string_view::npos;
}

bool IsSwitchMasterFor(const redisReply* r, std::string_view master_name, HostPort* new_master) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return false;
  if (Str(r->element[0]) != "message" || Str(r->element[1]) != "+switch-master") return false;
  std::string_view body = Str(r->element[2]);
  if (!body.starts_with(master_name) || body.size() <= master_name.size() || body[master_name.size()] != ' ') {
    return false;
  }
  if (new_master != nullptr) {
    std::vector<std::string_view> words;
    while (!body.empty()) {
      const size_t sp = body.find(' ');
      words.push_back(body.substr(0, sp));
      body = sp == std::string_view::npos ? std::string_view{} : body.substr(sp + 1);
    }
    *new_master = {};
    if (words.size() >= 5) {
      int port = 0;
      auto [p, ec] = std::from_chars(words[4].data(), words[4].data() + words[4].size(), port);
      if (ec == std::errc() && p == words[4].data() + words[4].size()) *new_master = {std::string(words[3]), port};
    }
  }
  return true;
}

SentinelWatcher::SentinelWatcher(Endpoint ep, std::function<void(const HostPort&)> on_switch)
    : ep_(std::move(ep)), on_switch_(std::move(on_switch)) {
  thread_ = std::thread([this] { Run(); });
}

SentinelWatcher::~SentinelWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SentinelWatcher::Run() {
  std::string sub;
  CommandWriter(sub).Begin(2).Arg("SUBSCRIBE").Arg("+switch-master");
  size_t next = 0;
  auto stopping = [this] {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  };
  while (!stopping()) {
    const HostPort& s = ep_.seeds[next++ % ep_.seeds.size()];
    auto conn = Connection::Open(ep_.At(s, /*sentinel=*/true), NowNs() + kWatchConnectNs);
    std::vector<Reply> replies;
    Status st = conn.ok() ? (*conn)->Exchange(sub, 1, NowNs() + kWatchConnectNs, &replies) : conn.status();
    while (st.ok() && !stopping()) {
      auto msg = (*conn)->ReadPush(NowNs() + kWatchPollNs);
      if (!msg.ok()) {
        if (msg.status().code() != StatusCode::kDeadlineExceeded || (*conn)->broken()) st = msg.status();
        continue;
      }
      HostPort new_master;
      if (IsSwitchMasterFor(msg->get(), ep_.master_name, &new_master)) {
        switches_.fetch_add(1, std::memory_order_relaxed);
        DLB_LOG_INFO("dlb: sentinel {} reports a new master for '{}': {}", s.ToString(), ep_.master_name,
                     Str((*msg)->element[2]));
        on_switch_(new_master);
      }
    }
    if (!st.ok()) {
      DLB_LOG_EVERY(10000, spdlog::level::warn, "dlb: cannot watch sentinel {} for failovers: {}",
                    s.ToString(), st.message());
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kWatchRetry, [this] { return stopping_; });
  }
}

}  // namespace dlb::redis
