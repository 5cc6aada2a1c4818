// The pkg-config file works for a program outside the tree: consumer.cc is compiled
// with `pkg-config --cflags --libs dlb` against the uninstalled build and against a
// `meson install --destdir` tree, then run against a real redis-server.
//
// Environment (set by meson): DLB_BUILD_ROOT, DLB_CONSUMER_SOURCE, DLB_CONSUMER_CXX,
// DLB_CONSUMER_CXXFLAGS (the sanitizer flags of a sanitizer build), MESON.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "process.h"

namespace dlb::apptest {
namespace {

namespace fs = std::filesystem;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

std::string Show(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

ProcessResult Bash(const std::string& script,
                   const std::map<std::string, std::optional<std::string>>& env = {}) {
  return RunProcess({"/bin/bash", "-euo", "pipefail", "-c", script}, {}, env, 600);
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The directories of the -L flags, for LD_LIBRARY_PATH (the consumer has no rpath).
std::string LibraryPath(const std::string& flags) {
  std::istringstream in(flags);
  std::string word, path;
  while (in >> word) {
    if (word.rfind("-L", 0) == 0) path += (path.empty() ? "" : ":") + word.substr(2);
  }
  return path;
}

class ConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(Env("DLB_BUILD_ROOT").empty()) << "run through meson test";
    char tmpl[] = "/tmp/dlb-consumer-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Compiles consumer.cc with `flags` and runs it against a fresh redis-server.
  void BuildAndRun(const std::string& flags, const std::string& library_path) {
    const std::string exe = dir_ + "/consumer";
    ProcessResult cc = Bash(Env("DLB_CONSUMER_CXX") + " -std=c++20 " +
                            Env("DLB_CONSUMER_CXXFLAGS") + " '" + Env("DLB_CONSUMER_SOURCE") +
                            "' -o '" + exe + "' " + flags);
    ASSERT_EQ(cc.exit_code, 0) << "compiling consumer.cc with: " << flags << "\n" << Show(cc);

    // The program must load libdlb from where pkg-config said, not from elsewhere.
    ProcessResult ldd = Bash("ldd '" + exe + "' | grep libdlb", {{"LD_LIBRARY_PATH", library_path}});
    ASSERT_EQ(ldd.exit_code, 0) << Show(ldd);
    const std::string first_dir = library_path.substr(0, library_path.find(':'));
    EXPECT_NE(ldd.out.find(first_dir), std::string::npos) << ldd.out;

    RedisProcess redis;
    ProcessResult run = RunProcess({exe}, {},
                                   {{"LD_LIBRARY_PATH", library_path},
                                    {"DLB_REDIS_URL", redis.url()},
                                    {"DLB_CONFIG", std::nullopt},
                                    {"DLB_MODE", std::nullopt},
                                    {"DLB_REDIS_PASSWORD", std::nullopt},
                                    {"DLB_DEADLINE_US", "500000"}});
    EXPECT_EQ(run.exit_code, 0) << Show(run);
    EXPECT_EQ(run.out,
              "allow_request 3/5 store_decisions 5 invalid_argument yes local 2/3\n");
  }

  std::string dir_;
};

TEST_F(ConsumerTest, BuildsAndRunsAgainstTheUninstalledLibrary) {
  const std::string pc_path = Env("DLB_BUILD_ROOT") + "/meson-uninstalled";
  ProcessResult pc = Bash("pkg-config --cflags --libs dlb", {{"PKG_CONFIG_PATH", pc_path}});
  ASSERT_EQ(pc.exit_code, 0) << Show(pc);
  const std::string flags = Trim(pc.out);
  EXPECT_NE(flags.find("-ldlb"), std::string::npos) << flags;
  BuildAndRun(flags, LibraryPath(flags));
}

TEST_F(ConsumerTest, BuildsAndRunsAgainstTheInstalledTree) {
  const std::string dest = dir_ + "/destdir";
  ProcessResult install = Bash("'" + Env("MESON") + "' install -C '" + Env("DLB_BUILD_ROOT") +
                               "' --no-rebuild --destdir '" + dest + "'");
  ASSERT_EQ(install.exit_code, 0) << Show(install);

  ProcessResult find = Bash("find '" + dest + "' -name dlb.pc -path '*/pkgconfig/*'");
  ASSERT_EQ(find.exit_code, 0) << Show(find);
  const std::string pc_file = Trim(find.out);
  ASSERT_FALSE(pc_file.empty()) << "meson install put no dlb.pc under " << dest;
  ASSERT_EQ(pc_file.find('\n'), std::string::npos) << pc_file;
  for (const char* header : {"limiter.h", "bucket.h", "clock.h", "status.h", "key.h"}) {
    ProcessResult h = Bash("find '" + dest + "' -path '*/include/dlb/" + header + "' | grep -q .");
    EXPECT_EQ(h.exit_code, 0) << "dlb/" << header << " not installed";
  }

  // The .pc file names the final prefix (/usr/local ...); the sysroot maps its -I and
  // -L flags into the destdir.
  ProcessResult pc = Bash("pkg-config --cflags --libs dlb",
                          {{"PKG_CONFIG_PATH", fs::path(pc_file).parent_path().string()},
                           {"PKG_CONFIG_SYSROOT_DIR", dest}});
  ASSERT_EQ(pc.exit_code, 0) << Show(pc);
  const std::string flags = Trim(pc.out);
  EXPECT_NE(flags.find("-I" + dest), std::string::npos) << "headers not from the destdir: " << flags;
  EXPECT_NE(flags.find("-L" + dest), std::string::npos) << "library not from the destdir: " << flags;
  EXPECT_EQ(flags.find(Env("DLB_BUILD_ROOT")), std::string::npos) << flags;
  EXPECT_EQ(flags.find("/lib/dlb"), std::string::npos) << "source tree leaked in: " << flags;
  BuildAndRun(flags, LibraryPath(flags));
}

}  // namespace
}  // namespace dlb::apptest
