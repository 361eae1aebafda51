// The HTTP/1.1 server (platform/http_server.hpp) on a real EventLoop thread, driven by the
// project's http client, curl, and raw sockets; plain and TLS (certificates by openssl).
#include "platform/http_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "platform/http_client.hpp"
#include "tests/support/loop_thread.hpp"
#include "tests/support/support.hpp"
#include "tests/support/tls_servers.hpp"

namespace eddy::http {
namespace {

using namespace std::chrono_literals;
using eddy::testing::contains;
using eddy::testing::LoopThread;
using eddy::testing::TempDir;
using eddy::testing::TestPki;

// A blocking TCP client for what the http client does not do (keep-alive, pipelining, raw bytes).
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One response (head and Content-Length body); empty when the connection closed first.
  std::string read_response() {
    for (;;) {
      auto end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head = buffer_.substr(0, end + 4);
        std::string lower = head;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        std::size_t length = 0;
        auto cl = lower.find("content-length: ");
        if (cl != std::string::npos) length = std::stoul(lower.substr(cl + 16));
        if (lower.starts_with("http/1.1 1") || contains(lower, "\r\nx-head: 1")) length = 0;
        if (buffer_.size() >= end + 4 + length) {
          std::string response = buffer_.substr(0, end + 4 + length);
          buffer_.erase(0, end + 4 + length);
          return response;
        }
      }
      if (!fill()) return {};
    }
  }

  // True when the server closes the connection (EOF or reset) within the receive timeout,
  // discarding anything it still sends.
  bool closed_by_server() {
    buffer_.clear();
    while (fill()) buffer_.clear();
    return eof_;
  }

