#include "redis/pool.h"

#include "dlb/clock.h"
#include "log/log.h"
#include "redis/script.h"

namespace dlb::redis {
namespace {
int64_t NowMonoNs() { return MonotonicClock::Instance().NowNs(); }
}  // namespace

Pool::Pool(Endpoint ep, int max_connections, std::vector<std::string_view> scripts)
    : ep_(std::move(ep)), max_connections_(max_connections), scripts_(std::move(scripts)) {
  for (std::string_view s : scripts_) shas_.push_back(ScriptSha(s));
}

StatusOr<std::unique_ptr<Connection>> Pool::Acquire(int64_t deadline_ns) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    if (open_connections_ < max_connections_) break;
    const int64_t left = deadline_ns - NowMonoNs();
    if (left <= 0) return Status::DeadlineExceeded("no Redis connection free within the deadline");
    cv_.wait_for(lock, std::chrono::nanoseconds(left));
  }
  ++open_connections_;
  lock.unlock();
  auto conn = Connection::Open(ep_, deadline_ns);
  Status st = conn.ok() ? LoadScripts(**conn, deadline_ns) : conn.status();
  if (!st.ok()) {
    lock.lock();
    --open_connections_;
    cv_.notify_one();
    return st;
  }
  return std::move(*conn);
}

void Pool::Release(std::unique_ptr<Connection> c) {
  std::lock_guard<std::mutex> lock(mu_);
  if (c->broken()) {
    --open_connections_;
  } else {
    idle_.push_back(std::move(c));
  }
  cv_.notify_one();
}

// SCRIPT LOAD of every script in one pipeline; each reply is the script's SHA1.
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

Status Pool::Call(const std::vector<std::string>& cmds, int64_t deadline_ns,
                  std::vector<Reply>* replies) {
  auto conn = Acquire(deadline_ns);
  if (!conn.ok()) return conn.status();
  std::string req;
  for (const std::string& c : cmds) req += c;
  Status s = (*conn)->Exchange(req, cmds.size(), deadline_ns, replies);
  std::vector<size_t> lost;
  for (size_t i = 0; s.ok() && i < replies->size(); ++i) {
    if (IsNoScript((*replies)[i].get())) lost.push_back(i);
  }
  if (!lost.empty()) {
    DLB_LOG_EVERY(1000, spdlog::level::warn,
                  "dlb: Redis does not have the library's scripts (NOSCRIPT); loading them again");
    s = LoadScripts(**conn, deadline_ns);
    std::string again;
    for (size_t i : lost) again += cmds[i];
    std::vector<Reply> retried;
    if (s.ok()) s = (*conn)->Exchange(again, lost.size(), deadline_ns, &retried);
    for (size_t k = 0; s.ok() && k < lost.size(); ++k) (*replies)[lost[k]] = std::move(retried[k]);
  }
  Release(std::move(*conn));
  return s;
}

}  // namespace dlb::redis
