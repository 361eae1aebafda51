// An operator steers a rollout of real devices through the real `eddy rollout` command line:
// pause holds a step whose gate is met, resume widens it, promote jumps to the last step and
// every device installs.
#include "tests/e2e/hub_fixture.hpp"

namespace eddy::testing {
namespace {

using namespace std::chrono_literals;

class HubOperator : public HubEndToEnd {};

TEST_F(HubOperator, PauseHoldsAMetGateResumeWidensPromoteJumpsToTheLastStep) {
  // Places in line: dev-6 3.3 (step 1, 50%), dev-3 60.8 and dev-2 84.4 (step 2, 90%), dev-1,
  // dev-5 and dev-4 (step 3). Every check waits until the test releases it.
  for (const auto& id : ids_) hold(id);
  start_all_known();
  publish("1.0", true, "  steps: [50, 90, 100]\n  bake: 1s\n  minDevices: 1\n  maxFailureRate: 0%\n");
  ASSERT_TRUE(wait_until([&] { return checks("dev-6") > 0; }, 30s)) << rollout().dump(1);

  auto paused = operator_eddy({"rollout", "pause", "app"});
  ASSERT_EQ(paused.exit_code, 0) << paused.output;
  EXPECT_TRUE(contains(paused.output, "paused app\napp  paused  release app-1.0")) << paused.output;

  // dev-6 was installing: it finishes and commits. The gate is met (bake passed, every admitted
  // device succeeded), and the director has looked at it twice since: still paused in step 1.
  release("dev-6");
  auto met = wait_for_rollout([](nlohmann::json& r) {
    return r["devices"]["succeeded"] == 1 && contains(r["last_verdict"].value("message", ""), "paused by an operator");
  });
  ASSERT_TRUE(met);
  auto r = looked_again(*met);
  EXPECT_EQ(r["state"], "paused");
  EXPECT_EQ(r["step"], 0);
  EXPECT_EQ(r["admitted"], 1);
  EXPECT_EQ(r["devices"]["failed"], 0);
  EXPECT_GE(r["last_verdict"]["at"].get<std::int64_t>() - r["step_started_at"].get<std::int64_t>(),
            r["bake_seconds"].get<std::int64_t>());
  // The devices hear it from the hub, and the next step's devices do not start.
  ASSERT_TRUE(wait_until([&] { return device("dev-3").status()["hub"]["rollouts"]["app"]["state"] == "paused"; }, 30s))
      << device("dev-3").status().dump(1);
  EXPECT_EQ(checks("dev-3"), 0);
  EXPECT_EQ(checks("dev-2"), 0);

  auto resumed = operator_eddy({"rollout", "resume", "app", "--json"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(nlohmann::json::parse(resumed.output, nullptr, false)["state"], "progressing") << resumed.output;
  // It widens: step 2's devices are admitted and start installing.
  ASSERT_TRUE(wait_until([&] { return rollout()["step"] == 1 && checks("dev-3") > 0 && checks("dev-2") > 0; }, 30s))
      << rollout().dump(1);
  EXPECT_EQ(rollout()["admitted"], 3);

  // Promote while step 2's devices have no verdict yet: the last step opens at once, and every
  // device installs.
  auto promoted = operator_eddy({"rollout", "promote", "app", "--json"});
  ASSERT_EQ(promoted.exit_code, 0) << promoted.output;
  auto status = nlohmann::json::parse(promoted.output, nullptr, false);
  EXPECT_EQ(status["step"], 2) << promoted.output;
  EXPECT_EQ(status["percent"], 100) << promoted.output;
  EXPECT_EQ(status["state"], "progressing") << promoted.output;
  for (const auto& id : ids_) release(id);
  auto complete = wait_complete("1.0");
  ASSERT_TRUE(complete);

  EXPECT_EQ(hub_admissions(*hub_, "app", 1), (std::map<std::string, std::int64_t>{
                                                 {"dev-1", 2}, {"dev-2", 1}, {"dev-3", 1}, {"dev-4", 2}, {"dev-5", 2},
                                                 {"dev-6", 0}}));
  auto done = operator_eddy({"rollout", "status", "app"});
  EXPECT_EQ(done.exit_code, 0) << done.output;
  EXPECT_TRUE(contains(done.output, "app  complete  release app-1.0")) << done.output;
  std::vector<std::string> kinds;
  for (const auto& e : (*complete)["events"]) {
    kinds.push_back(e["kind"]);
    if (e["kind"] == "step" && contains(e["message"], "promoted")) {
      EXPECT_TRUE(contains(e["message"], "promoted by operator to step 3 of 3 (100%)")) << e.dump();
    }
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"generation", "paused", "resumed", "step", "step", "complete"}));
  expect_every_report_arrived();
}

}  // namespace
}  // namespace eddy::testing
