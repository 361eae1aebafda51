// `eddy` as a real process against a ControlServer run by the test.
#include <sys/stat.h>

#include "tests/daemon/control_fixture.hpp"

namespace {

using eddy::Errc;
using eddy::testing::run;
using nlohmann::json;

class EddyCliTest : public eddy::testing::ControlServerFixture {
 protected:
  eddy::testing::CommandResult eddy(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), eddy::testing::eddy_path().string());
    if (!env.contains("EDDY_SOCKET")) env["EDDY_SOCKET"] = (dir_ / "not-this-one.sock").string();
    env["TZ"] = "UTC";
    return run(args, {}, env);
  }
  std::vector<std::string> with_socket(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", socket_path().string()});
    return args;
  }
};

TEST_F(EddyCliTest, StatusJsonPrintsTheDaemonsResultAsIs) {
  start();
  auto result = eddy(with_socket({"status", "--json"}));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(json::parse(result.output), handler_.status_result);
}

TEST_F(EddyCliTest, EnvironmentNamesTheSocket) {
  start();
  auto result = eddy({"status", "--json"}, {{"EDDY_SOCKET", socket_path().string()}});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(json::parse(result.output)["device"]["id"], "pi-0042");
}

TEST_F(EddyCliTest, HumanStatus) {
  handler_.status_result["update"] = {
      {"target", "sensor-app"},
      {"release", "sensor-app-1.4.3"},
      {"version", "1.4.3"},
      {"state", "downloading"},
      {"since", 1764000000},
      {"progress", {{"bytes", 24576}, {"total", 49152}, {"rate", 1024.0}, {"eta_seconds", 24}}}};
  start();
  auto result = eddy(with_socket({"status"}));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* needle : {"pi-0042", "site=berlin", "idle: waiting for the next poll", "1a2b3c4d5e6f ",
                             "2025-11-24 16:00:00", "up to date", "sensor-app -> 1.4.3 (sensor-app-1.4.3): downloading",
                             "24.0 KiB of 48.0 KiB (50%)", "1.0 KiB/s", "about 24s left", "1.4.2", "committed",
                             "previous 1.4.1", "6 of 6 checks passed"})
    EXPECT_NE(result.output.find(needle), std::string::npos) << "missing `" << needle << "` in:\n" << result.output;
}

TEST_F(EddyCliTest, HumanStatusShowsTheHub) {
  handler_.status_result["hub"] = {
      {"url", "https://hub.example.com:8443"},
      {"last_sync_at", 1764000000},
      {"last_sync_result", "failed: hub https://hub.example.com:8443/v1/devices/pi-0042/sync: connection refused"},
      {"last_report_at", 1764000000},
      {"last_report_result", "ok: sent 3, 0 waiting"},
      {"outbox", 12},
      {"rollouts",
       {{"sensor-app",
         {{"release", "sensor-app-1.4.3"}, {"admitted", false}, {"rollback", false}, {"generation", 2},
          {"state", "progressing"}, {"step", 0}, {"percent", 10}, {"reason", "this device's turn comes later"}}}}}};
  start();
  auto result = eddy(with_socket({"status"}));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* needle : {"hub       https://hub.example.com:8443", "last sync  2025-11-24 16:00:00",
                             "failed: hub https://hub.example.com:8443/v1/devices/pi-0042/sync: connection refused",
                             "rollout sensor-app  sensor-app-1.4.3: not admitted (generation 2, progressing): "
                             "this device's turn comes later",
                             "reports    12 waiting", "ok: sent 3, 0 waiting"})
    EXPECT_NE(result.output.find(needle), std::string::npos) << "missing `" << needle << "` in:\n" << result.output;
}

TEST_F(EddyCliTest, HumanHistoryHasOneLineAnEntryWithLocalTime) {
  start();
  auto result = eddy(with_socket({"history", "-n", "3"}));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(handler_.last_history_limit.load(), 3);
  EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 3) << result.output;
  for (const char* needle : {"2025-11-24 16:00:00  sensor-app 1.4.2  probing -> committed  healthy  [update 3]",
                             "2025-11-24 16:01:40  warning  commit 1a2b3c4 refused: not signed",
                             "2025-11-24 16:03:20  probe health #2 FAILED: HTTP 500  [update 3]"})
    EXPECT_NE(result.output.find(needle), std::string::npos) << "missing `" << needle << "` in:\n" << result.output;
}

