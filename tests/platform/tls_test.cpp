// The TLS server side: ServerConfig loading, and TlsStream served on an Asio loop with the
// project's own https client and curl as the other end.
#include "platform/tls.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <ctime>
#include <mutex>
#include <thread>

#include "platform/http_client.hpp"
#include "platform/tls_stream.hpp"
#include "tests/support/support.hpp"
#include "tests/support/tls_servers.hpp"

namespace eddy::tls {
namespace {

using eddy::testing::contains;
using eddy::testing::TempDir;
using eddy::testing::TestPki;
using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

// An HTTP-ish server on TlsStream: reads a request head and its Content-Length body, answers
// 200 with "you asked: <request line>\n" followed by the body, then sends close_notify.
class TlsEchoServer {
 public:
  explicit TlsEchoServer(std::shared_ptr<const ServerConfig> config)
      : config_(std::move(config)), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TlsEchoServer() {
    io_.stop();
    thread_.join();
  }

  int port() const { return acceptor_.local_endpoint().port(); }
  std::string url(const std::string& path = "/", const std::string& host = "127.0.0.1") const {
    return "https://" + host + ":" + std::to_string(port()) + path;
  }
  int served() const { return served_.load(); }
  int failed() const { return failed_.load(); }
  std::string last_error() const {
    std::lock_guard lock(mutex_);
    return last_error_;
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(tuple_awaitable);
      if (ec) co_return;
      asio::co_spawn(io_, serve(std::make_shared<TlsStream>(std::move(socket), config_)), asio::detached);
    }
  }

  void fail(const std::string& where, std::error_code ec) {
    std::lock_guard lock(mutex_);
    last_error_ = where + ": " + ec.message();
    ++failed_;
  }

  asio::awaitable<void> serve(std::shared_ptr<TlsStream> stream) {
    auto [hs, ignored] = co_await stream->async_handshake(tuple_awaitable);
    if (hs) co_return fail("handshake", hs);
    std::string request;
    std::array<char, 4096> buffer;
    std::size_t head_end = std::string::npos;
    std::size_t length = 0;
    for (;;) {
      if (head_end == std::string::npos && (head_end = request.find("\r\n\r\n")) != std::string::npos) {
        auto cl = request.find("Content-Length: ");
        if (cl != std::string::npos && cl < head_end) length = std::stoul(request.substr(cl + 16));
      }
      if (head_end != std::string::npos && request.size() >= head_end + 4 + length) break;
      auto [ec, n] = co_await stream->async_read_some(asio::buffer(buffer), tuple_awaitable);
      if (ec) co_return fail("read", ec);
      request.append(buffer.data(), n);
    }
    std::string body = "you asked: " + request.substr(0, request.find("\r\n")) + "\n" + request.substr(head_end + 4);
    std::string response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\nConnection: close\r\n\r\n" + body;
    // asio::async_write: TlsStream is an AsyncWriteStream like a socket.
    auto [wec, written] = co_await asio::async_write(*stream, asio::buffer(response), tuple_awaitable);
    if (wec) co_return fail("write", wec);
    auto [sec, zero] = co_await stream->async_shutdown(tuple_awaitable);
    if (sec) co_return fail("shutdown", sec);
    ++served_;
  }

  std::shared_ptr<const ServerConfig> config_;
  asio::io_context io_{1};
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<int> served_{0};
  std::atomic<int> failed_{0};
  mutable std::mutex mutex_;
  std::string last_error_;
};

class TlsServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    pki_ = new TestPki(dir_->path() / "pki");
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete dir_;
  }
  static const TestPki& pki() { return *pki_; }

  std::shared_ptr<const ServerConfig> config(const stdfs::path& client_ca = {}) {
    auto c = ServerConfig::load(pki().server.cert, pki().server.key, client_ca);
    EXPECT_TRUE(c) << c.error().message;
    return c ? *c : nullptr;
  }

  http::RequestOptions trusting() const {
    http::RequestOptions options;
    options.ca_file = pki().ca.cert;
    options.timeout = 5s;
    return options;
  }

  TempDir work_;

 private:
  static TempDir* dir_;
  static TestPki* pki_;
};

TempDir* TlsServer::dir_ = nullptr;
TestPki* TlsServer::pki_ = nullptr;

