#include "ota/payload.hpp"

#include <gtest/gtest.h>

#include "tests/support/raw_http_server.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using eddy::testing::RawHttpServer;
using namespace std::chrono_literals;

using eddy::testing::contains;

// The digest as the real tool computes it, so the test does not trust the code under test.
std::string sha256_of(const std::string& data) {
  eddy::testing::TempDir dir;
  eddy::testing::write_file(dir / "data", data);
  auto out = eddy::testing::run_ok({"sha256sum", (dir / "data").string()});
  return out.substr(0, 64);
}

std::string some_bytes(std::size_t size) {
  std::string out;
  out.reserve(size);
  std::uint32_t x = 12345;
  while (out.size() < size) {
    x = x * 1103515245u + 12345u;
    out += static_cast<char>(x >> 24);
  }
  return out;
}

// Counts how many bytes the stream under test asked for, to check it never reads past limit+1.
class CountingStream final : public ByteStream {
 public:
  explicit CountingStream(std::string data, std::size_t* asked) : inner_(std::move(data)), asked_(asked) {}
  Expected<std::size_t> read(char* buffer, std::size_t size) override {
    auto n = inner_.read(buffer, size);
    if (n) *asked_ += *n;
    return n;
  }

 private:
  MemoryStream inner_;
  std::size_t* asked_;
};

class FailingStream final : public ByteStream {
 public:
  Expected<std::size_t> read(char*, std::size_t) override { return make_error(Errc::network, "connection reset"); }
};

// Read everything; the error if any.
Expected<std::string> drain(ByteStream& stream, std::size_t chunk = 4096) {
  std::string out;
  std::string buffer(chunk, '\0');
  for (;;) {
    auto n = stream.read(buffer.data(), buffer.size());
    if (!n) return std::unexpected(n.error());
    if (*n == 0) return out;
    out.append(buffer.data(), *n);
  }
}

TEST(VerifyingStream, PassesGoodPayloadThrough) {
  std::string data = some_bytes(100000);
  VerifyingStream stream(std::make_unique<MemoryStream>(data), sha256_of(data), data.size(), "app 1.0");
  auto got = drain(stream, 777);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, data);
  EXPECT_EQ(stream.bytes_read(), data.size());
  // At the end it stays at the end.
  char c;
  auto again = stream.read(&c, 1);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
}

TEST(VerifyingStream, AcceptsUppercaseDigest) {
  std::string data = "hello";
  std::string digest = sha256_of(data);
  for (auto& ch : digest) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  VerifyingStream stream(std::make_unique<MemoryStream>(data), digest, data.size(), "app");
  EXPECT_TRUE(drain(stream));
}

TEST(VerifyingStream, EmptyPayload) {
  VerifyingStream stream(std::make_unique<MemoryStream>(""), sha256_of(""), 0, "empty");
  auto got = drain(stream);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, "");
}

TEST(VerifyingStream, DigestMismatch) {
  std::string data = some_bytes(5000);
  std::string other = sha256_of("something else");
  VerifyingStream stream(std::make_unique<MemoryStream>(data), other, data.size(), "sensor-app 1.4.2");
  auto got = drain(stream);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::digest_mismatch);
  EXPECT_TRUE(contains(got.error().message, "payload sensor-app 1.4.2")) << got.error().message;
  EXPECT_TRUE(contains(got.error().message, "sha256 is " + sha256_of(data))) << got.error().message;
  EXPECT_TRUE(contains(got.error().message, "the release says " + other)) << got.error().message;
  // Sticky: the next read reports it again rather than pretending the stream ended well.
  char c;
  auto again = stream.read(&c, 1);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::digest_mismatch);
}

TEST(VerifyingStream, TooLargeStopsAtLimitPlusOne) {
  std::string data = some_bytes(1 << 20);
  std::size_t asked = 0;
  VerifyingStream stream(std::make_unique<CountingStream>(data, &asked), sha256_of(data.substr(0, 1000)), 1000,
                         "app");
  auto got = drain(stream, 64 * 1024);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::too_large);
  EXPECT_TRUE(contains(got.error().message, "1000 bytes")) << got.error().message;
  EXPECT_EQ(asked, 1001u);
}

TEST(VerifyingStream, Truncated) {
  std::string data = some_bytes(3000);
  VerifyingStream stream(std::make_unique<MemoryStream>(data.substr(0, 2000)), sha256_of(data), data.size(), "app");
  auto got = drain(stream);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::io);
  EXPECT_TRUE(contains(got.error().message, "truncated: got 2000 of 3000 bytes")) << got.error().message;
}

TEST(VerifyingStream, InnerErrorGainsThePayloadName) {
  VerifyingStream stream(std::make_unique<FailingStream>(), sha256_of("x"), 1, "rootfs 7");
  auto got = drain(stream);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::network);
  EXPECT_TRUE(contains(got.error().message, "payload rootfs 7: connection reset")) << got.error().message;
}