TEST_F(EddyCliTest, CheckExitCodesFollowTheOutcome) {
  start();
  auto result = eddy(with_socket({"check"}));
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("up to date"), std::string::npos) << result.output;

  for (const char* outcome : {"refused", "rolled-back", "failed"}) {
    handler_.set_check_result(json{{"outcome", outcome}, {"commit", "abc"}, {"message", "because"}});
    result = eddy(with_socket({"check"}));
    EXPECT_EQ(result.exit_code, 1) << outcome << ": " << result.output;
    EXPECT_NE(result.output.find("because"), std::string::npos) << result.output;
    result = eddy(with_socket({"check", "--json"}));
    EXPECT_EQ(result.exit_code, 1) << outcome;
    EXPECT_EQ(json::parse(result.output)["outcome"], outcome);
  }
  for (const char* outcome : {"updated", "not-admitted", "up-to-date"}) {
    handler_.set_check_result(json{{"outcome", outcome}, {"commit", "abc"}, {"message", ""}});
    EXPECT_EQ(eddy(with_socket({"check"})).exit_code, 0) << outcome;
  }
}

TEST_F(EddyCliTest, RollbackPassesTheTargetAndReportsFailures) {
  start();
  auto result = eddy(with_socket({"rollback", "sensor-app"}));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(handler_.rollback_target(), "sensor-app");
  EXPECT_NE(result.output.find("rolled back sensor-app from 1.4.3 to 1.4.2"), std::string::npos) << result.output;

  handler_.set_rollback_result(eddy::make_error(Errc::conflict, "sensor-app has no previous version"));
  result = eddy(with_socket({"rollback"}));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_EQ(handler_.rollback_target(), "");
  EXPECT_NE(result.output.find("sensor-app has no previous version (conflict)"), std::string::npos) << result.output;

  handler_.set_rollback_result(eddy::make_error(Errc::invalid_argument, "there are 2 apps; name one"));
  result = eddy(with_socket({"rollback"}));
  EXPECT_EQ(result.exit_code, 2) << result.output;
}

TEST_F(EddyCliTest, UnreachableDaemonExitsThreeNamingTheSocket) {
  auto missing = (dir_ / "run/eddyd.sock").string();
  for (const char* command : {"status", "history", "check", "rollback"}) {
    auto result = eddy({"--socket", missing, command});
    EXPECT_EQ(result.exit_code, 3) << command << ": " << result.output;
    EXPECT_NE(result.output.find(missing), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("systemctl status eddyd"), std::string::npos) << result.output;
  }
  // A socket file nobody listens on.
  start();
  loop_.stop();
  thread_.join();
  auto result = eddy(with_socket({"--timeout", "1s", "status"}));
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_NE(result.output.find("did not answer"), std::string::npos) << "the loop is stopped: " << result.output;
}

TEST_F(EddyCliTest, UsageErrorsExitTwo) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {}, {"bogus"}, {"status", "--bogus"}, {"history", "-n", "0"}, {"history", "-n", "many"},
           {"rollback", "a", "b"}, {"--timeout", "soon", "status"}}) {
    auto result = eddy(args);
    EXPECT_EQ(result.exit_code, 2) << testing::PrintToString(args) << ": " << result.output;
  }
}

TEST_F(EddyCliTest, HelpExplainsCommandsExitCodesAndSocket) {
  auto result = eddy({"--help"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* needle : {"status", "history", "check", "rollback", "Exit codes", "/run/eddy/eddyd.sock",
                             "EDDY_SOCKET", "cannot be reached"})
    EXPECT_NE(result.output.find(needle), std::string::npos) << needle;
  EXPECT_EQ(eddy({"check", "--help"}).exit_code, 0);
}

}  // namespace
