// The rollout director over a real SQLite store and an injected clock: each rule of
// fleet/director.hpp as a case (bake, minDevices, maxFailureRate, no data vs stuck, new release,
// sticky admission, late joiners, operator commands, what a halt records).
#include "fleet/director.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "ota/assignment.hpp"
#include "tests/support/support.hpp"

namespace eddy::fleet {
namespace {

using namespace std::chrono_literals;
using eddy::testing::TempDir;

constexpr std::int64_t kStart = 1'800'000'000;

ota::Release make_release(const std::string& name, std::map<std::string, std::vector<std::string>> compatible = {}) {
  ota::Release r;
  r.file = "releases/" + name + ".yaml";
  r.name = name;
  r.target = "app";
  r.version = name.substr(name.rfind('-') + 1);
  r.payload = ota::PayloadSpec{"app", "payloads/x.tar.zst", "", std::string(64, 'a'), 1, {}, {}};
  r.compatible = std::move(compatible);
  return r;
}

struct RolloutSpec {
  std::vector<double> steps{10, 50, 100};
  std::chrono::seconds bake = 10min;
  int min_devices = 1;
  double max_failure_rate = 0.05;
  ota::OnFailure on_failure = ota::OnFailure::rollback;
  std::chrono::seconds progress_deadline = 30min;
  std::map<std::string, std::string> selector = {};
};

ota::Rollout make_rollout(const std::string& release, const RolloutSpec& s) {
  ota::Rollout r;
  r.file = "rollouts/app.yaml";
  r.name = "app";
  r.release = release;
  r.steps = s.steps;
  r.bake = s.bake;
  r.min_devices = s.min_devices;
  r.max_failure_rate = s.max_failure_rate;
  r.on_failure = s.on_failure;
  r.progress_deadline = s.progress_deadline;
  r.match_labels = s.selector;
  return r;
}

class DirectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::open(dir_.path() / "hub.db");
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    director_ = std::make_unique<Director>(*store_, [this] { return now_; });
    director_->set_webhook_listener([this](const WebhookEvent& e) { webhooks_.push_back(e); });
  }

  void set_fleet(const std::string& release, const RolloutSpec& spec = {}, const std::string& commit = "c1",
                 std::map<std::string, std::vector<std::string>> compatible = {}) {
    ota::Fleet fleet;
    fleet.releases.emplace(release, make_release(release, std::move(compatible)));
    fleet.rollouts.push_back(make_rollout(release, spec));
    ASSERT_TRUE(director_->set_fleet(commit, kStart, std::move(fleet)));
  }

  // n devices dev-0 .. dev-(n-1), synced, with the given labels.
  void add_devices(int n, std::map<std::string, std::string> labels = {{"site", "berlin"}}) {
    for (int i = 0; i < n; ++i) sync("dev-" + std::to_string(i), labels);
  }

  std::vector<Gate> sync(const std::string& id, std::map<std::string, std::string> labels = {{"site", "berlin"}},
                         std::map<std::string, TargetState> targets = {}) {
    DeviceRecord d;
    d.id = id;
    d.labels = std::move(labels);
    d.commit = "c1";
    d.targets = std::move(targets);
    auto gates = director_->sync(d);
    EXPECT_TRUE(gates) << gates.error().message;
    return gates ? *gates : std::vector<Gate>{};
  }

  void report(const std::string& device, const std::string& release, const std::string& outcome,
              std::int64_t generation = 0, std::string id = {}) {
    Report r;
    r.id = id.empty() ? device + ":" + std::to_string(++sequence_) : id;
    r.time = now_;
    r.kind = "transition";
    r.target = "app";
    r.rollout = "app";
    r.release = release;
    r.generation = generation;
    r.from = "probing";
    r.to = outcome == "committed" ? "committed" : outcome.empty() ? "probing" : "rolled-back";
    r.outcome = outcome;
    auto out = director_->record_reports(device, {r});
    ASSERT_TRUE(out) << out.error().message;
  }

  RolloutStatus status() {
    auto s = director_->status("app");
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    return s ? *s : RolloutStatus{};
  }

