// Names, environment and config-file handling of LimiterOptions: one table of the
// settable options (Setters()), shared by the environment and the file's `redis:` and
// `limiter:` sections.
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>

#include "config/document.h"
#include "dlb/limiter.h"
#include "limiter/options.h"

namespace dlb {

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kStrict: return "strict";
    case Mode::kLocal: return "local";
    case Mode::kSynced: return "synced";
  }
  return "?";
}

const char* FailurePolicyName(FailurePolicy p) {
  switch (p) {
    case FailurePolicy::kLocal: return "local";
    case FailurePolicy::kOpen: return "open";
    case FailurePolicy::kClosed: return "closed";
  }
  return "?";
}

const char* DecisionSourceName(DecisionSource s) {
  switch (s) {
    case DecisionSource::kStore: return "store";
    case DecisionSource::kLocal: return "local";
    case DecisionSource::kLease: return "lease";
    case DecisionSource::kFallbackLocal: return "fallback_local";
    case DecisionSource::kFallbackOpen: return "fallback_open";
    case DecisionSource::kFallbackClosed: return "fallback_closed";
  }
  return "?";
}

StatusOr<Mode> ParseMode(std::string_view s) {
  if (s == "strict") return Mode::kStrict;
  if (s == "local") return Mode::kLocal;
  if (s == "synced") return Mode::kSynced;
  return Status::InvalidArgument("mode must be strict, synced or local, got '" + std::string(s) + "'");
}

StatusOr<FailurePolicy> ParseFailurePolicy(std::string_view s) {
  if (s == "local") return FailurePolicy::kLocal;
  if (s == "open") return FailurePolicy::kOpen;
  if (s == "closed") return FailurePolicy::kClosed;
  return Status::InvalidArgument("on_store_failure must be local, open or closed, got '" +
                                 std::string(s) + "'");
}

