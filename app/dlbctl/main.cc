// dlbctl: decide, inspect and reset one user's bucket from the command line.
//
//   dlbctl allow   --user U --capacity C --leak-rate R [--cost N] [--rule NAME] ...
//   dlbctl inspect --user U --capacity C --leak-rate R [--rule NAME] ...
//   dlbctl reset   --user U --capacity C --leak-rate R [--rule NAME] ...
//
// Exit status: 0 allowed (or done), 1 rejected, 2 error (message on stderr). A store
// failure is an error here, never a decision by the failure policy: whoever runs
// dlbctl asks what Redis says.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/bucket.h"
#include "dlb/limiter.h"
#include "dlb/status.h"
#include "json.h"
#include "redis/url.h"
#include "config/config.h"

namespace {

// A command line tool waits for an answer longer than a gateway would (the library's
// default is 2 ms); a config file or DLB_DEADLINE_US that sets another value wins.
constexpr std::chrono::microseconds kCliDeadline{250'000};

constexpr int kExitAllowed = 0;
constexpr int kExitRejected = 1;
constexpr int kExitError = 2;

enum Command { kAllow = 1, kInspect = 2, kReset = 4 };
constexpr int kAll = kAllow | kInspect | kReset;

struct Flag {
  const char* name;
  const char* value;  // placeholder in the usage text
  int commands;       // where it is accepted
  const char* help;
};

// The one table of options: parsing and the usage text both come from it.
constexpr Flag kFlags[] = {
    {"--user", "ID", kAll,
     "user ID (any bytes); '-' reads it from stdin, verbatim, to EOF\n"
     "                       (a trailing newline is part of the ID: printf '%s', not echo)"},
    {"--capacity", "C", kAll, "bucket capacity in requests, an integer >= 1"},
    {"--leak-rate", "R", kAll, "leak rate in requests per second, in [0, 1e9]; 0 never leaks"},
    {"--cost", "N", kAllow, "cost of this request, an integer in [1, C] (default 1)"},
    {"--rule", "NAME", kAll,
     "bucket name among the user's buckets (default: derived from C and R,\n"
     "                       the bucket dlb::AllowRequest(U, C, R) uses)"},
    {"--redis", "URL", kAll,
     "redis://[user[:password]@]host[:port][/db] or unix:///path[?db=N]\n"
     "                       (default: $DLB_REDIS_URL, DLB_CONFIG, redis://127.0.0.1:6379;\n"
     "                       password also from $DLB_REDIS_PASSWORD)"},
    {"--deadline-us", "N", kAll, "deadline of each Redis call in microseconds (default 250000)"},
    {"--mode", "strict|synced|local", kAll,
     "strict: decide in Redis (default); synced: against a lease of the global\n"
     "                       bucket; local: in this process only"},
};

const char* CommandName(Command c) {
  switch (c) {
    case kAllow: return "allow";
    case kInspect: return "inspect";
    case kReset: return "reset";
  }
  return "?";
}

const char* CommandSummary(Command c) {
  switch (c) {
    case kAllow:
      return "Decides one request against the user's bucket and prints the decision as one\n"
             "line of JSON: allowed, level, remaining, retry_after_s, reset_after_s (seconds;\n"
             "null when it never happens), source. Exit 0 allowed, 1 rejected, 2 error.";
    case kInspect:
      return "Prints the user's bucket (key, level, remaining, retry_after_s, reset_after_s)\n"
             "as one line of JSON without changing it. Exit 0, or 2 on error.";
    case kReset:
      return "Forgets the user's bucket: the next request finds it empty. Prints the key and\n"
             "the level it had. Exit 0, or 2 on error.";
  }
  return "";
}

std::string TopUsage() {
  return "usage: dlbctl <command> [options]\n"
         "\n"
         "Commands:\n"
         "  allow     decide one request (exit 0 allowed, 1 rejected, 2 error)\n"
         "  inspect   print a bucket without changing it\n"
         "  reset     forget a bucket\n"
         "  config    'config check FILE': validate a config file, start nothing\n"
         "\n"
         "'dlbctl <command> --help' lists the command's options.\n"
         "Environment: DLB_REDIS_URL, DLB_REDIS_USER, DLB_REDIS_PASSWORD, DLB_DEADLINE_US,\n"
         "DLB_CONFIG (a YAML file with redis: and limiter: sections), DLB_LOG_LEVEL.\n";
}

std::string CommandUsage(Command c) {
  std::string u = std::string("usage: dlbctl ") + CommandName(c) +
                  " --user ID --capacity C --leak-rate R [options]\n\n" + CommandSummary(c) +
                  "\n\nOptions:\n";
  for (const Flag& f : kFlags) {
    if ((f.commands & c) == 0) continue;
    char head[64];
    std::snprintf(head, sizeof head, "  %s %s", f.name, f.value);
    u += head;
    u.append(std::strlen(head) < 23 ? 23 - std::strlen(head) : 1, ' ');
    u += f.help;
    u += '\n';
  }
  u += "  -h, --help           this text\n";
  return u;
}

// An error in what the user asked for: message, then the usage on stderr, exit 2.
struct UsageError {
  std::string message;
  bool show_usage = false;  // for unknown options and missing flags; a bad value is named
};

// Strict numbers: the whole text, no sign games, no whitespace, no "10abc".
int64_t ParseInt(std::string_view flag, std::string_view text, int64_t lo, int64_t hi,
                 std::string_view what) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v < lo || v > hi) {
    throw UsageError{std::string(flag) + ": expected " + std::string(what) + ", got '" +
                     std::string(text) + "'"};
  }
  return v;
}

