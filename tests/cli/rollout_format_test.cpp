// The human forms of the hub's operator replies, on samples in fleet/API.md's format.
#include "cli/rollout_format.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

namespace {

using eddy::cli::device_bar;
using eddy::cli::format_devices;
using eddy::cli::format_rollout;
using eddy::cli::format_rollouts;
using nlohmann::json;

constexpr std::int64_t t0 = 1764151200;  // 2025-11-26 10:00:00 UTC

class RolloutFormatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("TZ", "UTC", 1);
    tzset();
  }
  // The status of fleet/API.md's example.
  static json sample() {
    return json::parse(R"({
      "name": "sensor-app", "release": "sensor-app-1.4.2", "commit": "0123456789abcdef0123", "generation": 1,
      "state": "progressing",
      "step": 1, "steps": [1, 10, 50, 100], "percent": 10,
      "step_started_at": 1764151200, "bake_seconds": 600,
      "min_devices": 3, "max_failure_rate": 0.05, "on_failure": "rollback", "progress_deadline_seconds": 1800,
      "selected": 20, "admitted": 2,
      "devices": {"succeeded": 1, "failed": 0, "in_progress": 1, "no_data": 0, "waiting": 18},
      "last_verdict": {"at": 1764151260, "decision": "wait", "value": 180, "threshold": 600,
                       "message": "bake time: 420 s left"},
      "events": [{"at": 1764151200, "kind": "step", "message": "step 2 of 4 (10%): 2 devices admitted"}]
    })");
  }
};

std::string repeat(const std::string& mark, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += mark;
  return out;
}

std::size_t cells(const std::string& bar, const std::string& mark) {
  std::size_t n = 0;
  for (auto at = bar.find(mark); at != std::string::npos; at = bar.find(mark, at + mark.size())) ++n;
  return n;
}

TEST_F(RolloutFormatTest, BarSharesCellsInProportion) {
  auto bar = device_bar(json{{"succeeded", 10}, {"waiting", 10}}, 20);
  EXPECT_EQ(bar, "[##########" + repeat("\u00b7", 10) + "]");
  EXPECT_EQ(device_bar(json{{"succeeded", 20}}, 10), "[##########]");
}

TEST_F(RolloutFormatTest, BarNeverRoundsAFailureAway) {
  // 1 failure among 1000 devices would be 0.02 of a cell: it still gets one.
  auto bar = device_bar(json{{"succeeded", 9}, {"failed", 1}, {"waiting", 990}}, 20);
  EXPECT_EQ(cells(bar, "x"), 1u) << bar;
  EXPECT_EQ(cells(bar, "#"), 1u) << bar;
  EXPECT_EQ(cells(bar, "\u00b7"), 18u) << bar;
  // Every state present shows, in the order of the counts line.
  bar = device_bar(json{{"succeeded", 1}, {"failed", 1}, {"in_progress", 1}, {"no_data", 1}, {"waiting", 96}}, 20);
  EXPECT_EQ(bar, "[#x>?" + repeat("\u00b7", 16) + "]");
}

TEST_F(RolloutFormatTest, BarOfNoDevicesIsAllWaiting) {
  EXPECT_EQ(cells(device_bar(json::object(), 8), "\u00b7"), 8u);
  EXPECT_EQ(cells(device_bar(json{{"failed", -3}}, 8), "\u00b7"), 8u);  // nonsense counts are 0
}

TEST_F(RolloutFormatTest, RolloutBlockShowsStepBarCountsVerdictAndEvents) {
  auto out = format_rollout(sample(), t0 + 180);
  for (const char* needle :
       {"sensor-app  progressing  release sensor-app-1.4.2 (generation 1, commit 0123456789ab)",
        "steps    1% > [10%] > 50% > 100%",
        "step 2/4 10%  [#>\u00b7\u00b7",  // 1 ok and 1 in progress of 20 devices in 20 cells
        "2/20 admitted \u00b7 1 ok \u00b7 0 failed \u00b7 1 in progress \u00b7 0 no data",
        "bake 10m (3m so far) \u00b7 needs 3 devices with a verdict \u00b7 at most 5% failing \u00b7 stuck after 30m "
        "\u00b7 on failure rollback",
        "verdict  wait: baked 3m of 10m: bake time: 420 s left  [2025-11-26 10:01:00 (2m ago)]",
        "2025-11-26 10:00:00  step  step 2 of 4 (10%): 2 devices admitted"})
    EXPECT_NE(out.find(needle), std::string::npos) << "missing `" << needle << "` in:\n" << out;
  EXPECT_EQ(out.find("FAILED"), std::string::npos) << out;
}

TEST_F(RolloutFormatTest, HaltedRolloutShoutsAndCountsFailures) {
  auto rollout = sample();
  rollout["state"] = "rolled-back";
  rollout["devices"] = {{"succeeded", 0}, {"failed", 2}, {"in_progress", 0}, {"no_data", 0}, {"waiting", 18}};
  rollout["last_verdict"] = {
      {"at", t0 + 60}, {"decision", "halt"}, {"value", 1.0}, {"threshold", 0.05}, {"message", "2 of 2 devices failed"}};
  auto out = format_rollout(rollout, t0 + 120);
  for (const char* needle :
       {"sensor-app  ROLLED-BACK  release", "[xx", "FAILED   2 devices failed (100% of the 2 admitted)",
        "halt: failure rate 100% (at most 5%): 2 of 2 devices failed"})
    EXPECT_NE(out.find(needle), std::string::npos) << "missing `" << needle << "` in:\n" << out;
  EXPECT_TRUE(eddy::cli::rollout_failed(rollout));
  EXPECT_TRUE(eddy::cli::rollout_settled(rollout));
}

