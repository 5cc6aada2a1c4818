// Executed versus decided, end to end: seeded adversarial streams from a client host
// through dlb-appliance into two servers with different HTTP parsers, nginx (port 80)
// and Python's http.server (tests/e2e/recording_server.py, port 8082), whose own logs
// are the oracle. For every user, the requests the two servers executed on the limited
// route together never exceed the rule's capacity; a victim whose heads only ever
// appear inside other users' bodies was charged nothing and then gets its whole
// capacity.
//
// The streams (tests/xdp/adversarial_client.py): heads in random segments, empty lines
// before heads, bodies made of a victim's heads, pipelined heads in one write, chunked
// bodies, duplicate and empty-then-set identity lines. DLB_ADVERSARIAL_STREAMS sets the
// count per server (60 here; a long run: thousands); DLB_KEEP=1 keeps the testbed's
// files (the logs) in its directory. A second generator (tests/e2e/raw_tcp_client.py)
// chooses the client's TCP segments themselves: see the second test.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "testbed.h"

namespace dlb::e2e {
namespace {

constexpr int kCapacity = 3;
constexpr int kPythonPort = 8082;

// `tables`: the flow table's and the buffers' settings.
std::string OracleRules(const std::string& tables = "max_flows: 4096\nreassembly_buffers: 64\n") {
  const std::string port = std::to_string(kPythonPort);
  const std::string capacity = std::to_string(kCapacity);
  return "service_ports: [80, " + port + "]\nshard_users: 10000\n" + tables +
         "rules:\n  - {name: local, path_prefix: /local, capacity: " + capacity +
         ", leak_rate_per_s: 0.0001, mode: local}\n"
         "default_rule: {name: dflt, capacity: 1000000, leak_rate_per_s: 1000000, mode: local}\n";
}

// Executed requests on the limited route per user in a "METHOD PATH USER STATUS" log.
void CountExecuted(const std::string& path, std::map<std::string, int>* executed, int* lines) {
  std::ifstream f(path);
  for (std::string line; std::getline(f, line); ++*lines) {
    std::istringstream in(line);
    std::string method, uri, user;
    int status = 0;
    in >> method >> uri >> user >> status;
    // nginx logs refused requests too (400 for a head whose connection was reset).
    if (uri.rfind("/local", 0) == 0 && status >= 200 && status < 300) ++(*executed)[user];
  }
}

// What nginx (its access log) and the Python server (`py_log`) executed, printed.
struct Executed {
  std::map<std::string, int> per_user;
  int nginx_lines = 0;
  int python_lines = 0;
};
Executed CountBoth(const Testbed& bed, const std::string& py_log) {
  Executed e;
  CountExecuted(bed.dir() + "/access.log", &e.per_user, &e.nginx_lines);
  CountExecuted(py_log, &e.per_user, &e.python_lines);
  std::printf("executed on /local by both servers (nginx %d lines, python %d lines):", e.nginx_lines,
              e.python_lines);
  for (const auto& [user, n] : e.per_user) std::printf(" %s=%d", user.c_str(), n);
  std::printf("\n");
  return e;
}

// Python's http.server (tests/e2e/recording_server.py) in the server host on
// kPythonPort, logging to `log`; `extra`: its slow prefix and delay.
void StartRecordingServer(const Testbed& bed, const std::string& log, const std::vector<std::string>& extra,
                          std::unique_ptr<Child>* out) {
  std::vector<std::string> argv = {
      "ip", "netns", "exec", bed.server_ns(), "python3", DLB_RECORDING_SERVER, std::to_string(kPythonPort),
      log};
  argv.insert(argv.end(), extra.begin(), extra.end());
  *out = std::make_unique<Child>(argv, bed.dir() + "/python.out");
  Child& python = **out;
  ASSERT_TRUE(
      WaitFor([&] { return bed.InServer("ss -ltn | grep -q ':" + std::to_string(kPythonPort) + " '") == 0; },
              std::chrono::seconds(20)))
      << python.Log();
}

TEST(ApplianceOracle, ExecutedRequestsNeverExceedTheLimitWhateverTheStreams) {
  const char* env = std::getenv("DLB_ADVERSARIAL_STREAMS");
  const int streams = env != nullptr ? std::atoi(env) : 60;
  Testbed bed(1);
  const std::string py_log = bed.dir() + "/python.log";
  std::unique_ptr<Child> python;
  ASSERT_NO_FATAL_FAILURE(StartRecordingServer(bed, py_log, {"/slow", "0.5"}, &python));
  ApplianceProcess app(bed, 0, OracleRules());
  ASSERT_TRUE(app.WaitRunning()) << app.Log();

  std::string out;
  // nginx with users u0..u3, then the Python server with p0..p3 (fresh buckets): the
  // victim's heads go into the bodies of both runs.
  for (const auto& [port, seed, users] :
       {std::tuple{80, 7, "u0,u1,u2,u3"}, std::tuple{kPythonPort, 8, "p0,p1,p2,p3"}}) {
    std::string o;
    bed.InClient("env DLB_ADVERSARIAL_USERS=" + std::string(users) + " python3 " DLB_ADVERSARIAL_CLIENT " " +
                     bed.server_ip() + ":" + std::to_string(port) + " " + std::to_string(streams) + " " +
                     std::to_string(seed),
                 &o);
    ASSERT_NE(o.find("streams sent: "), std::string::npos) << o;
    out += o;
  }
  std::printf("%s", out.c_str());

  EXPECT_EQ(CountBoth(bed, py_log).per_user["victim"], 0)
      << "the victim sent nothing, yet a server executed its heads";
  // The victim's own requests: its whole capacity, then 429.
  for (int i = 0; i < kCapacity; ++i) EXPECT_EQ(bed.Curl("/local", "victim"), "200") << i;
  EXPECT_EQ(bed.Curl("/local", "victim", 0, kPythonPort), "429");

  Executed e = CountBoth(bed, py_log);
  EXPECT_GT(e.nginx_lines, streams / 4) << "the streams should mostly reach nginx";
  EXPECT_GT(e.python_lines, streams / 8)
      << "the streams should reach the Python server (it logs executed requests only)";
  for (const auto& [user, n] : e.per_user) {
    EXPECT_LE(n, kCapacity) << "the servers executed " << n << " /local requests of " << user;
  }
  EXPECT_EQ(e.per_user["victim"], kCapacity);
  if (HasFailure()) std::fprintf(stderr, "appliance log:\n%s\n", app.Log().c_str());
  EXPECT_EQ(app.Stop(), 0);
}

// The same oracle with the client's TCP in the generator's hands
// (tests/e2e/raw_tcp_client.py): segments reordered, copies that disagree on the route or
// the user, SYN, FIN and RST injected in and out of the window, heads after a gap,
// bodies of a victim's heads ahead of their head, and exhaustion of the flow table
// and the reassembly buffers (small here) while the other kinds run. The generator
// speaks from an address no host owns (the client host's kernel would reset the
// server's answers to a connection it does not know); the server host reaches it
// through a static neighbour entry. DLB_RAW_STREAMS sets the count per server.
TEST(ApplianceOracle, ExecutedRequestsNeverExceedTheLimitWhateverTheSegments) {
  const char* env = std::getenv("DLB_RAW_STREAMS");
  const int streams = env != nullptr ? std::atoi(env) : 60;
  Testbed bed(1);
  const std::string py_log = bed.dir() + "/python.log";
  std::unique_ptr<Child> python;
  ASSERT_NO_FATAL_FAILURE(StartRecordingServer(bed, py_log, {}, &python));
  ApplianceProcess app(bed, 0,
                       OracleRules("max_flows: 72\nreassembly_buffers: 16\npartial_head_timeout_s: 1\n"
                                   "flow_idle_timeout_s: 4\n"));
  ASSERT_TRUE(app.WaitRunning()) << app.Log();

  const std::string raw_ip = "10.99.1.77";
  std::string client_if = bed.client_link();
  client_if.back() = 'a';
  std::string client_mac, server_mac;
  ASSERT_EQ(bed.InClient("cat /sys/class/net/" + client_if + "/address", &client_mac), 0) << client_mac;
  ASSERT_EQ(bed.InServer("cat /sys/class/net/" + bed.server_ns_link() + "/address", &server_mac), 0) << server_mac;
  client_mac.erase(client_mac.find_last_not_of(" \n") + 1);
  server_mac.erase(server_mac.find_last_not_of(" \n") + 1);
  ASSERT_EQ(bed.InServer("ip neigh replace " + raw_ip + " lladdr " + client_mac + " dev " + bed.server_ns_link() +
                         " nud permanent"),
            0);

  std::string out;
  for (const auto& [port, seed, users] :
       {std::tuple{80, 11, "r0,r1,r2,r3"}, std::tuple{kPythonPort, 12, "q0,q1,q2,q3"}}) {
    std::string o;
    bed.InClient("env DLB_ADVERSARIAL_USERS=" + std::string(users) + " python3 " DLB_RAW_TCP_CLIENT " " + client_if +
                     " " + raw_ip + " " + bed.server_ip() + ":" + std::to_string(port) + " " + server_mac + " " +
                     std::to_string(streams) + " " + std::to_string(seed) + " 2>&1",
                 &o);
    ASSERT_NE(o.find("streams sent: "), std::string::npos) << o;
    out += o;
  }
  std::printf("%s", out.c_str());

  Executed e = CountBoth(bed, py_log);
  std::printf("%s", app.Scrape().c_str());
  EXPECT_EQ(e.per_user["victim"], 0) << "the victim sent nothing, yet a server executed its heads";
  for (const auto& [user, n] : e.per_user) {
    EXPECT_LE(n, kCapacity) << "the servers executed " << n << " /local requests of " << user;
  }
  // Not vacuous: the streams reach both servers and the limit was reached.
  EXPECT_GT(e.nginx_lines, streams / 4);
  EXPECT_GT(e.python_lines, streams / 8);
  EXPECT_GE(app.Metric("dlb_appliance_rejected_by_rule_total", {"rule=\"local\""}), 4);
  // The flows the streams left (connections the server still holds) expire first
  // (flow_idle_timeout_s 4), so that the victim's connections find room.
  std::this_thread::sleep_for(std::chrono::seconds(5));
  for (int i = 0; i < kCapacity; ++i) EXPECT_EQ(bed.Curl("/local", "victim"), "200") << i;
  EXPECT_EQ(bed.Curl("/local", "victim", 0, kPythonPort), "429");
  if (HasFailure()) std::fprintf(stderr, "appliance log:\n%s\n", app.Log().c_str());
  EXPECT_EQ(app.Stop(), 0);
}

// A request the limiter admitted never loses its response to a later 429: an admitted
// POST and a limited POST pipelined in one write to a backend that answers after
// 0.5 s. The client gets the 200 of the first, whole, and then the 429 of the second;
// the server executed exactly one request and its response was not cut by a reset.
TEST(ApplianceOracle, ALimitedPipelinedHeadWaitsForTheAdmittedResponseOfASlowBackend) {
  Testbed bed(1);
  const std::string py_log = bed.dir() + "/python.log";
  std::unique_ptr<Child> python;
  ASSERT_NO_FATAL_FAILURE(StartRecordingServer(bed, py_log, {"/slow", "0.5"}, &python));
  ApplianceProcess app(bed, 0,
                       "service_ports: [" + std::to_string(kPythonPort) + "]\n"
                       "rules:\n  - {name: slow, path_prefix: /slow, capacity: 1, leak_rate_per_s: 0.0001, mode: local}\n"
                       "default_rule: {name: dflt, capacity: 1000000, leak_rate_per_s: 1000000, mode: local}\n");
  ASSERT_TRUE(app.WaitRunning()) << app.Log();
  const std::string post = "POST /slow HTTP/1.1\r\nHost: gw\r\nX-User-ID: payer\r\nContent-Length: 3\r\n\r\nabc";
  std::string hex;
  for (unsigned char c : post + post) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", c);
    hex += b;
  }
  // One write of both requests; the reply read until the server or the appliance closes.
  std::string out;
  bed.InClient("python3 -c \"import socket,sys,time\n"
               "s=socket.create_connection(('" + bed.server_ip() + "'," + std::to_string(kPythonPort) + "),timeout=5)\n"
               "s.sendall(bytes.fromhex('" + hex + "'))\n"
               "d=b''\n"
               "end=time.time()+5\n"
               "while time.time()<end:\n"
               " try:\n"
               "  x=s.recv(4096)\n"
               " except OSError:\n"
               "  break\n"
               " if not x: break\n"
               " d+=x\n"
               "sys.stdout.write(d.decode(errors='replace'))\n\"",
               &out);
  std::printf("client received:\n%s\n", out.c_str());
  const size_t ok = out.find("HTTP/1.1 200");
  const size_t limited = out.find("HTTP/1.1 429");
  ASSERT_NE(ok, std::string::npos) << "the admitted request lost its response";
  EXPECT_NE(out.find("ok\n", ok), std::string::npos) << "the admitted response was cut";
  ASSERT_NE(limited, std::string::npos) << "the limited request got no 429";
  EXPECT_LT(ok, limited) << "the 429 took the place of the admitted response";
  std::map<std::string, int> executed;
  int lines = 0;
  CountExecuted(py_log, &executed, &lines);
  EXPECT_EQ(lines, 1) << "the server executed " << lines << " requests";
  EXPECT_GE(app.Metric("dlb_packet_rejects_deferred_total"), 1) << app.Scrape();
  EXPECT_EQ(app.Stop(), 0);
}

}  // namespace
}  // namespace dlb::e2e