double ParseRate(std::string_view flag, std::string_view text) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || !std::isfinite(v) ||
      v < dlb::kMinLeakRatePerS || v > dlb::kMaxLeakRatePerS) {
    throw UsageError{std::string(flag) +
                     ": expected a number of requests per second in [0, 1e9], got '" +
                     std::string(text) + "'"};
  }
  return v;
}

std::string ReadStdin() {
  std::string data;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0) {
      data.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return data;
    } else if (errno != EINTR) {
      throw UsageError{std::string("--user -: cannot read stdin: ") + std::strerror(errno)};
    }
  }
}

struct Args {
  std::string user;
  dlb::BucketSpec spec;
  int64_t cost = 1;
  std::string rule;
  std::optional<std::string> redis_url;
  std::optional<int64_t> deadline_us;
  std::optional<dlb::Mode> mode;
};

// Returns nullopt after printing the usage for --help.
std::optional<Args> ParseArgs(Command cmd, int argc, char** argv) {
  std::map<std::string, std::string, std::less<>> given;
  for (int i = 0; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(CommandUsage(cmd).c_str(), stdout);
      return std::nullopt;
    }
    if (a.substr(0, 2) != "--") throw UsageError{"unexpected argument '" + std::string(a) + "'", true};
    std::string_view name = a;
    std::optional<std::string_view> value;
    if (auto eq = a.find('='); eq != std::string_view::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    const Flag* flag = nullptr;
    for (const Flag& f : kFlags) {
      if (name == f.name && (f.commands & cmd) != 0) flag = &f;
    }
    if (flag == nullptr) throw UsageError{"unknown option '" + std::string(name) + "'", true};
    if (!value) {
      if (i + 1 >= argc) throw UsageError{std::string(name) + ": missing value"};
      value = argv[++i];
    }
    if (!given.emplace(std::string(name), std::string(*value)).second) {
      throw UsageError{std::string(name) + ": given more than once"};
    }
  }
  for (const char* required : {"--user", "--capacity", "--leak-rate"}) {
    if (given.find(required) == given.end()) {
      throw UsageError{std::string(required) + " is required", true};
    }
  }

  Args args;
  for (const auto& [name, value] : given) {
    if (name == "--user") {
      args.user = value == "-" ? ReadStdin() : value;
      if (args.user.empty()) throw UsageError{"--user: the user ID is empty"};
    } else if (name == "--capacity") {
      args.spec.capacity = ParseInt(name, value, 1, dlb::kMaxCapacity,
                                    "an integer in [1, " + std::to_string(dlb::kMaxCapacity) + "]");
    } else if (name == "--leak-rate") {
      args.spec.leak_rate_per_s = ParseRate(name, value);
    } else if (name == "--cost") {
      args.cost = ParseInt(name, value, 1, dlb::kMaxCapacity, "an integer >= 1");
    } else if (name == "--rule") {
      if (value.empty()) throw UsageError{"--rule: the rule name is empty"};
      args.rule = value;
    } else if (name == "--redis") {
      args.redis_url = value;
    } else if (name == "--deadline-us") {
      args.deadline_us = ParseInt(name, value, 1, 60'000'000, "an integer in [1, 60000000]");
    } else if (name == "--mode") {
      auto m = dlb::ParseMode(value);
      if (!m.ok()) throw UsageError{"--mode: expected strict, synced or local, got '" + value + "'"};
      args.mode = *m;
    }
  }
  if (args.cost > args.spec.capacity) {
    throw UsageError{"--cost: " + std::to_string(args.cost) + " exceeds --capacity " +
                     std::to_string(args.spec.capacity) + " (it would never be admitted)"};
  }
  return args;
}

