// dlb-appliance end to end (suite 'e2e'): curl, wrk and raw sockets in a client
// namespace reach nginx in a server namespace through the appliance's two
// net_af_packet ports (testbed.h). One appliance serves the tests of the first fixture
// (each test uses its own users); the sync tests run two appliances and a redis-server.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "dlb/key.h"
#include "redis_server.h"
#include "testbed.h"

namespace dlb::e2e {
namespace {

using namespace std::chrono_literals;

// Rules of the shared appliance. `api` limits hard (5 per user, leaking one per 1000 s);
// `pipe` 2 per user; the default rule never limits the load tests' user.
std::string Rules(int api_capacity) {
  return "service_ports: [80]\n"
         "shard_users: 10000\n"
         "max_flows: 4096\n"
         "reassembly_buffers: 64\n"
         "rules:\n"
         "  - {name: api, path_prefix: /api, capacity: " + std::to_string(api_capacity) +
         ", leak_rate_per_s: 0.001, mode: local}\n"
         "  - {name: pipe, path_prefix: /pipe, capacity: 2, leak_rate_per_s: 0.001, mode: local}\n"
         "  - {name: reload, path_prefix: /reload, capacity: " + std::to_string(api_capacity - 2) +
         ", leak_rate_per_s: 0.001, mode: local}\n"
         "default_rule: {name: dflt, capacity: 1000000, leak_rate_per_s: 1000000, mode: local}\n";
}

// Runs `fn` on a thread that has entered network namespace `ns`.
template <typename F>
void InNetns(const std::string& ns, F&& fn) {
  std::thread t([&] {
    const int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << ns;
    ASSERT_EQ(setns(fd, CLONE_NEWNET), 0) << ns;
    close(fd);
    fn();
  });
  t.join();
}

// Connects to ip:port from the calling thread's namespace; -1 on failure.
int Connect(const std::string& ip, int port) {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  timeval tv{10, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(s);
    return -1;
  }
  return s;
}

// Reads until `want` responses ("HTTP/1.1 ") arrived or the peer closed; the text.
std::string ReadResponses(int s, int want) {
  std::string text;
  char buf[4096];
  for (;;) {
    int seen = 0;
    for (size_t p = text.find("HTTP/1.1 "); p != std::string::npos; p = text.find("HTTP/1.1 ", p + 1)) ++seen;
    // A response is complete once its body arrived: nginx's "ok\n", the 429's JSON.
    if (seen >= want && (text.size() >= 3 && (text.ends_with("ok\n") || text.ends_with("}")))) break;
    const ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

std::vector<std::string> Statuses(const std::string& text) {
  std::vector<std::string> out;
  const std::regex re("HTTP/1.1 ([0-9]{3})");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    out.push_back((*it)[1]);
  }
  return out;
}

std::string Request(const std::string& path, const std::string& user) {
  return "GET " + path + " HTTP/1.1\r\nHost: gateway\r\nAccept: */*\r\nX-User-ID: " + user + "\r\n\r\n";
}

class ApplianceE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    bed_ = new Testbed(1);
    app_ = new ApplianceProcess(*bed_, 0, Rules(5));
    ASSERT_TRUE(app_->WaitRunning()) << app_->Log();
  }
  static void TearDownTestSuite() {
    if (app_ != nullptr) {
      const int rc = app_->Stop();
      const std::string log = app_->Log();
      EXPECT_EQ(rc, 0) << "SIGTERM must end the appliance cleanly\n" << log;
      EXPECT_NE(log.find("dlb-appliance: stopped"), std::string::npos) << log;
      delete app_;
      app_ = nullptr;
    }
    delete bed_;
    bed_ = nullptr;
  }
  void TearDown() override {
    if (HasFailure() && app_ != nullptr) std::cerr << "appliance log:\n" << app_->Log() << "\n";
  }
  static Testbed* bed_;
  static ApplianceProcess* app_;
};
Testbed* ApplianceE2E::bed_ = nullptr;
ApplianceProcess* ApplianceE2E::app_ = nullptr;

TEST_F(ApplianceE2E, UserOverTheLimitGetsExactlyTheBucketsAdmissionsThen429) {
  std::vector<std::string> codes;
  for (int i = 0; i < 8; ++i) codes.push_back(bed_->Curl("/api/pay", "alice"));
  EXPECT_EQ(codes, (std::vector<std::string>{"200", "200", "200", "200", "200", "429", "429", "429"}));

  // The 429 itself: Retry-After rounded up from 1000 s, the RateLimit headers, close.
  std::string out;
  bed_->InClient("curl -s -i -m 10 -H 'X-User-ID: alice' http://" + bed_->server_ip() + "/api/pay", &out);
  EXPECT_NE(out.find("HTTP/1.1 429 Too Many Requests"), std::string::npos) << out;
  EXPECT_NE(out.find("Retry-After: 1000"), std::string::npos) << out;
  EXPECT_NE(out.find("RateLimit-Policy: \"api\";q=5"), std::string::npos) << out;
  EXPECT_NE(out.find("Connection: close"), std::string::npos) << out;

  // wrk on one keep-alive connection as a fresh user: 5 answers of 200, then the 429
  // closes it, and wrk's reconnections meet 429s only.
  bed_->InClient("wrk -t1 -c1 -d2s -H 'X-User-ID: alice-wrk' http://" + bed_->server_ip() + "/api/pay", &out);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("([0-9]+) requests in"))) << out;
  const int total = std::stoi(m[1]);
  ASSERT_TRUE(std::regex_search(out, m, std::regex("Non-2xx or 3xx responses: ([0-9]+)"))) << out;
  EXPECT_EQ(total - std::stoi(m[1]), 5) << out;
  // A user of the same rule is untouched.
  EXPECT_EQ(bed_->Curl("/api/pay", "bob"), "200");
  // Every rejected connection was reset towards nginx: nothing left established.
  EXPECT_TRUE(WaitFor([&] { return bed_->ServerConnections() == 0; }, 20s)) << bed_->ServerConnections();
  EXPECT_GE(app_->Metric("dlb_appliance_rejected_by_rule_total", {"rule=\"api\""}), 4);
}

