#include "platform/unix_socket_server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <list>
#include <optional>
#include <vector>

#include "platform/event_loop_asio.hpp"
#include "platform/fs.hpp"
#include "platform/log.hpp"

namespace eddy {

using stream = asio::local::stream_protocol;

namespace {

void set_cloexec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

Expected<gid_t> lookup_group(const std::string& name) {
  std::vector<char> buffer(16384);
  group entry{};
  group* found = nullptr;
  int rc;
  while ((rc = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found)) == ERANGE &&
         buffer.size() < (1u << 22))
    buffer.resize(buffer.size() * 2);
  if (rc != 0) return std::unexpected(errno_error(rc, "look up group", name));
  if (!found)
    return make_error(Errc::not_found, "socket group `" + name +
                                           "` does not exist: create it (groupadd --system " + name +
                                           ") or set socket_group to an existing group, or to \"\" for none");
  return found->gr_gid;
}

// Is a process accepting connections on this socket file?
bool socket_is_live(const std::filesystem::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  } while (rc < 0 && errno == EINTR);
  bool live = rc == 0 || errno == EAGAIN;  // EAGAIN: alive but its backlog is full
  ::close(fd);
  return live;
}

}  // namespace

struct Session;

struct UnixSocketServer::State {
  State(asio::io_context& io, UnixSocketOptions o, Handler h)
      : acceptor(io), options(std::move(o)), handler(std::move(h)) {}
  stream::acceptor acceptor;
  UnixSocketOptions options;
  Handler handler;
  std::list<std::weak_ptr<Session>> sessions;
  bool closed = false;
  dev_t device = 0;
  ino_t inode = 0;
};

struct Session : std::enable_shared_from_this<Session> {
  using State = UnixSocketServer::State;

  Session(stream::socket s, std::shared_ptr<State> st)
      : socket(std::move(s)), idle(socket.get_executor()), state(std::move(st)) {}

  stream::socket socket;
  asio::steady_timer idle;
  std::shared_ptr<State> state;
  std::string buffer;  // bytes received and not yet handled
  bool waiting_for_request = false;
  bool open = true;
  std::list<std::weak_ptr<Session>>::iterator entry;

  void close() {
    if (!open) return;
    open = false;
    std::error_code ignored;
    idle.cancel();
    socket.shutdown(stream::socket::shutdown_both, ignored);
    socket.close(ignored);
    if (!state->closed) state->sessions.erase(entry);
  }

  void read_next() {
    if (!open) return;
    for (;;) {
      auto newline = buffer.find('\n');
      if (newline == std::string::npos) break;
      if (newline > state->options.max_request) return refuse_oversized();
      std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      return handle(std::move(line));
    }
    if (buffer.size() > state->options.max_request) return refuse_oversized();

    waiting_for_request = true;
    idle.expires_after(state->options.idle_timeout);
    idle.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (!ec && self->waiting_for_request) self->close();
    });
    asio::async_read_until(socket, asio::dynamic_buffer(buffer, state->options.max_request + 1), '\n',
                           [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                             self->waiting_for_request = false;
                             self->idle.cancel();
                             if (!self->open) return;
                             if (ec == asio::error::not_found) return self->refuse_oversized();
                             if (ec) return self->close();
                             self->read_next();
                           });
  }

  void handle(std::string line) {
    auto self = shared_from_this();
    auto replied = std::make_shared<std::atomic<bool>>(false);
    UnixSocketServer::Reply reply = [self, replied](std::string response) {
      if (replied->exchange(true)) return;
      if (response.empty() || response.back() != '\n') response += '\n';
      asio::post(self->socket.get_executor(),
                 [self, response = std::move(response)]() mutable { self->write(std::move(response), false); });
    };
    try {
      state->handler(std::move(line), std::move(reply));
    } catch (const std::exception& e) {
      log::error(std::string("bug: request handler on ") + state->options.path.string() + " threw: " + e.what());
      close();
    }
  }

  void refuse_oversized() {
    std::string response = state->options.oversized_reply;
    if (response.empty() || response.back() != '\n') response += '\n';
    buffer.clear();
    write(std::move(response), true);
  }

  void write(std::string response, bool then_close) {
    if (!open) return;
    auto data = std::make_shared<std::string>(std::move(response));
    asio::async_write(socket, asio::buffer(*data),
                      [self = shared_from_this(), data, then_close](const std::error_code& ec, std::size_t) {
                        if (ec || then_close) return self->close();
                        self->read_next();
                      });
  }
};

