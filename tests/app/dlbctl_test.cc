// dlbctl, run as a program against a real redis-server on a free loopback port.
// The binary's path comes from $DLBCTL (set by meson).
#include <gtest/gtest.h>
#include <signal.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>

#include "flat_json.h"
#include "process.h"

namespace dlb::apptest {
namespace {

using Env = std::map<std::string, std::optional<std::string>>;

std::string DlbctlPath() {
  const char* p = std::getenv("DLBCTL");
  return p != nullptr ? p : "dlbctl";
}

// The caller's DLB_* settings must not leak into a test.
Env CleanEnv(const std::string& redis_url) {
  Env env = {{"DLB_REDIS_URL", redis_url},   {"DLB_REDIS_USER", std::nullopt},
             {"DLB_REDIS_PASSWORD", std::nullopt}, {"DLB_CONFIG", std::nullopt},
             {"DLB_MODE", std::nullopt},     {"DLB_DEADLINE_US", std::nullopt},
             {"DLB_ON_STORE_FAILURE", std::nullopt}, {"DLB_LOG_LEVEL", std::nullopt}};
  if (redis_url.empty()) env["DLB_REDIS_URL"] = std::nullopt;
  return env;
}

ProcessResult RunDlbctl(const std::vector<std::string>& args, const Env& env,
                  const std::string& stdin_data = {}) {
  std::vector<std::string> argv = {DlbctlPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, stdin_data, env);
}

std::string Show(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out.substr(0, 2000) +
         "\nstderr: " + r.err.substr(0, 2000);
}

FlatJson Json(const ProcessResult& r) {
  std::string error;
  auto j = ParseFlatJsonLine(r.out, &error);
  EXPECT_TRUE(j.has_value()) << "not one line of flat JSON (" << error << ")\n" << Show(r);
  return j.value_or(FlatJson{});
}

double Num(const FlatJson& j, const std::string& k) {
  auto it = j.find(k);
  EXPECT_NE(it, j.end()) << "missing field " << k;
  if (it == j.end()) return -1;
  EXPECT_EQ(it->second.type, JsonValue::Type::kNumber) << k;
  return it->second.number;
}

bool IsNull(const FlatJson& j, const std::string& k) {
  auto it = j.find(k);
  return it != j.end() && it->second.type == JsonValue::Type::kNull;
}

bool Bool(const FlatJson& j, const std::string& k) {
  auto it = j.find(k);
  EXPECT_NE(it, j.end()) << "missing field " << k;
  if (it == j.end()) return false;
  EXPECT_EQ(it->second.type, JsonValue::Type::kBool) << k;
  return it->second.boolean;
}

std::string Str(const FlatJson& j, const std::string& k) {
  auto it = j.find(k);
  EXPECT_NE(it, j.end()) << "missing field " << k;
  if (it == j.end()) return {};
  EXPECT_EQ(it->second.type, JsonValue::Type::kString) << k;
  return it->second.str;
}

std::vector<std::string> Keys(const FlatJson& j) {
  std::vector<std::string> k;
  for (const auto& [name, v] : j) k.push_back(name);
  return k;
}

// "dlb:{<18 base64url characters>}:<rule>" (std::regex trips GCC 12's
// -Wmaybe-uninitialized under the sanitizers, hence by hand).
bool IsRedisKey(const std::string& key) {
  if (key.size() < 26 || key.compare(0, 5, "dlb:{") != 0 || key.compare(23, 2, "}:") != 0) {
    return false;
  }
  for (size_t i = 5; i < 23; ++i) {
    const char c = key[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

// Leak rates here are 0.001/s (one request per 1000 s) unless a test is about leaking,
// so levels read back as whole numbers to within 0.01 whatever the machine's speed.
constexpr double kSlowLeak = 0.001;
constexpr double kLevelTolerance = 0.01;

class DlbctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { redis_ = new RedisProcess(); }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }

  // A user ID of this test's own, so tests never share a bucket.
  static std::string User(const std::string& suffix = "") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return std::string(info->name()) + suffix;
  }

  ProcessResult Ctl(const std::vector<std::string>& args, const std::string& stdin_data = {}) {
    return RunDlbctl(args, CleanEnv(redis_->url()), stdin_data);
  }

  // allow/inspect/reset with --user, --capacity and --leak-rate filled in.
  ProcessResult Ctl(const std::string& cmd, const std::string& user, int64_t capacity,
                    double leak_rate, std::vector<std::string> more = {},
                    const std::string& stdin_data = {}) {
    std::vector<std::string> args = {cmd, "--user", user, "--capacity", std::to_string(capacity),
                                     "--leak-rate", Rate(leak_rate)};
    args.insert(args.end(), more.begin(), more.end());
    return Ctl(args, stdin_data);
  }

  static std::string Rate(double r) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", r);
    return buf;
  }

