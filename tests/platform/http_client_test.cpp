#include "platform/http_client.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "platform/process.hpp"
#include "tests/support/raw_http_server.hpp"
#include "tests/support/support.hpp"

namespace eddy::http {
namespace {

using eddy::testing::RawHttpServer;
using namespace std::chrono_literals;

using eddy::testing::contains;

TEST(ParseUrl, SplitsHostPortAndTarget) {
  auto u = parse_url("http://127.0.0.1:8080/healthz?full=1#frag");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/healthz?full=1");

  auto d = parse_url("HTTP://example.com");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->scheme, "http");
  EXPECT_EQ(d->port, 80);
  EXPECT_EQ(d->target, "/");

  auto s = parse_url("https://[::1]/p");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->host, "::1");
  EXPECT_EQ(s->port, 443);
}

TEST(ParseUrl, RefusesWhatItCannotUse) {
  for (const char* bad : {"", "not a url", "ftp://example.com/x", "http://user:pw@example.com/", "/relative/path",
                          "http://example.com:0/"}) {
    auto u = parse_url(bad);
    ASSERT_FALSE(u) << bad;
    EXPECT_EQ(u.error().code, Errc::invalid_argument) << bad;
    EXPECT_TRUE(contains(u.error().message, bad)) << u.error().message;
  }
}

TEST(HttpRequest, ContentLengthResponse) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(200, "hello", "X-Thing: One\r\nX-Thing: Two\r\n")));
  auto r = request(server.url("/a/b?c=d"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->headers.at("content-length"), "5");
  EXPECT_EQ(r->headers.at("x-thing"), "One, Two");
  auto sent = server.requests().at(0);
  EXPECT_EQ(sent.rfind("GET /a/b?c=d HTTP/1.1\r\n", 0), 0u) << sent;
  EXPECT_TRUE(contains(sent, "Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n")) << sent;
  EXPECT_TRUE(contains(sent, "Connection: close\r\n")) << sent;
}

TEST(HttpRequest, ChunkedResponse) {
  RawHttpServer server(RawHttpServer::reply(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"));
  auto r = request(server.url());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "hello, world");
}

TEST(HttpRequest, BodyEndsWithTheConnection) {
  RawHttpServer server(RawHttpServer::reply("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"));
  auto r = request(server.url());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "until the end");
}

TEST(HttpRequest, NotFoundIsAResponse) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(404, "no such thing")));
  auto r = request(server.url("/missing"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "no such thing");
}

TEST(HttpRequest, PostSendsItsBody) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(201, "")));
  RequestOptions options;
  options.method = "POST";
  options.body = R"({"state":"committed"})";
  options.headers["Content-Type"] = "application/json";
  auto r = request(server.url("/reports"), options);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 201);
  auto sent = server.requests().at(0);
  EXPECT_EQ(sent.rfind("POST /reports HTTP/1.1\r\n", 0), 0u) << sent;
  EXPECT_TRUE(contains(sent, "Content-Length: 21\r\n")) << sent;
  EXPECT_TRUE(contains(sent, "Content-Type: application/json\r\n")) << sent;
  EXPECT_TRUE(contains(sent, "\r\n\r\n{\"state\":\"committed\"}")) << sent;
}

TEST(HttpRequest, HeadHasNoBody) {
  RawHttpServer server(RawHttpServer::reply("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"));
  RequestOptions options;
  options.method = "HEAD";
  auto r = request(server.url(), options);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "");
  EXPECT_EQ(r->headers.at("content-length"), "1000");
}

TEST(HttpRequest, RefusesHeaderInjection) {
  RequestOptions options;
  options.headers["X-Evil"] = "a\r\nHost: elsewhere";
  auto r = request("http://127.0.0.1:1/", options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

TEST(HttpRequest, TruncatedContentLength) {
  RawHttpServer server(RawHttpServer::reply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"));
  auto r = request(server.url("/p"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, "truncated: got 5 of 10 bytes")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, server.url("/p"))) << r.error().message;
}

TEST(HttpRequest, TruncatedChunked) {
  RawHttpServer server(RawHttpServer::reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
  auto r = request(server.url());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, "truncated")) << r.error().message;
}

TEST(HttpRequest, CloseBeforeAnyResponse) {
  RawHttpServer server([](RawHttpServer::Connection& c) { c.read_request(); });
  auto r = request(server.url());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, server.url())) << r.error().message;
}

