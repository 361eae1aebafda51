// A ControlServer on a real Unix socket in a temp folder, served by an event loop on its own
// thread, with a scriptable fake ControlHandler. Shared by control_test.cpp and cli_test.cpp.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon/control_server.hpp"
#include "platform/event_loop.hpp"
#include "tests/support/support.hpp"

namespace eddy::testing {

class FakeHandler : public daemon::ControlHandler {
 public:
  nlohmann::json status_result = {
      {"device", {{"id", "pi-0042"}, {"labels", {{"site", "berlin"}}}}},
      {"state", "idle"},
      {"activity", "waiting for the next poll"},
      {"source",
       {{"url", "https://git.example.com/fleet.git"},
        {"branch", "main"},
        {"accepted_commit", "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d"},
        {"accepted_at", 1764000000},
        {"last_poll_at", 1764000000},
        {"last_poll_result", "up to date"},
        {"next_poll_at", 1764000060}}},
      {"targets", nlohmann::json::array({{{"name", "sensor-app"},
                                          {"type", "app"},
                                          {"current_version", "1.4.2"},
                                          {"previous_version", "1.4.1"},
                                          {"release", "sensor-app-1.4.2"},
                                          {"state", "committed"},
                                          {"updated_at", 1764000000},
                                          {"last_outcome", "committed"},
                                          {"last_message", "6 of 6 checks passed"}}})},
      {"update", nullptr}};
  Expected<nlohmann::json> check_result = nlohmann::json{{"outcome", "up-to-date"}, {"commit", "1a2b3c4d"}, {"message", ""}};
  Expected<nlohmann::json> rollback_result =
      nlohmann::json{{"target", "sensor-app"}, {"from_version", "1.4.3"}, {"to_version", "1.4.2"}};
  bool throw_in_status = false;

  // check() blocks until release_check() when block_check is set.
  bool block_check = false;
  std::atomic<bool> check_entered{false};
  std::atomic<int> last_history_limit{0};
  std::string last_rollback_target = "<none>";

  nlohmann::json status() override {
    if (throw_in_status) throw std::runtime_error("status exploded");
    return status_result;
  }
  nlohmann::json history(int limit) override {
    last_history_limit = limit;
    return {{"entries", nlohmann::json::array({{{"at", 1764000000},
                                                {"kind", "transition"},
                                                {"update_id", 3},
                                                {"target", "sensor-app"},
                                                {"release", "sensor-app-1.4.2"},
                                                {"version", "1.4.2"},
                                                {"from", "probing"},
                                                {"to", "committed"},
                                                {"message", "healthy"}},
                                               {{"at", 1764000100},
                                                {"kind", "event"},
                                                {"level", "warning"},
                                                {"message", "commit 1a2b3c4 refused: not signed"}},
                                               {{"at", 1764000200},
                                                {"kind", "probe"},
                                                {"update_id", 3},
                                                {"probe", "health"},
                                                {"iteration", 2},
                                                {"ok", false},
                                                {"detail", "HTTP 500"}}})}};
  }
  Expected<nlohmann::json> check() override {
    check_entered = true;
    std::unique_lock lock(mutex_);
    released_.wait(lock, [&] { return !block_check || released_flag_; });
    return check_result;
  }
  Expected<nlohmann::json> rollback(const std::string& target) override {
    std::lock_guard lock(mutex_);
    last_rollback_target = target;
    return rollback_result;
  }
  // For changes while the server runs: its calls come from other threads (and the test
  // synchronises with them through a socket and a child process, which TSan cannot see).
  void set_check_result(Expected<nlohmann::json> result) {
    std::lock_guard lock(mutex_);
    check_result = std::move(result);
  }
  void set_rollback_result(Expected<nlohmann::json> result) {
    std::lock_guard lock(mutex_);
    rollback_result = std::move(result);
  }
  std::string rollback_target() {
    std::lock_guard lock(mutex_);
    return last_rollback_target;
  }
  void release_check() {
    std::lock_guard lock(mutex_);
    released_flag_ = true;
    released_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  bool released_flag_ = false;
};

class ControlServerFixture : public ::testing::Test {
 protected:
  void start(daemon::ControlServerOptions options = {}) {
    if (options.socket.empty()) options.socket = socket_path();
    auto server = daemon::ControlServer::start(loop_, options, handler_);
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    thread_ = std::thread([this] { loop_.run(); });
  }
  void TearDown() override {
    handler_.release_check();
    loop_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }
  std::filesystem::path socket_path() const { return dir_ / "run/eddyd.sock"; }

  TempDir dir_;
  FakeHandler handler_;
  EventLoop loop_;
  std::unique_ptr<daemon::ControlServer> server_;
  std::thread thread_;
};

// A raw client connection for tests that send several lines or odd bytes.
class RawClient {
 public:
  explicit RawClient(const std::filesystem::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
    timeval timeout{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~RawClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  // The next line, or "" on EOF, error or timeout.
  std::string read_line() {
    for (;;) {
      auto newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        auto line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // True when the server closed the connection (EOF or reset).
  bool closed_by_peer() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

}  // namespace eddy::testing