  static RedisProcess* redis_;
};

RedisProcess* DlbctlTest::redis_ = nullptr;

TEST_F(DlbctlTest, AllowedRequestPrintsOneJsonLineAndExitsZero) {
  ProcessResult r = Ctl("allow", User(), 5, kSlowLeak);
  ASSERT_EQ(r.exit_code, 0) << Show(r);
  EXPECT_EQ(r.err, "");
  FlatJson j = Json(r);
  EXPECT_EQ(Keys(j), (std::vector<std::string>{"allowed", "level", "remaining", "reset_after_s",
                                               "retry_after_s", "source"}));
  EXPECT_TRUE(Bool(j, "allowed"));
  EXPECT_NEAR(Num(j, "level"), 1.0, kLevelTolerance);
  EXPECT_EQ(Num(j, "remaining"), 4);
  EXPECT_EQ(Num(j, "retry_after_s"), 0);
  EXPECT_NEAR(Num(j, "reset_after_s"), 1000.0, 1.0);  // one request at 0.001/s
  EXPECT_EQ(Str(j, "source"), "store");
}

TEST_F(DlbctlTest, RejectedRequestExitsOneWithRetryAfter) {
  ASSERT_EQ(Ctl("allow", User(), 2, kSlowLeak).exit_code, 0);
  ASSERT_EQ(Ctl("allow", User(), 2, kSlowLeak).exit_code, 0);
  ProcessResult r = Ctl("allow", User(), 2, kSlowLeak);
  ASSERT_EQ(r.exit_code, 1) << Show(r);
  FlatJson j = Json(r);
  EXPECT_FALSE(Bool(j, "allowed"));
  EXPECT_NEAR(Num(j, "level"), 2.0, kLevelTolerance);
  EXPECT_EQ(Num(j, "remaining"), 0);
  // One request leaks out after 1000 s, less the little time the calls took.
  EXPECT_GT(Num(j, "retry_after_s"), 990.0);
  EXPECT_LE(Num(j, "retry_after_s"), 1000.0 + 1e-6);
  EXPECT_NEAR(Num(j, "reset_after_s"), 2000.0, 10.0);
  EXPECT_EQ(Str(j, "source"), "store");
}

TEST_F(DlbctlTest, BucketThatNeverLeaksReportsNullTimes) {
  ProcessResult first = Ctl("allow", User(), 1, 0.0);
  ASSERT_EQ(first.exit_code, 0) << Show(first);
  EXPECT_TRUE(IsNull(Json(first), "reset_after_s")) << first.out;
  ProcessResult second = Ctl("allow", User(), 1, 0.0);
  ASSERT_EQ(second.exit_code, 1) << Show(second);
  FlatJson j = Json(second);
  EXPECT_TRUE(IsNull(j, "retry_after_s")) << second.out;
  EXPECT_TRUE(IsNull(j, "reset_after_s")) << second.out;
}

TEST_F(DlbctlTest, CostIsChargedInOneStep) {
  ProcessResult r = Ctl("allow", User(), 5, kSlowLeak, {"--cost", "3"});
  ASSERT_EQ(r.exit_code, 0) << Show(r);
  FlatJson j = Json(r);
  EXPECT_NEAR(Num(j, "level"), 3.0, kLevelTolerance);
  EXPECT_EQ(Num(j, "remaining"), 2);
  ProcessResult over = Ctl("allow", User(), 5, kSlowLeak, {"--cost", "3"});
  EXPECT_EQ(over.exit_code, 1) << Show(over);
}

TEST_F(DlbctlTest, CostAboveCapacityIsAnErrorNamingTheFlag) {
  ProcessResult r = Ctl("allow", User(), 2, kSlowLeak, {"--cost", "3"});
  EXPECT_EQ(r.exit_code, 2) << Show(r);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("--cost"), std::string::npos) << r.err;
}