  RolloutStatus tick() {
    auto st = director_->tick();
    EXPECT_TRUE(st) << (st ? "" : st.error().message);
    return status();
  }

  std::vector<std::string> admitted() {
    auto s = status();
    auto list = store_->admissions("app", s.record.generation);
    std::vector<std::string> ids;
    for (const auto& a : *list) ids.push_back(a.device);
    return ids;
  }

  // Every admitted device reports `outcome`.
  void all_admitted_report(const std::string& release, const std::string& outcome) {
    for (const auto& id : admitted()) report(id, release, outcome);
  }

  std::vector<std::string> event_kinds() {
    auto events = store_->events(0, nullptr, 1000);
    std::vector<std::string> kinds;
    for (const auto& e : *events) kinds.push_back(e.kind);
    return kinds;
  }

  TempDir dir_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<Director> director_;
  std::int64_t now_ = kStart;
  std::vector<WebhookEvent> webhooks_;
  int sequence_ = 0;
};

TEST_F(DirectorTest, NewRolloutStartsGenerationOneAtTheFirstStep) {
  set_fleet("app-1.0");
  auto s = status();
  EXPECT_EQ(s.record.generation, 1);
  EXPECT_EQ(s.record.state, "progressing");
  EXPECT_EQ(s.record.step, 0);
  EXPECT_EQ(s.record.step_started_at, kStart);
  EXPECT_EQ(event_kinds(), std::vector<std::string>{"generation"});
}

TEST_F(DirectorTest, AdmitsByPlaceInLineAsDevicesDoWithoutAHub) {
  set_fleet("app-1.0", RolloutSpec{.steps = {50, 100}});
  add_devices(40);
  tick();
  for (int i = 0; i < 40; ++i) {
    const std::string id = "dev-" + std::to_string(i);
    auto ids = admitted();
    const bool in = std::find(ids.begin(), ids.end(), id) != ids.end();
    EXPECT_EQ(in, ota::place_in_line(id, "app") < 50) << id;
  }
}

TEST_F(DirectorTest, BakeTimeHoldsTheStepAndTheVerdictSaysHowLong) {
  set_fleet("app-1.0", RolloutSpec{.steps = {10, 100}, .bake = 10min});
  add_devices(20);
  tick();
  all_admitted_report("app-1.0", "committed");
  now_ += 180;
  auto s = tick();
  EXPECT_EQ(s.record.step, 0);
  EXPECT_EQ(s.record.last_verdict.decision, "wait");
  EXPECT_EQ(s.record.last_verdict.value, 180);
  EXPECT_EQ(s.record.last_verdict.threshold, 600);
  EXPECT_NE(s.record.last_verdict.message.find("420 s left"), std::string::npos) << s.record.last_verdict.message;
  now_ += 420;
  s = tick();
  EXPECT_EQ(s.record.step, 1);
  EXPECT_EQ(s.record.last_verdict.decision, "widen");
  EXPECT_EQ(s.record.step_started_at, now_);
  ASSERT_EQ(webhooks_.size(), 1u);
  EXPECT_EQ(webhooks_[0].kind, "step");
  EXPECT_EQ(webhooks_[0].percent, 100);
}

TEST_F(DirectorTest, MinDevicesAdmitsTheLowestPlacesAndWaitsForTheirVerdicts) {
  set_fleet("app-1.0", RolloutSpec{.steps = {1, 100}, .bake = 0s, .min_devices = 3});
  add_devices(20);
  auto s = tick();
  // 1% of 20 devices admits hardly anyone by place: the three lowest places are added.
  ASSERT_EQ(s.admitted, 3);
  std::vector<std::pair<double, std::string>> places;
  for (int i = 0; i < 20; ++i) places.emplace_back(ota::place_in_line("dev-" + std::to_string(i), "app"), "dev-" + std::to_string(i));
  std::sort(places.begin(), places.end());
  auto ids = admitted();
  for (int i = 0; i < 3; ++i) EXPECT_NE(std::find(ids.begin(), ids.end(), places[static_cast<std::size_t>(i)].second), ids.end());

  report(ids[0], "app-1.0", "committed");
  report(ids[1], "app-1.0", "committed");
  s = tick();
  EXPECT_EQ(s.record.step, 0);
  EXPECT_EQ(s.record.last_verdict.decision, "wait");
  EXPECT_EQ(s.record.last_verdict.value, 2);
  EXPECT_EQ(s.record.last_verdict.threshold, 3);
  report(ids[2], "app-1.0", "committed");
  s = tick();
  EXPECT_EQ(s.record.step, 1);
  EXPECT_EQ(s.admitted, 20);
}

