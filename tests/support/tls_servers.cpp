#include "tests/support/tls_servers.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <vector>

#include "platform/process.hpp"
#include "tests/support/git_servers.hpp"
#include "tests/support/support.hpp"

namespace eddy::testing {

namespace {

constexpr auto grace = std::chrono::milliseconds(2000);
const std::string ec_key = "ec_paramgen_curve:prime256v1";

// An `openssl ca` configuration: a database in the CA's own folder and the extensions the
// leaf certificates use.
void make_ca(const stdfs::path& dir, const std::string& name) {
  stdfs::create_directories(dir);
  write_file(dir / "index.txt", "");
  write_file(dir / "serial", "01\n");
  write_file(dir / "ca.cnf",
             "[ca]\ndefault_ca = test_ca\n"
             "[test_ca]\ndir = " + dir.string() + "\n"
             "database = $dir/index.txt\nnew_certs_dir = $dir\nserial = $dir/serial\n"
             "certificate = $dir/ca.crt\nprivate_key = $dir/ca.key\ndefault_md = sha256\n"
             "policy = policy_any\ndefault_days = 3650\nunique_subject = no\n"
             "[policy_any]\ncommonName = supplied\n"
             "[server_ext]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n"
             "extendedKeyUsage = serverAuth\n"
             "[wrong_host_ext]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:other.example\n"
             "extendedKeyUsage = serverAuth\n"
             "[client_ext]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n");
  run_ok({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", ec_key, "-nodes", "-keyout",
          (dir / "ca.key").string(), "-out", (dir / "ca.crt").string(), "-days", "3650", "-subj", "/CN=" + name});
}

TestPki::Pair issue(const stdfs::path& ca_dir, const stdfs::path& out_dir, const std::string& name,
                    const std::string& common_name, const std::string& extensions,
                    const std::vector<std::string>& dates = {}) {
  TestPki::Pair pair{out_dir / (name + ".crt"), out_dir / (name + ".key")};
  auto csr = out_dir / (name + ".csr");
  run_ok({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", ec_key, "-nodes", "-keyout", pair.key.string(),
          "-out", csr.string(), "-subj", "/CN=" + common_name});
  std::vector<std::string> argv = {"openssl", "ca", "-batch", "-notext", "-config", (ca_dir / "ca.cnf").string(),
                                   "-extensions", extensions, "-in", csr.string(), "-out", pair.cert.string()};
  argv.insert(argv.end(), dates.begin(), dates.end());
  run_ok(argv);
  return pair;
}

bool exited(pid_t pid) {
  int status;
  return ::waitpid(pid, &status, WNOHANG) == pid;
}

}  // namespace

TestPki::TestPki(const stdfs::path& dir) {
  auto ca_dir = dir / "ca";
  auto other_dir = dir / "other-ca";
  make_ca(ca_dir, "Eddy Test CA");
  make_ca(other_dir, "Some Other CA");
  ca = {ca_dir / "ca.crt", ca_dir / "ca.key"};
  other_ca = {other_dir / "ca.crt", other_dir / "ca.key"};
  server = issue(ca_dir, dir, "server", "localhost", "server_ext");
  expired = issue(ca_dir, dir, "expired", "localhost", "server_ext",
                  {"-startdate", "20200101000000Z", "-enddate", "20200201000000Z"});
  wrong_host = issue(ca_dir, dir, "wrong-host", "other.example", "wrong_host_ext");
  foreign = issue(other_dir, dir, "foreign", "localhost", "server_ext");
  client = issue(ca_dir, dir, "client", "device-1", "client_ext");
}

HttpsFileServer::HttpsFileServer(const TestPki::Pair& identity, const stdfs::path& docroot,
                                 const stdfs::path& work_dir) {
  stdfs::create_directories(work_dir);
  auto work = stdfs::absolute(work_dir);
  auto log = work / "lighttpd.log";
  std::string last;
  // The port comes from the OS (free_port); another process may take it before lighttpd binds
  // it: then lighttpd exits and we try another.
  for (int attempt = 0; attempt < 5; ++attempt) {
    int port = free_port();
    auto config = work / "lighttpd.conf";
    write_file(config,
               "server.modules = (\"mod_openssl\")\n"
               "server.bind = \"127.0.0.1\"\n"
               "server.port = " + std::to_string(port) + "\n"
               "server.document-root = \"" + stdfs::absolute(docroot).string() + "\"\n"
               "server.errorlog = \"" + (work / "lighttpd-error.log").string() + "\"\n"
               "ssl.engine = \"enable\"\n"
               "ssl.pemfile = \"" + stdfs::absolute(identity.cert).string() + "\"\n"
               "ssl.privkey = \"" + stdfs::absolute(identity.key).string() + "\"\n");
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + log.string());
    auto pid = process::spawn({"lighttpd", "-D", "-f", config.string()}, {}, {}, fd);
    ::close(fd);
    if (!pid) throw std::runtime_error("lighttpd: " + pid.error().message);
    bool up = wait_until([&] { return port_accepts(port) || exited(*pid); }, std::chrono::seconds(20));
    if (up && port_accepts(port)) {
      pid_ = *pid;
      port_ = port;
      return;
    }
    process::terminate(*pid, grace);
    last = sh("cat \"" + log.string() + "\" \"" + (work / "lighttpd-error.log").string() + "\" 2>/dev/null").output;
  }
  throw std::runtime_error("lighttpd (https) did not start; its log: " + last);
}

HttpsFileServer::~HttpsFileServer() { process::terminate(pid_, grace); }

std::string HttpsFileServer::url(const std::string& path, const std::string& host) const {
  return "https://" + host + ":" + std::to_string(port_) + path;
}

}  // namespace eddy::testing
