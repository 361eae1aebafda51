// Devices that are away (their eddyd stopped) when a step admits them: "no data yet" holds the
// step past its bake without counting as a failure, and when they come back they install, their
// reports arrive and count once, and the rollout goes on.
#include "tests/e2e/hub_fixture.hpp"

namespace eddy::testing {
namespace {

using namespace std::chrono_literals;

class HubOffline : public HubEndToEnd {};

TEST_F(HubOffline, AdmittedDevicesThatAreAwayHoldTheStepWithoutFailingItAndCountOnceWhenBack) {
  publish("1.0", true, "  steps: [100]\n  bake: 0s\n  minDevices: 1\n");
  start_all();
  ASSERT_TRUE(wait_complete("1.0"));

  // Step 1 (90%) of the next release admits dev-6, dev-3 and dev-2 (places 3.3, 60.8, 84.4);
  // two of them are stopped before it is committed. The hub knows them from their syncs.
  const std::vector<std::string> away{"dev-2", "dev-3"}, later{"dev-1", "dev-4", "dev-5"};
  for (const auto& id : away) device(id).stop();
  publish("2.0", true, "  steps: [90, 100]\n  bake: 1s\n  minDevices: 1\n  maxFailureRate: 0%\n");

  // dev-6 commits; the two away have no data. Once the bake has passed, the director waits on
  // them, and keeps waiting each time it looks again.
  auto waiting = wait_for_rollout([](nlohmann::json& r) {
    return r["release"] == "app-2.0" && r["devices"]["succeeded"] == 1 && r["devices"]["no_data"] == 2 &&
           contains(r["last_verdict"].value("message", ""), "no verdict yet");
  });
  ASSERT_TRUE(waiting);
  auto r = looked_again(*waiting);
  EXPECT_EQ(r["state"], "progressing");
  EXPECT_EQ(r["step"], 0);
  EXPECT_EQ(r["admitted"], 3);
  EXPECT_EQ(r["devices"]["failed"], 0);
  EXPECT_EQ(r["devices"]["no_data"], 2);
  EXPECT_EQ(r["last_verdict"]["decision"], "wait");
  EXPECT_EQ(r["last_verdict"]["value"], 1);      // devices with a verdict
  EXPECT_EQ(r["last_verdict"]["threshold"], 3);  // of those admitted
  EXPECT_TRUE(contains(r["last_verdict"]["message"], "2 no data yet")) << r["last_verdict"].dump();
  for (const auto& id : later) {
    EXPECT_EQ(device(id).current_version("app"), "1.0") << id;
    EXPECT_FALSE(ever_installed(device(id), "app-2.0")) << id << " installed app-2.0 before its step";
  }

  // Back: they install, the step closes and the last one opens; every device counted once.
  for (const auto& id : away) device(id).start();
  auto done = wait_complete("2.0");
  ASSERT_TRUE(done);
  EXPECT_EQ((*done)["generation"], 2);
  auto admitted = hub_admissions(*hub_, "app", 2);
  EXPECT_EQ(admitted, (std::map<std::string, std::int64_t>{
                          {"dev-1", 1}, {"dev-2", 0}, {"dev-3", 0}, {"dev-4", 1}, {"dev-5", 1}, {"dev-6", 0}}));
  expect_every_report_arrived();
}

}  // namespace
}  // namespace eddy::testing
