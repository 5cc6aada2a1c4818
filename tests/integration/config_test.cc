// Options from a YAML config file and from DLB_* environment variables, and a Limiter
// configured that way reaching a password-protected Redis.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>

#include "dlb/limiter.h"
#include "redis_server.h"

namespace dlb::testing {
namespace {

// A config file in a temp dir, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/dlb-it-config-XXXXXX.yaml";
    const int fd = mkstemps(tmpl, 5);
    if (fd < 0) throw std::runtime_error("mkstemps");
    close(fd);
    path_ = tmpl;
    std::ofstream(path_) << text;
  }
  ~TempFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Sets an environment variable for one scope and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The DLB_* variables the tests set; none may leak in from the caller's environment.
class Config : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"DLB_CONFIG", "DLB_REDIS_URL", "DLB_REDIS_USER", "DLB_REDIS_PASSWORD",
                          "DLB_MODE", "DLB_DEADLINE_US", "DLB_ON_STORE_FAILURE",
                          "DLB_FALLBACK_SHARE"}) {
      cleared_.emplace_back(std::make_unique<ScopedEnv>(v, ""));
      unsetenv(v);
    }
  }
  std::vector<std::unique_ptr<ScopedEnv>> cleared_;
};

TEST_F(Config, GoodFileSetsEveryField) {
  TempFile f(
      "# a config with the other forms' sections too\n"
      "appliance:\n"
      "  ports: [0, 1]\n"
      "redis:\n"
      "  url: redis://10.0.0.7:6390/2\n"
      "  username: gateway\n"
      "  password: from-file\n"
      "  deadline_us: 1500\n"
      "  max_connections: 16\n"
      "limiter:\n"
      "  mode: local\n"
      "  on_store_failure: closed\n"
      "  fallback_share: 0.25\n"
      "  breaker_threshold: 5\n"
      "  breaker_backoff_min_ms: 7\n"
      "  breaker_backoff_max_ms: 700\n"
      "  local_max_buckets: 4096\n");
  auto o = LoadLimiterConfig(f.path());
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->redis_url, "redis://10.0.0.7:6390/2");
  EXPECT_EQ(o->username, "gateway");
  EXPECT_EQ(o->password, "from-file");
  EXPECT_EQ(o->deadline, std::chrono::microseconds(1500));
  EXPECT_EQ(o->max_connections, 16);
  EXPECT_EQ(o->mode, Mode::kLocal);
  EXPECT_EQ(o->on_store_failure, FailurePolicy::kClosed);
  EXPECT_DOUBLE_EQ(o->fallback_share, 0.25);
  EXPECT_EQ(o->breaker_threshold, 5);
  EXPECT_EQ(o->breaker_backoff_min, std::chrono::milliseconds(7));
  EXPECT_EQ(o->breaker_backoff_max, std::chrono::milliseconds(700));
  EXPECT_EQ(o->local_max_buckets, 4096u);
}

TEST_F(Config, FieldsNotInTheFileKeepTheBase) {
  TempFile f("limiter:\n  on_store_failure: open\n");
  LimiterOptions base;
  base.redis_url = "redis://base:1";
  base.deadline = std::chrono::microseconds(777);
  auto o = LoadLimiterConfig(f.path(), base);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->redis_url, "redis://base:1");
  EXPECT_EQ(o->deadline, std::chrono::microseconds(777));
  EXPECT_EQ(o->on_store_failure, FailurePolicy::kOpen);
}

TEST_F(Config, UnknownFieldNamesFileLineAndField) {
  TempFile f("redis:\n  url: redis://127.0.0.1:6379\nlimiter:\n  mode: strict\n  burst_size: 5\n");
  auto o = LoadLimiterConfig(f.path());
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = o.status().message();
  EXPECT_NE(m.find(f.path() + ":5:"), std::string::npos) << m;
  EXPECT_NE(m.find("limiter.burst_size"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown"), std::string::npos) << m;
}

TEST_F(Config, BadValuesNameFileLineAndField) {
  struct Case {
    std::string text;
    int line;
    std::string field;
  };
  const Case cases[] = {
      {"redis:\n  deadline_us: -5\n", 2, "redis.deadline_us"},
      {"redis:\n  url: x\n  deadline_us: soon\n", 3, "redis.deadline_us"},
      {"limiter:\n  on_store_failure: maybe\n", 2, "limiter.on_store_failure"},
      {"limiter:\n\n  mode: fast\n", 3, "limiter.mode"},
      {"limiter:\n  fallback_share: 1.5\n", 2, "limiter.fallback_share"},
      {"limiter:\n  fallback_share: nan\n", 2, "limiter.fallback_share"},
      {"limiter:\n  breaker_threshold: 0\n", 2, "limiter.breaker_threshold"},
      {"redis:\n  max_connections: [1, 2]\n", 2, "redis.max_connections"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    TempFile f(c.text);
    auto o = LoadLimiterConfig(f.path());
    ASSERT_FALSE(o.ok());
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
    const std::string& m = o.status().message();
    EXPECT_NE(m.find(f.path() + ":" + std::to_string(c.line) + ":"), std::string::npos) << m;
    EXPECT_NE(m.find(c.field), std::string::npos) << m;
  }
}

TEST_F(Config, SyntaxErrorAndMissingFileNameTheFile) {
  TempFile f("redis:\n  url: [unclosed\n");
  auto o = LoadLimiterConfig(f.path());
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find(f.path()), std::string::npos) << o.status().message();
  auto missing = LoadLimiterConfig("/nonexistent/dlb.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/dlb.yaml"), std::string::npos)
      << missing.status().message();
}

TEST_F(Config, BadValueMessageDoesNotEchoThePassword) {
  TempFile f("redis:\n  password: topsecret-pw\n  deadline_us: 0\n");
  auto o = LoadLimiterConfig(f.path());
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message().find("topsecret-pw"), std::string::npos) << o.status().message();
}

