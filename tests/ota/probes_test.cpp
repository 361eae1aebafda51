#include "ota/probes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/raw_http_server.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using eddy::testing::RawHttpServer;
using namespace std::chrono_literals;

using eddy::testing::contains;

Probe http_probe(std::string url, int status = 200, std::string body = "", std::chrono::milliseconds timeout = 2s) {
  return Probe{"health", HttpProbe{std::move(url), status, std::move(body), timeout}};
}

std::string closed_address() { return "127.0.0.1:" + std::to_string(eddy::testing::free_port()); }

// A listener whose accept queue is full and never drained: a connect to it gets no answer,
// as with a host that drops packets, without needing a network.
class BlackHole {
 public:
  BlackHole() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, 0) != 0)
      throw std::runtime_error("bind/listen failed");
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    for (int i = 0; i < 3; ++i) {  // fill the queue (backlog 0 holds one)
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      fillers_.push_back(fd);
    }
  }
  ~BlackHole() {
    for (int fd : fillers_) ::close(fd);
    ::close(listener_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int listener_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
};

TEST(HttpProbe, Passes) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(200, "{\"status\":\"ok\"}")));
  auto r = run_probe(http_probe(server.url("/healthz"), 200, "\"ok\""), {});
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.probe, "health");
  EXPECT_EQ(r.detail.rfind("HTTP 200 in ", 0), 0u) << r.detail;
}

TEST(HttpProbe, WrongStatusFails) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(500, "boom")));
  auto r = run_probe(http_probe(server.url("/healthz")), {});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.detail, "HTTP 500 (want 200)")) << r.detail;
}

TEST(HttpProbe, ExpectedStatusOtherThan200) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(204, "")));
  auto r = run_probe(http_probe(server.url(), 204), {});
  EXPECT_TRUE(r.ok) << r.detail;
}

TEST(HttpProbe, MissingBodyTextFails) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(200, "{\"status\":\"degraded\"}")));
  auto r = run_probe(http_probe(server.url(), 200, "\"ok\""), {});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.detail, "lacks \"\"ok\"\"")) << r.detail;
}

TEST(HttpProbe, RefusedFails) {
  std::string url = "http://" + closed_address() + "/healthz";
  auto r = run_probe(http_probe(url), {});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.detail, url)) << r.detail;
  EXPECT_TRUE(contains(r.detail, "refused")) << r.detail;
}

TEST(HttpProbe, TimesOut) {
  RawHttpServer server([](RawHttpServer::Connection& c) { c.wait_for_peer_close(); });
  auto r = run_probe(http_probe(server.url(), 200, "", 100ms), {});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.detail, "within 100 ms")) << r.detail;
  EXPECT_GE(r.duration, 100ms);
}

TEST(TcpProbe, Passes) {
  RawHttpServer server([](RawHttpServer::Connection&) {});
  std::string address = "127.0.0.1:" + std::to_string(server.port());
  auto r = run_probe(Probe{"port", TcpProbe{address, 1s}}, {});
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_TRUE(contains(r.detail, address)) << r.detail;
}

TEST(TcpProbe, RefusedFails) {
  std::string address = closed_address();
  auto r = run_probe(Probe{"port", TcpProbe{address, 1s}}, {});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.detail, "connect " + address + ": ")) << r.detail;
}

TEST(TcpProbe, TimesOut) {
  BlackHole hole;
  auto r = run_probe(Probe{"port", TcpProbe{hole.address(), 150ms}}, {});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.detail, hole.address())) << r.detail;
  EXPECT_TRUE(contains(r.detail, "within 150 ms")) << r.detail;
}

TEST(TcpProbe, BadAddressFails) {
  auto r = run_probe(Probe{"port", TcpProbe{"localhost", 1s}}, {});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.detail, "localhost")) << r.detail;
}

TEST(ExecProbe, PassesInTheAppDirectory) {
  eddy::testing::TempDir dir;
  eddy::testing::write_file(dir / "bin/selftest", "#!/bin/sh\ntest -f marker\n");
  eddy::testing::write_file(dir / "marker", "");
  std::filesystem::permissions(dir / "bin/selftest", std::filesystem::perms::owner_all);
  auto r = run_probe(Probe{"selftest", ExecProbe{{"bin/selftest"}, 5s}}, dir.path());
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail.rfind("exit 0 in ", 0), 0u) << r.detail;
}

TEST(ExecProbe, NonZeroExitFailsWithOutputTail) {
  auto r = run_probe(Probe{"selftest", ExecProbe{{"sh", "-c", "echo starting; echo 'sensor offline' >&2; exit 3"}, 5s}},
                     {});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "exit 3: starting sensor offline");
}

TEST(ExecProbe, TimesOut) {
  auto r = run_probe(Probe{"selftest", ExecProbe{{"sh", "-c", "echo waiting; exec sleep 30"}, 100ms}}, {});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.detail, "timed out after 100 ms: waiting")) << r.detail;
}

TEST(ExecProbe, CannotStartFails) {
  eddy::testing::TempDir dir;
  auto r = run_probe(Probe{"selftest", ExecProbe{{"bin/missing"}, 1s}}, dir.path());
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.detail, "bin/missing")) << r.detail;
}

}  // namespace
}  // namespace eddy::ota
