// End-to-end with a real eddy-hub and several real eddyd processes on loopback, all following
// one signed fleet repository: a good release walks every step to 100%; a bad one halts in its
// first step, its devices roll back and no other device ever installs it; the hub going away
// and coming back loses no report; an operator's abort rolls back devices that had committed,
// and a retry (a higher generation) admits them again.
#include <iostream>
#include <set>

#include "tests/e2e/hub_fixture.hpp"

namespace eddy::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kSteps =
    "  steps: [10, 50, 100]\n  bake: 1s\n  minDevices: 2\n  maxFailureRate: 0%\n  onFailure: rollback\n";

TEST_F(HubEndToEnd, GoodReleaseWalksEveryStepBadReleaseHaltsInItsFirstStepHubAwayLosesNothing) {
  publish("1.0", true, kSteps);
  start_all();

  // The good release widens step by step until every device runs it.
  std::set<std::int64_t> steps_seen;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = rollout("app");
        if (r.is_object() && r.contains("step")) steps_seen.insert(r["step"].get<std::int64_t>());
        return r.is_object() && r.value("state", "") == "complete" && all_run("1.0");
      },
      120s))
      << rollout("app").dump(1);
  auto done = rollout("app");
  EXPECT_EQ(done["generation"], 1);
  EXPECT_EQ(done["devices"]["succeeded"], kDevices);
  EXPECT_EQ(done["devices"]["failed"], 0);
  int widened = 0;
  for (const auto& e : done["events"]) widened += e["kind"] == "step" ? 1 : 0;
  EXPECT_EQ(widened, 2) << done["events"].dump(1);  // 10% -> 50% -> 100%
  EXPECT_GE(steps_seen.size(), 2u);

  // The hub goes away; a bad release is committed meanwhile. Devices accept the commit but
  // install nothing, and keep what they journal in their outbox.
  ASSERT_EQ(hub_->stop(), 0);
  auto bad = publish("2.0", false, kSteps);
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto& d : devices_) {
          auto s = d->status();
          if (s["source"]["accepted_commit"] != bad) return false;
          if (!s["hub"]["last_sync_result"].get<std::string>().starts_with("failed")) return false;
          if (s["hub"]["outbox"].get<int>() == 0) return false;
        }
        return true;
      },
      60s));
  for (auto& d : devices_) {
    EXPECT_EQ(d->current_version("app"), "1.0");
    auto check = d->eddy({"check"});
    EXPECT_EQ(check.json["outcome"], "not-admitted") << check.output;
    EXPECT_NE(check.json["message"].get<std::string>().find("could not be asked"), std::string::npos) << check.output;
  }

  // It comes back: the bad release starts at its first step, fails there, and the rollout halts.
  hub_->start();
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = rollout("app");
        return r.is_object() && r.value("release", "") == "app-2.0" && r.value("state", "") == "rolled-back";
      },
      120s))
      << rollout("app").dump(1);
  auto halted = rollout("app");
  const auto generation = halted["generation"].get<std::int64_t>();
  EXPECT_EQ(generation, 2);
  EXPECT_EQ(halted["step"], 0);
  EXPECT_GE(halted["devices"]["failed"].get<int>(), 1);
  EXPECT_EQ(halted["last_verdict"]["decision"], "halt") << halted.dump(1);
  EXPECT_EQ(halted["last_verdict"]["threshold"], 0.0);

  // Every device hears of the halt; then a few more polls, for anyone who would still install it.
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto& d : devices_)
          if (d->status()["hub"]["rollouts"]["app"].value("rollback", false) != true) return false;
        return true;
      },
      60s));
  for (auto& d : devices_) (void)d->eddy({"check"});

  auto admitted = hub_admissions(*hub_, "app", generation);
  ASSERT_GE(admitted.size(), 2u);  // minDevices
  int blast_radius = 0;
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    auto& d = *devices_[i];
    const bool in_step = admitted.contains(ids_[i]);
    if (in_step) {
      EXPECT_EQ(admitted[ids_[i]], 0) << ids_[i] << " was admitted after the first step";
    }
    const bool installed = ever_installed(d, "app-2.0");
    blast_radius += installed ? 1 : 0;
    if (!in_step) {
      EXPECT_FALSE(installed) << ids_[i] << " is outside the first step but installed the bad release";
    }
    EXPECT_EQ(d.current_version("app"), "1.0") << ids_[i];
  }
  std::cout << "blast radius: " << blast_radius << " of " << kDevices << " devices ran app-2.0 (first step: "
            << admitted.size() << " admitted)\n";
  EXPECT_GE(blast_radius, 1);
  EXPECT_LE(blast_radius, static_cast<int>(admitted.size()));

  // Nothing journaled while the hub was away was lost, nothing counted twice.
  expect_every_report_arrived();
}

TEST_F(HubEndToEnd, AbortRollsBackDevicesThatCommittedAndRetryAdmitsThemAgain) {
  publish("1.0", true, "  steps: [100]\n  bake: 1s\n  minDevices: 1\n");
  start_all();
  ASSERT_TRUE(wait_until([&] { return all_run("1.0"); }, 120s));

  // A good release held at its first step (a long bake).
  publish("2.0", true, "  steps: [10, 100]\n  bake: 1h\n  minDevices: 2\n  onFailure: rollback\n");
  std::vector<std::size_t> first;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = rollout("app");
        if (!r.is_object() || r.value("release", "") != "app-2.0" || r["admitted"].get<int>() < 2) return false;
        first.clear();
        for (std::size_t i = 0; i < devices_.size(); ++i)
          if (devices_[i]->current_version("app") == "2.0") first.push_back(i);
        return static_cast<int>(first.size()) == r["admitted"].get<int>() && r["devices"]["succeeded"] == r["admitted"];
      },
      120s))
      << rollout("app").dump(1);
  const auto generation = rollout("app")["generation"].get<std::int64_t>();

  // The operator aborts: devices that committed 2.0 are told to roll back, and do.
  auto abort = command("app", "abort");
  ASSERT_EQ(abort.status, 200) << abort.body;
  ASSERT_TRUE(wait_until([&] { return all_run("1.0"); }, 60s));
  for (auto i : first) {
    auto history = devices_[i]->eddy({"history", "-n", "10000"}).json;
    bool told = false;
    for (const auto& e : history["entries"])
      told = told || (e["kind"] == "transition" && e["to"] == "rolled-back" &&
                      e["message"].get<std::string>().find("the hub rolled rollout `app` back") != std::string::npos);
    EXPECT_TRUE(told) << ids_[i];
  }
  // Same generation: not taken again, however often they poll.
  for (auto i : first) {
    (void)devices_[i]->eddy({"check"});
    EXPECT_EQ(devices_[i]->current_version("app"), "1.0");
  }
  for (std::size_t i = 0; i < devices_.size(); ++i)
    if (std::find(first.begin(), first.end(), i) == first.end()) {
      EXPECT_FALSE(ever_installed(*devices_[i], "app-2.0")) << ids_[i];
    }

  // Retry: a higher generation, the same first devices (their place in line), admitted again.
  auto retry = command("app", "retry");
  ASSERT_EQ(retry.status, 200) << retry.body;
  EXPECT_EQ(retry.json["generation"], generation + 1);
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto i : first)
          if (devices_[i]->current_version("app") != "2.0") return false;
        return true;
      },
      60s));
  expect_every_report_arrived();
}

}  // namespace
}  // namespace eddy::testing