namespace {

bool ParseInt64(std::string_view s, int64_t lo, int64_t hi, int64_t* out) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool ParseDouble(std::string_view s, double* out) {
  std::string tmp(s);
  char* end = nullptr;
  const double v = std::strtod(tmp.c_str(), &end);
  if (tmp.empty() || end != tmp.c_str() + tmp.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

// One table of settable options (name, how to set it from text), shared by the
// environment and the config file, as Redis's config.c does.
using Setter = std::function<Status(LimiterOptions&, std::string_view)>;

const std::map<std::string, Setter>& Setters() {
  static const std::map<std::string, Setter> kSetters = {
      {"redis.url", [](LimiterOptions& o, std::string_view v) {
         o.redis_url = std::string(v);
         return Status::Ok();
       }},
      {"redis.username", [](LimiterOptions& o, std::string_view v) {
         o.username = std::string(v);
         return Status::Ok();
       }},
      {"redis.password", [](LimiterOptions& o, std::string_view v) {
         o.password = std::string(v);
         return Status::Ok();
       }},
      {"redis.deadline_us", [](LimiterOptions& o, std::string_view v) {
         int64_t us;
         if (!ParseInt64(v, 1, 60'000'000, &us)) {
           return Status::InvalidArgument("must be an integer in [1, 60000000] microseconds");
         }
         o.deadline = std::chrono::microseconds(us);
         return Status::Ok();
       }},
      {"redis.max_connections", [](LimiterOptions& o, std::string_view v) {
         int64_t n;
         if (!ParseInt64(v, 1, 4096, &n)) return Status::InvalidArgument("must be in [1, 4096]");
         o.max_connections = static_cast<int>(n);
         return Status::Ok();
       }},
      {"limiter.mode", [](LimiterOptions& o, std::string_view v) {
         auto m = ParseMode(v);
         if (!m.ok()) return m.status();
         o.mode = *m;
         return Status::Ok();
       }},
      {"limiter.sync_interval_us", [](LimiterOptions& o, std::string_view v) {
         int64_t us;
         if (!ParseInt64(v, 100, 10'000'000, &us)) {
           return Status::InvalidArgument("must be an integer in [100, 10000000] microseconds");
         }
         o.sync_interval = std::chrono::microseconds(us);
         return Status::Ok();
       }},
      {"limiter.on_store_failure", [](LimiterOptions& o, std::string_view v) {
         auto p = ParseFailurePolicy(v);
         if (!p.ok()) return p.status();
         o.on_store_failure = *p;
         return Status::Ok();
       }},
      {"limiter.fallback_share", [](LimiterOptions& o, std::string_view v) {
         double d;
         if (!ParseDouble(v, &d) || !(d > 0 && d <= 1)) {
           return Status::InvalidArgument("must be a number in (0, 1]");
         }
         o.fallback_share = d;
         return Status::Ok();
       }},
      {"limiter.breaker_threshold", [](LimiterOptions& o, std::string_view v) {
         int64_t n;
         if (!ParseInt64(v, 1, 1'000'000, &n)) return Status::InvalidArgument("must be in [1, 1000000]");
         o.breaker_threshold = static_cast<int>(n);
         return Status::Ok();
       }},
      {"limiter.breaker_timeouts_in_row", [](LimiterOptions& o, std::string_view v) {
         int64_t n;
         if (!ParseInt64(v, 1, 1'000'000, &n)) return Status::InvalidArgument("must be in [1, 1000000]");
         o.breaker_timeouts_in_row = static_cast<int>(n);
         return Status::Ok();
       }},
      {"limiter.breaker_backoff_min_ms", [](LimiterOptions& o, std::string_view v) {
         int64_t n;
         if (!ParseInt64(v, 1, 3'600'000, &n)) return Status::InvalidArgument("must be in [1, 3600000] ms");
         o.breaker_backoff_min = std::chrono::milliseconds(n);
         return Status::Ok();
       }},
      {"limiter.breaker_backoff_max_ms", [](LimiterOptions& o, std::string_view v) {
         int64_t n;
         if (!ParseInt64(v, 1, 3'600'000, &n)) return Status::InvalidArgument("must be in [1, 3600000] ms");
         o.breaker_backoff_max = std::chrono::milliseconds(n);
         return Status::Ok();
       }},
      {"limiter.local_max_buckets", [](LimiterOptions& o, std::string_view v) {
         int64_t n;
         if (!ParseInt64(v, 1, int64_t{1} << 32, &n)) return Status::InvalidArgument("must be in [1, 2^32]");
         o.local_max_buckets = static_cast<size_t>(n);
         return Status::Ok();
       }},
  };
  return kSetters;
}

const std::pair<const char*, const char*> kEnvironment[] = {
    {"DLB_REDIS_URL", "redis.url"},
    {"DLB_REDIS_USER", "redis.username"},
    {"DLB_REDIS_PASSWORD", "redis.password"},
    {"DLB_DEADLINE_US", "redis.deadline_us"},
    {"DLB_MODE", "limiter.mode"},
    {"DLB_ON_STORE_FAILURE", "limiter.on_store_failure"},
    {"DLB_FALLBACK_SHARE", "limiter.fallback_share"},
    {"DLB_SYNC_INTERVAL_US", "limiter.sync_interval_us"},
};

}  // namespace

StatusOr<LimiterOptions> ReadLibrarySections(const config::Document& doc, LimiterOptions base) {
  return doc.Read([&](const config::Reader& r) {
    for (const char* name : {"redis", "limiter"}) {
      const YAML::Node section = doc.Section(name);
      if (section.IsNull()) continue;
      r.Map(section, name);
      for (const auto& field : section) {
        const std::string key = r.Scalar(field.first, name);
        r.RefuseOtherIntervalUnit(field.first, field.second, name, key);
        const std::string full = std::string(name) + "." + key;
        auto it = Setters().find(full);
        if (it == Setters().end()) r.Fail(field.first, full, "unknown key");
        if (Status s = it->second(base, r.Scalar(field.second, full)); !s.ok()) {
          r.Fail(field.second, full, s.message());
        }
      }
    }
    return base;
  });
}

StatusOr<LimiterOptions> LoadLimiterConfig(const std::string& path, LimiterOptions base) {
  auto doc = config::Document::ReadFile(path);
  if (!doc.ok()) return doc.status();
  return ReadLibrarySections(*doc, std::move(base));
}

StatusOr<LimiterOptions> OptionsFromEnvironment(LimiterOptions base) {
  LimiterOptions o = std::move(base);
  if (const char* cfg = std::getenv("DLB_CONFIG"); cfg != nullptr && *cfg != '\0') {
    auto loaded = LoadLimiterConfig(cfg, o);
    if (!loaded.ok()) return loaded.status();
    o = *loaded;
  }
  for (const auto& [env, key] : kEnvironment) {
    const char* v = std::getenv(env);
    if (v == nullptr || *v == '\0') continue;
    if (Status s = Setters().at(key)(o, v); !s.ok()) {
      return Status::InvalidArgument(std::string(env) + ": " + s.message());
    }
  }
  return o;
}

}  // namespace dlb