TEST_F(DlbctlTest, UserIdFromStdinOfOneMebibyteWithNulsIsOneBucket) {
  std::mt19937 rng(20240601);
  std::string id(1 << 20, '\0');
  for (size_t i = 0; i < id.size(); i += 2) id[i] = static_cast<char>(rng());  // every other byte NUL
  id[0] = 'x';

  ProcessResult a = Ctl("allow", "-", 10, kSlowLeak, {}, id);
  ASSERT_EQ(a.exit_code, 0) << Show(a);
  EXPECT_NEAR(Num(Json(a), "level"), 1.0, kLevelTolerance);
  ProcessResult b = Ctl("allow", "-", 10, kSlowLeak, {}, id);
  ASSERT_EQ(b.exit_code, 0) << Show(b);
  EXPECT_NEAR(Num(Json(b), "level"), 2.0, kLevelTolerance) << "the same 1 MiB ID is the same bucket";

  // Neither the bytes after the first NUL nor the last byte may be lost.
  ProcessResult prefix = Ctl("allow", "-", 10, kSlowLeak, {}, id.substr(0, id.find('\0')));
  ASSERT_EQ(prefix.exit_code, 0) << Show(prefix);
  EXPECT_NEAR(Num(Json(prefix), "level"), 1.0, kLevelTolerance);
  std::string last_flipped = id;
  last_flipped.back() ^= 1;
  ProcessResult other = Ctl("allow", "-", 10, kSlowLeak, {}, last_flipped);
  ASSERT_EQ(other.exit_code, 0) << Show(other);
  EXPECT_NEAR(Num(Json(other), "level"), 1.0, kLevelTolerance);

  ProcessResult inspect = Ctl("inspect", "-", 10, kSlowLeak, {}, id);
  ASSERT_EQ(inspect.exit_code, 0) << Show(inspect);
  EXPECT_NEAR(Num(Json(inspect), "level"), 2.0, kLevelTolerance);
}

TEST_F(DlbctlTest, UserIdFromStdinIsReadVerbatimWithItsNewline) {
  const std::string user = User();
  ASSERT_EQ(Ctl("allow", user, 10, kSlowLeak).exit_code, 0);
  ProcessResult piped = Ctl("allow", "-", 10, kSlowLeak, {}, user + "\n");
  ASSERT_EQ(piped.exit_code, 0) << Show(piped);
  EXPECT_NEAR(Num(Json(piped), "level"), 1.0, kLevelTolerance)
      << "'" << user << "\\n' is not '" << user << "'";
  ProcessResult exact = Ctl("allow", "-", 10, kSlowLeak, {}, user);
  ASSERT_EQ(exact.exit_code, 0) << Show(exact);
  EXPECT_NEAR(Num(Json(exact), "level"), 2.0, kLevelTolerance);
}

