#include "redis/lease_script.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "redis/script.h"

namespace dlb::redis {

namespace {

// One bucket's step, shared by both scripts below (after the strict script's prelude,
// script.cc, so that they read and write a TAT through the same text; lease_script_test
// checks that a bucket charged by one is read back exactly by the other): give back
// `ret` unused units, charge `debit` units admitted on credit (`debit` is nil for the
// lease script), then grant what fits of `want`. Returns grant, level.
constexpr std::string_view kStepFunction = R"lua(
local function step(key, c, tn, ret, debit, want)
  local v = redis.call('GET', key)
  local u, d = tn, 0
  if tn == 0 then
    u = 1
    if v then d = tonumber(v) or 0 end
  elseif v then
    d = fill_of(v)
  end
  if d < 0 then d = 0 end
  local before = d
  -- Units given back leave the bucket, but never below empty: what leaked while they
  -- were held is gone (a returned lease never makes room that was not there).
  d = d - ret * u
  if d < 0 then d = 0 end
  if debit then
    -- Admitted on credit: charged unconditionally, saturating at a full bucket.
    d = d + debit * u
    if d > c * u then d = c * u end
  end
  -- All that fits, with the strict script's slack, so a lease and C strict takes
  -- agree on a full bucket.
  local room = math.floor(c + 1e-9 + c * 4e-15 - d / u)
  local grant = math.min(want, room)
  if grant < 0 then grant = 0 end
  d = d + grant * u
  if d ~= before then
    if d <= 0 then
      redis.call('DEL', key)
    elseif tn == 0 then
      redis.call('SET', key, string.format('%.0f', d))
    else
      local expire_ms = now_s * 1000 + math.floor(now_ns / 1e6) + math.ceil(d / 1e6) + 1
      redis.call('SET', key, tat_text(d, u), 'PXAT', string.format('%.0f', expire_ms))
    end
  end
  return grant, string.format('%.17g', d / u)
end
)lua";

constexpr std::string_view kLeaseBody = R"lua(
local nk, log, after = #KEYS, nil, nil
if #KEYS >= 2 and #ARGV == 4 * (#KEYS - 1) + 1 then
  nk, log, after = #KEYS - 1, KEYS[#KEYS], tonumber(ARGV[#ARGV])
  if not after then return redis.error_reply('ERR dlb: bad reset log sequence') end
end
if nk < 1 or (not log and #ARGV ~= 4 * nk) then
  return redis.error_reply('ERR dlb: usage: EVALSHA sha k key.. [log] (capacity interval_ns return want).. [seq]')
end
local out = {string.format('%.0f', now_s * 1e6 + now_ns / 1000)}
for i = 1, nk do
  local c, tn = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
  local ret, want = tonumber(ARGV[4 * i - 1]), tonumber(ARGV[4 * i])
  if not c or not tn or not ret or not want or c < 1 or tn < 0 or ret < 0 or want < 0 then
    return redis.error_reply('ERR dlb: bad lease arguments')
  end
  local reset = 0
  if log then
    local seq = tonumber(redis.call('ZSCORE', log, KEYS[i]) or '0')
    -- Reset after the caller's read of the log: the units it holds were charged in the
    -- bucket that was deleted, and giving them back would cancel charges of the new one.
    if seq > after then ret, reset = 0, seq end
  end
  local grant, level = step(KEYS[i], c, tn, ret, nil, want)
  out[#out + 1] = grant
  out[#out + 1] = level
  if log then out[#out + 1] = reset end
end
return out
)lua";

// The lease step with a debit, applied once per (round key, round id).
constexpr std::string_view kSettleBody = R"lua(
local nk = #KEYS - 1
local rid, ttl = ARGV[1], tonumber(ARGV[2])
if nk < 1 or #ARGV ~= 2 + 5 * nk or not ttl or ttl < 1 then
  return redis.error_reply('ERR dlb: usage: EVALSHA sha k+1 round_key key.. round_id ttl_ms (capacity interval_ns return debit want)..')
end
local prev = redis.call('GET', KEYS[1])
if prev then
  local bar = string.find(prev, '|', 1, true)
  if bar and string.sub(prev, 1, bar - 1) == rid then
    return cjson.decode(string.sub(prev, bar + 1))
  end
end
local out = {string.format('%.0f', now_s * 1e6 + now_ns / 1000)}
for i = 1, nk do
  local a = 2 + 5 * (i - 1)
  local c, tn = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local ret, debit, want = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  if not c or not tn or not ret or not debit or not want or c < 1 or tn < 0 or ret < 0 or
      debit < 0 or want < 0 then
    return redis.error_reply('ERR dlb: bad settle arguments')
  end
  local grant, level = step(KEYS[i + 1], c, tn, ret, debit, want)
  out[#out + 1] = grant
  out[#out + 1] = level
end
redis.call('SET', KEYS[1], rid .. '|' .. cjson.encode(out), 'PX', ttl)
return out
)lua";

}  // namespace

std::string_view SettleScript() {
  static const std::string& script =
      *new std::string(WithTatPrelude(std::string(kStepFunction) + std::string(kSettleBody)));
  return script;
}

const std::string& SettleScriptSha() {
  static const std::string& sha = *new std::string(ScriptSha(SettleScript()));
  return sha;
}

void AppendSettleCall(CommandWriter& w, std::string_view round_key, int64_t round_id, int64_t ttl_ms,
                      std::span<const SettleItem> items) {
  w.Begin(6 + items.size() * 6).Arg("EVALSHA").Arg(SettleScriptSha());
  w.Arg(static_cast<int64_t>(items.size() + 1)).Arg(round_key);
  for (const SettleItem& it : items) w.Arg(it.key);
  w.Arg(round_id).Arg(ttl_ms);
  for (const SettleItem& it : items) {
    w.Arg(it.spec.capacity);
    if (it.spec.leak_rate_per_s == 0) {
      w.Arg("0");
    } else {
      w.ArgDouble(1e9 / it.spec.leak_rate_per_s);
    }
    w.Arg(it.return_units).Arg(it.debit_units).Arg(it.want_units);
  }
}

std::string_view LeaseScript() {
  static const std::string& script =
      *new std::string(WithTatPrelude(std::string(kStepFunction) + std::string(kLeaseBody)));
  return script;
}

const std::string_view kAnnounceScript = R"lua(
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if #KEYS ~= 1 or #ARGV ~= 2 or not ttl or ttl < 1 then
  return redis.error_reply('ERR dlb: usage: EVALSHA sha 1 key participant_id ttl_ms')
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now_ms))
redis.call('ZADD', KEYS[1], string.format('%.0f', now_ms + ttl), ARGV[1])
-- The set itself goes once the last participant's entry has expired.
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return redis.call('ZCARD', KEYS[1])
)lua";

const std::string& LeaseScriptSha() {
  static const std::string& sha = *new std::string(ScriptSha(LeaseScript()));
  return sha;
}

const std::string& AnnounceScriptSha() {
  static const std::string& sha = *new std::string(ScriptSha(kAnnounceScript));
  return sha;
}

void AppendLeaseCall(CommandWriter& w, std::span<const LeaseItem> items, int64_t resets_after_seq) {
  const bool guarded = resets_after_seq >= 0;
  w.Begin(3 + items.size() * 5 + (guarded ? 2 : 0))
      .Arg("EVALSHA")
      .Arg(LeaseScriptSha())
      .Arg(static_cast<int64_t>(items.size() + (guarded ? 1 : 0)));
  for (const LeaseItem& it : items) w.Arg(it.key);
  if (guarded) w.Arg(kResetLogKey);
  for (const LeaseItem& it : items) {
    w.Arg(it.spec.capacity);
    if (it.spec.leak_rate_per_s == 0) {
      w.Arg("0");
    } else {
      w.ArgDouble(1e9 / it.spec.leak_rate_per_s);
    }
    w.Arg(it.return_units).Arg(it.want_units);
  }
  if (guarded) w.Arg(resets_after_seq);
}

Status ParseLeaseReply(const redisReply* r, size_t n, std::vector<LeaseGrant>* out, bool guarded) {
  const size_t per = guarded ? 3 : 2;
  if (r == nullptr) return Status::Protocol("no reply");
  if (r->type == REDIS_REPLY_ERROR) {
    if (IsNoScript(r)) return Status::Unavailable("NOSCRIPT");
    return Status::Protocol("Redis error: " + DescribeReply(r));
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 + per * n) {
    return Status::Protocol("unexpected lease reply: " + DescribeReply(r));
  }
  for (size_t i = 0; i < n; ++i) {
    const redisReply* g = r->element[1 + per * i];
    const redisReply* l = r->element[2 + per * i];
    const redisReply* x = guarded ? r->element[3 + per * i] : nullptr;
    if (g->type != REDIS_REPLY_INTEGER || l->type != REDIS_REPLY_STRING ||
        (x != nullptr && x->type != REDIS_REPLY_INTEGER)) {
      return Status::Protocol("unexpected element types in lease reply");
    }
    out->push_back({.granted_units = g->integer,
                    .level = std::strtod(std::string(l->str, l->len).c_str(), nullptr),
                    .reset_seq = x != nullptr ? static_cast<int64_t>(x->integer) : 0});
  }
  return Status::Ok();
}

void AppendAnnounceCall(CommandWriter& w, std::string_view participant_id, int64_t ttl_ms) {
  w.Begin(6).Arg("EVALSHA").Arg(AnnounceScriptSha()).Arg(int64_t{1}).Arg(kParticipantsKey);
  w.Arg(participant_id).Arg(ttl_ms);
}

StatusOr<int64_t> ParseAnnounceReply(const redisReply* r) {
  if (r == nullptr) return Status::Protocol("no reply");
  if (r->type != REDIS_REPLY_INTEGER) return Status::Protocol("announce: " + DescribeReply(r));
  return static_cast<int64_t>(r->integer);
}

}  // namespace dlb::redis
