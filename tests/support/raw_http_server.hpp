// A loopback TCP server for HTTP client tests that writes canned raw bytes: exact responses,
// broken ones (truncated, malformed), slow ones, and servers that never answer. Each accepted
// connection runs the handler on its own thread; the destructor unblocks and joins them all,
// so a handler that waits for the client (wait_for_peer_close) never outlives the test.
// Header-only so that any test folder can include it without a CMake change.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace eddy::testing {

class RawHttpServer {
 public:
  class Connection {
   public:
    // on_request: called with the request as soon as read_request() has it whole, before the
    // handler answers, so a test that got its answer also sees the request recorded.
    Connection(int fd, int stop_fd, std::function<void(const std::string&)> on_request = {})
        : fd_(fd), stop_fd_(stop_fd), on_request_(std::move(on_request)) {}
    // The request head (through the blank line) and its Content-Length body, as received.
    const std::string& request() const { return request_; }
    // Write everything; false when the client went away.
    bool write(std::string_view data) {
      while (!data.empty()) {
        ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
      }
      return true;
    }
    // Block until the client closes its end (or the server stops): a server that never answers.
    void wait_for_peer_close() {
      char buf[4096];
      while (wait_readable() && ::recv(fd_, buf, sizeof buf, 0) > 0) {
      }
    }
    // Read the request head and a Content-Length body (good enough for the test's own requests).
    bool read_request() {
      char buf[4096];
      std::size_t head_end = std::string::npos;
      while ((head_end = request_.find("\r\n\r\n")) == std::string::npos) {
        if (!wait_readable()) return false;
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) return false;
        request_.append(buf, static_cast<std::size_t>(n));
      }
      std::size_t length = 0;
      auto cl = request_.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) length = std::stoul(request_.substr(cl + 16));
      while (request_.size() < head_end + 4 + length) {
        if (!wait_readable()) return false;
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) return false;
        request_.append(buf, static_cast<std::size_t>(n));
      }
      if (on_request_) on_request_(request_);
      recorded_ = true;
      return true;
    }
    bool recorded() const { return recorded_; }

   private:
    bool wait_readable() {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      for (;;) {
        int r = ::poll(fds, 2, -1);
        if (r < 0 && errno == EINTR) continue;
        return r > 0 && !(fds[1].revents & POLLIN);
      }
    }
    int fd_;
    int stop_fd_;
    std::function<void(const std::string&)> on_request_;
    bool recorded_ = false;
    std::string request_;
  };

  using Handler = std::function<void(Connection&)>;

  explicit RawHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket failed");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 64) != 0)
      throw std::runtime_error("bind/listen failed");
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~RawHttpServer() {
    (void)!::write(stop_pipe_[1], "x", 1);
    acceptor_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);  // unblock handlers stuck in send()
    }
    for (auto& t : workers_) t.join();
    ::close(listen_fd_);
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }

  RawHttpServer(const RawHttpServer&) = delete;
  RawHttpServer& operator=(const RawHttpServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int connections() const { return connections_.load(); }
  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  // A complete response with a Content-Length.
  static std::string response(int status, const std::string& body, const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(status) + " Whatever\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
  }
  // A handler that reads the request and answers `raw`.
  static Handler reply(std::string raw) {
    return [raw = std::move(raw)](Connection& c) {
      if (c.read_request()) c.write(raw);
    };
  }

 private:
  void accept_loop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      int r = ::poll(fds, 2, -1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 || (fds[1].revents & POLLIN)) return;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections_;
      std::lock_guard lock(mutex_);
      open_fds_.insert(fd);
      workers_.emplace_back([this, fd] {
        Connection connection(fd, stop_pipe_[0], [this](const std::string& request) {
          std::lock_guard record(mutex_);
          requests_.push_back(request);
        });
        handler_(connection);
        std::lock_guard inner(mutex_);
        if (!connection.recorded()) requests_.push_back(connection.request());
        open_fds_.erase(fd);
        ::close(fd);
      });
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  mutable std::mutex mutex_;
  std::set<int> open_fds_;
  std::vector<std::thread> workers_;
  std::vector<std::string> requests_;
};

}  // namespace eddy::testing
