#include "platform/unix_socket_client.hpp"
#include "platform/unique_fd.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace eddy {

namespace {

using Clock = std::chrono::steady_clock;

// Wait until fd is ready for `events` or the deadline passes.
Status wait_ready(int fd, short events, std::optional<Clock::time_point> deadline, const std::string& where) {
  for (;;) {
    int wait_ms = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0) return make_error(Errc::timeout, where + ": no reply in time");
      wait_ms = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, wait_ms);
    if (rc > 0) return {};
    if (rc == 0) continue;  // the deadline check above turns it into a timeout
    if (errno != EINTR) return std::unexpected(errno_error(errno, "poll", where));
  }
}

}  // namespace

Expected<std::string> unix_socket_request(const std::filesystem::path& path, std::string_view line,
                                          std::optional<std::chrono::milliseconds> timeout, std::size_t max_reply) {
  const std::string where = path.string();
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = Clock::now() + *timeout;

  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (where.size() >= sizeof(address.sun_path))
    return make_error(Errc::invalid_argument, "socket path " + where + " is too long for a Unix socket");
  std::memcpy(address.sun_path, where.data(), where.size());

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return std::unexpected(errno_error(errno, "create socket for", where));
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = errno;
    if (err == ECONNREFUSED) return make_error(Errc::network, "connect " + where + ": nobody is listening on it");
    return std::unexpected(errno_error(err, "connect", where));
  }

  std::string request(line);
  request += '\n';
  std::size_t sent = 0;
  while (sent < request.size()) {
    if (auto ready = wait_ready(fd.get(), POLLOUT, deadline, where); !ready) return std::unexpected(ready.error());
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == EPIPE || errno == ECONNRESET)
        return make_error(Errc::network, where + ": the connection was closed while sending the request");
      return std::unexpected(errno_error(errno, "send to", where));
    }
    sent += static_cast<std::size_t>(n);
  }

  std::string reply;
  char buffer[65536];
  for (;;) {
    auto newline = reply.find('\n');
    if (newline != std::string::npos) {
      reply.resize(newline);
      return reply;
    }
    if (reply.size() > max_reply)
      return make_error(Errc::too_large, where + ": reply is larger than " + std::to_string(max_reply) + " bytes");
    if (auto ready = wait_ready(fd.get(), POLLIN, deadline, where); !ready) return std::unexpected(ready.error());
    ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ECONNRESET) return make_error(Errc::network, where + ": the connection was reset before the reply");
      return std::unexpected(errno_error(errno, "receive from", where));
    }
    if (n == 0) return make_error(Errc::network, where + ": the connection was closed before the reply");
    reply.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace eddy
