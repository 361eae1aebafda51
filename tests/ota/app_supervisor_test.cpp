#include "ota/app_supervisor.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>

#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

namespace stdfs = std::filesystem;
using eddy::testing::read_file;
using eddy::testing::TempDir;
using eddy::testing::wait_until;
using eddy::testing::write_file;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Running (not gone, not a zombie waiting for a parent that does not reap).
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!stat || !std::getline(stat, line)) return false;
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  char state = line[close + 2];
  return state != 'Z' && state != 'X';
}

std::string trimmed(const stdfs::path& path) {
  std::error_code ec;
  if (!stdfs::exists(path, ec)) return "";
  std::string s = read_file(path);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> shell(const std::string& script) { return {"/bin/sh", "-c", script}; }

class AppSupervisorTest : public ::testing::Test {
 protected:
  AppSupervisorTest() {
    stdfs::create_directories(tmp_ / "app" / "versions" / "1");
    stdfs::create_directories(tmp_ / "app" / "versions" / "2");
    stdfs::create_symlink("versions/1", current_);
  }
  std::string out(const std::string& name) const { return (tmp_ / name).string(); }

  TempDir tmp_;
  stdfs::path current_ = tmp_ / "app" / "current";
};

TEST_F(AppSupervisorTest, StartsInTheResolvedVersionFolderWithItsName) {
  AppSupervisor supervisor;
  ASSERT_TRUE(supervisor.start("sensor-app",
                               shell("echo \"$EDDY_APP $(pwd -P)\" > '" + out("where") + "'; exec sleep 1000"),
                               current_));
  auto pid = supervisor.pid("sensor-app");
  ASSERT_TRUE(pid);
  ASSERT_TRUE(wait_until([&] { return !trimmed(out("where")).empty(); }));
  const auto v1 = stdfs::canonical(tmp_ / "app" / "versions" / "1");
  EXPECT_EQ(trimmed(out("where")), "sensor-app " + v1.string());

  // Switching `current` leaves the running process in its version.
  stdfs::remove(current_);
  stdfs::create_symlink("versions/2", current_);
  EXPECT_EQ(stdfs::read_symlink("/proc/" + std::to_string(*pid) + "/cwd"), v1);
  supervisor.tick();
  EXPECT_EQ(supervisor.pid("sensor-app"), pid);
  EXPECT_EQ(supervisor.restarts("sensor-app"), 0);
  supervisor.stop("sensor-app");
  EXPECT_FALSE(running(*pid));
  EXPECT_EQ(supervisor.pid("sensor-app"), std::nullopt);
}

TEST_F(AppSupervisorTest, RestartsAnExitedProcessWithDoublingBackoff) {
  auto now = AppSupervisor::Clock::time_point{} + 1h;
  AppSupervisor supervisor({.initial = 1s, .max = 4s, .reset_after = 60s}, [&] { return now; });
  ASSERT_TRUE(supervisor.start("crashy", shell("echo run >> '" + out("runs") + "'; exit 3"), current_));

  auto wait_exit = [&] {
    return wait_until([&] {
      supervisor.tick();
      return !supervisor.pid("crashy");
    });
  };
  // After each exit: nothing until the delay has passed, then one new process.
  auto expect_restart_after = [&](std::chrono::milliseconds delay, int restarts) {
    ASSERT_TRUE(wait_exit());
    now += delay - 1ms;
    supervisor.tick();
    EXPECT_FALSE(supervisor.pid("crashy")) << "restarted before " << delay.count() << " ms";
    now += 1ms;
    supervisor.tick();
    EXPECT_TRUE(supervisor.pid("crashy")) << "not restarted after " << delay.count() << " ms";
    EXPECT_EQ(supervisor.restarts("crashy"), restarts);
  };
  expect_restart_after(1s, 1);
  expect_restart_after(2s, 2);
  expect_restart_after(4s, 3);
  expect_restart_after(4s, 4);  // capped at max

  // A run longer than reset_after starts the backoff over.
  now += 61s;
  expect_restart_after(1s, 5);
  ASSERT_TRUE(wait_exit());
  EXPECT_EQ(read_file(out("runs")), "run\nrun\nrun\nrun\nrun\nrun\n");
}

TEST_F(AppSupervisorTest, RestartsWithTheRealClock) {
  AppSupervisor supervisor({.initial = 10ms, .max = 40ms, .reset_after = 60s});
  ASSERT_TRUE(supervisor.start("flaky", shell("exit 1"), current_));
  EXPECT_TRUE(wait_until([&] {
    supervisor.tick();
    return supervisor.restarts("flaky") >= 3;
  }));
  supervisor.stop("flaky");
  const int after_stop = supervisor.restarts("flaky");
  for (int i = 0; i < 5; ++i) supervisor.tick();
  EXPECT_EQ(supervisor.restarts("flaky"), after_stop);
  EXPECT_EQ(supervisor.pid("flaky"), std::nullopt);
}

TEST_F(AppSupervisorTest, StopTerminatesTheWholeProcessGroup) {
  AppSupervisor supervisor({.initial = 1ms, .max = 1ms, .reset_after = 60s});
  ASSERT_TRUE(supervisor.start("group", shell("sleep 1000 & echo $! > '" + out("child") + "'; wait"), current_));
  auto leader = supervisor.pid("group");
  ASSERT_TRUE(leader);
  ASSERT_TRUE(wait_until([&] { return !trimmed(out("child")).empty(); }));
  const pid_t child = std::stoi(trimmed(out("child")));
  ASSERT_TRUE(running(child));

  supervisor.stop("group", 5s);
  EXPECT_FALSE(running(*leader));
  EXPECT_TRUE(wait_until([&] { return !running(child); }));
  for (int i = 0; i < 3; ++i) supervisor.tick();
  EXPECT_EQ(supervisor.pid("group"), std::nullopt);  // stopped means not restarted
}

TEST_F(AppSupervisorTest, RestartReplacesThePid) {
  AppSupervisor supervisor;
  ASSERT_TRUE(supervisor.start("app", shell("exec sleep 1000"), current_));
  auto first = supervisor.pid("app");
  ASSERT_TRUE(first);
  stdfs::remove(current_);
  stdfs::create_symlink("versions/2", current_);
  ASSERT_TRUE(supervisor.restart("app", shell("pwd -P > '" + out("where") + "'; exec sleep 1000"), current_));
  auto second = supervisor.pid("app");
  ASSERT_TRUE(second);
  EXPECT_NE(*first, *second);
  EXPECT_FALSE(running(*first));
  EXPECT_TRUE(running(*second));
  ASSERT_TRUE(wait_until([&] { return !trimmed(out("where")).empty(); }));
  EXPECT_EQ(trimmed(out("where")), stdfs::canonical(tmp_ / "app" / "versions" / "2").string());
  supervisor.stop_all(5s);
  EXPECT_FALSE(running(*second));
}

TEST_F(AppSupervisorTest, ProcessIgnoringSigtermIsKilledAfterGrace) {
  AppSupervisor supervisor;
  ASSERT_TRUE(supervisor.start(
      "stubborn", shell("trap '' TERM; echo ready > '" + out("ready") + "'; while :; do sleep 0.05; done"),
      current_));
  auto pid = supervisor.pid("stubborn");
  ASSERT_TRUE(pid);
  ASSERT_TRUE(wait_until([&] { return trimmed(out("ready")) == "ready"; }));
  const auto before = std::chrono::steady_clock::now();
  supervisor.stop("stubborn", 300ms);
  // It outlived SIGTERM, so stop() had to wait the whole grace before SIGKILL.
  EXPECT_GE(std::chrono::steady_clock::now() - before, 300ms);
  EXPECT_FALSE(running(*pid));
}

TEST_F(AppSupervisorTest, StopAllStopsEveryApp) {
  AppSupervisor supervisor;
  ASSERT_TRUE(supervisor.start("a", shell("exec sleep 1000"), current_));
  ASSERT_TRUE(supervisor.start("b", shell("exec sleep 1000"), current_));
  auto a = supervisor.pid("a");
  auto b = supervisor.pid("b");
  ASSERT_TRUE(a && b);
  supervisor.stop_all(5s);
  EXPECT_FALSE(running(*a));
  EXPECT_FALSE(running(*b));
  EXPECT_EQ(supervisor.pid("a"), std::nullopt);
  EXPECT_EQ(supervisor.pid("b"), std::nullopt);
}

TEST_F(AppSupervisorTest, StartFailuresAreErrors) {
  AppSupervisor supervisor;
  auto missing = supervisor.start("app", {"bin/not-there"}, current_);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::process);
  EXPECT_THAT(missing.error().message, HasSubstr("bin/not-there"));
  EXPECT_THAT(missing.error().message, HasSubstr("app"));
  EXPECT_EQ(supervisor.pid("app"), std::nullopt);

  auto no_folder = supervisor.start("app", shell("true"), tmp_ / "nowhere" / "current");
  ASSERT_FALSE(no_folder);
  EXPECT_EQ(no_folder.error().code, Errc::not_found);
  EXPECT_THAT(no_folder.error().message, HasSubstr("nowhere"));

  auto empty = supervisor.start("app", {}, current_);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Errc::invalid_argument);
}

