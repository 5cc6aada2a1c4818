// No false 429, end to end: users who stay within their limit, through a TLS terminator
// (nginx in each client host: HTTPS in, keep-alive HTTP/1.1 upstream, many users on one
// upstream connection) and dlb-appliance, with a fresh Redis and a synced rule.
//
//   - one appliance: 20 new users of a rule C = 3, r = 0.01/s each send their 3
//     requests back to back on one connection (all within one sync interval: the case
//     that once had 40 of 60 answered 429): none is answered 429;
//   - one user of a rule C = r = 1e8 at full speed with wrk for 3 s: no 429;
//   - two appliances sharing the users (requests 1 and 3 through one, 2 through the
//     other): the false 429s are counted and printed, and stay within the written bound
//     (docs/sync.md, "Bounds": with several participants a false 429 needs the user
//     within the other participants' leases of its limit; here, at most one per user).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "redis_server.h"
#include "testbed.h"

namespace dlb::e2e {
namespace {

using namespace std::chrono_literals;

std::string Rules(const std::string& redis_url) {
  return "service_ports: [80]\n"
         "shard_users: 10000\n"
         "max_flows: 4096\n"
         "reassembly_buffers: 64\n"
         "redis:\n  url: " + redis_url + "\n"
         "rules:\n"
         "  - {name: pay, path_prefix: /pay, capacity: 3, leak_rate_per_s: 0.01, mode: synced}\n"
         "  - {name: fast, path_prefix: /fast, capacity: 100000000, leak_rate_per_s: 100000000, mode: synced}\n"
         "default_rule: {name: dflt, capacity: 1000000, leak_rate_per_s: 1000000, mode: local}\n";
}

// nginx terminating TLS on 127.0.0.1:8443 in a client host, proxying to the server's
// port 80 over keep-alive connections (through the appliance of that lane).
class Terminator {
 public:
  Terminator(const Testbed& bed, int lane) : bed_(bed), lane_(lane) {
    const std::string d = bed.dir() + "/tls" + std::to_string(lane);
    ShOk("mkdir -p " + d);
    ShOk("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=gateway -keyout " + d + "/key.pem -out " + d +
         "/cert.pem 2>/dev/null");
    std::ofstream f(d + "/nginx.conf");
    f << "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid " << d << "/nginx.pid;\n"
      << "error_log " << d << "/error.log;\nevents { worker_connections 1024; }\n"
      << "http {\n  access_log off;\n"
      << "  client_body_temp_path " << d << "; proxy_temp_path " << d << "; fastcgi_temp_path " << d
      << "; uwsgi_temp_path " << d << "; scgi_temp_path " << d << ";\n"
      << "  upstream gateway { server " << bed.server_ip(lane) << ":80; keepalive 8; }\n"
      << "  server {\n    listen 127.0.0.1:8443 ssl;\n    ssl_certificate " << d << "/cert.pem;\n"
      << "    ssl_certificate_key " << d << "/key.pem;\n    keepalive_requests 100000;\n"
      << "    location / { proxy_pass http://gateway; proxy_http_version 1.1;"
      << " proxy_set_header Connection \"\"; proxy_read_timeout 30s; }\n  }\n}\n";
    f.close();
    child_ = std::make_unique<Child>(std::vector<std::string>{"ip", "netns", "exec", bed.client_ns(lane), "nginx", "-c",
                                                              d + "/nginx.conf", "-p", d},
                                     d + "/nginx.out");
    if (!WaitFor([&] { return bed.InClient("ss -ltn | grep -q ':8443 '", nullptr, lane) == 0; }, 20s)) {
      throw std::runtime_error("terminator did not start: " + child_->Log());
    }
  }

  // `n` requests of `user` to `path` back to back on one TLS connection: their statuses.
  std::vector<std::string> Requests(const std::string& path, const std::string& user, int n) const {
    std::string cmd = "curl -k -s -m 30 -H 'X-User-ID: " + user + "' -w '%{http_code}\\n'";
    for (int i = 0; i < n; ++i) cmd += " -o /dev/null https://127.0.0.1:8443" + path;
    std::string out;
    bed_.InClient(cmd, &out, lane_);
    std::vector<std::string> codes;
    std::istringstream in(out);
    for (std::string c; std::getline(in, c);) codes.push_back(c);
    return codes;
  }