TEST_F(DirectorTest, FailureRateAboveTheThresholdHaltsAndRollsBackRecordingValueAndThreshold) {
  set_fleet("app-1.0", RolloutSpec{.steps = {1, 100}, .bake = 10min, .min_devices = 3});
  add_devices(20);
  tick();
  auto ids = admitted();
  ASSERT_EQ(ids.size(), 3u);
  report(ids[0], "app-1.0", "committed");
  report(ids[1], "app-1.0", "committed");
  report(ids[2], "app-1.0", "rolled-back");
  // A halt does not wait for the bake time.
  auto s = tick();
  EXPECT_EQ(s.record.state, "rolled-back");
  EXPECT_EQ(s.record.last_verdict.decision, "halt");
  EXPECT_DOUBLE_EQ(s.record.last_verdict.value, 1.0 / 3);
  EXPECT_DOUBLE_EQ(s.record.last_verdict.threshold, 0.05);
  EXPECT_EQ(s.devices.failed, 1);
  EXPECT_EQ(s.devices.succeeded, 2);
  auto events = store_->events(0, nullptr, 100);
  auto halt = std::find_if(events->begin(), events->end(), [](const Event& e) { return e.kind == "halt"; });
  ASSERT_NE(halt, events->end());
  EXPECT_DOUBLE_EQ(*halt->value, 1.0 / 3);
  EXPECT_DOUBLE_EQ(*halt->threshold, 0.05);
  ASSERT_EQ(webhooks_.size(), 2u);
  EXPECT_EQ(webhooks_[0].kind, "halt");
  EXPECT_EQ(webhooks_[1].kind, "rollback");
  // Every matching device is told to roll back; nobody is admitted any more.
  auto gates = sync("dev-7");
  ASSERT_EQ(gates.size(), 1u);
  EXPECT_TRUE(gates[0].rollback);
  EXPECT_FALSE(gates[0].admitted);
  // Nothing changes at later ticks, and no event repeats.
  auto before = event_kinds();
  now_ += 3600;
  s = tick();
  EXPECT_EQ(s.record.state, "rolled-back");
  EXPECT_EQ(event_kinds(), before);
}

TEST_F(DirectorTest, OnFailurePauseHaltsWithoutRollback) {
  set_fleet("app-1.0", RolloutSpec{.steps = {1, 100}, .min_devices = 2, .on_failure = ota::OnFailure::pause});
  add_devices(10);
  tick();
  all_admitted_report("app-1.0", "failed");
  auto s = tick();
  EXPECT_EQ(s.record.state, "halted");
  auto gates = sync("dev-1");
  EXPECT_FALSE(gates[0].rollback);
  EXPECT_FALSE(gates[0].admitted);
  ASSERT_EQ(webhooks_.size(), 1u);
  EXPECT_EQ(webhooks_[0].kind, "halt");
}

TEST_F(DirectorTest, AFirstFailureAloneIsAHundredPercentFailureRate) {
  set_fleet("app-1.0", RolloutSpec{.steps = {1, 100}, .bake = 0s, .min_devices = 4, .max_failure_rate = 0.25});
  add_devices(20);
  tick();
  auto ids = admitted();
  ASSERT_EQ(ids.size(), 4u);
  report(ids[0], "app-1.0", "rolled-back");
  auto s = tick();
  EXPECT_EQ(s.record.state, "rolled-back") << "1 of 1 decided is 100%";
}

