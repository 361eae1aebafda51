#include "ota/assignment.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <set>
#include <string>

#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kStart = 1'700'000'000;

Release make_release(std::string name, std::string target,
                     std::map<std::string, std::vector<std::string>> compatible = {}) {
  Release r;
  r.file = "releases/" + name + ".yaml";
  r.name = std::move(name);
  r.target = std::move(target);
  r.version = "1.0";
  r.payload = PayloadSpec{"app", "payloads/x.tar.zst", "", std::string(64, 'a'), 1, {}, {}};
  r.compatible = std::move(compatible);
  return r;
}

Rollout make_rollout(std::string name, std::string release, std::vector<double> steps,
                     std::map<std::string, std::string> labels = {}, std::chrono::seconds bake = 10min) {
  Rollout r;
  r.file = "rollouts/" + name + ".yaml";
  r.name = std::move(name);
  r.release = std::move(release);
  r.release_line = 5;
  r.steps = std::move(steps);
  r.match_labels = std::move(labels);
  r.bake = bake;
  return r;
}

Fleet fleet_of(std::vector<Release> releases, std::vector<Rollout> rollouts) {
  Fleet f;
  for (auto& r : releases) f.releases.emplace(r.name, std::move(r));
  f.rollouts = std::move(rollouts);
  return f;
}

std::int64_t start_at_epoch(const Rollout&) { return kStart; }

// A device id whose place in line for `rollout` lies in [low, high).
std::string device_at(std::string_view rollout, double low, double high) {
  for (int i = 0; i < 100000; ++i) {
    std::string id = "dev-" + std::to_string(i);
    const double place = place_in_line(id, rollout);
    if (place >= low && place < high) return id;
  }
  ADD_FAILURE() << "no device in [" << low << ", " << high << ")";
  return {};
}

TEST(PlaceInLine, IsStableAndTheSha256OfIdSlashRollout) {
  const double place = place_in_line("pi-0042", "sensor-app");
  EXPECT_EQ(place, place_in_line("pi-0042", "sensor-app"));
  EXPECT_NE(place, place_in_line("pi-0042", "sensor-app-2"));
  EXPECT_NE(place, place_in_line("pi-0043", "sensor-app"));

  // Cross-check against coreutils: the first 8 bytes of sha256("pi-0042/sensor-app"), big-endian.
  testing::TempDir dir;
  testing::write_file(dir / "input", "pi-0042/sensor-app");
  const std::string out = testing::run_ok({"sha256sum", (dir / "input").string()});
  const std::uint64_t prefix = std::stoull(out.substr(0, 16), nullptr, 16);
  const double expected = static_cast<double>(prefix >> 11) / 9007199254740992.0 * 100.0;
  EXPECT_DOUBLE_EQ(place, expected);
}

TEST(PlaceInLine, SpreadsTenThousandDevicesUniformly) {
  std::array<int, 10> buckets{};
  for (int i = 0; i < 10000; ++i) {
    const double place = place_in_line("device-" + std::to_string(i), "sensor-app");
    ASSERT_GE(place, 0.0);
    ASSERT_LT(place, 100.0);
    ++buckets[static_cast<std::size_t>(place / 10.0)];
  }
  // Deterministic input, so no flakiness: each tenth holds about 1000 (binomial sd ~30).
  double chi_square = 0;
  for (int count : buckets) {
    EXPECT_GT(count, 880);
    EXPECT_LT(count, 1120);
    chi_square += (count - 1000.0) * (count - 1000.0) / 1000.0;
  }
  EXPECT_LT(chi_square, 27.9);  // p = 0.001 for 9 degrees of freedom
  // About 1% of devices go first in a 1% step.
  int first_percent = 0;
  for (int i = 0; i < 10000; ++i) first_percent += place_in_line("device-" + std::to_string(i), "sensor-app") < 1.0;
  EXPECT_GT(first_percent, 60);
  EXPECT_LT(first_percent, 140);
}

TEST(Assign, SelectorMatchAndNoMatch) {
  const Fleet fleet =
      fleet_of({make_release("app-1", "app")}, {make_rollout("app", "app-1", {100}, {{"site", "berlin"}})});
  auto in = assign(fleet, {"pi-1", {{"site", "berlin"}, {"hw", "pi4"}}}, start_at_epoch, kStart);
  ASSERT_TRUE(in) << in.error().message;
  ASSERT_EQ(in->assignments.size(), 1u);
  EXPECT_EQ(in->assignments[0].target, "app");
  EXPECT_EQ(in->assignments[0].rollout, "app");
  EXPECT_EQ(in->assignments[0].release.name, "app-1");
  EXPECT_TRUE(in->assignments[0].admitted);
  EXPECT_TRUE(in->skipped.empty());

  for (const DeviceIdentity& other : {DeviceIdentity{"pi-2", {{"site", "paris"}}}, DeviceIdentity{"pi-3", {}}}) {
    auto out = assign(fleet, other, start_at_epoch, kStart);
    ASSERT_TRUE(out) << out.error().message;
    EXPECT_TRUE(out->assignments.empty());
    EXPECT_TRUE(out->skipped.empty());
  }

  // An empty selector selects every device.
  const Fleet all = fleet_of({make_release("app-1", "app")}, {make_rollout("app", "app-1", {100})});
  auto any = assign(all, {"pi-3", {}}, start_at_epoch, kStart);
  ASSERT_TRUE(any);
  EXPECT_EQ(any->assignments.size(), 1u);
}

