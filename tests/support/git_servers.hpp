// Real Git servers on loopback for tests: `git daemon` (git://) and lighttpd running
// `git http-backend` (smart HTTP), each a child process on an OS-chosen port that is waited
// for until it accepts connections, and stopped on destruction. Also a listener that accepts
// TCP connections and never answers, to test deadlines.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace eddy::testing {

namespace stdfs = std::filesystem;

// True when something accepts TCP connections on 127.0.0.1:port.
bool port_accepts(int port);

// `git daemon --export-all` serving every repository under base_dir (bare or not) at
// git://127.0.0.1:<port>/<name>. Its log goes to work_dir/git-daemon.log. Throws
// std::runtime_error when it does not start.
class GitDaemonServer {
 public:
  GitDaemonServer(const stdfs::path& base_dir, const stdfs::path& work_dir, bool enable_push = false);
  ~GitDaemonServer();
  GitDaemonServer(const GitDaemonServer&) = delete;
  GitDaemonServer& operator=(const GitDaemonServer&) = delete;

  int port() const { return port_; }
  // git://127.0.0.1:<port>/<repository>, repository relative to base_dir.
  std::string url(const std::string& repository) const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// lighttpd (foreground, `-D`) with mod_cgi/mod_alias/mod_setenv running git http-backend with
// GIT_PROJECT_ROOT=project_root and GIT_HTTP_EXPORT_ALL; its configuration, document root and
// logs live in work_dir. Repositories are at http://127.0.0.1:<port>/git/<name>.
class GitHttpServer {
 public:
  GitHttpServer(const stdfs::path& project_root, const stdfs::path& work_dir);
  ~GitHttpServer();
  GitHttpServer(const GitHttpServer&) = delete;
  GitHttpServer& operator=(const GitHttpServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& repository) const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// A socket listening on 127.0.0.1 that never accepts: the kernel completes the TCP handshake
// and then nothing is ever said, like a hung server.
class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace eddy::testing
