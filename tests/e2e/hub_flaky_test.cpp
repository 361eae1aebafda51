// A device whose health check fails now and then: one failed check within the release's
// threshold commits, and the hub widens the rollout (the threshold decides, not the first
// failure); one failed check more than the threshold rolls the device back, and that failure
// halts the step.
#include "tests/e2e/hub_fixture.hpp"

namespace eddy::testing {
namespace {

using namespace std::chrono_literals;

class HubFlakyDevice : public HubEndToEnd {
 protected:
  // The health results of `release` that the hub has from `device`, in the order checked.
  std::vector<bool> hub_probe_results(const std::string& device, const std::string& release) {
    std::vector<std::pair<std::int64_t, bool>> results;
    auto db = storage::Database::open(hub_->data_dir() / "hub.db", {});
    EXPECT_TRUE(db) << db.error().message;
    if (!db) return {};
    (void)db->query("SELECT probes FROM reports WHERE device = ? AND release = ?", {device, release},
                    [&](const storage::Row& r) {
                      for (const auto& p : nlohmann::json::parse(r.text(0)))
                        results.emplace_back(p["iteration"].get<std::int64_t>(), p["ok"].get<bool>());
                    });
    std::sort(results.begin(), results.end());
    std::vector<bool> out;
    for (const auto& [iteration, ok] : results) out.push_back(ok);
    return out;
  }
};

// Step 1 (10%, at least one device) admits dev-6 alone (place 3.3 of 100); step 2 the others.
constexpr const char* kSteps = "  steps: [10, 100]\n  bake: 1s\n  minDevices: 1\n  maxFailureRate: 0%\n"
                               "  onFailure: rollback\n";

TEST_F(HubFlakyDevice, TheThresholdDecidesNotTheFirstFailedCheck) {
  // Three checks, one failed check tolerated; dev-6's first check fails.
  fail_first("dev-6", 1);
  start_all_known();
  publish("1.0", true, kSteps, check_analysis(3, 1));
  ASSERT_TRUE(wait_complete("1.0"));
  auto admitted = hub_admissions(*hub_, "app", 1);
  EXPECT_EQ(admitted["dev-6"], 0);
  for (const auto& id : ids_) {
    if (id == "dev-6") continue;
    EXPECT_EQ(admitted[id], 1) << id;
  }
  // The failed check did happen, and the hub has it: it counted the device a success anyway.
  EXPECT_EQ(checks("dev-6"), 3);
  ASSERT_TRUE(wait_until([&] { return hub_probe_results("dev-6", "app-1.0").size() == 3; }));
  EXPECT_EQ(hub_probe_results("dev-6", "app-1.0"), (std::vector<bool>{false, true, true}));

  // The next release: dev-6 fails two checks, one more than the threshold. It rolls back, and
  // its failure halts the first step; nobody else installs the release.
  fail_first("dev-6", 2);
  publish("2.0", true, kSteps, check_analysis(3, 1));
  auto halted = wait_for_rollout(
      [](nlohmann::json& now) { return now["release"] == "app-2.0" && now["state"] == "rolled-back"; }, 60s);
  ASSERT_TRUE(halted);
  auto& r = *halted;
  EXPECT_EQ(r["generation"], 2);
  EXPECT_EQ(r["step"], 0);
  EXPECT_EQ(r["admitted"], 1);
  EXPECT_EQ(r["devices"]["failed"], 1);
  EXPECT_EQ(r["last_verdict"]["decision"], "halt") << r.dump(1);
  EXPECT_EQ(r["last_verdict"]["value"], 1.0);      // failure rate
  EXPECT_EQ(r["last_verdict"]["threshold"], 0.0);  // maxFailureRate
  EXPECT_EQ(checks("dev-6"), 2);                   // stopped at the failure over the threshold
  ASSERT_TRUE(wait_until([&] { return device("dev-6").current_version("app") == "1.0"; }));
  EXPECT_EQ(hub_probe_results("dev-6", "app-2.0"), (std::vector<bool>{false, false}));
  for (const auto& id : ids_) {
    if (id == "dev-6") continue;
    EXPECT_FALSE(ever_installed(device(id), "app-2.0")) << id;
    EXPECT_EQ(device(id).current_version("app"), "1.0") << id;
  }
  expect_every_report_arrived();
}

}  // namespace
}  // namespace eddy::testing
