#include "redis/script.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dlb::redis {

namespace {

// The TIME read and the TAT helpers that every script touching a bucket starts with:
// one text, so that all of them read and write a TAT identically.
constexpr std::string_view kTatPrelude = R"lua(
local t = redis.call('TIME')
local now_s, now_ns = tonumber(t[1]), tonumber(t[2]) * 1000
-- Lua numbers are doubles: epoch nanoseconds do not fit in one, so a TAT is handled
-- as seconds and nanoseconds and only the fill (TAT - now) is a single number.
local function fill_of(v)
  local dot = string.find(v, '.', 1, true)
  local ip, fp = v, 0
  if dot then ip, fp = string.sub(v, 1, dot - 1), tonumber('0' .. string.sub(v, dot)) end
  local sec, ns = 0, tonumber(ip)
  if #ip > 9 then sec, ns = tonumber(string.sub(ip, 1, -10)), tonumber(string.sub(ip, -9)) end
  return (sec - now_s) * 1e9 + (ns - now_ns) + fp
end
-- TAT as text, rounded up: to whole ns when T >= 1 ms (an integer Redis keeps in the
-- object itself: 72 bytes a bucket; at most 1 ns per admission against T >= 1e6 ns
-- loses under 1e-6 of the rate), else to 1e-6 ns (faster leaks, where whole-ns
-- rounding would cost a visible share of the rate).
local function tat_text(after, interval_ns)
  local total = now_ns + after
  local carry = math.floor(total / 1e9)
  local rest = total - carry * 1e9
  local whole = math.floor(rest)
  local frac = 0
  if interval_ns < 1e6 then
    frac = math.ceil((rest - whole) * 1e6)
    if frac >= 1e6 then whole, frac = whole + 1, 0 end
  elseif rest > whole then
    whole = whole + 1
  end
  if whole >= 1e9 then carry, whole = carry + 1, whole - 1e9 end
  local s = string.format('%.0f%09d', now_s + carry, whole)
  if frac > 0 then s = s .. string.gsub(string.format('.%06d', frac), '0+$', '') end
  return s
end
)lua";