TEST(Assign, IncompatibleReleaseIsSkippedWithAReason) {
  const Fleet fleet =
      fleet_of({make_release("app-1", "app", {{"hw", {"pi4", "pi5"}}})}, {make_rollout("app", "app-1", {100})});
  auto pi3 = assign(fleet, {"pi-1", {{"hw", "pi3"}}}, start_at_epoch, kStart);
  ASSERT_TRUE(pi3) << pi3.error().message;
  EXPECT_TRUE(pi3->assignments.empty());
  ASSERT_EQ(pi3->skipped.size(), 1u);
  EXPECT_EQ(pi3->skipped[0],
            "rollout `app` (rollouts/app.yaml): release `app-1` is not compatible with this device: it needs hw in "
            "[pi4, pi5], the device has hw=pi3");

  auto unlabelled = assign(fleet, {"pi-2", {}}, start_at_epoch, kStart);
  ASSERT_TRUE(unlabelled);
  ASSERT_EQ(unlabelled->skipped.size(), 1u);
  EXPECT_NE(unlabelled->skipped[0].find("the device has no hw label"), std::string::npos) << unlabelled->skipped[0];

  auto pi5 = assign(fleet, {"pi-3", {{"hw", "pi5"}}}, start_at_epoch, kStart);
  ASSERT_TRUE(pi5);
  EXPECT_EQ(pi5->assignments.size(), 1u);
  EXPECT_TRUE(pi5->skipped.empty());
}

TEST(Assign, StepsOfOneHundredAdmitAtOnceEvenWithAClockBehindTheCommit) {
  const Fleet fleet = fleet_of({make_release("app-1", "app")}, {make_rollout("app", "app-1", {100})});
  for (int i = 0; i < 50; ++i) {
    auto a = assign(fleet, {"pi-" + std::to_string(i), {}}, start_at_epoch, kStart - 86400);
    ASSERT_TRUE(a) << a.error().message;
    ASSERT_EQ(a->assignments.size(), 1u);
    EXPECT_TRUE(a->assignments[0].admitted) << a->assignments[0].reason;
    EXPECT_FALSE(a->assignments[0].next_step_at);
  }
}

TEST(Assign, StepsArePacedByTime) {
  const Rollout rollout = make_rollout("app", "app-1", {10, 50, 100});
  const Fleet fleet = fleet_of({make_release("app-1", "app")}, {rollout});
  const std::string early = device_at("app", 0, 10);
  const std::string middle = device_at("app", 10, 50);
  const std::string late = device_at("app", 50, 100);
  auto at = [&](const std::string& id, std::int64_t now) {
    auto a = assign(fleet, {id, {}}, start_at_epoch, now);
    EXPECT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->assignments.size(), 1u);
    return a->assignments.at(0);
  };

  // Step 1 (10%) opens at the start: only the early device.
  auto a = at(early, kStart);
  EXPECT_TRUE(a.admitted);
  EXPECT_FALSE(a.next_step_at);
  EXPECT_TRUE(a.reason.starts_with("step 1 of 3 (10%) admits places below 10; this device is at ")) << a.reason;

  auto m = at(middle, kStart + 599);
  EXPECT_FALSE(m.admitted);
  EXPECT_EQ(m.next_step_at, kStart + 600);
  EXPECT_NE(m.reason.find("; its turn comes with step 2 of 3 (50%)"), std::string::npos) << m.reason;

  auto l = at(late, kStart + 1);
  EXPECT_FALSE(l.admitted);
  EXPECT_EQ(l.next_step_at, kStart + 1200);  // the first step wide enough for it, not merely the next one

  // Step 2 (50%) opens one bake later.
  EXPECT_TRUE(at(middle, kStart + 600).admitted);
  EXPECT_TRUE(at(early, kStart + 600).admitted);  // once in, never out
  auto l2 = at(late, kStart + 600);
  EXPECT_FALSE(l2.admitted);
  EXPECT_EQ(l2.next_step_at, kStart + 1200);
  EXPECT_TRUE(l2.reason.starts_with("step 2 of 3 (50%) admits places below 50")) << l2.reason;

  // Step 3 (100%) two bakes later, and it stays open.
  EXPECT_TRUE(at(late, kStart + 1200).admitted);
  EXPECT_TRUE(at(late, kStart + 10 * 86400).admitted);
}

