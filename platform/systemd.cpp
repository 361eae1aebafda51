#include "platform/systemd.hpp"
#include "platform/unique_fd.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace eddy::systemd {

namespace {

std::optional<std::uint64_t> env_number(const char* name) {
  const char* value = std::getenv(name);
  if (!value || !*value) return std::nullopt;
  std::string_view text(value);
  std::uint64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return number;
}

}  // namespace

Status notify(std::string_view state) {
  const char* socket_path = std::getenv("NOTIFY_SOCKET");
  if (!socket_path || !*socket_path) return {};
  std::string_view path(socket_path);

  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path))
    return make_error(Errc::invalid_argument, "NOTIFY_SOCKET " + std::string(path) + ": path too long");
  if (path[0] != '/' && path[0] != '@')
    return make_error(Errc::unsupported, "NOTIFY_SOCKET " + std::string(path) +
                                             ": only absolute paths and abstract (@) sockets are supported");
  std::memcpy(address.sun_path, path.data(), path.size());
  if (path[0] == '@') address.sun_path[0] = '\0';
  // Abstract names are not NUL-terminated: the length counts exactly the name's bytes.
  auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));

  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return std::unexpected(errno_error(errno, "create notify socket for", path));
  ssize_t sent;
  do {
    sent = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&address), length);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return std::unexpected(errno_error(errno, "notify systemd on", path));
  if (static_cast<std::size_t>(sent) != state.size())
    return make_error(Errc::io, "notify systemd on " + std::string(path) + ": short datagram");
  return {};
}

Status notify_ready() { return notify("READY=1"); }

Status notify_status(std::string_view text) {
  std::string message = "STATUS=";
  for (char c : text) message += (c == '\n' || c == '\r') ? ' ' : c;
  return notify(message);
}

Status notify_watchdog() { return notify("WATCHDOG=1"); }

Status notify_stopping() { return notify("STOPPING=1"); }

std::optional<std::chrono::microseconds> watchdog_interval() {
  auto usec = env_number("WATCHDOG_USEC");
  if (!usec || *usec == 0 || *usec > static_cast<std::uint64_t>(std::chrono::microseconds::max().count()))
    return std::nullopt;
  if (std::getenv("WATCHDOG_PID")) {
    auto pid = env_number("WATCHDOG_PID");
    if (!pid || *pid != static_cast<std::uint64_t>(::getpid())) return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(*usec));
}

}  // namespace eddy::systemd