// A failure of the store or the configuration: the message on stderr, exit 2.
int Fail(Command cmd, const std::string& message) {
  std::fprintf(stderr, "dlbctl %s: %s\n", CommandName(cmd), message.c_str());
  return kExitError;
}

std::string StoreFailure(const dlb::Limiter& limiter, const dlb::Status& s) {
  std::string where;
  if (auto ep = dlb::redis::ParseUrl(limiter.options().redis_url); ep.ok()) where = ep->Describe();
  std::string m = "Redis unavailable";
  // Connection errors name the endpoint themselves; say it once.
  if (!where.empty() && s.message().find(where) == std::string::npos) m += " at " + where;
  m += ": " + s.message();
  if (s.code() == dlb::StatusCode::kDeadlineExceeded) {
    m += " (deadline " + std::to_string(limiter.options().deadline.count()) + " us)";
  }
  return m;
}

int Allow(dlb::Limiter& limiter, const Args& a) {
  auto d = limiter.Decide(a.user, a.spec, a.cost, a.rule);
  if (!d.ok()) return Fail(kAllow, d.status().message());
  if (d->source != dlb::DecisionSource::kStore && d->source != dlb::DecisionSource::kLocal) {
    // The failure policy decided, so the store call failed; the limiter keeps why.
    const dlb::LimiterStats stats = limiter.Stats();
    std::string why = StoreFailure(limiter, limiter.LastStoreError());
    if (stats.store_timeouts > 0) {
      why += "; the call timed out, so Redis may have counted this request";
    } else {
      why += "; the request was not counted";
    }
    return Fail(kAllow, why);
  }
  std::fputs(dlbctl::JsonLine()
                 .Bool("allowed", d->allowed)
                 .Num("level", d->level)
                 .Int("remaining", d->remaining)
                 .Seconds("retry_after_s", d->retry_after_ns)
                 .Seconds("reset_after_s", d->reset_after_ns)
                 .Str("source", dlb::DecisionSourceName(d->source))
                 .Finish()
                 .c_str(),
             stdout);
  return d->allowed ? kExitAllowed : kExitRejected;
}

int Inspect(dlb::Limiter& limiter, const Args& a) {
  auto info = limiter.Inspect(a.user, a.spec, a.rule);
  if (!info.ok()) {
    const bool store = info.status().code() != dlb::StatusCode::kInvalidArgument;
    return Fail(kInspect, store ? StoreFailure(limiter, info.status()) : info.status().message());
  }
  std::fputs(dlbctl::JsonLine()
                 .Str("key", info->key)
                 .Num("level", info->state.level)
                 .Int("remaining", info->state.remaining)
                 .Seconds("retry_after_s", info->state.retry_after_ns)
                 .Seconds("reset_after_s", info->state.reset_after_ns)
                 .Finish()
                 .c_str(),
             stdout);
  return kExitAllowed;
}

int Reset(dlb::Limiter& limiter, const Args& a) {
  // Read first so the output can say which key went and what it held.
  auto info = limiter.Inspect(a.user, a.spec, a.rule);
  dlb::Status s = info.ok() ? limiter.Reset(a.user, a.spec, a.rule) : info.status();
  if (!s.ok()) {
    const bool store = s.code() != dlb::StatusCode::kInvalidArgument;
    return Fail(kReset, store ? StoreFailure(limiter, s) : s.message());
  }
  std::fputs(dlbctl::JsonLine()
                 .Str("key", info->key)
                 .Num("level_before", info->state.level)
                 .Bool("reset", true)
                 .Finish()
                 .c_str(),
             stdout);
  return kExitAllowed;
}

