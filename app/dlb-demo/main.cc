// dlb-demo: one "gateway" process of scripts/demo. It offers requests for a few users,
// each at its own steady rate, through dlb::AllowRequest (the library's one-line API,
// configured from the environment like any gateway), and prints what it saw.
//
//   dlb-demo --name gw1 --seconds 5 [--start-at UNIX_NS] [--metrics-listen HOST:PORT]
//            --user NAME:OFFERED_PER_S:CAPACITY:LEAK_RATE_PER_S ...
//
// Its Limiter's counters are served as Prometheus metrics (dlb_limiter_*) on the
// `metrics: listen:` address of DLB_CONFIG, DLB_METRICS_LISTEN or --metrics-listen
// (default 127.0.0.1:9464; "" = none; port 0 = any free port, reported as
// "metrics_port" in the JSON line and in the start-up log line on stderr).
//
// stdout: one JSON line at the end. stderr: one JSON progress line every 250 ms.
// Several processes started with the same --start-at begin their first request at the
// same moment, so their counts add up against one window.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/limiter.h"
#include "dlb/metrics.h"
#include "json.h"
#include "metrics/config.h"

namespace {

constexpr int64_t kProgressIntervalNs = 250'000'000;
// A user whose requests fall further behind schedule than this skips ahead instead of
// sending a catch-up burst (the offered count reports what was really sent).
constexpr int64_t kMaxLagNs = 100'000'000;

struct User {
  std::string name;
  double offered_per_s = 0;
  int capacity = 0;
  double leak_rate_per_s = 0;
  int64_t next_ns = 0;
  int64_t interval_ns = 0;
  int64_t offered = 0;
  int64_t allowed = 0;
};

int64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void SleepUntilRealtime(int64_t ns) {
  const timespec ts{.tv_sec = ns / 1'000'000'000, .tv_nsec = ns % 1'000'000'000};
  while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
}

double ParseNumber(std::string_view what, std::string_view s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v) || v < 0) {
    throw std::invalid_argument(std::string(what) + ": expected a number >= 0, got '" +
                                std::string(s) + "'");
  }
  return v;
}

User ParseUser(std::string_view spec) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  if (parts.size() != 4 || parts[0].empty()) {
    throw std::invalid_argument("--user: expected NAME:OFFERED_PER_S:CAPACITY:LEAK_RATE, got '" +
                                std::string(spec) + "'");
  }
  User u;
  u.name = std::string(parts[0]);
  u.offered_per_s = ParseNumber("--user offered rate", parts[1]);
  const double c = ParseNumber("--user capacity", parts[2]);
  if (c < 1 || c > 2147483647 || c != std::floor(c)) {
    throw std::invalid_argument("--user capacity: expected an integer >= 1");
  }
  u.capacity = static_cast<int>(c);
  u.leak_rate_per_s = ParseNumber("--user leak rate", parts[3]);
  if (u.offered_per_s <= 0) throw std::invalid_argument("--user offered rate: must be > 0");
  u.interval_ns = static_cast<int64_t>(1e9 / u.offered_per_s);
  return u;
}

std::string Counts(const std::vector<User>& users, int64_t User::*field) {
  std::string s = "[";
  for (size_t i = 0; i < users.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(users[i].*field);
  }
  return s + "]";
}

struct Options {
  std::string name = "gateway";
  double seconds = 5;
  int64_t start_at_ns = 0;
  std::vector<User> users;
  dlb::metrics::MetricsConfig metrics;
};

// Returns nullopt after --help.
std::optional<Options> ParseOptions(int argc, char** argv) {
  Options o;
  auto metrics_config = dlb::metrics::MetricsConfigFromEnvironment();
  if (!metrics_config.ok()) throw std::invalid_argument(metrics_config.status().message());
  o.metrics = *metrics_config;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: dlb-demo [--name NAME] [--seconds S] [--start-at UNIX_NS]\n"
          "                [--metrics-listen HOST:PORT]\n"
          "                --user NAME:OFFERED_PER_S:CAPACITY:LEAK_RATE_PER_S ...\n"
          "Offers requests through dlb::AllowRequest (configured by DLB_REDIS_URL, DLB_MODE,\n"
          "DLB_CONFIG ...) and prints the counts as one JSON line. Serves the limiter's\n"
          "counters on /metrics at --metrics-listen, DLB_METRICS_LISTEN or the config's\n"
          "metrics.listen (default 127.0.0.1:9464, \"\" = none).\n");
      return std::nullopt;
    }
    if (i + 1 >= argc) throw std::invalid_argument(std::string(a) + ": missing value");
    const std::string_view v = argv[++i];
    if (a == "--name") {
      o.name = std::string(v);
    } else if (a == "--seconds") {
      o.seconds = ParseNumber("--seconds", v);
    } else if (a == "--start-at") {
      o.start_at_ns = static_cast<int64_t>(ParseNumber("--start-at", v));
    } else if (a == "--metrics-listen") {
      o.metrics.listen = std::string(v);
    } else if (a == "--user") {
      o.users.push_back(ParseUser(v));
    } else {
      throw std::invalid_argument("unknown option '" + std::string(a) + "'");
    }
  }
  if (o.users.empty()) throw std::invalid_argument("at least one --user is required");
  return o;
}