TEST_F(DirectorTest, OneFailureWithinTheThresholdWidens) {
  set_fleet("app-1.0", RolloutSpec{.steps = {1, 100}, .bake = 0s, .min_devices = 4, .max_failure_rate = 0.25});
  add_devices(20);
  tick();
  auto ids = admitted();
  report(ids[0], "app-1.0", "committed");
  report(ids[1], "app-1.0", "committed");
  report(ids[2], "app-1.0", "committed");
  report(ids[3], "app-1.0", "rolled-back");
  auto s = tick();
  EXPECT_EQ(s.record.state, "progressing");
  EXPECT_EQ(s.record.step, 1);
  EXPECT_DOUBLE_EQ(s.record.last_verdict.value, 0.25);
}

TEST_F(DirectorTest, NoDataBlocksWideningButIsNotAFailureWhileStuckPastTheDeadlineIs) {
  set_fleet("app-1.0", RolloutSpec{.steps = {1, 100}, .bake = 0s, .min_devices = 2, .progress_deadline = 30min});
  add_devices(10);
  tick();
  auto ids = admitted();
  ASSERT_EQ(ids.size(), 2u);
  report(ids[0], "app-1.0", "committed");
  now_ += 29 * 60;
  auto s = tick();
  EXPECT_EQ(s.record.state, "progressing");
  EXPECT_EQ(s.record.step, 0);
  EXPECT_EQ(s.devices.no_data, 1);
  EXPECT_EQ(s.devices.failed, 0);
  now_ += 2 * 60;
  s = tick();
  EXPECT_EQ(s.devices.failed, 1);
  EXPECT_EQ(s.record.state, "rolled-back");
  EXPECT_NE(s.record.last_verdict.message.find("1 of 2"), std::string::npos) << s.record.last_verdict.message;
}

TEST_F(DirectorTest, AStepClosesOnlyWhenEveryAdmittedDeviceHasAVerdict) {
  // minDevices is met by the first two, but a third admitted device has not reported: no
  // widening on the word of some devices while others of the step are unheard from.
  set_fleet("app-1.0", RolloutSpec{.steps = {30, 100}, .bake = 0s, .min_devices = 2});
  add_devices(10);
  tick();
  auto ids = admitted();
  ASSERT_GE(ids.size(), 3u);
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) report(ids[i], "app-1.0", "committed");
  auto s = tick();
  EXPECT_EQ(s.record.step, 0);
  EXPECT_EQ(s.record.last_verdict.decision, "wait");
  EXPECT_NE(s.record.last_verdict.message.find("1 of the"), std::string::npos) << s.record.last_verdict.message;
  report(ids.back(), "app-1.0", "committed");
  s = tick();
  EXPECT_EQ(s.record.step, 1);
}

TEST_F(DirectorTest, InProgressIsNeitherAVerdictNorNoData) {
  set_fleet("app-1.0", RolloutSpec{.steps = {1, 100}, .bake = 0s, .min_devices = 1});
  add_devices(5);
  tick();
  auto ids = admitted();
  ASSERT_EQ(ids.size(), 1u);
  report(ids[0], "app-1.0", "");
  auto s = tick();
  EXPECT_EQ(s.devices.in_progress, 1);
  EXPECT_EQ(s.devices.no_data, 0);
  EXPECT_EQ(s.record.step, 0);
  EXPECT_EQ(s.devices.waiting, 4);
}

TEST_F(DirectorTest, SyncingWithTheReleaseCommittedIsASuccess) {
  set_fleet("app-1.0", RolloutSpec{.steps = {1, 100}, .bake = 0s});
  add_devices(5);
  tick();
  auto ids = admitted();
  sync(ids[0], {{"site", "berlin"}}, {{"app", TargetState{"1.0", "app-1.0", "committed"}}});
  auto s = tick();
  EXPECT_EQ(s.record.step, 1);
  EXPECT_EQ(s.devices.succeeded, 1);
}

TEST_F(DirectorTest, LastStepClosingCompletesTheRollout) {
  set_fleet("app-1.0", RolloutSpec{.steps = {100}, .bake = 0s, .min_devices = 2});
  add_devices(3);
  tick();
  all_admitted_report("app-1.0", "committed");
  auto s = tick();
  EXPECT_EQ(s.record.state, "complete");
  EXPECT_EQ(s.record.last_verdict.decision, "complete");
  ASSERT_EQ(webhooks_.size(), 1u);
  EXPECT_EQ(webhooks_[0].kind, "complete");
  // A device that joins a complete rollout gets what its place admits.
  auto gates = sync("late-joiner");
  EXPECT_TRUE(gates[0].admitted);
}