// dlbctl config check FILE: every section of the one config file (config::Load), nothing started.
int ConfigCheck(int argc, char** argv) {
  static const char kUsage[] =
      "usage: dlbctl config check FILE\n"
      "  Validates a config file without starting anything: the library's redis: and\n"
      "  limiter: sections, metrics:, appliance:, xdp: and the packet engine's settings and\n"
      "  rules. Prints one line of JSON and exits 0 when valid; the first error\n"
      "  (file:line:column: field: why) goes to stderr with exit 2.\n";
  if (argc == 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    std::fputs(kUsage, stdout);
    return kExitAllowed;
  }
  if (argc != 4 || std::string_view(argv[2]) != "check") {
    std::fputs(kUsage, stderr);
    return kExitError;
  }
  const std::string path = argv[3];
  auto file = dlb::config::Load(path);
  if (!file.ok()) {
    std::fprintf(stderr, "dlbctl config check: %s\n", file.status().message().c_str());
    return kExitError;
  }
  const dlb::LimiterOptions* lib = &file->library;
  const dlb::packet::PacketConfig* packet = &file->packet;
  const dlb::metrics::MetricsConfig* metrics = &file->metrics;
  std::fputs(dlbctl::JsonLine()
                 .Bool("valid", true)
                 .Str("file", path)
                 .Str("mode", dlb::ModeName(lib->mode))
                 .Str("on_store_failure", dlb::FailurePolicyName(lib->on_store_failure))
                 .Int("deadline_us", lib->deadline.count())
                 .Int("rules", static_cast<int64_t>(packet->rules.size()))
                 .Int("service_ports", static_cast<int64_t>(packet->service_ports.size()))
                 .Str("metrics_listen", metrics->listen)
                 .Finish()
                 .c_str(),
             stdout);
  return kExitAllowed;
}

int Run(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(TopUsage().c_str(), stderr);
    return kExitError;
  }
  const std::string_view sub = argv[1];
  if (sub == "--help" || sub == "-h" || sub == "help") {
    std::fputs(TopUsage().c_str(), stdout);
    return kExitAllowed;
  }
  if (sub == "config") return ConfigCheck(argc, argv);
  Command cmd;
  if (sub == "allow") {
    cmd = kAllow;
  } else if (sub == "inspect") {
    cmd = kInspect;
  } else if (sub == "reset") {
    cmd = kReset;
  } else {
    std::fprintf(stderr, "dlbctl: unknown command '%s'\n\n%s", argv[1], TopUsage().c_str());
    return kExitError;
  }

  std::optional<Args> args;
  try {
    args = ParseArgs(cmd, argc - 2, argv + 2);
  } catch (const UsageError& e) {
    if (e.show_usage) {
      std::fprintf(stderr, "dlbctl %s: %s\n\n%s", CommandName(cmd), e.message.c_str(),
                   CommandUsage(cmd).c_str());
    } else {
      std::fprintf(stderr, "dlbctl %s: %s (see 'dlbctl %s --help')\n", CommandName(cmd),
                   e.message.c_str(), CommandName(cmd));
    }
    return kExitError;
  }
  if (!args) return kExitAllowed;  // --help

  // A command-line tool can afford a longer deadline than a gateway: it is the base
  // that DLB_CONFIG and DLB_DEADLINE_US may still change.
  dlb::LimiterOptions base;
  base.deadline = kCliDeadline;
  auto opts = dlb::OptionsFromEnvironment(base);
  if (!opts.ok()) return Fail(cmd, "bad configuration: " + opts.status().message());
  if (args->redis_url) opts->redis_url = *args->redis_url;
  if (args->deadline_us) opts->deadline = std::chrono::microseconds(*args->deadline_us);
  if (args->mode) opts->mode = *args->mode;
  // Nothing is admitted on the failure policy's word; the failure is reported instead.
  opts->on_store_failure = dlb::FailurePolicy::kClosed;
  auto limiter = dlb::Limiter::Create(*opts);
  if (!limiter.ok()) return Fail(cmd, "bad configuration: " + limiter.status().message());

  switch (cmd) {
    case kAllow: return Allow(**limiter, *args);
    case kInspect: return Inspect(**limiter, *args);
    case kReset: return Reset(**limiter, *args);
  }
  return kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  // stdout carries the JSON; the library's log lines go to stderr, and only when
  // DLB_LOG_LEVEL asks for them (dlbctl reports failures itself, once).
  spdlog::set_default_logger(spdlog::stderr_color_mt("dlbctl"));
  spdlog::set_level(spdlog::level::off);
  const int rc = Run(argc, argv);
  std::fflush(stdout);
  return rc;
}