TEST(VerifyingStream, MalformedExpectedDigest) {
  VerifyingStream stream(std::make_unique<MemoryStream>("x"), "9f2c", 1, "app");
  auto got = drain(stream);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(got.error().message, "9f2c")) << got.error().message;
}

TEST(VerifyingStream, ReportsProgressAndTheEnd) {
  std::string data = some_bytes(10000);
  VerifyingStream stream(std::make_unique<MemoryStream>(data), sha256_of(data), data.size(), "app");
  std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;
  stream.set_progress([&](std::uint64_t done, std::uint64_t total) { calls.emplace_back(done, total); }, 0ms);
  ASSERT_TRUE(drain(stream, 1000));
  ASSERT_GE(calls.size(), 2u);
  EXPECT_EQ(calls.back(), std::make_pair(std::uint64_t{10000}, std::uint64_t{10000}));
  for (std::size_t i = 1; i < calls.size(); ++i) EXPECT_GE(calls[i].first, calls[i - 1].first);

  // With the default interval a fast stream reports little more than its end.
  VerifyingStream quiet(std::make_unique<MemoryStream>(data), sha256_of(data), data.size(), "app");
  int quiet_calls = 0;
  quiet.set_progress([&](std::uint64_t, std::uint64_t) { ++quiet_calls; });
  ASSERT_TRUE(drain(quiet, 100));
  EXPECT_GE(quiet_calls, 1);
  EXPECT_LT(quiet_calls, 10);
}

TEST(UrlStream, DownloadsAndVerifiesAFewMebibytes) {
  std::string data = some_bytes(5 << 20);
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(200, data)));
  auto inner = open_url_stream(server.url("/payloads/app.tar.zst"), 2s);
  ASSERT_TRUE(inner) << inner.error().message;
  VerifyingStream stream(std::move(*inner), sha256_of(data), data.size(), "app");
  auto got = drain(stream, 100000);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->size(), data.size());
  EXPECT_TRUE(*got == data);
}

TEST(UrlStream, ChunkedDownload) {
  std::string raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string data;
  for (int i = 0; i < 50; ++i) {
    std::string piece = some_bytes(static_cast<std::size_t>(1000 + i * 37));
    data += piece;
    char size[16];
    std::snprintf(size, sizeof size, "%zx", piece.size());
    raw += std::string(size) + "\r\n" + piece + "\r\n";
  }
  raw += "0\r\n\r\n";
  RawHttpServer server(RawHttpServer::reply(raw));
  auto inner = open_url_stream(server.url(), 2s);
  ASSERT_TRUE(inner) << inner.error().message;
  auto got = drain(**inner);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(*got == data);
}

TEST(UrlStream, NotFoundNamesStatusAndUrl) {
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(404, "")));
  auto inner = open_url_stream(server.url("/payloads/missing.tar.zst"), 2s);
  ASSERT_FALSE(inner);
  EXPECT_EQ(inner.error().code, Errc::network);
  EXPECT_TRUE(contains(inner.error().message, "404")) << inner.error().message;
  EXPECT_TRUE(contains(inner.error().message, server.url("/payloads/missing.tar.zst"))) << inner.error().message;
}

TEST(UrlStream, TruncatedDownload) {
  RawHttpServer server(RawHttpServer::reply("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + some_bytes(600)));
  auto inner = open_url_stream(server.url(), 2s);
  ASSERT_TRUE(inner) << inner.error().message;
  auto got = drain(**inner);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::network);
  EXPECT_TRUE(contains(got.error().message, "truncated: got 600 of 1000 bytes")) << got.error().message;
  EXPECT_TRUE(contains(got.error().message, server.url())) << got.error().message;
}

TEST(UrlStream, StalledDownloadTimesOut) {
  RawHttpServer server([](RawHttpServer::Connection& c) {
    if (c.read_request() && c.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc")) c.wait_for_peer_close();
  });
  auto inner = open_url_stream(server.url(), 200ms);
  ASSERT_TRUE(inner) << inner.error().message;
  auto got = drain(**inner);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::timeout);
}

TEST(UrlStream, OversizedDownloadIsRefusedByTheVerifier) {
  std::string data = some_bytes(2 << 20);
  RawHttpServer server(RawHttpServer::reply(RawHttpServer::response(200, data)));
  auto inner = open_url_stream(server.url(), 2s);
  ASSERT_TRUE(inner) << inner.error().message;
  VerifyingStream stream(std::move(*inner), sha256_of(data), 1 << 20, "app");
  auto got = drain(stream, 65536);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::too_large);
  EXPECT_LE(stream.bytes_read(), (1u << 20) + 1);
}

}  // namespace
}  // namespace eddy::ota
