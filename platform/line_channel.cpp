#include "platform/line_channel.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace eddy {

LineChannel::LineChannel(UniqueFd fd, std::string what, std::size_t max_line)
    : fd_(std::move(fd)), what_(std::move(what)), max_line_(max_line) {}

Status LineChannel::write(std::string_view line) {
  std::string data(line);
  data += '\n';
  std::lock_guard lock(write_mutex_);
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd_.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET)
        return make_error(Errc::network, "send to " + what_ + ": the other end is closed");
      return std::unexpected(errno_error(errno, "send to", what_));
    }
    sent += static_cast<std::size_t>(n);
  }
  return {};
}

Expected<std::optional<std::string>> LineChannel::read() {
  char chunk[16384];
  std::size_t searched = 0;
  for (;;) {
    auto newline = buffer_.find('\n', searched);
    if (std::min(newline, buffer_.size()) > max_line_)
      return make_error(Errc::too_large, what_ + " sent a line longer than " + std::to_string(max_line_) + " bytes");
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    searched = buffer_.size();
    ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) return std::optional<std::string>{};
      return std::unexpected(errno_error(errno, "receive from", what_));
    }
    if (n == 0) {
      if (!buffer_.empty()) return make_error(Errc::network, what_ + " closed the connection in the middle of a line");
      return std::optional<std::string>{};
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

}  // namespace eddy
