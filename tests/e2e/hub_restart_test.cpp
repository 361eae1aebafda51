// eddy-hub killed with SIGKILL while a step is open (one of its devices reported, two not) and
// started again: nothing the devices reported before, while it was away or after is lost or
// counted twice, and the rollout goes on from the step it was in, not from the first.
#include <algorithm>

#include "tests/e2e/hub_fixture.hpp"

namespace eddy::testing {
namespace {

using namespace std::chrono_literals;

class HubRestart : public HubEndToEnd {
 protected:
  // The devices admitted by `step` of generation 1, sorted.
  std::vector<std::string> admitted_by(std::int64_t step) {
    std::vector<std::string> out;
    for (const auto& [id, s] : hub_admissions(*hub_, "app", 1))
      if (s == step) out.push_back(id);
    return out;
  }
  bool checking(const std::vector<std::string>& ids) {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return checks(id) > 0; });
  }
};

TEST_F(HubRestart, AHubKilledMidStepComesBackInThatStepAndLosesNoReport) {
  // Places in line for rollout `app`: dev-6 3.3, dev-3 60.8, dev-2 84.4, dev-1 92.5, dev-5 93.7,
  // dev-4 97.8. Step 1 (50%, at least minDevices 2) admits dev-6 and dev-3, step 2 (95%) three
  // more, step 3 the last one. Every device's check waits until the test releases it.
  const std::vector<std::string> first{"dev-3", "dev-6"}, second{"dev-1", "dev-2", "dev-5"};
  for (const auto& id : ids_) hold(id);
  start_all_known();
  publish("1.0", true, "  steps: [50, 95, 100]\n  bake: 1s\n  minDevices: 2\n  maxFailureRate: 0%\n");

  ASSERT_TRUE(wait_until([&] { return admitted_by(0) == first && checking(first); }, 30s)) << rollout().dump(1);
  for (const auto& id : first) release(id);
  ASSERT_TRUE(wait_for_rollout([&](nlohmann::json& r) {
    return r["step"] == 1 && admitted_by(1) == second && checking(second);
  }));

  // One device of the open step reports its verdict; two are still in their analysis.
  release("dev-2");
  auto reported = wait_for_rollout([](nlohmann::json& r) { return r["devices"]["succeeded"] == 3; });
  ASSERT_TRUE(reported);
  auto& before = *reported;
  EXPECT_EQ(before["devices"]["in_progress"].get<int>() + before["devices"]["no_data"].get<int>(), 2) << before.dump(1);
  hub_->kill9();

  // While the hub is away a second device of the step commits: its reports wait in its outbox.
  release("dev-1");
  Device& dev1 = device("dev-1");
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = dev1.status();
        return dev1.current_version("app") == "1.0" && s["hub"]["outbox"].get<int>() > 0 &&
               s["hub"]["last_sync_result"].get<std::string>().starts_with("failed");
      },
      30s))
      << dev1.status().dump(1);

  // Back: the same generation, in the same step, which started when it started.
  hub_->start();
  auto after = rollout();
  EXPECT_EQ(after["generation"], 1);
  EXPECT_EQ(after["state"], "progressing");
  EXPECT_EQ(after["step"], 1);
  EXPECT_EQ(after["step_started_at"], before["step_started_at"]);
  EXPECT_EQ(after["admitted"], 5);

  // dev-1's reports arrive and count once; dev-5, still in its analysis, keeps the step open.
  auto counted = wait_for_rollout(
      [&](nlohmann::json& r) { return r["devices"]["succeeded"] == 4 && dev1.status()["hub"]["outbox"] == 0; });
  ASSERT_TRUE(counted);
  EXPECT_EQ((*counted)["step"], 1);

  for (const auto& id : ids_) release(id);
  auto done = wait_complete("1.0");
  ASSERT_TRUE(done);
  EXPECT_EQ((*done)["generation"], 1);
  EXPECT_EQ(admitted_by(2), std::vector<std::string>{"dev-4"});
  // One generation, widened twice: nothing started over at the restart.
  std::map<std::string, int> kinds;
  for (const auto& e : (*done)["events"]) ++kinds[e["kind"].get<std::string>()];
  EXPECT_EQ(kinds, (std::map<std::string, int>{{"complete", 1}, {"generation", 1}, {"step", 2}}))
      << (*done)["events"].dump(1);

  expect_every_report_arrived();
}

}  // namespace
}  // namespace eddy::testing