TEST(Assign, DeviceBeyondTheLastStepHasNoNextStep) {
  const Fleet fleet = fleet_of({make_release("app-1", "app")}, {make_rollout("app", "app-1", {5, 20})});
  auto a = assign(fleet, {device_at("app", 20, 100), {}}, start_at_epoch, kStart + 86400);
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->assignments.at(0).admitted);
  EXPECT_FALSE(a->assignments.at(0).next_step_at);
  EXPECT_NE(a->assignments.at(0).reason.find("no step of this rollout reaches it"), std::string::npos);
}

TEST(Assign, ZeroBakeOpensEveryStepAtOnce) {
  const Fleet fleet = fleet_of({make_release("app-1", "app")}, {make_rollout("app", "app-1", {1, 100}, {}, 0s)});
  auto a = assign(fleet, {device_at("app", 1, 100), {}}, start_at_epoch, kStart);
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->assignments.at(0).admitted);
}

TEST(Assign, RolloutStartComesFromTheCallback) {
  const Fleet fleet = fleet_of({make_release("a-1", "a"), make_release("b-1", "b")},
                               {make_rollout("a", "a-1", {50, 100}), make_rollout("b", "b-1", {50, 100})});
  std::set<std::string> asked;
  auto start = [&](const Rollout& r) {
    asked.insert(r.name);
    return r.name == "a" ? kStart : kStart + 3600;
  };
  const std::string id = device_at("a", 50, 100);
  auto result = assign(fleet, {id, {}}, start, kStart + 600);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(asked, (std::set<std::string>{"a", "b"}));
  ASSERT_EQ(result->assignments.size(), 2u);
  EXPECT_EQ(result->assignments[0].target, "a");
  EXPECT_TRUE(result->assignments[0].admitted);
  EXPECT_EQ(result->assignments[1].target, "b");
}

TEST(Assign, TwoRolloutsForOneTargetAreAnErrorNamingBoth) {
  const Fleet fleet = fleet_of({make_release("app-1", "app"), make_release("app-2", "app")},
                               {make_rollout("berlin", "app-1", {100}, {{"site", "berlin"}}),
                                make_rollout("pi4", "app-2", {100}, {{"hw", "pi4"}})});
  auto both = assign(fleet, {"pi-1", {{"site", "berlin"}, {"hw", "pi4"}}}, start_at_epoch, kStart);
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().code, Errc::invalid_argument);
  EXPECT_NE(both.error().message.find("rollouts/berlin.yaml"), std::string::npos) << both.error().message;
  EXPECT_NE(both.error().message.find("rollouts/pi4.yaml"), std::string::npos) << both.error().message;
  EXPECT_NE(both.error().message.find("target `app`"), std::string::npos) << both.error().message;

  // Either one alone is fine.
  auto one = assign(fleet, {"pi-2", {{"site", "berlin"}, {"hw", "pi3"}}}, start_at_epoch, kStart);
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->assignments.at(0).release.name, "app-1");
}

TEST(Assign, ReleasesSplitByCompatibilityDoNotConflict) {
  // One rollout per hardware generation, both selecting all of Berlin: compatibility decides.
  const Fleet fleet = fleet_of(
      {make_release("os-pi4", "rootfs", {{"hw", {"pi4"}}}), make_release("os-pi5", "rootfs", {{"hw", {"pi5"}}})},
      {make_rollout("os-pi4", "os-pi4", {100}, {{"site", "berlin"}}),
       make_rollout("os-pi5", "os-pi5", {100}, {{"site", "berlin"}})});
  auto a = assign(fleet, {"pi-1", {{"site", "berlin"}, {"hw", "pi5"}}}, start_at_epoch, kStart);
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_EQ(a->assignments.size(), 1u);
  EXPECT_EQ(a->assignments[0].release.name, "os-pi5");
  EXPECT_EQ(a->skipped.size(), 1u);
}

TEST(Assign, WorksOnAParsedFleet) {
  const std::string digest(64, 'b');
  auto fleet = parse_fleet({
      {"releases/app.yaml",
       "apiVersion: eddy/v1\nkind: Release\nmetadata: {name: app-2}\nspec:\n  target: app\n"
       "  version: '2'\n  payload: {type: app, path: p/app.tar.zst, sha256: " +
           digest + ", size: 3}\n"},
      {"rollouts/app.yaml",
       "apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: app}\nspec:\n  release: app-2\n"
       "  steps: [100]\n"},
  });
  ASSERT_TRUE(fleet) << fleet.error().message;
  auto a = assign(*fleet, {"pi-1", {}}, start_at_epoch, kStart);
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_EQ(a->assignments.size(), 1u);
  EXPECT_EQ(a->assignments[0].release.version, "2");
  EXPECT_TRUE(a->assignments[0].admitted);
}

TEST(Assign, MissingReleaseIsNotFound) {
  const Fleet fleet = fleet_of({}, {make_rollout("app", "app-9", {100})});
  auto a = assign(fleet, {"pi-1", {}}, start_at_epoch, kStart);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Errc::not_found);
  EXPECT_TRUE(a.error().message.starts_with("rollouts/app.yaml:5: release `app-9`")) << a.error().message;
}

}  // namespace
}  // namespace eddy::ota