TEST(HttpRequest, MalformedResponse) {
  RawHttpServer server(RawHttpServer::reply("SMTP ready\r\n\r\n"));
  auto r = request(server.url());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, "malformed response")) << r.error().message;
}

TEST(HttpRequest, BadChunkSizeIsMalformed) {
  RawHttpServer server(RawHttpServer::reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"));
  auto r = request(server.url());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
}

TEST(HttpRequest, RedirectIsNotFollowed) {
  RawHttpServer server(
      RawHttpServer::reply(RawHttpServer::response(302, "", "Location: http://mirror.example/payload.tar.zst\r\n")));
  auto r = request(server.url());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, "http://mirror.example/payload.tar.zst")) << r.error().message;
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpRequest, ServerThatNeverAnswersTimesOut) {
  RawHttpServer server([](RawHttpServer::Connection& c) { c.wait_for_peer_close(); });
  RequestOptions options;
  options.timeout = 200ms;
  auto r = request(server.url(), options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::timeout);
  EXPECT_TRUE(contains(r.error().message, server.url())) << r.error().message;
}

TEST(HttpRequest, TimeoutCoversTheWholeExchange) {
  // Bytes keep coming, each well within the timeout, but the response never completes.
  RawHttpServer server([](RawHttpServer::Connection& c) {
    if (!c.read_request() || !c.write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")) return;
    for (int i = 0; i < 200; ++i) {
      if (!c.write("x")) return;
      std::this_thread::sleep_for(20ms);
    }
  });
  RequestOptions options;
  options.timeout = 300ms;
  auto r = request(server.url(), options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::timeout);
}

TEST(HttpRequest, BodyBeyondMaxBodyIsTooLarge) {
  std::string big(3 << 20, 'b');
  RawHttpServer announced(RawHttpServer::reply(RawHttpServer::response(200, big)));
  RequestOptions options;
  options.max_body = 1 << 20;
  auto r = request(announced.url(), options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::too_large);

  // Without a Content-Length the limit is found while reading.
  RawHttpServer unannounced(RawHttpServer::reply("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + big));
  auto u = request(unannounced.url(), options);
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, Errc::too_large);
}

TEST(HttpRequest, RefusedConnectionNamesTheUrl) {
  std::string url = "http://127.0.0.1:" + std::to_string(eddy::testing::free_port()) + "/healthz";
  auto r = request(url);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, url)) << r.error().message;
}

// https:// is served by TLS now (tests/platform/https_client_test.cpp); a closed port is
// still a connect error before any handshake.
TEST(HttpRequest, HttpsToAClosedPortIsANetworkError) {
  auto r = request("https://127.0.0.1:1/");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, "127.0.0.1:1")) << r.error().message;
}

TEST(HttpGetStream, DeliversTheBodyInChunks) {
  std::string body;
  for (int i = 0; body.size() < (3u << 20); ++i) body += std::to_string(i) + ",";
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(200, body)));
  std::string got;
  int chunks = 0;
  std::size_t largest = 0;
  auto status = get_stream(server.url("/big"), [&](std::string_view chunk) -> Status {
    got += chunk;
    ++chunks;
    largest = std::max(largest, chunk.size());
    return {};
  });
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(*status, 200);
  EXPECT_EQ(got, body);
  EXPECT_GT(chunks, 1);
  EXPECT_LE(largest, 64u * 1024);
}

TEST(HttpGetStream, ChunkedBody) {
  RawHttpServer server(RawHttpServer::reply(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"));
  std::string got;
  auto status = get_stream(server.url(), [&](std::string_view chunk) -> Status {
    got += chunk;
    return {};
  });
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(got, "abcdef");
}

TEST(HttpGetStream, NonSuccessStatusIsAnError) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(404, "not here")));
  bool called = false;
  auto status = get_stream(server.url("/gone"), [&](std::string_view) -> Status {
    called = true;
    return {};
  });
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, Errc::network);
  EXPECT_TRUE(contains(status.error().message, "404")) << status.error().message;
  EXPECT_TRUE(contains(status.error().message, server.url("/gone"))) << status.error().message;
  EXPECT_FALSE(called);
}

TEST(HttpGetStream, CallbackErrorAborts) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(200, std::string(1 << 20, 'z'))));
  int calls = 0;
  auto status = get_stream(server.url(), [&](std::string_view) -> Status {
    ++calls;
    return make_error(Errc::no_space, "slot full");
  });
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, Errc::no_space);
  EXPECT_EQ(calls, 1);
}