TEST_F(Config, EnvironmentOverDefaults) {
  ScopedEnv url("DLB_REDIS_URL", "redis://127.0.0.1:7001/4");
  ScopedEnv user("DLB_REDIS_USER", "env-user");
  ScopedEnv pw("DLB_REDIS_PASSWORD", "env-pw");
  ScopedEnv mode("DLB_MODE", "local");
  ScopedEnv deadline("DLB_DEADLINE_US", "3500");
  ScopedEnv policy("DLB_ON_STORE_FAILURE", "open");
  ScopedEnv share("DLB_FALLBACK_SHARE", "0.5");
  auto o = OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->redis_url, "redis://127.0.0.1:7001/4");
  EXPECT_EQ(o->username, "env-user");
  EXPECT_EQ(o->password, "env-pw");
  EXPECT_EQ(o->mode, Mode::kLocal);
  EXPECT_EQ(o->deadline, std::chrono::microseconds(3500));
  EXPECT_EQ(o->on_store_failure, FailurePolicy::kOpen);
  EXPECT_DOUBLE_EQ(o->fallback_share, 0.5);
}

TEST_F(Config, DefaultsWithoutEnvironment) {
  auto o = OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  const LimiterOptions d;
  EXPECT_EQ(o->redis_url, "redis://127.0.0.1:6379");
  EXPECT_EQ(o->mode, d.mode);
  EXPECT_EQ(o->on_store_failure, FailurePolicy::kLocal);
  EXPECT_LE(o->deadline, std::chrono::microseconds(2000));
}

TEST_F(Config, EnvironmentOverConfigFile) {
  TempFile f("redis:\n  url: redis://file:1\n  deadline_us: 900\nlimiter:\n  on_store_failure: closed\n");
  ScopedEnv cfg("DLB_CONFIG", f.path());
  ScopedEnv policy("DLB_ON_STORE_FAILURE", "open");
  auto o = OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->redis_url, "redis://file:1");                  // from the file
  EXPECT_EQ(o->deadline, std::chrono::microseconds(900));     // from the file
  EXPECT_EQ(o->on_store_failure, FailurePolicy::kOpen);       // the environment wins
}

TEST_F(Config, BadEnvironmentValueNamesTheVariable) {
  ScopedEnv deadline("DLB_DEADLINE_US", "fast");
  auto o = OptionsFromEnvironment();
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(o.status().message().find("DLB_DEADLINE_US"), std::string::npos) << o.status().message();
}

TEST_F(Config, BadConfigFileFromEnvironmentIsAnError) {
  TempFile f("limiter:\n  nonsense: 1\n");
  ScopedEnv cfg("DLB_CONFIG", f.path());
  auto o = OptionsFromEnvironment();
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find(f.path() + ":2:"), std::string::npos) << o.status().message();
}

TEST_F(Config, PasswordFromConfigFileReachesRedis) {
  RedisServerOptions so;
  so.requirepass = "file-secret";
  RedisServer server(so);
  TempFile f("redis:\n  url: " + server.Url() + "\n  password: file-secret\n  deadline_us: 2000000\n");
  ScopedEnv cfg("DLB_CONFIG", f.path());
  auto o = OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  auto l = Limiter::Create(*o);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  auto d = (*l)->Decide("config-user", BucketSpec{.capacity = 2, .leak_rate_per_s = 1});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->source, DecisionSource::kStore);
  EXPECT_EQ(server.BucketKeyCount(), 1);
}

TEST_F(Config, PasswordFromEnvironmentReachesRedis) {
  RedisServerOptions so;
  so.requirepass = "env-secret";
  RedisServer server(so);
  ScopedEnv url("DLB_REDIS_URL", server.Url());
  ScopedEnv pw("DLB_REDIS_PASSWORD", "env-secret");
  ScopedEnv deadline("DLB_DEADLINE_US", "2000000");
  auto o = OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  auto l = Limiter::Create(*o);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  auto d = (*l)->Decide("env-user", BucketSpec{.capacity = 2, .leak_rate_per_s = 1});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->source, DecisionSource::kStore);
}

}  // namespace
}  // namespace dlb::testing