// Offers each user's requests on its schedule from t0 to `end_ns`, with a progress line
// on stderr every kProgressIntervalNs.
void Offer(std::vector<User>& users, int64_t t0, int64_t end_ns) {
  for (User& u : users) u.next_ns = t0;
  int64_t next_progress = t0 + kProgressIntervalNs;
  for (;;) {
    User* due = &users[0];
    for (User& u : users) {
      if (u.next_ns < due->next_ns) due = &u;
    }
    const int64_t when = std::min(due->next_ns, next_progress);
    if (when >= end_ns) return;
    SleepUntilRealtime(when);
    const int64_t now = RealtimeNs();
    if (when == next_progress) {
      std::fprintf(stderr, "%s",
                   dlbctl::JsonLine()
                       .Num("t", static_cast<double>(now - t0) / 1e9)
                       .Raw("offered", Counts(users, &User::offered))
                       .Raw("allowed", Counts(users, &User::allowed))
                       .Finish()
                       .c_str());
      next_progress += kProgressIntervalNs;
      continue;
    }
    ++due->offered;
    if (dlb::AllowRequest(due->name, due->capacity, due->leak_rate_per_s)) ++due->allowed;
    due->next_ns += due->interval_ns;
    if (due->next_ns < now - kMaxLagNs) due->next_ns = now;
  }
}

// The one JSON line on stdout.
void Report(const Options& o, int64_t t0, int64_t t1, int metrics_port) {
  const dlb::LimiterStats stats = dlb::DefaultLimiter().Stats();
  std::string list = "[";
  for (size_t i = 0; i < o.users.size(); ++i) {
    const User& u = o.users[i];
    if (i > 0) list += ',';
    std::string line = dlbctl::JsonLine()
                           .Str("user", u.name)
                           .Num("offered_per_s", u.offered_per_s)
                           .Int("capacity", u.capacity)
                           .Num("leak_rate_per_s", u.leak_rate_per_s)
                           .Int("offered", u.offered)
                           .Int("allowed", u.allowed)
                           .Int("rejected", u.offered - u.allowed)
                           .Finish();
    line.pop_back();  // the newline
    list += line;
  }
  list += "]";
  std::fputs(dlbctl::JsonLine()
                 .Str("worker", o.name)
                 .Int("pid", getpid())
                 .Str("mode", dlb::ModeName(dlb::DefaultLimiter().options().mode))
                 .Num("seconds", o.seconds)
                 .Num("start_unix_s", static_cast<double>(t0) / 1e9)
                 .Num("end_unix_s", static_cast<double>(t1) / 1e9)
                 .Int("store_decisions", static_cast<int64_t>(stats.store_decisions))
                 .Int("fallback_decisions", static_cast<int64_t>(stats.fallback_decisions))
                 .Int("store_errors", static_cast<int64_t>(stats.store_errors))
                 .Int("metrics_port", metrics_port)
                 .Raw("users", list)
                 .Finish()
                 .c_str(),
             stdout);
}

int Run(int argc, char** argv) {
  std::optional<Options> o = ParseOptions(argc, argv);
  if (!o) return 0;
  dlb::DefaultLimiter();  // connect and load the script before the clock starts
  std::unique_ptr<dlb::metrics::Exporter> exporter;
  if (!o->metrics.listen.empty()) {
    auto started = dlb::metrics::Exporter::Start(o->metrics.listen);
    if (!started.ok()) throw std::runtime_error(started.status().message());
    exporter = std::move(*started);
    exporter->AddCollector(dlb::metrics::LimiterCollector(dlb::DefaultLimiter()));
  }
  if (o->start_at_ns > 0) SleepUntilRealtime(o->start_at_ns);
  const int64_t t0 = RealtimeNs();
  Offer(o->users, t0, t0 + static_cast<int64_t>(o->seconds * 1e9));
  Report(*o, t0, RealtimeNs(), exporter ? exporter->port() : 0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // stdout carries the result; the library's warnings (a store outage) go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("dlb-demo"));
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dlb-demo: %s\n", e.what());
    return 2;
  }
}
