// One Redis connection with hard deadlines.
//
// hiredis's own blocking I/O only knows per-syscall timeouts with a granularity and a
// restart behaviour that cannot enforce a 2 ms budget for a whole exchange, so the
// socket is ours (non-blocking, ppoll with nanosecond timeouts) and hiredis is used
// for what it is best at: parsing replies (redisReader). After any I/O error or a
// missed deadline the connection is broken (a reply may still be in flight) and must
// be dropped; it is never reused.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/status.h"
#include "redis/url.h"

namespace dlb::redis {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// Appends commands in RESP to a buffer, without hiredis's printf-style formatting.
class CommandWriter {
 public:
  explicit CommandWriter(std::string& out) : out_(out) {}
  CommandWriter& Begin(size_t argc);
  CommandWriter& Arg(std::string_view a);
  CommandWriter& Arg(int64_t v);
  CommandWriter& ArgDouble(double v);   // %.17g: round-trips exactly

 private:
  std::string& out_;
};

class Connection {
 public:
  // Connects, authenticates and selects the db, all before `deadline_ns`
  // (CLOCK_MONOTONIC).
  static StatusOr<std::unique_ptr<Connection>> Open(const Endpoint& ep, int64_t deadline_ns);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends `request` (one or more RESP commands) and reads `n_replies` replies, all
  // before `deadline_ns`. Error replies are replies (the caller looks at them); the
  // Status reports I/O, deadline and protocol failures, after which broken() is true.
  Status Exchange(std::string_view request, size_t n_replies, int64_t deadline_ns,
                  std::vector<Reply>* replies);
  // Exchange in two halves, so that pipelines to several servers overlap: Send
  // writes the whole request, Receive reads `n_replies` (appended to `replies`).
  Status Send(std::string_view request, int64_t deadline_ns);
  Status Receive(size_t n_replies, int64_t deadline_ns, std::vector<Reply>* replies);
  // For a subscribed connection: the next pushed message, or kDeadlineExceeded with
  // the connection still usable when none arrives before `deadline_ns`.
  StatusOr<Reply> ReadPush(int64_t deadline_ns);

  bool broken() const { return broken_; }
  // Marks the connection unusable (the server is not the one it should be).
  void MarkBroken() { broken_ = true; }
  // Which server of a pool this connection belongs to (set by the pool).
  uint64_t node_tag() const { return node_tag_; }
  void set_node_tag(uint64_t tag) { node_tag_ = tag; }

 private:
  Connection(int fd);
  Status Fail(Status s);

  int fd_ = -1;
  redisReader* reader_ = nullptr;
  bool broken_ = false;
  uint64_t node_tag_ = 0;
};

// "ERR ..." text of an error reply, or a description of an unexpected reply type.
std::string DescribeReply(const redisReply* r);

}  // namespace dlb::redis