TEST_F(DirectorTest, ANewReleaseMidRolloutStartsAgainAtTheFirstStep) {
  set_fleet("app-1.0", RolloutSpec{.steps = {50, 100}, .bake = 0s});
  add_devices(20);
  tick();
  all_admitted_report("app-1.0", "committed");
  auto s = tick();
  ASSERT_EQ(s.record.step, 1);
  set_fleet("app-2.0", RolloutSpec{.steps = {50, 100}, .bake = 0s}, "c2");
  s = status();
  EXPECT_EQ(s.record.generation, 2);
  EXPECT_EQ(s.record.release, "app-2.0");
  EXPECT_EQ(s.record.step, 0);
  EXPECT_EQ(s.record.state, "progressing");
  EXPECT_EQ(s.admitted, 0) << "the admissions of generation 1 no longer count";
  s = tick();
  EXPECT_LT(s.admitted, 20);
  EXPECT_EQ(s.devices.succeeded, 0) << "reports for app-1.0 do not count for app-2.0";
  // A report naming the old generation does not count either.
  report(admitted()[0], "app-2.0", "committed", 1);
  EXPECT_EQ(tick().devices.succeeded, 0);
  report(admitted()[0], "app-2.0", "committed", 2);
  EXPECT_EQ(tick().devices.succeeded, 1);
}

TEST_F(DirectorTest, TheSameReleaseInANewCommitKeepsTheGeneration) {
  set_fleet("app-1.0", RolloutSpec{.steps = {50, 100}, .bake = 0s});
  add_devices(10);
  tick();
  set_fleet("app-1.0", RolloutSpec{.steps = {50, 100}, .bake = 0s}, "c2");
  auto s = status();
  EXPECT_EQ(s.record.generation, 1);
  EXPECT_EQ(s.record.commit, "c2");
  EXPECT_GT(s.admitted, 0);
}

TEST_F(DirectorTest, AdmissionIsStickyWithinAGeneration) {
  RolloutSpec spec{.steps = {100}, .bake = 1h};
  spec.selector = {{"site", "berlin"}};
  set_fleet("app-1.0", spec);
  add_devices(3);
  tick();
  auto first = store_->admissions("app", 1);
  ASSERT_EQ(first->size(), 3u);
  const auto admitted_at = first->front().admitted_at;
  // Relabelled out of the selector: still admitted (and counted), never flips.
  now_ += 60;
  sync("dev-0", {{"site", "paris"}});
  tick();
  auto again = store_->admissions("app", 1);
  ASSERT_EQ(again->size(), 3u);
  EXPECT_EQ(again->front().admitted_at, admitted_at);
  EXPECT_TRUE(sync("dev-0", {{"site", "paris"}}).empty()) << "the rollout no longer selects it";
  EXPECT_TRUE(sync("dev-1")[0].admitted);
}

TEST_F(DirectorTest, LateJoinersGetWhatTheirPlaceAdmits) {
  set_fleet("app-1.0", RolloutSpec{.steps = {30, 100}, .bake = 1h});
  add_devices(10);
  tick();
  for (int i = 100; i < 130; ++i) {
    const std::string id = "dev-" + std::to_string(i);
    auto gates = sync(id);
    ASSERT_EQ(gates.size(), 1u);
    EXPECT_EQ(gates[0].admitted, ota::place_in_line(id, "app") < 30) << id << ": " << gates[0].reason;
  }
}

TEST_F(DirectorTest, SelectorAndCompatibleLabelsDecideWhoIsSelected) {
  RolloutSpec spec{.steps = {100}, .bake = 1h};
  spec.selector = {{"site", "berlin"}};
  set_fleet("app-1.0", spec, "c1", {{"hw", {"pi4"}}});
  sync("a", {{"site", "berlin"}, {"hw", "pi4"}});
  sync("b", {{"site", "berlin"}, {"hw", "pi3"}});
  sync("c", {{"site", "paris"}, {"hw", "pi4"}});
  auto s = tick();
  EXPECT_EQ(s.selected, 1);
  EXPECT_EQ(s.admitted, 1);
  EXPECT_TRUE(sync("b", {{"site", "berlin"}, {"hw", "pi3"}}).empty());
}