constexpr std::string_view kBucketBody = R"lua(local op = ARGV[1]
local nk = #KEYS
-- debitonce: a debit whose last key is the batch's marker and whose last argument is
-- the marker's TTL in ms. The marker is set (NX) in the same atomic step as the debit,
-- so a batch sent again after a timeout is a no-op if the first send ran.
-- takeby: a take whose last argument is the instant (us, on this server's clock) after
-- which its caller has given up waiting: arriving later, it charges nothing and
-- reports all_allowed 3, so that a take delayed past its deadline (a stalled server,
-- a slow path) never takes room from requests still waiting.
local marker_ttl, not_after
if op == 'takeby' then
  not_after = tonumber(ARGV[#ARGV])
  if nk < 1 or #ARGV ~= 2 + 3 * nk or not not_after then
    return redis.error_reply('ERR dlb: usage: EVALSHA sha k key.. takeby (capacity interval_ns cost).. not_after_us')
  end
  op = 'take'
elseif op == 'debitonce' then
  nk = nk - 1
  marker_ttl = tonumber(ARGV[#ARGV])
  if nk < 1 or #ARGV ~= 2 + 3 * nk or not marker_ttl or marker_ttl < 1 then
    return redis.error_reply('ERR dlb: usage: EVALSHA sha k+1 key.. marker debitonce (capacity interval_ns cost).. ttl_ms')
  end
elseif nk < 1 or #ARGV ~= 1 + 3 * nk or (op ~= 'take' and op ~= 'peek' and op ~= 'debit') then
  return redis.error_reply('ERR dlb: usage: EVALSHA sha k key.. take|peek|debit (capacity interval_ns cost)..')
end
local fill, unit, cap, cost, leaks = {}, {}, {}, {}, {}
local all_ok = 1
for i = 1, nk do
  local c, tn, n = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  if not c or not tn or not n or c < 1 or tn < 0 or n < 1 then
    return redis.error_reply('ERR dlb: bad bucket arguments')
  end
  local v = redis.call('GET', KEYS[i])
  local d = 0
  if tn == 0 then
    -- A bucket that never leaks counts requests: its unit is one request.
    unit[i] = 1
    if v then d = tonumber(v) or 0 end
  else
    unit[i] = tn
    if v then d = fill_of(v) end
  end
  if d < 0 then d = 0 end
  fill[i], cap[i], cost[i], leaks[i] = d, c, n, tn ~= 0
  -- Compare in requests with a few ulps of slack, so that C admissions of T each
  -- fill a bucket of C*T exactly despite binary rounding.
  if d / unit[i] + n > c + 1e-9 + c * 4e-15 then all_ok = 0 end
end
if not_after and now_s * 1e6 + now_ns / 1000 > not_after then
  op, all_ok = 'peek', 3
end
if marker_ttl then
  -- Arguments are valid (checked above), so a set marker always comes with its debit.
  if redis.call('SET', KEYS[nk + 1], '1', 'NX', 'PX', string.format('%.0f', marker_ttl)) then
    op = 'debit'
  else
    op, all_ok = 'peek', 2
  end
end
local out = {all_ok, string.format('%.0f', now_s * 1e6 + now_ns / 1000)}
for i = 1, nk do
  local d, u, c, n = fill[i], unit[i], cap[i], cost[i]
  local after = d
  if op == 'take' and all_ok == 1 then
    after = d + n * u
  elseif op == 'debit' then
    -- A reconciliation (debitonce) may leave a debt of up to one capacity: what a
    -- fallback admitted while the store was admitting others is taken back by later
    -- rejections, not forgotten at a full bucket.
    after = math.min(d + n * u, (marker_ttl and 2 or 1) * c * u)
    if after < d then after = d end
  end
  if after ~= d then
    if not leaks[i] then
      redis.call('SET', KEYS[i], string.format('%.0f', after))
    else
      -- PXAT (absolute): replicas and AOF replays keep the master's expiry instead
      -- of recomputing one on their own clocks. The key vanishes once drained.
      local expire_ms = now_s * 1000 + math.floor(now_ns / 1e6) + math.ceil(after / 1e6) + 1
      redis.call('SET', KEYS[i], tat_text(after, u), 'PXAT', string.format('%.0f', expire_ms))
    end
  end
  local level = after / u
  local remaining = math.floor(c - level + 1e-9 + c * 4e-15)
  if remaining < 0 then remaining = 0 end
  local retry = '0'
  if (op ~= 'take' or all_ok == 0) and d / u + n > c + 1e-9 + c * 4e-15 then
    if leaks[i] then retry = string.format('%.0f', math.max(1, math.ceil(d + n * u - c * u)))
    else retry = '-1' end
  end
  local reset = '0'
  if after > 0 then
    if leaks[i] then reset = string.format('%.0f', math.ceil(after)) else reset = '-1' end
  end
  out[#out + 1] = string.format('%.17g', level)
  out[#out + 1] = remaining
  out[#out + 1] = retry
  out[#out + 1] = reset
end
return out
)lua";

// The reset log: a sorted set of bucket keys scored by a sequence number (one per
// reset, the member's latest), plus the member "" whose score is the highest sequence
// trimmed away (a participant that has not read that far has missed resets).
//
// With the bucket as a second key (standalone and Sentinel: one slot), the bucket is
// deleted in the same step, so that no lease call runs between the deletion and the
// log entry (lib/redis/lease_script.h, the guarded call).
constexpr std::string_view kResetLogScript = R"lua(
local keep = tonumber(ARGV[2])
if (#KEYS ~= 1 and #KEYS ~= 2) or #ARGV ~= 2 or ARGV[1] == '' or not keep or keep < 1 or
   (#KEYS == 2 and KEYS[2] ~= ARGV[1]) then
  return redis.error_reply('ERR dlb: usage: EVALSHA sha 1|2 log [bucket_key] bucket_key keep')
end
if #KEYS == 2 then redis.call('DEL', KEYS[2]) end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local seq = 1
if top[2] then seq = tonumber(top[2]) + 1 else redis.call('ZADD', KEYS[1], 0, '') end
redis.call('ZADD', KEYS[1], seq, ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > keep + 1 then
  local gone = redis.call('ZRANGE', KEYS[1], 1, n - keep - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[1], 1, n - keep - 1)
  redis.call('ZADD', KEYS[1], gone[#gone], '')
end
return seq
)lua";

}  // namespace

std::string_view ResetLogScript() { return kResetLogScript; }

const std::string& ResetLogScriptSha() {
  static const std::string& sha = *new std::string(ScriptSha(kResetLogScript));
  return sha;
}

void AppendResetLogCall(CommandWriter& w, std::string_view bucket_key, int64_t keep, bool and_delete) {
  w.Begin(and_delete ? 7 : 6).Arg("EVALSHA").Arg(ResetLogScriptSha()).Arg(int64_t{and_delete ? 2 : 1});
  w.Arg(kResetLogKey);
  if (and_delete) w.Arg(bucket_key);
  w.Arg(bucket_key).Arg(keep);
}

void AppendResetLogRead(std::vector<std::string>* cmds, int64_t after_seq, int64_t limit) {
  std::string top, floor, since;
  CommandWriter(top).Begin(5).Arg("ZRANGE").Arg(kResetLogKey).Arg(int64_t{-1}).Arg(int64_t{-1}).Arg("WITHSCORES");
  CommandWriter(floor).Begin(3).Arg("ZSCORE").Arg(kResetLogKey).Arg("");
  CommandWriter(since)
      .Begin(8)
      .Arg("ZRANGEBYSCORE")
      .Arg(kResetLogKey)
      .Arg("(" + std::to_string(after_seq))
      .Arg("+inf")
      .Arg("WITHSCORES")
      .Arg("LIMIT")
      .Arg(int64_t{0})
      .Arg(limit);
  cmds->push_back(std::move(top));
  cmds->push_back(std::move(floor));
  cmds->push_back(std::move(since));
}

Status ParseResetLogRead(const Reply* replies, ResetLogRead* out) {
  auto score = [](const redisReply* x, int64_t* v) {
    if (x->type != REDIS_REPLY_STRING) return false;
    *v = static_cast<int64_t>(std::strtod(std::string(x->str, x->len).c_str(), nullptr));
    return true;
  };
  const redisReply* top = replies[0].get();
  const redisReply* floor = replies[1].get();
  const redisReply* since = replies[2].get();
  if (top == nullptr || floor == nullptr || since == nullptr) return Status::Protocol("no reply");
  for (const redisReply* r : {top, floor, since}) {
    if (r->type == REDIS_REPLY_ERROR) return Status::Protocol("reset log: " + DescribeReply(r));
  }
  out->max_seq = 0;
  out->floor_seq = 0;
  out->keys.clear();
  out->seqs.clear();
  if (top->type != REDIS_REPLY_ARRAY || (top->elements != 0 && top->elements != 2) ||
      since->type != REDIS_REPLY_ARRAY || since->elements % 2 != 0 ||
      (floor->type != REDIS_REPLY_NIL && floor->type != REDIS_REPLY_STRING)) {
    return Status::Protocol("unexpected reset log reply");
  }
  if (top->elements == 2 && !score(top->element[1], &out->max_seq)) return Status::Protocol("reset log: bad score");
  if (floor->type == REDIS_REPLY_STRING) (void)score(floor, &out->floor_seq);
  for (size_t i = 0; i + 1 < since->elements; i += 2) {
    const redisReply* k = since->element[i];
    int64_t seq = 0;
    if (k->type != REDIS_REPLY_STRING || !score(since->element[i + 1], &seq)) {
      return Status::Protocol("reset log: bad entry");
    }
    out->max_seq = std::max(out->max_seq, seq);
    if (k->len == 0) continue;   // the trim floor
    out->keys.emplace_back(k->str, k->len);
    out->seqs.push_back(seq);
  }
  return Status::Ok();
}

void AppendDebitOnceCall(CommandWriter& w, std::string_view key, std::string_view marker_key,
                         const BucketSpec& spec, int64_t cost, int64_t marker_ttl_ms) {
  w.Begin(10).Arg("EVALSHA").Arg(BucketScriptSha()).Arg(int64_t{2}).Arg(key).Arg(marker_key).Arg("debitonce");
  w.Arg(spec.capacity);
  if (spec.leak_rate_per_s == 0) {
    w.Arg("0");
  } else {
    w.ArgDouble(1e9 / spec.leak_rate_per_s);
  }
  w.Arg(cost).Arg(marker_ttl_ms);
}

std::string WithTatPrelude(std::string_view body) {
  std::string s(kTatPrelude);
  s.append(body);
  return s;
}

// Script texts and SHAs are never destroyed (here and in lease_script.cc): the
// process-wide limiter is destroyed at exit, after them, and may still open a connection
// (which loads the scripts) to leave the participant set.
std::string_view BucketScript() {
  static const std::string& script = *new std::string(WithTatPrelude(kBucketBody));
  return script;
}

namespace {

// SHA-1 of the script, as Redis names it for EVALSHA (FIPS 180-4; only ever applied
// to the script text, never to untrusted input, so SHA-1's weakness does not matter).
std::string Sha1Hex(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string msg(data);
  const uint64_t bits = static_cast<uint64_t>(msg.size()) * 8;
  msg.push_back(static_cast<char>(0x80));
  while (msg.size() % 64 != 56) msg.push_back(0);
  for (int i = 7; i >= 0; --i) msg.push_back(static_cast<char>(bits >> (8 * i)));
  auto rotl = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  for (size_t off = 0; off < msg.size(); off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* b = reinterpret_cast<const uint8_t*>(msg.data() + off + 4 * i);
      w[i] = uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
    }
    for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
      else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
      else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
      else { f = b ^ c ^ d; k = 0xCA62C1D6; }
      const uint32_t t = rotl(a, 5) + f + e + k + w[i];
      e = d; d = c; c = rotl(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
  }
  char hex[41];
  for (int i = 0; i < 5; ++i) std::snprintf(hex + 8 * i, 9, "%08x", h[i]);
  return std::string(hex, 40);
}

}  // namespace

std::string ScriptSha(std::string_view script) { return Sha1Hex(script); }

const std::string& BucketScriptSha() {
  static const std::string& sha = *new std::string(Sha1Hex(BucketScript()));
  return sha;
}

void AppendBucketCall(CommandWriter& w, std::string_view sha, std::string_view key, BucketOp op,
                      const BucketSpec& spec, int64_t cost, int64_t not_after_us) {
  static constexpr std::string_view kOps[] = {"take", "peek", "debit"};
  const bool by = op == BucketOp::kTake && not_after_us > 0;
  w.Begin(by ? 9 : 8).Arg("EVALSHA").Arg(sha).Arg(int64_t{1}).Arg(key).Arg(by ? "takeby" : kOps[static_cast<int>(op)]);
  w.Arg(spec.capacity);
  if (spec.leak_rate_per_s == 0) {
    w.Arg("0");
  } else {
    w.ArgDouble(1e9 / spec.leak_rate_per_s);
  }
  w.Arg(cost);
  if (by) w.Arg(not_after_us);
}

bool IsNoScript(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_ERROR && r->len >= 8 &&
         std::strncmp(r->str, "NOSCRIPT", 8) == 0;
}

StatusOr<ScriptResult> ParseBucketReply(const redisReply* r) {
  if (r == nullptr) return Status::Protocol("no reply");
  if (r->type == REDIS_REPLY_ERROR) {
    if (IsNoScript(r)) return Status::Unavailable("NOSCRIPT");
    return Status::Protocol("Redis error: " + DescribeReply(r));
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 6) {
    return Status::Protocol("unexpected script reply: " + DescribeReply(r));
  }
  redisReply* const* e = r->element;
  if (e[0]->type != REDIS_REPLY_INTEGER || e[1]->type != REDIS_REPLY_STRING ||
      e[2]->type != REDIS_REPLY_STRING || e[3]->type != REDIS_REPLY_INTEGER ||
      e[4]->type != REDIS_REPLY_STRING || e[5]->type != REDIS_REPLY_STRING) {
    return Status::Protocol("unexpected element types in script reply");
  }
  auto number = [](const redisReply* x) {
    return std::strtod(std::string(x->str, x->len).c_str(), nullptr);
  };
  // Durations arrive in ns as decimal text (they can exceed 2^63 for tiny leak rates).
  auto duration_ns = [&](const redisReply* x) -> int64_t {
    const double v = number(x);
    if (v < 0) return kNever;
    return v >= 9.2e18 ? kNever - 1 : static_cast<int64_t>(v);
  };
  ScriptResult out;
  out.allowed = e[0]->integer == 1;
  out.duplicate = e[0]->integer == 2;
  out.late = e[0]->integer == 3;
  out.now_us = static_cast<int64_t>(number(e[1]));
  Decision& d = out.decision;
  d.allowed = out.allowed;
  d.level = number(e[2]);
  d.remaining = e[3]->integer;
  d.retry_after_ns = duration_ns(e[4]);
  d.reset_after_ns = duration_ns(e[5]);
  return out;
}

}  // namespace dlb::redis