  void set_receive_timeout(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

 private:
  bool fill() {
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    eof_ = n == 0 || errno == ECONNRESET;
    return false;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

std::string get_request(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

int status_of(const std::string& response) {
  if (response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string body_of(const std::string& response) {
  auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

// Answers "METHOD path query peer body-size" and echoes the body behind a newline, with
// headers telling what the server saw.
void echo(ServerRequest request, std::function<void(ServerResponse)> respond) {
  ServerResponse response;
  response.headers["Content-Type"] = "text/plain";
  response.headers["X-Peer"] = request.peer;
  if (request.method == "HEAD") response.headers["X-Head"] = "1";
  auto te = request.headers.find("transfer-encoding");
  if (te != request.headers.end()) response.headers["X-Transfer-Encoding"] = te->second;
  response.body = request.method + " " + request.path + " " + request.query + " " +
                  std::to_string(request.body.size()) + "\n" + request.body;
  respond(std::move(response));
}

class HttpServerTest : public ::testing::TestWithParam<bool> {
 protected:
  static TestPki& pki() {
    static TempDir* dir = new TempDir();
    static TestPki* p = new TestPki(dir->path());
    return *p;
  }

  bool tls() const { return GetParam(); }

  void start(ServerOptions options = {}, RequestHandler handler = echo) {
    if (tls()) {
      options.tls_cert = pki().server.cert;
      options.tls_key = pki().server.key;
    }
    auto started = loop_.call([&] { return Server::start(loop_.loop(), options, std::move(handler)); });
    ASSERT_TRUE(started) << started.error().message;
    server_ = std::move(*started);
    port_ = server_->port();
  }

  void stop_server() {
    loop_.call([&] {
      server_.reset();
      return 0;
    });
  }

  void TearDown() override {
    if (server_) stop_server();
  }

  std::string url(const std::string& target = "/") const {
    return std::string(tls() ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + target;
  }

  RequestOptions client_options() const {
    RequestOptions o;
    o.ca_file = pki().ca.cert;
    return o;
  }

  std::vector<std::string> curl(std::vector<std::string> args) const {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "20"};
    if (tls()) {
      argv.push_back("--cacert");
      argv.push_back(pki().ca.cert.string());
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  std::size_t connections() {
    return loop_.call([&] { return server_->connection_count(); });
  }

  LoopThread loop_;
  std::unique_ptr<Server> server_;
  int port_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Transport, HttpServerTest, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "tls" : "plain"; });

TEST_P(HttpServerTest, AnswersGetPostAndHeadWithDateAndContentLength) {
  start();
  auto get = request(url("/a/b?x=1&y=2"), client_options());
  ASSERT_TRUE(get) << get.error().message;
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "GET /a/b x=1&y=2 0\n");
  EXPECT_TRUE(get->headers.contains("date"));
  EXPECT_EQ(get->headers["content-length"], std::to_string(get->body.size()));
  EXPECT_TRUE(get->headers["x-peer"].starts_with("127.0.0.1:"));

  auto options = client_options();
  options.method = "POST";
  options.body = R"({"device":"pi-0001","state":"healthy"})";
  options.headers["Content-Type"] = "application/json";
  auto post = request(url("/v1/reports"), options);
  ASSERT_TRUE(post) << post.error().message;
  EXPECT_EQ(post->body, "POST /v1/reports  " + std::to_string(options.body.size()) + "\n" + options.body);

  auto head = testing::run(curl({"-I", url("/h")}));
  EXPECT_EQ(head.exit_code, 0) << head.output;
  EXPECT_TRUE(contains(head.output, "HTTP/1.1 200 OK")) << head.output;
  EXPECT_TRUE(contains(head.output, "Content-Length: 11")) << head.output;  // "HEAD /h  0\n"
  EXPECT_TRUE(contains(head.output, "Date: ")) << head.output;
}

TEST_P(HttpServerTest, CurlReusesOneConnectionForSeveralRequests) {
  start();
  auto result = testing::run(curl({"-w", "[%{num_connects}]", url("/1"), url("/2"), url("/3"), url("/4")}));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "GET /4  0")) << result.output;
  // num_connects counts new connections per transfer: one for the first, none after.
  EXPECT_TRUE(contains(result.output, "[1]GET /2  0\n[0]GET /3  0\n[0]GET /4  0\n[0]")) << result.output;
}

TEST_P(HttpServerTest, ChunkedUploadAndExpectContinue) {
  start(ServerOptions{.max_body = 4 << 20});
  TempDir dir;
  std::string payload(2 << 20, 'x');  // curl sends "Expect: 100-continue" above 1 MiB
  testing::write_file(dir / "payload", payload);
  auto big = testing::run(curl({"-v", "--data-binary", "@" + (dir / "payload").string(), url("/big")}));
  ASSERT_EQ(big.exit_code, 0) << big.output.substr(0, 2000);
  EXPECT_TRUE(contains(big.output, "Expect: 100-continue")) << big.output.substr(0, 2000);
  EXPECT_TRUE(contains(big.output, "HTTP/1.1 100 Continue")) << big.output.substr(0, 2000);
  EXPECT_TRUE(contains(big.output, "POST /big  " + std::to_string(payload.size()) + "\n")) << big.output.substr(0, 2000);

  testing::write_file(dir / "small", "hello chunks");
  auto chunked = testing::run(curl({"-H", "Transfer-Encoding: chunked", "--data-binary",
                                    "@" + (dir / "small").string(), url("/chunked")}));
  ASSERT_EQ(chunked.exit_code, 0) << chunked.output;
  EXPECT_EQ(chunked.output, "POST /chunked  12\nhello chunks");
}

TEST_P(HttpServerTest, BodyOverTheLimitIs413BeforeItIsSent) {
  start(ServerOptions{.max_body = 1000});
  TempDir dir;
  testing::write_file(dir / "payload", std::string(5000, 'x'));
  auto result = testing::run(curl({"-H", "Expect: 100-continue", "--data-binary", "@" + (dir / "payload").string(),
                                   "-w", "[%{http_code}]", url("/big")}));
  EXPECT_TRUE(contains(result.output, "413 Content Too Large: the body (5000 bytes) exceeds the limit of 1000 bytes"))
      << result.output;
  EXPECT_TRUE(contains(result.output, "[413]")) << result.output;
}

TEST_P(HttpServerTest, RespondCalledLaterFromAnotherThread) {
  std::mutex mutex;
  std::vector<std::thread> threads;
  start({}, [&](ServerRequest request, std::function<void(ServerResponse)> respond) {
    std::lock_guard lock(mutex);
    threads.emplace_back([request, respond] {
      std::this_thread::sleep_for(50ms);
      respond(ServerResponse{202, {}, "later " + request.path});
      respond(ServerResponse{500, {}, "ignored"});
    });
  });
  auto response = request(url("/slow"), client_options());
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 202);
  EXPECT_EQ(response->body, "later /slow");
  std::lock_guard lock(mutex);
  for (auto& t : threads) t.join();
}

TEST_P(HttpServerTest, HandlerThatDropsRespondOrThrowsGives500) {
  start({}, [](ServerRequest request, std::function<void(ServerResponse)>) {
    if (request.path == "/throw") throw std::runtime_error("boom");
  });
  auto dropped = request(url("/drop"), client_options());
  ASSERT_TRUE(dropped) << dropped.error().message;
  EXPECT_EQ(dropped->status, 500);
  auto thrown = request(url("/throw"), client_options());
  ASSERT_TRUE(thrown) << thrown.error().message;
  EXPECT_EQ(thrown->status, 500);
}

TEST_P(HttpServerTest, ManyConcurrentClients) {
  start();
  // 200 connections x 10 requests from 4 threads, through curl (keep-alive within each curl).
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < 50; ++c) {
        std::vector<std::string> args = {"-w", "[%{http_code}]\n"};
        for (int r = 0; r < 10; ++r) args.push_back(url("/t" + std::to_string(t) + "/c" + std::to_string(c)));
        auto result = testing::run(curl(args));
        std::size_t pos = 0;
        while ((pos = result.output.find("[200]", pos)) != std::string::npos) {
          ++ok;
          ++pos;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 2000);
}

TEST_P(HttpServerTest, ServerDestroyedWithConnectionsOpen) {
  std::promise<std::function<void(ServerResponse)>> pending;
  bool first = true;
  start({}, [&](ServerRequest, std::function<void(ServerResponse)> respond) {
    if (first) pending.set_value(std::move(respond));
    first = false;
  });
  auto waiting = std::async(std::launch::async, [&] { return request(url("/never"), client_options()); });
  auto respond = pending.get_future().get();
  ASSERT_TRUE(testing::wait_until([&] { return connections() == 1; }));
  stop_server();
  auto result = waiting.get();
  EXPECT_FALSE(result);
  respond(ServerResponse{});  // after the server is gone: nothing happens
}

TEST_P(HttpServerTest, BadOptionsAreRefused) {
  auto try_start = [&](ServerOptions options) {
    return loop_.call([&] { return Server::start(loop_.loop(), options, echo); });
  };
  auto bad_listen = try_start(ServerOptions{.listen = "nonsense"});
  ASSERT_FALSE(bad_listen);
  EXPECT_EQ(bad_listen.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(bad_listen.error().message, "nonsense"));
  auto host = try_start(ServerOptions{.listen = "example.org:80"});
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code, Errc::invalid_argument);
  ServerOptions half;
  half.tls_cert = pki().server.cert;
  auto half_tls = try_start(half);
  ASSERT_FALSE(half_tls);
  EXPECT_EQ(half_tls.error().code, Errc::invalid_argument);
  ServerOptions missing;
  missing.tls_cert = "/nonexistent/cert.pem";
  missing.tls_key = "/nonexistent/key.pem";
  auto missing_tls = try_start(missing);
  ASSERT_FALSE(missing_tls);
  EXPECT_TRUE(contains(missing_tls.error().message, "/nonexistent/cert.pem")) << missing_tls.error().message;
  start();
  auto taken = try_start(ServerOptions{.listen = "127.0.0.1:" + std::to_string(port_)});
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, Errc::network);
  EXPECT_TRUE(contains(taken.error().message, std::to_string(port_))) << taken.error().message;
}

// Raw-socket tests (plain only: they speak bytes on the wire).
class PlainHttpServerTest : public HttpServerTest {};
INSTANTIATE_TEST_SUITE_P(Plain, PlainHttpServerTest, ::testing::Values(false),
                         [](const auto&) { return "plain"; });

TEST_P(PlainHttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  std::set<std::string> peers;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(client.send(get_request("/k" + std::to_string(i))));
    auto response = client.read_response();
    ASSERT_EQ(status_of(response), 200) << response;
    EXPECT_EQ(body_of(response), "GET /k" + std::to_string(i) + "  0\n");
    EXPECT_FALSE(contains(response, "Connection: close"));
    auto at = response.find("X-Peer: ");
    peers.insert(response.substr(at, response.find("\r\n", at) - at));
  }
  EXPECT_EQ(peers.size(), 1u);
  EXPECT_EQ(connections(), 1u);

  ASSERT_TRUE(client.send(get_request("/last", "Connection: close\r\n")));
  auto last = client.read_response();
  EXPECT_EQ(status_of(last), 200);
  EXPECT_TRUE(contains(last, "Connection: close\r\n")) << last;
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_TRUE(testing::wait_until([&] { return connections() == 0; }));
}

TEST_P(PlainHttpServerTest, Http10ClosesUnlessKeepAliveIsAsked) {
  start();
  RawClient keep(port_);
  ASSERT_TRUE(keep.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto first = keep.read_response();
  EXPECT_TRUE(contains(first, "Connection: keep-alive\r\n")) << first;
  ASSERT_TRUE(keep.send("GET /b HTTP/1.0\r\n\r\n"));
  auto second = keep.read_response();
  EXPECT_EQ(body_of(second), "GET /b  0\n");
  EXPECT_TRUE(contains(second, "Connection: close\r\n")) << second;
  EXPECT_TRUE(keep.closed_by_server());
}

TEST_P(PlainHttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  std::atomic<int> calls{0};
  std::vector<std::thread> threads;
  std::mutex mutex;
  // The first answer comes late from another thread: the later ones must still follow it.
  start({}, [&](ServerRequest request, std::function<void(ServerResponse)> respond) {
    if (calls++ == 0) {
      std::lock_guard lock(mutex);
      threads.emplace_back([request, respond] {
        std::this_thread::sleep_for(100ms);
        echo(request, respond);
      });
      return;
    }
    echo(std::move(request), std::move(respond));
  });
  RawClient client(port_);
  std::string batch;
  for (int i = 0; i < 20; ++i) batch += get_request("/p" + std::to_string(i));
  batch += "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
  ASSERT_TRUE(client.send(batch));
  for (int i = 0; i < 20; ++i) {
    auto response = client.read_response();
    EXPECT_EQ(body_of(response), "GET /p" + std::to_string(i) + "  0\n") << response;
  }
  EXPECT_EQ(body_of(client.read_response()), "POST /post  5\nhello");
  std::lock_guard lock(mutex);
  for (auto& t : threads) t.join();
}

TEST_P(PlainHttpServerTest, ErrorsAreAnsweredAndTheConnectionClosed) {
  start(ServerOptions{.max_body = 100, .max_header_bytes = 1024});
  struct Case {
    std::string request;
    int status;
    std::string detail;
  };
  std::vector<Case> cases = {
      {"GARBAGE\r\n\r\n", 400, "malformed request"},
      {"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "malformed request"},
      {"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400, "malformed request"},
      {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413, "101 bytes"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + std::string(100, 'a') + "\r\n1\r\nb\r\n0\r\n\r\n",
       413, "limit of 100 bytes"},
      {"GET / HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n", 431, "1024 bytes"},
      {"GET / HTTP/2.0\r\n\r\n", 505, "HTTP/1.x"},
      {"GET / HTTP/1.1\r\nExpect: something\r\n\r\n", 417, "something"},
  };
  for (const auto& c : cases) {
    RawClient client(port_);
    ASSERT_TRUE(client.send(c.request));
    auto response = client.read_response();
    EXPECT_EQ(status_of(response), c.status) << c.request.substr(0, 80) << "\n" << response;
    EXPECT_TRUE(contains(response, "Connection: close\r\n")) << response;
    EXPECT_TRUE(contains(body_of(response), c.detail)) << response;
    EXPECT_TRUE(client.closed_by_server()) << c.request.substr(0, 80);
  }
  // A valid request before the garbage is answered first.
  RawClient client(port_);
  ASSERT_TRUE(client.send(get_request("/ok") + "BAD\r\n\r\n"));
  EXPECT_EQ(status_of(client.read_response()), 200);
  EXPECT_EQ(status_of(client.read_response()), 400);
  EXPECT_TRUE(client.closed_by_server());
}

TEST_P(PlainHttpServerTest, SlowlorisIsClosedAtTheHeaderTimeout) {
  start(ServerOptions{.header_timeout = 500ms, .idle_timeout = 5000ms});
  RawClient client(port_);
  std::string request = get_request("/slow", "X-Filler: " + std::string(100, 'a') + "\r\n");
  auto started = std::chrono::steady_clock::now();
  std::size_t sent = 0;
  while (sent < request.size() && client.send(request.substr(sent, 1))) {
    ++sent;
    std::this_thread::sleep_for(50ms);  // a byte every 50 ms: never a whole head
    if (std::chrono::steady_clock::now() - started > 5s) break;
  }
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_LT(sent, request.size());
  EXPECT_GE(elapsed, 450ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_TRUE(testing::wait_until([&] { return connections() == 0; }));
}

TEST_P(PlainHttpServerTest, IdleConnectionsAreClosed) {
  start(ServerOptions{.header_timeout = 5000ms, .idle_timeout = 300ms});
  RawClient client(port_);
  ASSERT_TRUE(client.send(get_request("/")));
  EXPECT_EQ(status_of(client.read_response()), 200);
  auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.closed_by_server());
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 3s);
}

TEST_P(PlainHttpServerTest, ConnectionsBeyondTheLimitAreRefused) {
  start(ServerOptions{.max_connections = 2});
  RawClient a(port_), b(port_);
  ASSERT_TRUE(a.send(get_request("/a")));
  ASSERT_TRUE(b.send(get_request("/b")));
  EXPECT_EQ(status_of(a.read_response()), 200);
  EXPECT_EQ(status_of(b.read_response()), 200);
  RawClient c(port_);
  ASSERT_TRUE(c.send(get_request("/c")));
  auto refused = c.read_response();
  EXPECT_EQ(status_of(refused), 503) << refused;
  EXPECT_TRUE(contains(refused, "connection limit")) << refused;
  EXPECT_TRUE(c.closed_by_server());
  // Once one closes, new connections are served again.
  ASSERT_TRUE(a.send(get_request("/bye", "Connection: close\r\n")));
  EXPECT_EQ(status_of(a.read_response()), 200);
  ASSERT_TRUE(testing::wait_until([&] { return connections() < 2; }));
  RawClient d(port_);
  ASSERT_TRUE(d.send(get_request("/d")));
  EXPECT_EQ(status_of(d.read_response()), 200);
}

TEST_P(PlainHttpServerTest, ServerDestroyedWhileAClientSendsAHead) {
  start();
  RawClient client(port_);
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost:"));
  ASSERT_TRUE(testing::wait_until([&] { return connections() == 1; }));
  stop_server();
  EXPECT_TRUE(client.closed_by_server());
}

}  // namespace
}  // namespace eddy::http