TEST_F(DirectorTest, NoSelectedDeviceWaitsInsteadOfWidening) {
  set_fleet("app-1.0", RolloutSpec{.steps = {10, 100}, .bake = 0s});
  auto s = tick();
  EXPECT_EQ(s.record.step, 0);
  EXPECT_EQ(s.record.last_verdict.decision, "wait");
}

TEST_F(DirectorTest, PauseHoldsResumeContinues) {
  set_fleet("app-1.0", RolloutSpec{.steps = {50, 100}, .bake = 0s});
  add_devices(10);
  tick();
  auto paused = director_->command("app", Command::pause, "alice");
  ASSERT_TRUE(paused) << paused.error().message;
  EXPECT_EQ(paused->record.state, "paused");
  all_admitted_report("app-1.0", "committed");
  auto s = tick();
  EXPECT_EQ(s.record.step, 0);
  EXPECT_NE(s.record.last_verdict.message.find("paused"), std::string::npos);
  // Paused, nothing new is admitted.
  EXPECT_FALSE(sync("dev-0")[0].admitted);
  auto resumed = director_->command("app", Command::resume, "alice");
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->record.state, "progressing");
  EXPECT_EQ(resumed->record.step, 1) << "the resumed rollout is looked at at once";
}

TEST_F(DirectorTest, PromoteWidensToTheLastStepNow) {
  set_fleet("app-1.0", RolloutSpec{.steps = {1, 10, 100}, .bake = 1h});
  add_devices(10);
  tick();
  auto s = director_->command("app", Command::promote, "alice");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->record.step, 2);
  EXPECT_EQ(s->admitted, 10);
  ASSERT_EQ(webhooks_.size(), 1u);
  EXPECT_EQ(webhooks_[0].kind, "step");
}

TEST_F(DirectorTest, AbortRollsBackAndRetryStartsTheNextGeneration) {
  set_fleet("app-1.0", RolloutSpec{.steps = {50, 100}, .bake = 1h});
  add_devices(10);
  tick();
  auto retry_early = director_->command("app", Command::retry, "alice");
  ASSERT_FALSE(retry_early);
  EXPECT_EQ(retry_early.error().code, Errc::conflict);
  EXPECT_NE(retry_early.error().message.find("progressing"), std::string::npos) << retry_early.error().message;

  auto aborted = director_->command("app", Command::abort, "alice");
  ASSERT_TRUE(aborted) << aborted.error().message;
  EXPECT_EQ(aborted->record.state, "rolled-back");
  EXPECT_TRUE(sync("dev-0")[0].rollback);
  ASSERT_EQ(webhooks_.size(), 2u);
  EXPECT_EQ(webhooks_[0].kind, "halt");
  EXPECT_EQ(webhooks_[1].kind, "rollback");

  auto resume = director_->command("app", Command::resume, "alice");
  ASSERT_FALSE(resume);
  EXPECT_EQ(resume.error().code, Errc::conflict);
  EXPECT_NE(resume.error().message.find("retry"), std::string::npos) << resume.error().message;

  auto retried = director_->command("app", Command::retry, "alice");
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_EQ(retried->record.generation, 2);
  EXPECT_EQ(retried->record.step, 0);
  EXPECT_EQ(retried->record.state, "progressing");
  auto gates = sync("dev-0");
  EXPECT_FALSE(gates[0].rollback);
  EXPECT_EQ(gates[0].generation, 2);
}

TEST_F(DirectorTest, CommandsOnAnUnknownRolloutAreNotFound) {
  set_fleet("app-1.0");
  auto s = director_->command("nope", Command::pause, "alice");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::not_found);
  EXPECT_NE(s.error().message.find("nope"), std::string::npos);
}