TEST_F(DlbctlTest, EmptyUserIdIsAnError) {
  ProcessResult arg = Ctl("allow", "", 10, kSlowLeak);
  EXPECT_EQ(arg.exit_code, 2) << Show(arg);
  EXPECT_NE(arg.err.find("--user"), std::string::npos) << arg.err;
  ProcessResult piped = Ctl("allow", "-", 10, kSlowLeak, {}, "");
  EXPECT_EQ(piped.exit_code, 2) << Show(piped);
  EXPECT_EQ(piped.out, "");
}

TEST_F(DlbctlTest, InspectDoesNotChangeTheBucket) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Ctl("allow", User(), 5, kSlowLeak).exit_code, 0);
  for (int i = 0; i < 2; ++i) {
    ProcessResult r = Ctl("inspect", User(), 5, kSlowLeak);
    ASSERT_EQ(r.exit_code, 0) << Show(r);
    FlatJson j = Json(r);
    EXPECT_EQ(Keys(j), (std::vector<std::string>{"key", "level", "remaining", "reset_after_s",
                                                 "retry_after_s"}));
    EXPECT_NEAR(Num(j, "level"), 3.0, kLevelTolerance);
    EXPECT_EQ(Num(j, "remaining"), 2);
    EXPECT_EQ(Num(j, "retry_after_s"), 0);
    EXPECT_TRUE(IsRedisKey(Str(j, "key"))) << Str(j, "key");
  }
  ProcessResult next = Ctl("allow", User(), 5, kSlowLeak);
  ASSERT_EQ(next.exit_code, 0) << Show(next);
  EXPECT_NEAR(Num(Json(next), "level"), 4.0, kLevelTolerance);
}

TEST_F(DlbctlTest, InspectOfAnUnknownUserIsAnEmptyBucket) {
  ProcessResult r = Ctl("inspect", User(), 7, kSlowLeak);
  ASSERT_EQ(r.exit_code, 0) << Show(r);
  FlatJson j = Json(r);
  EXPECT_EQ(Num(j, "level"), 0);
  EXPECT_EQ(Num(j, "remaining"), 7);
  EXPECT_EQ(Num(j, "reset_after_s"), 0);
}

TEST_F(DlbctlTest, ResetEmptiesTheBucket) {
  ASSERT_EQ(Ctl("allow", User(), 2, kSlowLeak).exit_code, 0);
  ASSERT_EQ(Ctl("allow", User(), 2, kSlowLeak).exit_code, 0);
  ASSERT_EQ(Ctl("allow", User(), 2, kSlowLeak).exit_code, 1);

  ProcessResult reset = Ctl("reset", User(), 2, kSlowLeak);
  ASSERT_EQ(reset.exit_code, 0) << Show(reset);
  FlatJson j = Json(reset);
  EXPECT_TRUE(Bool(j, "reset"));
  EXPECT_NEAR(Num(j, "level_before"), 2.0, kLevelTolerance);

  ProcessResult inspect = Ctl("inspect", User(), 2, kSlowLeak);
  ASSERT_EQ(inspect.exit_code, 0) << Show(inspect);
  EXPECT_EQ(Num(Json(inspect), "level"), 0);
  EXPECT_EQ(Str(Json(inspect), "key"), Str(j, "key"));
  ProcessResult allow = Ctl("allow", User(), 2, kSlowLeak);
  ASSERT_EQ(allow.exit_code, 0) << Show(allow);
  EXPECT_NEAR(Num(Json(allow), "level"), 1.0, kLevelTolerance);
}

TEST_F(DlbctlTest, RulesNameSeparateBuckets) {
  ASSERT_EQ(Ctl("allow", User(), 1, kSlowLeak, {"--rule", "login"}).exit_code, 0);
  EXPECT_EQ(Ctl("allow", User(), 1, kSlowLeak, {"--rule", "login"}).exit_code, 1);
  ProcessResult other = Ctl("allow", User(), 1, kSlowLeak, {"--rule", "pay"});
  EXPECT_EQ(other.exit_code, 0) << Show(other);
  ProcessResult inspect = Ctl("inspect", User(), 1, kSlowLeak, {"--rule", "pay"});
  ASSERT_EQ(inspect.exit_code, 0) << Show(inspect);
  const std::string key = Str(Json(inspect), "key");
  EXPECT_EQ(key.substr(key.size() - 4), ":pay") << key;
}

