// The HTTP client over https:// against a real TLS server (lighttpd with mod_openssl), with
// certificates made by the openssl command line.
#include <gtest/gtest.h>

#include <memory>

#include "platform/http_client.hpp"
#include "platform/tls.hpp"
#include "tests/support/raw_http_server.hpp"
#include "tests/support/support.hpp"
#include "tests/support/tls_servers.hpp"

namespace eddy::http {
namespace {

using eddy::testing::contains;
using eddy::testing::HttpsFileServer;
using eddy::testing::RawHttpServer;
using eddy::testing::TempDir;
using eddy::testing::TestPki;
using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

class HttpsClient : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    pki_ = new TestPki(dir_->path() / "pki");
    stdfs::create_directories(dir_->path() / "www");
    eddy::testing::write_file(dir_->path() / "www" / "hello.txt", "hello over tls\n");
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete dir_;
  }

  RequestOptions trusting(const stdfs::path& ca) const {
    RequestOptions options;
    options.ca_file = ca;
    options.timeout = 5s;
    return options;
  }

  std::unique_ptr<HttpsFileServer> serve(const TestPki::Pair& identity) {
    return std::make_unique<HttpsFileServer>(identity, dir_->path() / "www", work_.path() / "lighttpd");
  }

  static const TestPki& pki() { return *pki_; }
  static stdfs::path www() { return dir_->path() / "www"; }

  TempDir work_;

 private:
  static TempDir* dir_;
  static TestPki* pki_;
};

TempDir* HttpsClient::dir_ = nullptr;
TestPki* HttpsClient::pki_ = nullptr;

TEST_F(HttpsClient, GetsAFileByIpAddressAndByName) {
  auto server = serve(pki().server);
  for (const char* host : {"127.0.0.1", "localhost"}) {
    auto r = request(server->url("/hello.txt", host), trusting(pki().ca.cert));
    ASSERT_TRUE(r) << host << ": " << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hello over tls\n");
  }
  auto missing = request(server->url("/nope"), trusting(pki().ca.cert));
  ASSERT_TRUE(missing) << missing.error().message;
  EXPECT_EQ(missing->status, 404);
}

TEST_F(HttpsClient, ResumesASessionWithAnOpenSslServer) {
  // lighttpd's mod_openssl issues RFC 5077 tickets of its own making: mbedTLS resumes them.
  auto server = serve(pki().server);
  tls::SessionCache sessions;
  auto options = trusting(pki().ca.cert);
  options.tls_sessions = &sessions;
  auto first = request(server->url("/hello.txt"), options);
  ASSERT_TRUE(first) << first.error().message;
  options.tls_resume_only = true;
  auto again = request(server->url("/hello.txt"), options);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->body, "hello over tls\n");
  EXPECT_EQ(sessions.counts().resumed, 1u);
  EXPECT_EQ(sessions.counts().full, 1u);
}

TEST_F(HttpsClient, RefusesACertificateFromAnotherCa) {
  auto server = serve(pki().foreign);
  auto url = server->url("/hello.txt");
  auto r = request(url, trusting(pki().ca.cert));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, "not signed by a CA in the CA file " + pki().ca.cert.string()))
      << r.error().message;
  EXPECT_TRUE(contains(r.error().message, url)) << r.error().message;

  // The system bundle (the default) does not know the test CA either.
  auto system = request(url);
  ASSERT_FALSE(system);
  EXPECT_EQ(system.error().code, Errc::network);
  EXPECT_TRUE(contains(system.error().message, "/etc/ssl/certs/ca-certificates.crt")) << system.error().message;
}

TEST_F(HttpsClient, RefusesACertificateForAnotherHost) {
  auto server = serve(pki().wrong_host);
  for (const char* host : {"127.0.0.1", "localhost"}) {
    auto r = request(server->url("/hello.txt", host), trusting(pki().ca.cert));
    ASSERT_FALSE(r) << host;
    EXPECT_EQ(r.error().code, Errc::network);
    EXPECT_TRUE(contains(r.error().message, "hostname mismatch")) << r.error().message;
    EXPECT_TRUE(contains(r.error().message, std::string("host name ") + host)) << r.error().message;
    EXPECT_FALSE(contains(r.error().message, "not signed")) << r.error().message;
  }
}

TEST_F(HttpsClient, RefusesAnExpiredCertificate) {
  auto server = serve(pki().expired);
  auto r = request(server->url("/hello.txt"), trusting(pki().ca.cert));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, "expired")) << r.error().message;
  EXPECT_FALSE(contains(r.error().message, "not signed")) << r.error().message;
}

TEST_F(HttpsClient, PlainHttpServerIsAHandshakeError) {
  RawHttpServer plain([](RawHttpServer::Connection& c) {
    c.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  auto url = "https://127.0.0.1:" + std::to_string(plain.port()) + "/";
  auto r = request(url, trusting(pki().ca.cert));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::network);
  EXPECT_TRUE(contains(r.error().message, "TLS handshake")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "does not speak TLS")) << r.error().message;
}

TEST_F(HttpsClient, ServerThatNeverAnswersTimesOut) {
  RawHttpServer silent([](RawHttpServer::Connection& c) { c.wait_for_peer_close(); });
  auto options = trusting(pki().ca.cert);
  options.timeout = 300ms;
  auto r = request("https://127.0.0.1:" + std::to_string(silent.port()) + "/", options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::timeout);
  EXPECT_TRUE(contains(r.error().message, "TLS handshake")) << r.error().message;
}

TEST_F(HttpsClient, MissingOrBrokenCaFile) {
  auto server = serve(pki().server);
  auto missing = request(server->url("/hello.txt"), trusting(work_.path() / "no-such-ca.pem"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_TRUE(contains(missing.error().message, (work_.path() / "no-such-ca.pem").string())) << missing.error().message;

  eddy::testing::write_file(work_.path() / "junk.pem", "this is not a certificate\n");
  auto junk = request(server->url("/hello.txt"), trusting(work_.path() / "junk.pem"));
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(junk.error().message, (work_.path() / "junk.pem").string())) << junk.error().message;
}

TEST_F(HttpsClient, StreamsAFewMebibytes) {
  // 4 MiB of varied bytes, so that a lost or repeated record would show.
  std::string blob;
  blob.reserve(4 << 20);
  std::uint32_t x = 12345;
  while (blob.size() < (4u << 20)) {
    x = x * 1103515245u + 12345u;
    blob.push_back(static_cast<char>(x >> 24));
  }
  eddy::testing::write_file(www() / "blob.bin", blob);
  auto server = serve(pki().server);
  std::string got;
  std::size_t chunks = 0;
  auto status = get_stream(
      server->url("/blob.bin"),
      [&](std::string_view chunk) -> Status {
        got.append(chunk);
        ++chunks;
        return {};
      },
      trusting(pki().ca.cert));
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(*status, 200);
  EXPECT_EQ(got.size(), blob.size());
  EXPECT_TRUE(got == blob);
  EXPECT_GT(chunks, 10u);  // streamed, not delivered whole
}

}  // namespace
}  // namespace eddy::http
