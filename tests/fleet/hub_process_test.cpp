// The eddy-hub executable: --version, --help, --check-config (exit codes 0 and 2), a real
// process on an OS-chosen loopback port answering devices and operators, stopping cleanly on
// SIGTERM, and a restart that keeps the rollout where it was.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "tests/support/fleet.hpp"
#include "tests/support/hub.hpp"
#include "tests/support/support.hpp"

namespace eddy::testing {
namespace {

using json = nlohmann::json;

class HubProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_.publish("app", AppBundle{"1.0", true, 1, {}});
    fleet_.repo().write("rollouts/app.yaml",
                        "apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: app}\nspec:\n  release: app-1.0\n"
                        "  steps: [50, 100]\n  bake: 1h\n");
    commit_ = fleet_.repo().commit("bake an hour");
  }
  TempDir dir_;
  Fleet fleet_{dir_ / "fleet"};
  HubProcess hub_{dir_ / "hub", fleet_.repo().url(), fleet_.allowed_signers()};
  std::string commit_;
};

TEST_F(HubProcessTest, VersionHelpAndCheckConfig) {
  auto version = run({eddy_hub_path().string(), "--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_TRUE(contains(version.output, "eddy-hub 0.")) << version.output;
  auto help = run({eddy_hub_path().string(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(contains(help.output, "--check-config")) << help.output;
  EXPECT_EQ(run({eddy_hub_path().string(), "--no-such-flag"}).exit_code, 2);

  hub_.device_token("pi-1");
  hub_.write_config();
  auto good = run({eddy_hub_path().string(), "--check-config", "--config", hub_.config_path().string()});
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_TRUE(contains(good.output, "is valid")) << good.output;

  write_file(dir_ / "open.yaml", "listen: 0.0.0.0:8080\nsource: {url: file:///x, allowed_signers: a}\n"
                                 "devices: {tokens: d}\noperators: {tokens: o}\n");
  auto open = run({eddy_hub_path().string(), "--check-config", "--config", (dir_ / "open.yaml").string()});
  EXPECT_EQ(open.exit_code, 2);
  EXPECT_TRUE(contains(open.output, "open.yaml:1:")) << open.output;
  EXPECT_TRUE(contains(open.output, "not a loopback address")) << open.output;

  auto missing = run({eddy_hub_path().string(), "--config", (dir_ / "nope.yaml").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(contains(missing.output, "nope.yaml")) << missing.output;
}

TEST_F(HubProcessTest, ServesDevicesAndOperatorsAndStopsCleanly) {
  const std::string token = hub_.device_token("pi-1");
  hub_.start();
  EXPECT_TRUE(hub_.url().starts_with("http://127.0.0.1:")) << hub_.url();
  ASSERT_TRUE(wait_until([&] {
    return hub_.request("POST", "/v1/devices/pi-1/sync", token, R"({"labels": {"site": "x"}})").json["commit"] == commit_;
  })) << hub_.log();
  auto sync = hub_.request("POST", "/v1/devices/pi-1/sync", token, R"({"labels": {"site": "x"}})");
  EXPECT_EQ(sync.status, 200);
  EXPECT_EQ(sync.json["rollouts"]["app"]["release"], "app-1.0");
  auto status = hub_.request("GET", "/v1/rollouts/app", hub_.operator_token());
  EXPECT_EQ(status.status, 200);
  EXPECT_EQ(status.json["selected"], 1);
  EXPECT_EQ(hub_.request("GET", "/metrics", "").status, 200);

  // A device added to the token file while the hub runs is let in; a removed one is not.
  const std::string other = hub_.device_token("pi-2");
  EXPECT_EQ(hub_.request("POST", "/v1/devices/pi-2/sync", other, "{}").status, 200);
  hub_.revoke_device("pi-2");
  EXPECT_EQ(hub_.request("POST", "/v1/devices/pi-2/sync", other, "{}").status, 401);

  auto exit = hub_.stop();
  ASSERT_TRUE(exit);
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << *exit << "\n" << hub_.log();
  EXPECT_TRUE(contains(hub_.log(), "eddy-hub stopped")) << hub_.log();
}

// The hub's threads carry names (top -H, perf, bench/hub_load's CPU per thread): the main
// thread, which runs the loop that owns the store, keeps the executable's name.
TEST_F(HubProcessTest, ThreadsCarryTheirNames) {
  if (!emulator().empty())
    GTEST_SKIP() << "under qemu-user /proc/PID/task lists the emulator's threads, and the names are qemu's to pass on";
  hub_.start();
  ASSERT_TRUE(wait_until([&] { return hub_.request("GET", "/v1/rollouts/app", hub_.operator_token()).status == 200; }))
      << hub_.log();
  std::set<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(hub_.pid()) + "/task")) {
    std::string name = read_file(task.path() / "comm");
    if (!name.empty() && name.back() == '\n') name.pop_back();
    names.insert(name);
  }
  for (const char* expected : {"eddy-hub", "hub-http", "hub-walsync", "hub-follow"})
    EXPECT_TRUE(names.contains(expected)) << expected << " is not among the hub's threads";
}

TEST_F(HubProcessTest, ARestartMidRolloutContinuesWhereItWas) {
  const std::string token = hub_.device_token("pi-1");
  hub_.start();
  ASSERT_TRUE(wait_until([&] {
    return hub_.request("GET", "/v1/rollouts/app", hub_.operator_token()).status == 200;
  })) << hub_.log();
  hub_.request("POST", "/v1/devices/pi-1/sync", token, "{}");
  auto promoted = hub_.request("POST", "/v1/rollouts/app/promote", hub_.operator_token());
  ASSERT_EQ(promoted.json["step"], 1) << promoted.body;
  hub_.kill9();  // no clean shutdown: what was answered was already stored
  hub_.start();
  auto status = hub_.request("GET", "/v1/rollouts/app", hub_.operator_token());
  ASSERT_EQ(status.status, 200) << hub_.log();
  EXPECT_EQ(status.json["step"], 1);
  EXPECT_EQ(status.json["generation"], 1);
  EXPECT_EQ(status.json["admitted"], 1);
}

}  // namespace
}  // namespace eddy::testing
