// A line-oriented server on a Unix stream socket: each connection sends one request per line
// and gets one reply line per request, in order. Knows nothing of the lines' format (the
// daemon's control API puts JSON in them).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "platform/error.hpp"
#include "platform/event_loop.hpp"

namespace eddy {

struct UnixSocketOptions {
  std::filesystem::path path;
  unsigned mode = 0660;
  // Group the socket file (and its parent folder, when created here) is given; empty: the
  // process's group. A group that does not exist is an error naming it.
  std::string group;
  std::size_t max_request = 64 * 1024;  // bytes per request line, newline excluded
  // Sent when a request line is longer than max_request; the connection is then closed.
  std::string oversized_reply = "request too large";
  std::size_t max_connections = 64;     // further clients are disconnected at once
  // A connection that sends no complete request for this long is closed (not while a reply
  // is pending).
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};
};

class UnixSocketServer {
 public:
  // Send the reply line (a trailing newline is added when missing). Thread-safe; the first
  // call counts, later ones are ignored. Dropping it unanswered leaves the client waiting
  // until it disconnects.
  using Reply = std::function<void(std::string response_line)>;
  // Called on the loop thread with a request line (newline and a trailing CR removed; empty
  // lines are skipped). The next request of the same connection is read only after reply().
  using Handler = std::function<void(std::string request_line, Reply reply)>;

  // Bind and listen at options.path: the parent folder is created (mode 0750) if missing, a
  // stale socket file left by a dead process is replaced, a live one is Errc::conflict, any
  // other file there is Errc::conflict too. Call before loop.run() or on the loop thread.
  [[nodiscard]] static Expected<std::unique_ptr<UnixSocketServer>> listen(EventLoop& loop,
                                                                          UnixSocketOptions options,
                                                                          Handler handler);
  // Stops accepting, closes connections, removes the socket file (if it is still ours).
  // Destroy on the loop thread or while the loop is not running.
  ~UnixSocketServer();
  UnixSocketServer(const UnixSocketServer&) = delete;
  UnixSocketServer& operator=(const UnixSocketServer&) = delete;

  const std::filesystem::path& path() const;

  struct State;
  explicit UnixSocketServer(std::shared_ptr<State> state);

 private:
  std::shared_ptr<State> state_;
};

}  // namespace eddy