TEST_F(AppSupervisorTest, DestructorStopsWhatItSupervises) {
  std::optional<pid_t> pid;
  {
    AppSupervisor supervisor;
    ASSERT_TRUE(supervisor.start("app", shell("exec sleep 1000"), current_));
    pid = supervisor.pid("app");
  }
  ASSERT_TRUE(pid);
  EXPECT_FALSE(running(*pid));
}

TEST(RunRestartCommand, RunsTheCommandWithTheAppName) {
  TempDir tmp;
  AppTarget target;
  target.name = "sensor-app";
  target.dir = tmp.path();
  target.restart = shell("echo \"$EDDY_APP\" > '" + (tmp / "restarted").string() + "'");
  ASSERT_TRUE(run_restart_command(target, 10s));
  EXPECT_EQ(read_file(tmp / "restarted"), "sensor-app\n");
}

TEST(RunRestartCommand, FailureNamesTheCommandAndItsOutput) {
  AppTarget target;
  target.name = "sensor-app";
  target.restart = shell("echo unit sensor-app.service not found; exit 5");
  auto r = run_restart_command(target, 10s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::process);
  EXPECT_THAT(r.error().message, HasSubstr("restart app sensor-app"));
  EXPECT_THAT(r.error().message, HasSubstr("not found"));
}

TEST(RunRestartCommand, TimeoutAndMissingCommand) {
  AppTarget target;
  target.name = "slow";
  target.restart = {"sleep", "30"};
  auto r = run_restart_command(target, 200ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::timeout);
  EXPECT_THAT(r.error().message, HasSubstr("sleep 30"));

  target.restart.clear();
  auto none = run_restart_command(target, 1s);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace eddy::ota
