#include "tests/support/git_servers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <vector>

#include "platform/process.hpp"
#include "tests/support/support.hpp"

namespace eddy::testing {

namespace {

constexpr auto grace = std::chrono::milliseconds(2000);

bool exited(pid_t pid) {
  int status;
  return ::waitpid(pid, &status, WNOHANG) == pid;
}

// Start the server that make_argv builds for a port; the port comes from the OS (free_port), so
// another process may take it between release and bind: then the child exits and we try again.
pid_t start_on_free_port(const std::function<std::vector<std::string>(int port)>& make_argv,
                         const stdfs::path& log, int& port_out, const std::string& what) {
  std::string last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    int port = free_port();
    auto argv = make_argv(port);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + log.string());
    auto pid = process::spawn(argv, {}, {}, fd);
    ::close(fd);
    if (!pid) throw std::runtime_error(what + ": " + pid.error().message);
    bool up = wait_until([&] { return port_accepts(port) || exited(*pid); }, std::chrono::seconds(20));
    if (up && port_accepts(port)) {
      port_out = port;
      return *pid;
    }
    process::terminate(*pid, grace);
    last = read_file(log);
  }
  throw std::runtime_error(what + " did not start; its log: " + last);
}

}  // namespace

bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

GitDaemonServer::GitDaemonServer(const stdfs::path& base_dir, const stdfs::path& work_dir, bool enable_push) {
  stdfs::create_directories(work_dir);
  auto base = stdfs::absolute(base_dir).string();
  pid_ = start_on_free_port(
      [&](int port) {
        std::vector<std::string> argv = {"git", "daemon", "--listen=127.0.0.1", "--port=" + std::to_string(port),
                                         "--base-path=" + base, "--export-all", "--reuseaddr"};
        if (enable_push) argv.push_back("--enable=receive-pack");
        argv.push_back(base);
        return argv;
      },
      work_dir / "git-daemon.log", port_, "git daemon");
}

GitDaemonServer::~GitDaemonServer() { process::terminate(pid_, grace); }

std::string GitDaemonServer::url(const std::string& repository) const {
  return "git://127.0.0.1:" + std::to_string(port_) + "/" + repository;
}

GitHttpServer::GitHttpServer(const stdfs::path& project_root, const stdfs::path& work_dir) {
  stdfs::create_directories(work_dir / "htdocs");
  auto root = stdfs::absolute(project_root).string();
  auto work = stdfs::absolute(work_dir);
  pid_ = start_on_free_port(
      [&](int port) {
        auto config = work / "lighttpd.conf";
        write_file(config,
                   "server.modules = (\"mod_alias\", \"mod_cgi\", \"mod_setenv\")\n"
                   "server.bind = \"127.0.0.1\"\n"
                   "server.port = " + std::to_string(port) + "\n"
                   "server.document-root = \"" + (work / "htdocs").string() + "\"\n"
                   "server.errorlog = \"" + (work / "lighttpd-error.log").string() + "\"\n"
                   "alias.url = (\"/git\" => \"/usr/lib/git-core/git-http-backend\")\n"
                   "$HTTP[\"url\"] =~ \"^/git\" {\n"
                   "  cgi.assign = (\"\" => \"\")\n"
                   "  setenv.set-environment = (\"GIT_PROJECT_ROOT\" => \"" + root + "\",\n"
                   "                            \"GIT_HTTP_EXPORT_ALL\" => \"1\")\n"
                   "}\n");
        return std::vector<std::string>{"lighttpd", "-D", "-f", config.string()};
      },
      work / "lighttpd.log", port_, "lighttpd");
}

GitHttpServer::~GitHttpServer() { process::terminate(pid_, grace); }

std::string GitHttpServer::url(const std::string& repository) const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/git/" + repository;
}

SilentListener::SilentListener() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd_);
    throw std::runtime_error("cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
}

SilentListener::~SilentListener() { ::close(fd_); }

}  // namespace eddy::testing