TEST_F(RolloutFormatTest, VerdictsReadInTheirGatesUnits) {
  auto rollout = sample();
  rollout["last_verdict"] = {
      {"decision", "wait"}, {"value", 180}, {"threshold", 600}, {"message", "bake time: 420 s left"}};
  auto out = format_rollout(rollout, t0);
  EXPECT_NE(out.find("wait: baked 3m of 10m: bake time: 420 s left"), std::string::npos) << out;

  rollout["last_verdict"] = {{"decision", "wait"}, {"value", 1}, {"threshold", 2}, {"message", "1 of 2 devices"}};
  out = format_rollout(rollout, t0);  // min(minDevices 3, 2 admitted) = 2 needed
  EXPECT_NE(out.find("wait: 1 of 2 verdicts needed: 1 of 2 devices"), std::string::npos) << out;

  // minDevices 1 and maxFailureRate 100%: the decision tells a verdict count from a rate.
  rollout["min_devices"] = 1;
  rollout["max_failure_rate"] = 1.0;
  rollout["last_verdict"] = {{"decision", "wait"}, {"value", 0}, {"threshold", 1}, {"message", "0 of 1"}};
  EXPECT_NE(format_rollout(rollout, t0).find("wait: 0 of 1 verdicts needed: 0 of 1"), std::string::npos);
  rollout["last_verdict"] = {{"decision", "widen"}, {"value", 0.5}, {"threshold", 1}, {"message", "step 3"}};
  EXPECT_NE(format_rollout(rollout, t0).find("widen: failure rate 50% (at most 100%): step 3"), std::string::npos);
  rollout["state"] = "paused";
  rollout["last_verdict"] = {{"decision", "wait"}, {"value", 0}, {"threshold", 1}, {"message", "paused"}};
  EXPECT_NE(format_rollout(rollout, t0).find("wait: failure rate 0% (at most 100%): paused"), std::string::npos);

  rollout["last_verdict"] = {{"decision", "wait"}, {"value", 0}, {"threshold", 7}, {"message", "something new"}};
  out = format_rollout(rollout, t0);
  EXPECT_NE(out.find("wait: value 0 (threshold 7): something new"), std::string::npos) << out;
}

TEST_F(RolloutFormatTest, CompleteRolloutHasNoCurrentStepMark) {
  auto rollout = sample();
  rollout["state"] = "complete";
  rollout["step"] = 3;
  rollout["percent"] = 100;
  rollout["admitted"] = 20;
  rollout["devices"] = {{"succeeded", 20}};
  auto out = format_rollout(rollout, t0);
  EXPECT_NE(out.find("steps    1% > 10% > 50% > 100%  (all done)"), std::string::npos) << out;
  EXPECT_NE(out.find("step 4/4 100%  [####################]  20/20 admitted"), std::string::npos) << out;
  EXPECT_FALSE(eddy::cli::rollout_failed(rollout));
  EXPECT_TRUE(eddy::cli::rollout_settled(rollout));
}

TEST_F(RolloutFormatTest, OnlyTheNewestEventsShow) {
  auto rollout = sample();
  rollout["events"] = json::array();
  for (int i = 0; i < 12; ++i)
    rollout["events"].push_back({{"at", t0 + i}, {"kind", "step"}, {"message", "event " + std::to_string(i)}});
  auto out = format_rollout(rollout, t0, 10);
  EXPECT_NE(out.find("events (newest 10 of 12)"), std::string::npos) << out;
  EXPECT_EQ(out.find("event 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("event 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("event 11\n"), std::string::npos) << out;
}

TEST_F(RolloutFormatTest, MissingFieldsNeverThrow) {
  for (const json& odd : {json(nullptr), json::array(), json::object(), json{{"steps", "x"}, {"devices", 3}},
                          json{{"last_verdict", "x"}, {"events", json::array({1, "a", nullptr})}}}) {
    auto out = format_rollout(odd, t0);
    EXPECT_NE(out.find("step -/0"), std::string::npos) << out;
  }
  EXPECT_NE(format_rollouts(json{{"rollouts", json::array()}}, t0).find("no rollouts"), std::string::npos);
  EXPECT_NE(format_devices(json::object(), t0).find("no devices"), std::string::npos);
}

TEST_F(RolloutFormatTest, ListShowsEachRollout) {
  auto other = sample();
  other["name"] = "gateway";
  auto out = format_rollouts(json{{"rollouts", {sample(), other}}}, t0);
  EXPECT_NE(out.find("sensor-app  progressing"), std::string::npos) << out;
  EXPECT_NE(out.find("gateway  progressing"), std::string::npos) << out;
}

TEST_F(RolloutFormatTest, DevicesTableAlignsColumns) {
  auto list = json::parse(R"({"devices": [
    {"id": "pi-0001", "labels": {"site": "berlin", "hw": "pi4"}, "last_seen": 1764151140, "commit": "abcdef0123456789",
     "targets": {"sensor-app": {"version": "1.4.2", "release": "sensor-app-1.4.2", "state": "committed"}}},
    {"id": "gateway-long-name", "labels": {}, "last_seen": 0, "commit": "",
     "targets": {"sensor-app": {"version": "", "release": "", "state": ""}}}
  ]})");
  auto out = format_devices(list, t0);
  EXPECT_EQ(out,
            "ID                 LAST SEEN  COMMIT        LABELS              TARGETS\n"
            "pi-0001            1m ago     abcdef012345  hw=pi4,site=berlin  sensor-app 1.4.2 committed\n"
            "gateway-long-name  never                    -                   sensor-app (none)\n"
            "2 devices\n")
      << out;
}

}  // namespace