TEST_F(TlsServer, ConfigErrorsNameTheFile) {
  auto missing = ServerConfig::load(work_.path() / "nope.crt", pki().server.key);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_TRUE(contains(missing.error().message, (work_.path() / "nope.crt").string())) << missing.error().message;

  auto missing_key = ServerConfig::load(pki().server.cert, work_.path() / "nope.key");
  ASSERT_FALSE(missing_key);
  EXPECT_EQ(missing_key.error().code, Errc::not_found);
  EXPECT_TRUE(contains(missing_key.error().message, (work_.path() / "nope.key").string()));

  eddy::testing::write_file(work_.path() / "junk.pem", "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n");
  auto junk = ServerConfig::load(work_.path() / "junk.pem", pki().server.key);
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(junk.error().message, (work_.path() / "junk.pem").string())) << junk.error().message;

  auto junk_key = ServerConfig::load(pki().server.cert, work_.path() / "junk.pem");
  ASSERT_FALSE(junk_key);
  EXPECT_EQ(junk_key.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(junk_key.error().message, (work_.path() / "junk.pem").string())) << junk_key.error().message;

  auto mismatch = ServerConfig::load(pki().server.cert, pki().expired.key);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(mismatch.error().message, pki().expired.key.string())) << mismatch.error().message;
  EXPECT_TRUE(contains(mismatch.error().message, "does not belong")) << mismatch.error().message;
}

TEST_F(TlsServer, ServesTheProjectsOwnClient) {
  TlsEchoServer server(config());
  auto r = http::request(server.url("/hello"), trusting());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "you asked: GET /hello HTTP/1.1\n");

  // A body spanning many TLS records, both ways.
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7) % 26);
  auto options = trusting();
  options.method = "POST";
  options.body = big;
  options.max_body = 2 << 20;
  auto echoed = http::request(server.url("/upload", "localhost"), options);
  ASSERT_TRUE(echoed) << echoed.error().message;
  EXPECT_TRUE(echoed->body == "you asked: POST /upload HTTP/1.1\n" + big);
  EXPECT_TRUE(eddy::testing::wait_until([&] { return server.served() == 2; }));
  EXPECT_EQ(server.failed(), 0) << server.last_error();
}

TEST_F(TlsServer, ServesCurl) {
  TlsEchoServer server(config());
  for (const char* host : {"127.0.0.1", "localhost"}) {
    auto out = eddy::testing::run_ok({"curl", "-sS", "--fail", "--cacert", pki().ca.cert.string(),
                                      server.url("/from-curl", host)});
    EXPECT_EQ(out, "you asked: GET /from-curl HTTP/1.1\n");
  }
  EXPECT_TRUE(eddy::testing::wait_until([&] { return server.served() == 2; }));
  EXPECT_EQ(server.failed(), 0) << server.last_error();
}

TEST_F(TlsServer, ManySequentialAndConcurrentConnections) {
  TlsEchoServer server(config());
  for (int i = 0; i < 40; ++i) {
    auto r = http::request(server.url("/seq/" + std::to_string(i)), trusting());
    ASSERT_TRUE(r) << i << ": " << r.error().message;
    EXPECT_EQ(r->body, "you asked: GET /seq/" + std::to_string(i) + " HTTP/1.1\n");
  }
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        auto path = "/par/" + std::to_string(t) + "/" + std::to_string(i);
        auto r = http::request(server.url(path), trusting());
        if (r && r->body == "you asked: GET " + path + " HTTP/1.1\n") ++good;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(good.load(), 48);
  EXPECT_TRUE(eddy::testing::wait_until([&] { return server.served() == 88; }));
  EXPECT_EQ(server.failed(), 0) << server.last_error();
}

// A raw TCP client on 127.0.0.1:port: send `data`, then read until the server closes.
std::string raw_exchange(int port, const std::string& data) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    (void)!::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);  // the end of what this client says
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[1024];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return got;
}

TEST_F(TlsServer, GarbageIsAnErrorNotACrash) {
  TlsEchoServer server(config());
  raw_exchange(server.port(), "GET / HTTP/1.1\r\nHost: plain\r\n\r\n");
  EXPECT_TRUE(eddy::testing::wait_until([&] { return server.failed() == 1; }));
  EXPECT_TRUE(contains(server.last_error(), "handshake")) << server.last_error();
  raw_exchange(server.port(), std::string("\x16\x03\x01\x00\x05hello", 10));  // a record header, then junk
  raw_exchange(server.port(), std::string("\x16\x03\x03\x40\x00", 5));         // a record that never comes
  raw_exchange(server.port(), std::string(100000, '\xff'));
  EXPECT_TRUE(eddy::testing::wait_until([&] { return server.failed() == 4; })) << server.failed();
  auto r = http::request(server.url("/still-here"), trusting());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
}