TEST_F(ApplianceE2E, KeepAliveConnectionCarryingSeveralUsersLimitsEachSeparately) {
  // One connection, requests of three users interleaved: carol and dave have room for 5
  // each, erin 1 left after 4 of her own on other connections.
  for (int i = 0; i < 4; ++i) ASSERT_EQ(bed_->Curl("/api/k", "erin"), "200");
  std::vector<std::string> statuses;
  InNetns(bed_->client_ns(), [&] {
    const int s = Connect(bed_->server_ip(), 80);
    ASSERT_GE(s, 0);
    const char* users[] = {"carol", "dave", "carol", "dave", "carol", "dave", "carol", "dave", "carol", "dave", "erin"};
    for (const char* u : users) {
      const std::string req = Request("/api/k", u);
      ASSERT_EQ(send(s, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
      auto st = Statuses(ReadResponses(s, 1));
      ASSERT_EQ(st.size(), 1u) << u;
      statuses.push_back(st[0]);
    }
    // erin's sixth request: limited on the same connection.
    const std::string req = Request("/api/k", "erin");
    ASSERT_EQ(send(s, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    auto st = Statuses(ReadResponses(s, 1));
    ASSERT_EQ(st.size(), 1u);
    statuses.push_back(st[0]);
    close(s);
  });
  std::vector<std::string> want(11, "200");
  want.push_back("429");
  EXPECT_EQ(statuses, want);
  EXPECT_EQ(bed_->Curl("/api/k", "carol"), "429");
  EXPECT_EQ(bed_->Curl("/api/k", "dave"), "429");
}

// Frames of the client's TCP payload toward port 80, seen on a veth end in the root ns.
class Capture {
 public:
  explicit Capture(const std::string& link) {
    fd_ = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    sockaddr_ll a{};
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(ETH_P_ALL);
    a.sll_ifindex = static_cast<int>(if_nametoindex(link.c_str()));
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    thread_ = std::thread([this] { Run(); });
  }
  ~Capture() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int data_segments() const { return data_segments_; }
  int max_payload() const { return max_payload_; }

 private:
  void Run() {
    uint8_t buf[2048];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n < 54 || buf[12] != 0x08 || buf[13] != 0x00 || buf[23] != 6) continue;
      const int ihl = (buf[14] & 15) * 4;
      const int total = buf[16] << 8 | buf[17];
      const uint8_t* tcp = buf + 14 + ihl;
      const int dport = tcp[2] << 8 | tcp[3];
      const int payload = total - ihl - (tcp[12] >> 4) * 4;
      if (dport == 80 && payload > 0) {
        ++data_segments_;
        if (payload > max_payload_) max_payload_ = payload;
      }
    }
  }
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> data_segments_{0};
  std::atomic<int> max_payload_{0};
  std::thread thread_;
};

// Sends `text` in writes of at most `piece` bytes, each one only once the last was
// acknowledged (nothing left in the send queue), with Nagle off: one segment per write,
// whatever MSS the path allows. False if a write was not acknowledged within 5 s.
bool SendInPieces(int s, const std::string& text, size_t piece) {
  const int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (size_t off = 0; off < text.size(); off += piece) {
    const size_t n = std::min(piece, text.size() - off);
    if (send(s, text.data() + off, n, 0) != static_cast<ssize_t>(n)) return false;
    int unacked = 1;
    for (int waited_ms = 0; waited_ms < 5000; ++waited_ms) {
      if (ioctl(s, SIOCOUTQ, &unacked) != 0 || unacked == 0) break;
      usleep(1000);
    }
    if (unacked != 0) return false;
  }
  return true;
}

TEST_F(ApplianceE2E, HeadsSplitOverSmallSegmentsAreReassembledAndDecided) {
  // Each head goes in 30-byte segments (one write each, sent once the last was
  // acknowledged), so every head spans several segments by construction.
  constexpr size_t kPiece = 30;
  Capture cap(bed_->client_link());
  std::vector<std::string> codes;
  InNetns(bed_->client_ns(), [&] {
    for (int i = 0; i < 7; ++i) {
      const int s = Connect(bed_->server_ip(), 80);
      ASSERT_GE(s, 0);
      ASSERT_TRUE(SendInPieces(s, Request("/api/split", "frank"), kPiece));
      const auto st = Statuses(ReadResponses(s, 1));
      codes.push_back(st.empty() ? "none" : st[0]);
      close(s);
    }
  });
  cap.Stop();
  EXPECT_EQ(codes, (std::vector<std::string>{"200", "200", "200", "200", "200", "429", "429"}));
  EXPECT_LE(cap.max_payload(), static_cast<int>(kPiece));
  EXPECT_GE(cap.data_segments(), 7 * 2) << "each head should span several segments";
}

TEST_F(ApplianceE2E, PipelinedRequestsInOneWriteAreEachDecided) {
  // Four heads of one user in one write, the rule admits 2: the two go through, the
  // third is answered 429 after their responses, the connection closes.
  std::string text;
  InNetns(bed_->client_ns(), [&] {
    const int s = Connect(bed_->server_ip(), 80);
    ASSERT_GE(s, 0);
    std::string reqs;
    for (int i = 0; i < 4; ++i) reqs += Request("/pipe", "grace");
    ASSERT_EQ(send(s, reqs.data(), reqs.size(), 0), static_cast<ssize_t>(reqs.size()));
    text = ReadResponses(s, 3);
    // Then the close.
    char b[256];
    while (recv(s, b, sizeof b, 0) > 0) {
    }
    close(s);
  });
  EXPECT_EQ(Statuses(text), (std::vector<std::string>{"200", "200", "429"})) << text;
  // Another user pipelining within the limit: both answered on one connection.
  InNetns(bed_->client_ns(), [&] {
    const int s = Connect(bed_->server_ip(), 80);
    ASSERT_GE(s, 0);
    const std::string reqs = Request("/pipe", "heidi") + Request("/pipe", "ivan") + Request("/pipe", "heidi");
    ASSERT_EQ(send(s, reqs.data(), reqs.size(), 0), static_cast<ssize_t>(reqs.size()));
    text = ReadResponses(s, 3);
    close(s);
  });
  EXPECT_EQ(Statuses(text), (std::vector<std::string>{"200", "200", "200"})) << text;
}

TEST_F(ApplianceE2E, PingArpAndOtherPortsPassUntouched) {
  // ARP first: a fresh neighbour entry must be resolved through the appliance.
  bed_->InClient("ip neigh flush all");
  std::string out;
  EXPECT_EQ(bed_->InClient("ping -c 3 -i 0.2 -W 5 " + bed_->server_ip(), &out), 0) << out;
  EXPECT_EQ(bed_->InClient("ip neigh show " + bed_->server_ip(), &out), 0);
  EXPECT_NE(out.find("lladdr"), std::string::npos) << out;
  // Port 8081 is not a service port: never decided, even for a user over every limit.
  for (int i = 0; i < 8; ++i) EXPECT_EQ(bed_->Curl("/api/x", "alice", 0, 8081), "200");
}

TEST_F(ApplianceE2E, ReloadUnderTrafficChangesALimitWithoutLosingAPacket) {
  // judy uses up the reload rule's 3, then a reload raises it to 5 while wrk runs.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(bed_->Curl("/reload/x", "judy"), "200");
  ASSERT_EQ(bed_->Curl("/reload/x", "judy"), "429");
  const double tx_dropped_before = app_->Metric("dlb_appliance_tx_dropped_total");
  std::string wrk_out;
  std::thread load([&] {
    bed_->InClient("wrk -t1 -c4 -d6s -H 'X-User-ID: load' http://" + bed_->server_ip() + "/", &wrk_out);
  });
  // The reload lands while wrk's requests flow through the worker.
  const double rx_before = app_->Metric("dlb_appliance_worker_rx_packets_total");
  ASSERT_TRUE(WaitFor([&] { return app_->Metric("dlb_appliance_worker_rx_packets_total") > rx_before + 200; }, 20s));
  app_->WriteConfig(Rules(7));
  app_->Reload();
  ASSERT_TRUE(WaitFor([&] { return app_->Metric("dlb_appliance_reloads_total", {"result=\"ok\""}) >= 1; }, 20s))
      << app_->Log();
  load.join();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(wrk_out, m, std::regex("([0-9]+) requests in"))) << wrk_out;
  EXPECT_GT(std::stoi(m[1]), 0);
  EXPECT_EQ(wrk_out.find("Non-2xx"), std::string::npos) << wrk_out;
  EXPECT_EQ(wrk_out.find("Socket errors"), std::string::npos) << wrk_out;
  EXPECT_EQ(app_->Metric("dlb_appliance_tx_dropped_total"), tx_dropped_before);
  EXPECT_EQ(app_->Metric("dlb_appliance_build_failed_total"), 0);
  // The bucket kept its level (3): two more under the new capacity of 5.
  EXPECT_EQ(bed_->Curl("/reload/x", "judy"), "200");
  EXPECT_EQ(bed_->Curl("/reload/x", "judy"), "200");
  EXPECT_EQ(bed_->Curl("/reload/x", "judy"), "429");
  // A broken file is refused and the running rules stay.
  app_->WriteConfig("rules: [{name: bad, capacity: 0}]\n");
  app_->Reload();
  ASSERT_TRUE(WaitFor([&] { return app_->Metric("dlb_appliance_reloads_total", {"result=\"failed\""}) >= 1; }, 20s));
  EXPECT_EQ(bed_->Curl("/reload/x", "kate"), "200");
  app_->WriteConfig(Rules(7));
}

// --- global sync through Redis ------------------------------------------------------

std::string SyncedRules(const std::string& redis_url) {
  return "service_ports: [80]\n"
         "shard_users: 10000\n"
         "max_flows: 4096\n"
         "reassembly_buffers: 64\n"
         "redis:\n  url: " + redis_url + "\n  deadline_us: 200000\n"
         "rules:\n"
         "  - {name: shared, path_prefix: /shared, capacity: 10, leak_rate_per_s: 0.001, mode: synced,"
         " on_store_failure: local}\n"
         "default_rule: {name: dflt, capacity: 1000000, leak_rate_per_s: 1000000, mode: local}\n";
}

// Behind a terminator that speaks the PROXY protocol: nginx on 8083 expects the header
// too. Two clients behind one terminator address get a bucket each, the one the header
// names; a connection without the header is refused before nginx executes anything.
TEST(ApplianceProxyProtocol, HeadersAddressKeysAnonymousClientsAndNginxSeesTheSameClient) {
  Testbed bed(1);
  ApplianceProcess app(bed, 0,
                       "service_ports: [8083]\nproxy_protocol: v1\nshard_users: 1000\n"
                       "rules:\n  - {name: anon, path_prefix: /anon, capacity: 2, leak_rate_per_s: 0.001, mode: local}\n"
                       "default_rule: {name: dflt, capacity: 1000000, leak_rate_per_s: 1000000, mode: local}\n",
                       "pp");  // not "proxy": nginx writes dir()/proxy.log
  ASSERT_TRUE(app.WaitRunning()) << app.Log();
  // One request per connection, the header written by hand as a terminator would.
  auto once = [&](const std::string& header) {
    std::string status = "none";
    InNetns(bed.client_ns(), [&] {
      const int s = Connect(bed.server_ip(), 8083);
      ASSERT_GE(s, 0);
      const std::string bytes = header + "GET /anon/signup HTTP/1.1\r\nHost: gateway\r\n\r\n";
      ASSERT_EQ(send(s, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
      const std::vector<std::string> codes = Statuses(ReadResponses(s, 1));
      if (!codes.empty()) status = codes[0];
      close(s);
    });
    return status;
  };
  auto header = [&](const std::string& client) {
    return "PROXY TCP4 " + client + " " + bed.server_ip() + " 40000 8083\r\n";
  };
  std::vector<std::string> a;
  for (int i = 0; i < 3; ++i) a.push_back(once(header("192.0.2.1")));
  EXPECT_EQ(a, (std::vector<std::string>{"200", "200", "429"}));
  EXPECT_EQ(once(header("192.0.2.2")), "200");
  // No header: reset, nothing reaches nginx's log.
  EXPECT_EQ(once(""), "none");
  EXPECT_GE(app.Metric("dlb_packet_proxy_header_missing_total"), 1);
  EXPECT_EQ(app.Metric("dlb_packet_proxy_headers_total"), 4);
  std::string log;
  ASSERT_TRUE(WaitFor([&] {
    std::ifstream f(bed.dir() + "/proxy.log");
    log.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return std::count(log.begin(), log.end(), '\n') >= 3;
  }, 10s)) << log;
  EXPECT_EQ(log,
            "192.0.2.1 GET /anon/signup 200\n192.0.2.1 GET /anon/signup 200\n192.0.2.2 GET /anon/signup 200\n");
  EXPECT_EQ(app.Stop(), 0) << app.Log();
}

TEST(ApplianceSync, TwoAppliancesShareOneUsersLimitAndKeepServingWhenRedisDies) {
  dlb::testing::RedisServer redis;
  Testbed bed(2);
  ApplianceProcess a(bed, 0, SyncedRules(redis.Url()), "sync0");
  ApplianceProcess b(bed, 1, SyncedRules(redis.Url()), "sync1");
  ASSERT_TRUE(a.WaitRunning()) << a.Log();
  ASSERT_TRUE(b.WaitRunning()) << b.Log();
  // Both announced: each knows there are two participants (a new bucket's credit is
  // then C/2).
  ASSERT_TRUE(WaitFor([&] { return a.Metric("dlb_sync_live_participants") == 2 && b.Metric("dlb_sync_live_participants") == 2; },
                      30s))
      << a.Scrape();
  // One user from two client hosts through two appliances: 20 requests, capacity 10.
  // Two independent buckets would admit 20; the shared one admits 10 plus at most the
  // credit of the second appliance's new slot (C/2) plus one in flight (shard_sync.h).
  int admitted[2] = {0, 0};
  for (int round = 0; round < 10; ++round) {
    for (int lane = 0; lane < 2; ++lane) {
      const std::string code = bed.Curl("/shared/x", "mallory", lane);
      ASSERT_TRUE(code == "200" || code == "429") << code;
      admitted[lane] += code == "200";
    }
  }
  const int total = admitted[0] + admitted[1];
  EXPECT_GE(total, 10) << admitted[0] << " + " << admitted[1];
  EXPECT_LE(total, 10 + 5 + 1) << admitted[0] << " + " << admitted[1];
  EXPECT_GT(admitted[0], 0);
  EXPECT_GT(admitted[1], 0);
  // The bucket lives in Redis under the key every form uses.
  EXPECT_GT(a.Metric("dlb_sync_bucket_ops_total"), 0);
  EXPECT_GT(a.Metric("dlb_sync_worker_decisions_total", {"how=\"lease_admitted\""}) +
                b.Metric("dlb_sync_worker_decisions_total", {"how=\"lease_admitted\""}),
            0);

  // Redis dies: the rule's on_store_failure (local) keeps deciding, every request is
  // answered, and a fresh user gets its share (C/2 = 5 per appliance).
  redis.Kill();
  ASSERT_TRUE(WaitFor([&] { return a.Metric("dlb_sync_store_up") == 0; }, 30s)) << a.Scrape();
  std::vector<std::string> codes;
  for (int i = 0; i < 7; ++i) codes.push_back(bed.Curl("/shared/y", "oscar", 0));
  EXPECT_EQ(codes, (std::vector<std::string>{"200", "200", "200", "200", "200", "429", "429"}));
  EXPECT_EQ(bed.Curl("/other", "oscar", 0), "200");  // the default rule: local, unaffected

  // Redis comes back empty: the five admissions of the outage are charged into it once
  // (not twice, not lost) at the next rounds, and the appliances decide on Redis again.
  redis.Restart();
  ASSERT_TRUE(WaitFor([&] { return a.Metric("dlb_sync_store_up") == 1 && b.Metric("dlb_sync_store_up") == 1; },
                      30s))
      << a.Scrape();
  // Once the debits went in, stop both (their leases go back) and read the level off the
  // stored TAT: (TAT - now) / T with T = 1 / 0.001 s.
  ASSERT_TRUE(WaitFor([&] { return a.Metric("dlb_sync_units_total", {"kind=\"debited\""}) >= 5; }, 30s))
      << a.Scrape();
  EXPECT_EQ(a.Stop(), 0) << a.Log();
  EXPECT_EQ(b.Stop(), 0) << b.Log();
  const std::string tat = redis.Command({"GET", dlb::RedisKey("oscar", "shared")}).str;
  ASSERT_FALSE(tat.empty()) << "oscar's outage admissions were not charged";
  const double level = (std::stod(tat) - static_cast<double>(redis.TimeUs()) * 1000.0) / 1e12;
  EXPECT_NEAR(level, 5.0, 0.01) << tat;
}

// --- start-up errors ----------------------------------------------------------------

int RunAppliance(const std::string& config_text, const std::vector<std::string>& eal, std::string& log) {
  char dir_tmpl[] = "/tmp/dlb-e2e-cfg-XXXXXX";
  const std::string dir = mkdtemp(dir_tmpl);
  const std::string path = dir + "/c.yaml";
  {
    std::ofstream f(path);
    f << config_text;
  }
  std::vector<std::string> argv = {AppliancePath()};
  argv.insert(argv.end(), eal.begin(), eal.end());
  const std::string prefix = "dlbe" + std::to_string(getpid()) + "err";
  for (const char* a : {"--file-prefix", prefix.c_str(), "--", "--config", path.c_str(), "--metrics", ""}) {
    argv.push_back(a);
  }
  Child c(argv, dir + "/log");
  const int rc = c.Stop(0, 60s);  // signal 0: just wait
  log = c.Log();
  Sh("rm -rf " + dir + " /var/run/dpdk/" + prefix);
  return rc;
}

TEST(ApplianceStart, BadConfigMissingPortAndTooLittleMemoryFailWithOneClearLine) {
  const std::vector<std::string> eal = {"--no-huge", "-m", "256", "--no-pci", "--lcores", "0@0,1@1",
                                        "--log-level", "lib.eal:notice"};
  std::string log;
  // A rule with capacity 0: the file, the line and the field.
  EXPECT_EQ(RunAppliance("appliance: {client_port: net_null0, server_port: net_null1}\n"
                         "rules:\n  - {name: x, capacity: 0}\n",
                         eal, log), 1) << log;
  EXPECT_NE(log.find("c.yaml:3"), std::string::npos) << log;
  EXPECT_NE(log.find("capacity"), std::string::npos) << log;
  // An unknown appliance key.
  EXPECT_EQ(RunAppliance("appliance: {client_port: net_null0, server_port: net_null1, wokers: 2}\n", eal, log), 1) << log;
  EXPECT_NE(log.find("appliance.wokers: unknown key"), std::string::npos) << log;
  // A port that does not exist.
  EXPECT_EQ(RunAppliance("appliance:\n  client_port: net_af_packet0,iface=dlb-no-such\n  server_port: net_null1\n", eal, log), 1)
      << log;
  EXPECT_NE(log.find("appliance.client_port 'net_af_packet0,iface=dlb-no-such'"), std::string::npos) << log;
  // Shards bigger than the memory EAL has: named, with the remedy.
  EXPECT_EQ(RunAppliance("appliance: {client_port: net_null0, server_port: net_null1}\nshard_users: 50000000\n", eal, log), 1)
      << log;
  EXPECT_NE(log.find("too few hugepages"), std::string::npos) << log;
  // Only one lcore: no worker.
  EXPECT_EQ(RunAppliance("appliance: {client_port: net_null0, server_port: net_null1}\n",
                         {"--no-huge", "-m", "256", "--no-pci", "--lcores", "0@0"}, log), 1) << log;
  EXPECT_NE(log.find("no worker lcore"), std::string::npos) << log;
}

}  // namespace
}  // namespace dlb::e2e