TEST_F(DlbctlTest, RuleNamesAreEscapedInJson) {
  const std::string rule = "q\"b\\s\x01\xff\xc3\xa9";  // quote, backslash, control, bad UTF-8, é
  ProcessResult r = Ctl("inspect", User(), 1, kSlowLeak, {"--rule", rule});
  ASSERT_EQ(r.exit_code, 0) << Show(r);
  const std::string key = Str(Json(r), "key");
  // \xff is not UTF-8: it reads back as U+00FF; the rest reads back as it was.
  EXPECT_EQ(key.substr(key.find("}:") + 2), "q\"b\\s\x01\xc3\xbf\xc3\xa9");
}

TEST_F(DlbctlTest, OptionValuesMayFollowAnEqualsSign) {
  ProcessResult r = Ctl({"allow", "--user=" + User(), "--capacity=3", "--leak-rate=0.001"});
  ASSERT_EQ(r.exit_code, 0) << Show(r);
  EXPECT_EQ(Num(Json(r), "remaining"), 2);
}

TEST_F(DlbctlTest, HelpGoesToStdoutAndExitsZero) {
  const std::vector<std::vector<std::string>> cases = {
      {"--help"}, {"-h"}, {"help"}, {"allow", "--help"}, {"inspect", "-h"}, {"reset", "--help"},
      {"allow", "--user", "u", "--help"}};
  for (const auto& args : cases) {
    ProcessResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << "\n" << Show(r);
    EXPECT_EQ(r.out.rfind("usage: dlbctl", 0), 0u) << Show(r);
    EXPECT_EQ(r.err, "");
  }
  EXPECT_NE(Ctl({"allow", "--help"}).out.find("--cost"), std::string::npos);
  EXPECT_EQ(Ctl({"inspect", "--help"}).out.find("--cost"), std::string::npos);
  EXPECT_NE(Ctl({"--help"}).out.find("inspect"), std::string::npos);
}

TEST_F(DlbctlTest, NoArgumentsPrintsUsageOnStderrAndExitsTwo) {
  ProcessResult r = Ctl(std::vector<std::string>{});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("usage: dlbctl"), std::string::npos) << r.err;
}