TEST_F(TlsServer, ClientCertificatesWhenAsked) {
  TlsEchoServer server(config(pki().ca.cert));
  auto options = trusting();
  options.client_cert = pki().client.cert;
  options.client_key = pki().client.key;
  auto r = http::request(server.url("/mtls"), options);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);

  auto anonymous = http::request(server.url("/mtls"), trusting());
  ASSERT_FALSE(anonymous);
  EXPECT_EQ(anonymous.error().code, Errc::network);

  auto half = trusting();
  half.client_cert = pki().client.cert;
  auto refused = http::request(server.url("/mtls"), half);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::invalid_argument);
}

// Resumption: the echo server issues session tickets (ServerConfig's default), the client keeps
// sessions in a SessionCache, whose counts are mbedTLS's word on each handshake (the ServerHello
// resumed the offered session, or a full handshake followed).

TEST_F(TlsServer, ResumesASavedSessionWithAnAbbreviatedHandshake) {
  TlsEchoServer server(config());
  SessionCache sessions;
  auto options = trusting();
  options.tls_sessions = &sessions;
  auto first = http::request(server.url("/first"), options);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(sessions.counts().full, 1u);
  EXPECT_EQ(sessions.counts().offered, 0u);
  auto kept = sessions.all();
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].host, "127.0.0.1");
  EXPECT_EQ(kept[0].port, server.port());
  EXPECT_EQ(kept[0].ca_file, pki().ca.cert.string());
  EXPECT_FALSE(kept[0].data.empty());

  // Each resumed handshake gets a new ticket, which the next one offers; resume_only is met.
  options.tls_resume_only = true;
  for (int i = 0; i < 3; ++i) {
    auto again = http::request(server.url("/again"), options);
    ASSERT_TRUE(again) << i << ": " << again.error().message;
    EXPECT_EQ(again->body, "you asked: GET /again HTTP/1.1\n");
  }
  auto counts = sessions.counts();
  EXPECT_EQ(counts.offered, 3u);
  EXPECT_EQ(counts.resumed, 3u);
  EXPECT_EQ(counts.full, 1u);
  ASSERT_EQ(sessions.all().size(), 1u);
  EXPECT_NE(sessions.all()[0].data, kept[0].data);
  EXPECT_TRUE(eddy::testing::wait_until([&] { return server.served() == 4; }));
  EXPECT_EQ(server.failed(), 0) << server.last_error();
}

TEST_F(TlsServer, RefusedTicketFallsBackToAFullHandshake) {
  // A session from one server offered to another one with its own ticket key: what a device
  // sees after its hub restarted.
  TlsEchoServer before(config());
  TlsEchoServer after(config());
  SessionCache sessions;
  auto options = trusting();
  options.tls_sessions = &sessions;
  ASSERT_TRUE(http::request(before.url("/before"), options));
  ASSERT_EQ(sessions.all().size(), 1u);
  auto moved = sessions.all()[0];
  moved.port = static_cast<std::uint16_t>(after.port());
  sessions.put(moved);

  auto r = http::request(after.url("/after"), options);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "you asked: GET /after HTTP/1.1\n");
  auto counts = sessions.counts();
  EXPECT_EQ(counts.offered, 1u);
  EXPECT_EQ(counts.resumed, 0u);
  EXPECT_EQ(counts.full, 2u);
  // The new session, with after's ticket, replaced the refused one and resumes.
  auto kept = sessions.find(moved);
  ASSERT_TRUE(kept);
  EXPECT_NE(kept->data, moved.data);
  ASSERT_TRUE(http::request(after.url("/resumed"), options));
  EXPECT_EQ(sessions.counts().resumed, 1u);

  // resume_only: a refused session stops the handshake after the ServerHello, and is dropped.
  sessions.put(moved);
  options.tls_resume_only = true;
  auto refused = http::request(after.url("/refused"), options);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::conflict);
  EXPECT_TRUE(contains(refused.error().message, "127.0.0.1:" + std::to_string(after.port()))) << refused.error().message;
  EXPECT_FALSE(sessions.find(moved));
  EXPECT_EQ(sessions.counts().full, 2u);  // no full handshake ran
  auto none = http::request(after.url("/none"), options);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::conflict);
  EXPECT_TRUE(contains(none.error().message, "no saved session")) << none.error().message;
}

