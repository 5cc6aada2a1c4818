// The normalized path (dlb/path.h): the spellings servers route to one path, the
// errors, idempotence and the is_normal predicate against normalize.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "dlb/path.h"

namespace {

// The normalized path of `target`, or "ERR<n>" for an error.
std::string Norm(const std::string& target, unsigned flags = 0) {
  std::string out(target.size() + 1, '\0');
  const int n = dlb_path_normalize(reinterpret_cast<const dlb_path_u8*>(target.data()),
                                   static_cast<dlb_path_u32>(target.size()),
                                   reinterpret_cast<dlb_path_u8*>(out.data()),
                                   static_cast<dlb_path_u32>(out.size()), flags);
  if (n < 0) return "ERR" + std::to_string(-n);
  out.resize(static_cast<size_t>(n));
  return out;
}

bool IsNormal(const std::string& path, unsigned flags = 0) {
  return dlb_path_is_normal(reinterpret_cast<const dlb_path_u8*>(path.data()),
                            static_cast<dlb_path_u32>(path.size()), flags) != 0;
}

struct Spelling {
  const char* target;
  const char* want;
  unsigned flags;
};

TEST(PathTest, SpellingsOfOnePath) {
  const Spelling cases[] = {
      {"/pay", "/pay", 0},
      {"//pay", "/pay", 0},
      {"///pay//", "/pay/", 0},
      {"/%70ay", "/pay", 0},
      {"/%70%61%79", "/pay", 0},
      {"/./pay", "/pay", 0},
      {"/x/../pay", "/pay", 0},
      {"/x/y/../../pay", "/pay", 0},
      {"/../pay", "/pay", 0},
      {"/%2e%2e/pay", "/pay", 0},
      {"/%2E/pay", "/pay", 0},
      {"/x/%2e%2E/pay", "/pay", 0},
      {"/x%2F..%2Fpay", "/pay", 0},
      {"/%2Fpay", "/pay", 0},
      {"/pay?x", "/pay", 0},
      {"/pay?x=/../y", "/pay", 0},
      {"/pay#frag", "/pay", 0},
      {"http://h/pay", "/pay", 0},
      {"HTTPS://h:443//./pay?q", "/pay", 0},
      {"http://h", "/", 0},
      {"http://h?x", "/", 0},
      {"/PAY", "/PAY", 0},
      {"/PAY", "/pay", DLB_PATH_FOLD_CASE},
      {"/P%41Y", "/pay", DLB_PATH_FOLD_CASE},
      {"/pay/..", "/", 0},
      {"/pay/.", "/pay/", 0},
      {"/a/b/..", "/a/", 0},
      {"/pay/", "/pay/", 0},
      {"/", "/", 0},
      {"/..", "/", 0},
      {"/...", "/...", 0},
      {"/.well-known", "/.well-known", 0},
      {"/a%3fb", "/a%3Fb", 0},
      {"/a%3Fb", "/a%3Fb", 0},
      {"/%c3%a9", "/%C3%A9", DLB_PATH_FOLD_CASE},
      {"/%25", "/%25", 0},
      {"/%7e%5F%2d", "/~_-", 0},
      {"*", "", 0},
      {"pay.example:443", "", 0},
      {"", "", 0},
      {"/pay%", "ERR2", 0},
      {"/pay%2", "ERR2", 0},
      {"/pay%zz", "ERR2", 0},
      {"/pay%2?x", "ERR2", 0},
  };
  for (const Spelling& c : cases) {
    EXPECT_EQ(Norm(c.target, c.flags), c.want) << c.target << " flags " << c.flags;
  }
}

TEST(PathTest, OverLongPathIsAnError) {
  std::string p = "/" + std::string(DLB_PATH_MAX_BYTES, 'a');
  EXPECT_EQ(Norm(p), "ERR1");
  p.resize(DLB_PATH_MAX_BYTES);
  EXPECT_EQ(Norm(p), p);
  // The bound is the path's: a long query does not count.
  EXPECT_EQ(Norm("/pay?" + std::string(2 * DLB_PATH_MAX_BYTES, 'q')), "/pay");
  EXPECT_FALSE(IsNormal("/" + std::string(DLB_PATH_MAX_BYTES, 'a')));
  // Dot segments that would bring a long path back under the bound do not help.
  std::string dots = "/pay";
  while (dots.size() <= DLB_PATH_MAX_BYTES) dots += "/x/..";
  EXPECT_EQ(Norm(dots), "ERR1");
  dots.resize(DLB_PATH_MAX_BYTES - DLB_PATH_MAX_BYTES % 5 - 1);
  EXPECT_EQ(Norm(dots).substr(0, 4), "/pay");
}

TEST(PathTest, OutputBoundIsChecked) {
  dlb_path_u8 out[4];
  const std::string t = "/abcdef";
  EXPECT_EQ(dlb_path_normalize(reinterpret_cast<const dlb_path_u8*>(t.data()), 7, out, sizeof out, 0),
            DLB_PATH_ERR_TOO_LONG);
  const std::string d = "/%70a";
  EXPECT_EQ(dlb_path_normalize(reinterpret_cast<const dlb_path_u8*>(d.data()), 5, out, 3, 0), 3);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), 3), "/pa");
}

TEST(PathTest, IsNormalNamesTheFixedPoints) {
  EXPECT_TRUE(IsNormal("/pay"));
  EXPECT_TRUE(IsNormal("/pay/"));
  EXPECT_TRUE(IsNormal("/"));
  EXPECT_TRUE(IsNormal("/a%3Fb"));
  EXPECT_TRUE(IsNormal("/PAY"));
  EXPECT_FALSE(IsNormal("/PAY", DLB_PATH_FOLD_CASE));
  EXPECT_TRUE(IsNormal("/%C3x", DLB_PATH_FOLD_CASE));
  for (const char* p : {"//pay", "/%70ay", "/./pay", "/x/../pay", "/pay?x", "http://h/pay", "/pay/..",
                        "/%2e%2e/pay", "/a%3fb", "/a%2Fb", "/pay%", "/pay#", "*", "pay", "/.", "/.."}) {
    EXPECT_FALSE(IsNormal(p)) << p;
  }
}

// Random targets over the bytes that matter: normalizing twice changes nothing, and
// is_normal holds exactly for the fixed points.
TEST(PathTest, IdempotentAndPredicateAgrees) {
  static const char* kPieces[] = {"/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%70", "%3f", "%", "%g1",
                                  "a", "B", "pay", "?", "#", "http://", "h", "%C3", "%c3", "~", "%7E"};
  std::mt19937 rng(19);
  for (int n = 0; n < 200000; ++n) {
    std::string t;
    const int pieces = static_cast<int>(rng() % 8);
    for (int i = 0; i < pieces; ++i) t += kPieces[rng() % (sizeof kPieces / sizeof *kPieces)];
    for (unsigned flags : {0u, unsigned{DLB_PATH_FOLD_CASE}}) {
      const std::string once = Norm(t, flags);
      EXPECT_EQ(IsNormal(t, flags), once == t) << t;
      if (once.rfind("ERR", 0) == 0) continue;
      EXPECT_EQ(Norm(once, flags), once) << t;
      EXPECT_TRUE(IsNormal(once, flags)) << t << " -> " << once;
      EXPECT_LE(once.size(), std::max<size_t>(t.size(), 1)) << t;
    }
  }
}

}  // namespace
