// Blocking line I/O over a connected stream socket, such as one end of a socketpair: eddyd and
// its update worker talk over one in JSON lines (daemon/worker_protocol.hpp). The format of
// the lines is the caller's.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "platform/error.hpp"
#include "platform/unique_fd.hpp"

namespace eddy {

class LineChannel {
 public:
  // `what` names the peer in error messages ("update worker pid 4242").
  LineChannel(UniqueFd fd, std::string what, std::size_t max_line = 16u << 20);

  // Send `line` and a newline (the line must not contain one). Thread-safe. A peer that is
  // gone is Errc::network.
  Status write(std::string_view line);
  // The next line, without its newline; nullopt at the end of the stream (the peer closed its
  // end, or exited). A line longer than max_line is Errc::too_large. One reader at a time.
  Expected<std::optional<std::string>> read();

  int fd() const { return fd_.get(); }
  const std::string& what() const { return what_; }

 private:
  UniqueFd fd_;
  std::string what_;
  std::size_t max_line_;
  std::string buffer_;  // bytes received after the last line returned
  std::mutex write_mutex_;
};

}  // namespace eddy