TEST_F(TlsServer, ExpiredTicketFallsBackToAFullHandshake) {
  auto short_lived = ServerConfig::load(pki().server.cert, pki().server.key, {}, 1s);
  ASSERT_TRUE(short_lived) << short_lived.error().message;
  TlsEchoServer server(*short_lived);
  SessionCache sessions;
  auto options = trusting();
  options.tls_sessions = &sessions;
  auto issued = std::time(nullptr);
  ASSERT_TRUE(http::request(server.url("/fresh"), options));
  // mbedTLS refuses a ticket whose session is more than the lifetime (1 s) old.
  EXPECT_TRUE(eddy::testing::wait_until([&] { return std::time(nullptr) >= issued + 3; }, 30s));
  auto r = http::request(server.url("/stale"), options);
  ASSERT_TRUE(r) << r.error().message;
  auto counts = sessions.counts();
  EXPECT_EQ(counts.offered, 1u);
  EXPECT_EQ(counts.resumed, 0u);
  EXPECT_EQ(counts.full, 2u);

  auto too_long = ServerConfig::load(pki().server.cert, pki().server.key, {}, std::chrono::days(30));
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, Errc::invalid_argument);
}

TEST_F(TlsServer, SessionIsOfferedOnlyToItsHostPortAndCaFile) {
  TlsEchoServer server(config());
  TlsEchoServer other(config());
  SessionCache sessions;
  auto options = trusting();
  options.tls_sessions = &sessions;
  ASSERT_TRUE(http::request(server.url("/by-ip"), options));
  // Another name for the same server, another port, the same CA in another file: full ones.
  ASSERT_TRUE(http::request(server.url("/by-name", "localhost"), options));
  ASSERT_TRUE(http::request(other.url("/other-port"), options));
  auto copy = work_.path() / "ca-copy.pem";
  stdfs::copy_file(pki().ca.cert, copy);
  auto copied = options;
  copied.ca_file = copy;
  ASSERT_TRUE(http::request(server.url("/other-ca-file"), copied));
  EXPECT_EQ(sessions.counts().offered, 0u);
  EXPECT_EQ(sessions.counts().full, 4u);
  EXPECT_EQ(sessions.all().size(), 4u);

  // The CA file replaced (new trust, same path): its older session is not offered.
  eddy::testing::write_file(copy, eddy::testing::read_file(pki().ca.cert) + "\n");
  ASSERT_TRUE(http::request(server.url("/replaced-ca-file"), copied));
  EXPECT_EQ(sessions.counts().offered, 0u);
  // And the first one still resumes.
  ASSERT_TRUE(http::request(server.url("/by-ip-again"), options));
  EXPECT_EQ(sessions.counts().offered, 1u);
  EXPECT_EQ(sessions.counts().resumed, 1u);
}

TEST_F(TlsServer, DeadlineClosesThePendingHandshake) {
  asio::io_context io{1};
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  int port = acceptor.local_endpoint().port();
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // connects, says nothing
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto stream = std::make_unique<TlsStream>(acceptor.accept(), config());
  std::error_code result;
  bool done = false;
  stream->async_handshake([&](std::error_code ec, std::size_t) {
    result = ec;
    done = true;
  });
  asio::steady_timer timer(io, 100ms);
  timer.async_wait([&](std::error_code) { stream->socket().close(); });
  io.run_for(5s);
  EXPECT_TRUE(done);
  EXPECT_EQ(result, asio::error::operation_aborted);

  // Destroyed with a read pending: the handler still runs, with operation_aborted.
  auto second = std::make_unique<TlsStream>(asio::ip::tcp::socket(io), config());
  bool aborted = false;
  std::array<char, 16> buffer;
  second->async_read_some(asio::buffer(buffer), [&](std::error_code ec, std::size_t) {
    aborted = ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor;
  });
  second.reset();
  io.restart();
  io.run_for(5s);
  EXPECT_TRUE(aborted);
  ::close(client);
}

}  // namespace
}  // namespace eddy::tls
