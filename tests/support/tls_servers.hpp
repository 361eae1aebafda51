// Test certificates made by the `openssl` command line, and a real HTTPS server (lighttpd with
// mod_openssl) to run clients against.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace eddy::testing {

namespace stdfs = std::filesystem;

// A small PKI in `dir` (EC P-256 keys):
//   ca            the test CA
//   server        signed by ca, for localhost and 127.0.0.1 (SAN DNS + IP), valid 10 years
//   expired       signed by ca, same names, valid only in January 2020
//   wrong_host    signed by ca, for other.example only
//   foreign       signed by another CA (other_ca), for localhost and 127.0.0.1
//   client        signed by ca, a client certificate (extendedKeyUsage clientAuth)
struct TestPki {
  explicit TestPki(const stdfs::path& dir);

  struct Pair {
    stdfs::path cert;
    stdfs::path key;
  };
  Pair ca, other_ca, server, expired, wrong_host, foreign, client;
};

// lighttpd serving `docroot` over HTTPS on 127.0.0.1 with the given certificate and key; its
// configuration and logs go to work_dir.
class HttpsFileServer {
 public:
  HttpsFileServer(const TestPki::Pair& identity, const stdfs::path& docroot, const stdfs::path& work_dir);
  ~HttpsFileServer();
  HttpsFileServer(const HttpsFileServer&) = delete;
  HttpsFileServer& operator=(const HttpsFileServer&) = delete;

  int port() const { return port_; }
  // https://<host>:<port><path>
  std::string url(const std::string& path = "/", const std::string& host = "127.0.0.1") const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace eddy::testing