TEST(HttpGetStream, TruncatedBody) {
  RawHttpServer server(RawHttpServer::reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"));
  auto status = get_stream(server.url(), [](std::string_view) -> Status { return {}; });
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, Errc::network);
  EXPECT_TRUE(contains(status.error().message, "truncated: got 10 of 100 bytes")) << status.error().message;
}

TEST(HttpGetStream, TimeoutIsPerReadNotPerTransfer) {
  // 20 pieces 40 ms apart take longer than the 400 ms timeout in total, but no gap comes near it.
  RawHttpServer server([](RawHttpServer::Connection& c) {
    if (!c.read_request() || !c.write("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")) return;
    for (int i = 0; i < 20; ++i) {
      std::this_thread::sleep_for(40ms);
      if (!c.write("x")) return;
    }
  });
  RequestOptions options;
  options.timeout = 400ms;
  std::string got;
  auto status = get_stream(server.url(), [&](std::string_view chunk) -> Status {
    got += chunk;
    return {};
  }, options);
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(got, std::string(20, 'x'));
}

TEST(HttpGetStream, StalledServerTimesOut) {
  RawHttpServer server([](RawHttpServer::Connection& c) {
    if (c.read_request() && c.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")) c.wait_for_peer_close();
  });
  RequestOptions options;
  options.timeout = 200ms;
  auto status = get_stream(server.url(), [](std::string_view) -> Status { return {}; }, options);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, Errc::timeout);
  EXPECT_TRUE(contains(status.error().message, server.url())) << status.error().message;
}

TEST(HttpOpen, ReportsContentLength) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(200, "abcdef")));
  auto reader = open(server.url());
  ASSERT_TRUE(reader) << reader.error().message;
  EXPECT_EQ((*reader)->status(), 200);
  ASSERT_TRUE((*reader)->content_length());
  EXPECT_EQ(*(*reader)->content_length(), 6u);
  char buf[4];
  std::string got;
  for (;;) {
    auto n = (*reader)->read_body(buf, sizeof buf);
    ASSERT_TRUE(n) << n.error().message;
    if (*n == 0) break;
    got.append(buf, *n);
  }
  EXPECT_EQ(got, "abcdef");
}

// Python's http.server: a real server that the client did not grow up with.
TEST(HttpRequest, AgainstPythonHttpServer) {
  eddy::testing::TempDir dir;
  std::string content;
  for (int i = 0; i < 20000; ++i) content += "line " + std::to_string(i) + "\n";
  eddy::testing::write_file(dir / "payload.txt", content);
  int port = eddy::testing::free_port();
  int log_fd = ::open((dir / "server.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(log_fd, 0);
  auto pid = process::spawn({"python3", "-m", "http.server", std::to_string(port), "--bind", "127.0.0.1",
                             "--directory", dir.path().string()},
                            dir.path(), {}, log_fd);
  ::close(log_fd);
  ASSERT_TRUE(pid) << pid.error().message;
  std::string address = "127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(eddy::testing::wait_until([&] { return check_tcp(address, 200ms).has_value(); }));
  auto r = request("http://" + address + "/payload.txt");
  auto missing = request("http://" + address + "/nope.txt");
  process::terminate(*pid, 2s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, content);
  ASSERT_TRUE(missing) << missing.error().message;
  EXPECT_EQ(missing->status, 404);
}

TEST(CheckTcp, ConnectsRefusesAndValidates) {
  RawHttpServer server([](RawHttpServer::Connection&) {});
  EXPECT_TRUE(check_tcp("127.0.0.1:" + std::to_string(server.port()), 1s));
  EXPECT_TRUE(check_tcp("localhost:" + std::to_string(server.port()), 1s));

  std::string closed = "127.0.0.1:" + std::to_string(eddy::testing::free_port());
  auto refused = check_tcp(closed, 1s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::network);
  EXPECT_TRUE(contains(refused.error().message, closed)) << refused.error().message;

  for (const char* bad : {"127.0.0.1", "127.0.0.1:", ":80", "host:99999", "host:http", "[::1"}) {
    auto s = check_tcp(bad, 1s);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().code, Errc::invalid_argument) << bad;
  }
}

}  // namespace
}  // namespace eddy::http