namespace {

void accept_next(const std::shared_ptr<UnixSocketServer::State>& state) {
  state->acceptor.async_accept([state](const std::error_code& ec, stream::socket socket) {
    if (state->closed) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      log::warning("accept on " + state->options.path.string() + ": " + ec.message());
    } else {
      set_cloexec(socket.native_handle());
      if (state->sessions.size() >= state->options.max_connections) {
        log::warning("control socket " + state->options.path.string() + ": more than " +
                     std::to_string(state->options.max_connections) + " clients at once, dropping one");
      } else {
        auto session = std::make_shared<Session>(std::move(socket), state);
        session->entry = state->sessions.insert(state->sessions.end(), session);
        session->read_next();
      }
    }
    accept_next(state);
  });
}

}  // namespace

UnixSocketServer::UnixSocketServer(std::shared_ptr<State> state) : state_(std::move(state)) {}

Expected<std::unique_ptr<UnixSocketServer>> UnixSocketServer::listen(EventLoop& loop, UnixSocketOptions options,
                                                                     Handler handler) {
  const auto path = options.path;
  const std::string where = "control socket " + path.string();
  if (path.empty()) return make_error(Errc::invalid_argument, "socket path is empty");
  if (path.native().size() >= sizeof(sockaddr_un::sun_path))
    return make_error(Errc::invalid_argument, where + ": path is longer than " +
                                                  std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                                  " bytes, the limit of Unix socket addresses; choose a shorter one");

  std::optional<gid_t> gid;
  if (!options.group.empty()) {
    auto found = lookup_group(options.group);
    if (!found) return std::unexpected(found.error().with_context(where));
    gid = *found;
  }

  auto parent = path.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(parent, ec)) {
      if (auto made = fs::create_directories(parent, 0750); !made)
        return std::unexpected(made.error().with_context(where));
      if (gid && ::chown(parent.c_str(), static_cast<uid_t>(-1), *gid) != 0)
        return std::unexpected(errno_error(errno, "chgrp " + options.group, parent.string()).with_context(where));
    }
  }

  struct stat existing{};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode))
      return make_error(Errc::conflict, where + ": a file that is not a socket is in the way; move it away or "
                                                "choose another socket path");
    if (socket_is_live(path))
      return make_error(Errc::conflict, where + ": another process is listening on it (is eddyd already running? "
                                                "see systemctl status eddyd)");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return std::unexpected(errno_error(errno, "remove stale socket", path.string()));
  }

  auto& io = io_context_of(loop);
  auto state = std::make_shared<State>(io, std::move(options), std::move(handler));
  std::error_code ec;
  state->acceptor.open(stream(), ec);
  if (!ec) set_cloexec(state->acceptor.native_handle());
  if (!ec) state->acceptor.bind(stream::endpoint(path.string()), ec);
  if (ec) return make_error(Errc::io, where + ": bind: " + ec.message());
  // Mode and group are set before listen(): no client can connect while the file is looser.
  if (::chmod(path.c_str(), state->options.mode) != 0) {
    auto error = errno_error(errno, "chmod", path.string());
    ::unlink(path.c_str());
    return std::unexpected(error.with_context(where));
  }
  if (gid && ::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    auto error = errno_error(errno, "chgrp " + state->options.group, path.string());
    ::unlink(path.c_str());
    return std::unexpected(error.with_context(where));
  }
  struct stat ours{};
  if (::stat(path.c_str(), &ours) == 0) {
    state->device = ours.st_dev;
    state->inode = ours.st_ino;
  }
  state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    ::unlink(path.c_str());
    return make_error(Errc::io, where + ": listen: " + ec.message());
  }
  accept_next(state);
  return std::make_unique<UnixSocketServer>(state);
}

UnixSocketServer::~UnixSocketServer() {
  state_->closed = true;
  std::error_code ignored;
  state_->acceptor.close(ignored);
  auto sessions = std::move(state_->sessions);
  for (auto& weak : sessions)
    if (auto session = weak.lock()) session->close();
  struct stat current{};
  const auto& path = state_->options.path;
  if (::lstat(path.c_str(), &current) == 0 && current.st_dev == state_->device && current.st_ino == state_->inode)
    ::unlink(path.c_str());
}

const std::filesystem::path& UnixSocketServer::path() const { return state_->options.path; }

}  // namespace eddy