TEST_F(DirectorTest, ADuplicateReportCountsOnce) {
  set_fleet("app-1.0");
  Report r;
  r.id = "dev-0:1";
  r.kind = "event";
  r.message = "hello";
  auto first = director_->record_reports("dev-0", {r, r});
  ASSERT_TRUE(first);
  EXPECT_EQ(first->added, 1);
  EXPECT_EQ(first->duplicates, 1);
  auto again = director_->record_reports("dev-0", {r});
  EXPECT_EQ(again->added, 0);
  EXPECT_EQ(again->duplicates, 1);
  EXPECT_EQ(store_->reports("dev-0")->size(), 1u);
  // The same id from another device is another report.
  EXPECT_EQ(director_->record_reports("dev-1", {r})->added, 1);
}

TEST_F(DirectorTest, StateSurvivesANewDirectorOnTheSameStore) {
  set_fleet("app-1.0", RolloutSpec{.steps = {50, 100}, .bake = 0s});
  add_devices(10);
  tick();
  all_admitted_report("app-1.0", "committed");
  tick();
  Director again(*store_, [this] { return now_; });
  ota::Fleet fleet;
  fleet.releases.emplace("app-1.0", make_release("app-1.0"));
  fleet.rollouts.push_back(make_rollout("app-1.0", RolloutSpec{.steps = {50, 100}, .bake = 0s}));
  ASSERT_TRUE(again.set_fleet("c1", kStart, fleet));
  auto s = again.status("app");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->record.generation, 1);
  EXPECT_EQ(s->record.step, 1);
}

}  // namespace
}  // namespace eddy::fleet

namespace eddy::fleet {
namespace {

// The director keeps the devices' labels, admissions and facts instead of reading them at each
// look: a device that changes its labels is judged by the new ones at once, and what it keeps
// is what the store holds: a new director (a restarted hub) and one that dropped its caches (a
// group commit that did not commit) count the same.
TEST_F(DirectorTest, WhatTheDirectorKeepsIsWhatTheStoreHolds) {
  set_fleet("app-1.0", {.steps = {100}, .bake = 1h, .selector = {{"site", "berlin"}}});
  add_devices(4);
  sync("dev-4", {{"site", "paris"}});
  EXPECT_EQ(tick().selected, 4);
  sync("dev-4", {{"site", "berlin"}, {"hw", "pi4"}});
  sync("dev-0", {{"site", "paris"}});
  report("dev-1", "app-1.0", "committed");
  report("dev-2", "app-1.0", "");
  sync("dev-3", {{"site", "berlin"}}, {{"app", TargetState{"1.0", "app-1.0", "committed"}}});
  report("dev-9", "app-1.0", "rolled-back");  // not admitted: its fact does not count
  auto s = tick();
  EXPECT_EQ(s.selected, 4);
  EXPECT_EQ(s.devices.waiting, 0);
  EXPECT_EQ(s.admitted, 5);  // dev-0 stays admitted (admission is sticky) but is no longer selected
  EXPECT_EQ(s.devices.succeeded, 2);
  EXPECT_EQ(s.devices.in_progress, 1);
  EXPECT_EQ(s.devices.no_data, 2);
  EXPECT_EQ(s.devices.failed, 0);

  auto same = [&](const RolloutStatus& other) {
    EXPECT_EQ(other.selected, s.selected);
    EXPECT_EQ(other.admitted, s.admitted);
    EXPECT_EQ(other.devices.succeeded, s.devices.succeeded);
    EXPECT_EQ(other.devices.in_progress, s.devices.in_progress);
    EXPECT_EQ(other.devices.no_data, s.devices.no_data);
    EXPECT_EQ(other.devices.waiting, s.devices.waiting);
  };
  director_->drop_caches();
  same(status());
  Director restarted(*store_, [this] { return now_; });
  ota::Fleet fleet;
  fleet.releases.emplace("app-1.0", make_release("app-1.0"));
  fleet.rollouts.push_back(make_rollout("app-1.0", {.steps = {100}, .bake = 1h, .selector = {{"site", "berlin"}}}));
  ASSERT_TRUE(restarted.set_fleet("c1", kStart, std::move(fleet)));
  auto again = restarted.status("app");
  ASSERT_TRUE(again) << again.error().message;
  same(*again);
}

}  // namespace
}  // namespace eddy::fleet
