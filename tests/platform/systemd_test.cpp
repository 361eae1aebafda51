#include "platform/systemd.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "tests/support/support.hpp"

namespace {

using eddy::testing::TempDir;

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  // path starting with '@': abstract namespace.
  explicit NotifySocket(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), path.size());
    if (path[0] == '@') address.sun_path[0] = '\0';
    auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), length), 0) << std::strerror(errno);
    timeval timeout{5, 0};  // a missing datagram fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~NotifySocket() { ::close(fd_); }
  std::string receive() {
    char buffer[4096];
    ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    if (n < 0) return "<nothing: " + std::string(std::strerror(errno)) + ">";
    return std::string(buffer, static_cast<std::size_t>(n));
  }

 private:
  int fd_ = -1;
};

class SystemdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) {
      const char* value = std::getenv(name);
      saved_.emplace_back(name, value ? std::optional<std::string>(value) : std::nullopt);
      ::unsetenv(name);
    }
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST_F(SystemdTest, NoOpWithoutNotifySocket) {
  EXPECT_TRUE(eddy::systemd::notify_ready());
  EXPECT_TRUE(eddy::systemd::notify_status("idle"));
  EXPECT_TRUE(eddy::systemd::notify_watchdog());
  EXPECT_TRUE(eddy::systemd::notify_stopping());
}

TEST_F(SystemdTest, SendsEachNotificationToAPathSocket) {
  TempDir dir;
  auto path = (dir / "notify").string();
  NotifySocket socket(path);
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);

  ASSERT_TRUE(eddy::systemd::notify_ready());
  EXPECT_EQ(socket.receive(), "READY=1");
  ASSERT_TRUE(eddy::systemd::notify_status("downloading sensor-app 1.4.3\nsecond line"));
  EXPECT_EQ(socket.receive(), "STATUS=downloading sensor-app 1.4.3 second line");
  ASSERT_TRUE(eddy::systemd::notify_watchdog());
  EXPECT_EQ(socket.receive(), "WATCHDOG=1");
  ASSERT_TRUE(eddy::systemd::notify_stopping());
  EXPECT_EQ(socket.receive(), "STOPPING=1");
  ASSERT_TRUE(eddy::systemd::notify("READY=1\nSTATUS=ok"));
  EXPECT_EQ(socket.receive(), "READY=1\nSTATUS=ok");
}

TEST_F(SystemdTest, SendsToAnAbstractSocket) {
  std::random_device random;
  std::string name = "@eddy-test-" + std::to_string(::getpid()) + "-" + std::to_string(random());
  NotifySocket socket(name);
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  ASSERT_TRUE(eddy::systemd::notify_ready());
  EXPECT_EQ(socket.receive(), "READY=1");
}

TEST_F(SystemdTest, MissingSocketIsAnErrorNamingIt) {
  TempDir dir;
  auto path = (dir / "nobody-here").string();
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  auto status = eddy::systemd::notify_ready();
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, eddy::Errc::not_found);
  EXPECT_NE(status.error().message.find(path), std::string::npos);
}

TEST_F(SystemdTest, RelativeSocketPathIsUnsupported) {
  ::setenv("NOTIFY_SOCKET", "relative/notify", 1);
  auto status = eddy::systemd::notify_ready();
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, eddy::Errc::unsupported);
}

TEST_F(SystemdTest, WatchdogInterval) {
  EXPECT_FALSE(eddy::systemd::watchdog_interval());
  ::setenv("WATCHDOG_USEC", "60000000", 1);
  EXPECT_EQ(eddy::systemd::watchdog_interval(), std::chrono::seconds(60));
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  EXPECT_EQ(eddy::systemd::watchdog_interval(), std::chrono::seconds(60));
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  EXPECT_FALSE(eddy::systemd::watchdog_interval()) << "the watchdog is meant for another process";
  ::unsetenv("WATCHDOG_PID");
  ::setenv("WATCHDOG_USEC", "0", 1);
  EXPECT_FALSE(eddy::systemd::watchdog_interval());
  ::setenv("WATCHDOG_USEC", "soon", 1);
  EXPECT_FALSE(eddy::systemd::watchdog_interval());
}

}  // namespace