  // wrk for `seconds` at `path` as `user`: {requests, non-2xx}.
  std::pair<long, long> Wrk(const std::string& path, const std::string& user, int seconds) const {
    std::string out;
    bed_.InClient("wrk -t1 -c4 -d" + std::to_string(seconds) + "s -H 'X-User-ID: " + user + "' https://127.0.0.1:8443" +
                      path,
                  &out, lane_);
    std::smatch m;
    long requests = -1, bad = 0;
    if (std::regex_search(out, m, std::regex("([0-9]+) requests in"))) requests = std::stol(m[1]);
    if (std::regex_search(out, m, std::regex("Non-2xx or 3xx responses: ([0-9]+)"))) bad = std::stol(m[1]);
    std::printf("wrk: %s", out.c_str());
    return {requests, bad};
  }

 private:
  const Testbed& bed_;
  int lane_;
  std::unique_ptr<Child> child_;
};

int Count(const std::vector<std::string>& codes, const std::string& code) {
  int n = 0;
  for (const auto& c : codes) n += c == code;
  return n;
}

TEST(ApplianceFalse429, UsersWithinTheirLimitThroughATerminatorAndOneApplianceAreNeverRejected) {
  dlb::testing::RedisServer redis;
  Testbed bed(1);
  ApplianceProcess app(bed, 0, Rules(redis.Url()));
  ASSERT_TRUE(app.WaitRunning()) << app.Log();
  Terminator tls(bed, 0);
  std::vector<std::string> all;
  for (int u = 0; u < 20; ++u) {
    const auto codes = tls.Requests("/pay", "new-user-" + std::to_string(u), 3);
    all.insert(all.end(), codes.begin(), codes.end());
  }
  const double waited = app.Metric("dlb_sync_worker_decisions_total", {"how=\"lease_waits\""});
  std::printf("one appliance, 20 new users x 3 requests back to back: %d of %zu answered 429, %d 200; "
              "heads that waited for a lease: %.0f\n",
              Count(all, "429"), all.size(), Count(all, "200"), waited);
  EXPECT_EQ(all.size(), 60u);
  EXPECT_EQ(Count(all, "200"), 60);
  // Over the limit the 429 does come: of 3 more requests of a user, at most the
  // documented over-admission (ceil(r * H) + 1 + the new bucket's credit, docs/sync.md)
  // is admitted, and the last is answered 429.
  const auto more = tls.Requests("/pay", "new-user-0", 3);
  ASSERT_EQ(more.size(), 3u);
  EXPECT_LE(Count(more, "200"), 2);
  EXPECT_EQ(more.back(), "429");

  const auto [requests, bad] = tls.Wrk("/fast", "fast-user", 3);
  std::printf("one appliance, one user of C = r = 1e8 with wrk for 3 s: %ld requests, %ld not 2xx\n", requests, bad);
  EXPECT_GT(requests, 1000);
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(app.Stop(), 0);
}

TEST(ApplianceFalse429, UsersWithinTheirLimitThroughTwoAppliancesGetAtMostOneFalse429Each) {
  dlb::testing::RedisServer redis;
  Testbed bed(2);
  ApplianceProcess a(bed, 0, Rules(redis.Url()), "a0");
  ApplianceProcess b(bed, 1, Rules(redis.Url()), "a1");
  ASSERT_TRUE(a.WaitRunning()) << a.Log();
  ASSERT_TRUE(b.WaitRunning()) << b.Log();
  ASSERT_TRUE(WaitFor([&] { return a.Metric("dlb_sync_live_participants") == 2 && b.Metric("dlb_sync_live_participants") == 2; },
                      30s));
  Terminator t0(bed, 0), t1(bed, 1);
  int rejected = 0, admitted = 0, most_for_one_user = 0;
  for (int u = 0; u < 20; ++u) {
    const std::string user = "shared-user-" + std::to_string(u);
    std::vector<std::string> codes = t0.Requests("/pay", user, 1);
    for (const auto& c : t1.Requests("/pay", user, 1)) codes.push_back(c);
    for (const auto& c : t0.Requests("/pay", user, 1)) codes.push_back(c);
    ASSERT_EQ(codes.size(), 3u);
    const int r = Count(codes, "429");
    rejected += r;
    admitted += Count(codes, "200");
    most_for_one_user = std::max(most_for_one_user, r);
  }
  std::printf("two appliances, 20 new users x 3 requests (one, the other, the first): %d of 60 answered 429, "
              "%d 200, at most %d for one user\n",
              rejected, admitted, most_for_one_user);
  EXPECT_EQ(admitted + rejected, 60);
  EXPECT_LE(most_for_one_user, 1);
  EXPECT_EQ(a.Stop(), 0);
  EXPECT_EQ(b.Stop(), 0);
}

}  // namespace
}  // namespace dlb::e2e