TEST_F(DlbctlTest, UnknownCommandIsAnError) {
  ProcessResult r = Ctl({"bench-everything"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("unknown command 'bench-everything'"), std::string::npos) << r.err;
}

TEST_F(DlbctlTest, UnknownOptionPrintsUsageOnStderrAndExitsTwo) {
  ProcessResult r = Ctl("allow", User(), 5, kSlowLeak, {"--burst", "3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("unknown option '--burst'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("usage: dlbctl allow"), std::string::npos) << r.err;
  // --cost belongs to allow only.
  ProcessResult inspect = Ctl("inspect", User(), 5, kSlowLeak, {"--cost", "1"});
  EXPECT_EQ(inspect.exit_code, 2) << Show(inspect);
  EXPECT_NE(inspect.err.find("unknown option '--cost'"), std::string::npos) << inspect.err;
  ProcessResult positional = Ctl("allow", User(), 5, kSlowLeak, {"extra"});
  EXPECT_EQ(positional.exit_code, 2) << Show(positional);
}

TEST_F(DlbctlTest, MissingRequiredOptionIsNamed) {
  ProcessResult r = Ctl({"allow", "--user", User(), "--capacity", "5"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--leak-rate is required"), std::string::npos) << r.err;
  ProcessResult dangling = Ctl({"allow", "--user", User(), "--capacity", "5", "--leak-rate"});
  EXPECT_EQ(dangling.exit_code, 2);
  EXPECT_NE(dangling.err.find("--leak-rate: missing value"), std::string::npos) << dangling.err;
}

TEST_F(DlbctlTest, RepeatedOptionIsAnError) {
  ProcessResult r = Ctl("allow", User(), 5, kSlowLeak, {"--capacity", "6"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--capacity: given more than once"), std::string::npos) << r.err;
}

TEST_F(DlbctlTest, BadNumbersAreRejectedNamingTheFlag) {
  struct Case {
    std::string flag, value;
  };
  const std::vector<Case> cases = {
      {"--capacity", "10abc"}, {"--capacity", "-5"},     {"--capacity", "0"},
      {"--capacity", ""},      {"--capacity", " 5"},     {"--capacity", "5.0"},
      {"--capacity", "+5"},    {"--capacity", "99999999999999999999"},
      {"--capacity", "2199023255552"},  // 2^41, above the library's maximum
      {"--leak-rate", "nan"},  {"--leak-rate", "NaN"},   {"--leak-rate", "inf"},
      {"--leak-rate", "-1"},   {"--leak-rate", "1x"},    {"--leak-rate", "1e10"},
      {"--leak-rate", ""},     {"--leak-rate", "0x10"},  {"--cost", "0"},
      {"--cost", "abc"},       {"--cost", "-1"},         {"--deadline-us", "0"},
      {"--deadline-us", "1.5"}, {"--mode", "eventual"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"allow", "--user", User()};
    if (c.flag != "--capacity") args.insert(args.end(), {"--capacity", "5"});
    if (c.flag != "--leak-rate") args.insert(args.end(), {"--leak-rate", "0.001"});
    args.insert(args.end(), {c.flag, c.value});
    ProcessResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 2) << c.flag << " '" << c.value << "'\n" << Show(r);
    EXPECT_EQ(r.out, "") << c.flag << " '" << c.value << "'";
    EXPECT_NE(r.err.find(c.flag + ":"), std::string::npos) << c.flag << " '" << c.value << "'\n" << r.err;
    EXPECT_NE(r.err.find("'" + c.value + "'"), std::string::npos) << r.err;
  }
  // None of them reached the bucket.
  ProcessResult inspect = Ctl("inspect", User(), 5, kSlowLeak);
  ASSERT_EQ(inspect.exit_code, 0) << Show(inspect);
  EXPECT_EQ(Num(Json(inspect), "level"), 0);
}

TEST_F(DlbctlTest, RedisUrlComesFromTheEnvironmentOrTheFlag) {
  // DLB_REDIS_URL (set by Ctl) alone:
  ProcessResult env_only = Ctl("allow", User(), 5, kSlowLeak);
  ASSERT_EQ(env_only.exit_code, 0) << Show(env_only);
  EXPECT_EQ(Str(Json(env_only), "source"), "store");
  // --redis wins over a DLB_REDIS_URL that points nowhere:
  Env env = CleanEnv("redis://127.0.0.1:" + std::to_string(FreeLoopbackPort()));
  ProcessResult flag = RunDlbctl({"allow", "--user", User(), "--capacity", "5", "--leak-rate", "0.001",
                            "--redis", redis_->url()},
                           env);
  ASSERT_EQ(flag.exit_code, 0) << Show(flag);
  EXPECT_NEAR(Num(Json(flag), "level"), 2.0, kLevelTolerance) << "the same Redis, the same bucket";
}

TEST_F(DlbctlTest, ConfigFileIsHonoured) {
  const std::string path = ::testing::TempDir() + "/dlbctl_test_config.yaml";
  {
    std::ofstream f(path);
    f << "redis:\n  url: " << redis_->url() << "\n  deadline_us: 500000\nlimiter:\n  mode: strict\n";
  }
  Env env = CleanEnv("");
  env["DLB_CONFIG"] = path;
  ProcessResult r = RunDlbctl({"allow", "--user", User(), "--capacity", "5", "--leak-rate", "0.001"}, env);
  ASSERT_EQ(r.exit_code, 0) << Show(r);
  EXPECT_EQ(Str(Json(r), "source"), "store");

  {
    std::ofstream f(path);
    f << "redis:\n  colour: blue\n";
  }
  ProcessResult bad = RunDlbctl({"allow", "--user", User(), "--capacity", "5", "--leak-rate", "0.001"}, env);
  EXPECT_EQ(bad.exit_code, 2) << Show(bad);
  EXPECT_NE(bad.err.find("bad configuration"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("colour"), std::string::npos) << bad.err;
  std::filesystem::remove(path);
}

TEST_F(DlbctlTest, LocalModeDecidesInThisProcess) {
  Env env = CleanEnv("redis://127.0.0.1:" + std::to_string(FreeLoopbackPort()));  // nothing there
  ProcessResult r = RunDlbctl({"allow", "--user", User(), "--capacity", "5", "--leak-rate", "1", "--mode",
                         "local"},
                        env);
  ASSERT_EQ(r.exit_code, 0) << Show(r);
  FlatJson j = Json(r);
  EXPECT_EQ(Str(j, "source"), "local");
  EXPECT_NEAR(Num(j, "level"), 1.0, kLevelTolerance);
}

TEST(DlbctlRedisDown, EveryCommandExitsTwoWithAMessage) {
  const int port = FreeLoopbackPort();  // nothing listens there
  const Env env = CleanEnv("redis://127.0.0.1:" + std::to_string(port));
  for (const char* cmd : {"allow", "inspect", "reset"}) {
    ProcessResult r = RunDlbctl({cmd, "--user", "alice", "--capacity", "5", "--leak-rate", "1"}, env);
    EXPECT_EQ(r.exit_code, 2) << cmd << "\n" << Show(r);
    EXPECT_EQ(r.out, "") << cmd;
    EXPECT_NE(r.err.find("Redis unavailable"), std::string::npos) << cmd << "\n" << r.err;
    EXPECT_NE(r.err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << r.err;
  }
}

TEST(DlbctlRedisDown, StoppedRedisExitsTwoAfterTheDeadline) {
  RedisProcess redis;
  ASSERT_EQ(::kill(redis.pid(), SIGSTOP), 0);
  ProcessResult r = RunDlbctl({"allow", "--user", "alice", "--capacity", "5", "--leak-rate", "1",
                         "--deadline-us", "20000"},
                        CleanEnv(redis.url()));
  ::kill(redis.pid(), SIGCONT);
  EXPECT_EQ(r.exit_code, 2) << Show(r);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("Redis unavailable"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("deadline"), std::string::npos) << r.err;
}

TEST(DlbctlPassword, PasswordComesFromTheEnvironmentOrTheUrl) {
  RedisProcess redis("s3cret@pw");
  const std::vector<std::string> args = {"allow", "--user", "alice", "--capacity", "5",
                                         "--leak-rate", "0.001"};
  ProcessResult none = RunDlbctl(args, CleanEnv(redis.url()));
  EXPECT_EQ(none.exit_code, 2) << Show(none);
  EXPECT_NE(none.err.find("Redis unavailable"), std::string::npos) << none.err;

  Env env = CleanEnv(redis.url());
  env["DLB_REDIS_PASSWORD"] = "s3cret@pw";
  ProcessResult from_env = RunDlbctl(args, env);
  ASSERT_EQ(from_env.exit_code, 0) << Show(from_env);
  EXPECT_EQ(Str(Json(from_env), "source"), "store");

  ProcessResult from_url =
      RunDlbctl(args, CleanEnv("redis://:s3cret%40pw@127.0.0.1:" + std::to_string(redis.port())));
  ASSERT_EQ(from_url.exit_code, 0) << Show(from_url);
  EXPECT_NEAR(Num(Json(from_url), "level"), 2.0, kLevelTolerance);
  // The password never appears in what dlbctl prints.
  for (const ProcessResult* r : {&none, &from_env, &from_url}) {
    EXPECT_EQ(r->err.find("s3cret"), std::string::npos) << r->err;
    EXPECT_EQ(r->out.find("s3cret"), std::string::npos) << r->out;
  }
}

// ---- dlbctl config check ---------------------------------------------------------

std::string WriteConfig(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(DlbctlConfigCheck, ShippedExampleConfigIsValid) {
  const char* root = std::getenv("DLB_SOURCE_ROOT");
  ASSERT_NE(root, nullptr);
  ProcessResult r = RunDlbctl({"config", "check", std::string(root) + "/config/dlb.yaml"}, CleanEnv(""));
  ASSERT_EQ(r.exit_code, 0) << Show(r);
  const FlatJson j = Json(r);
  EXPECT_TRUE(Bool(j, "valid"));
  EXPECT_EQ(Str(j, "mode"), "strict");
  EXPECT_GE(Num(j, "rules"), 1);
}

TEST(DlbctlConfigCheck, OneFileCarriesLibraryAndPacketSections) {
  const std::string path = WriteConfig("both.yaml",
                                       "redis:\n  deadline_us: 5000\nlimiter:\n  mode: synced\n"
                                       "service_ports: [8080]\nrules:\n  - name: pay\n"
                                       "    capacity: 5\n    leak_rate_per_s: 1\n");
  ProcessResult r = RunDlbctl({"config", "check", path}, CleanEnv(""));
  ASSERT_EQ(r.exit_code, 0) << Show(r);
  const FlatJson j = Json(r);
  EXPECT_EQ(Str(j, "mode"), "synced");
  EXPECT_EQ(Num(j, "deadline_us"), 5000);
  EXPECT_EQ(Num(j, "rules"), 1);
  EXPECT_EQ(Num(j, "service_ports"), 1);
}

TEST(DlbctlConfigCheck, LibraryErrorNamesFileLineAndField) {
  const std::string path = WriteConfig("bad_lib.yaml", "redis:\n  url: redis://127.0.0.1\nlimiter:\n  mode: strictt\n");
  ProcessResult r = RunDlbctl({"config", "check", path}, CleanEnv(""));
  EXPECT_EQ(r.exit_code, 2) << Show(r);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(path + ":4:9: limiter.mode"), std::string::npos) << r.err;
}

TEST(DlbctlConfigCheck, PacketErrorNamesFileLineAndField) {
  const std::string path = WriteConfig("bad_rule.yaml",
                                       "rules:\n  - name: a\n    capacity: -1\n    leak_rate_per_s: 1\n");
  ProcessResult r = RunDlbctl({"config", "check", path}, CleanEnv(""));
  EXPECT_EQ(r.exit_code, 2) << Show(r);
  EXPECT_NE(r.err.find(path + ":3:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rules[0].capacity"), std::string::npos) << r.err;
}

TEST(DlbctlConfigCheck, MisspelledSectionIsAnError) {
  const std::string path = WriteConfig("typo.yaml", "limitr:\n  mode: local\n");
  ProcessResult r = RunDlbctl({"config", "check", path}, CleanEnv(""));
  EXPECT_EQ(r.exit_code, 2) << Show(r);
  EXPECT_NE(r.err.find("limitr: unknown key"), std::string::npos) << r.err;
}

TEST(DlbctlConfigCheck, MissingFileAndBadUsageExitTwo) {
  EXPECT_EQ(RunDlbctl({"config", "check", "/nonexistent/dlb.yaml"}, CleanEnv("")).exit_code, 2);
  EXPECT_EQ(RunDlbctl({"config", "verify"}, CleanEnv("")).exit_code, 2);
  ProcessResult help = RunDlbctl({"config", "--help"}, CleanEnv(""));
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("config check FILE"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace dlb::apptest
