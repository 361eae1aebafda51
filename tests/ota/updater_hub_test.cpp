// The Updater in hub mode, with a real signed fleet repository, real app bundles and a hub on
// loopback whose gates the test sets: a release installs only when the device's own commit
// assigns it and the hub admits that same release; the hub's rollback orders and generations;
// the hub being away; and the journal arriving at the hub as reports.
#include <gtest/gtest.h>

#include "ota/app_supervisor.hpp"
#include "ota/hub_status.hpp"
#include "ota/updater.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/scripted_hub.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using eddy::testing::AppBundle;
using eddy::testing::ScriptedHub;
using eddy::testing::TempDir;
using eddy::testing::write_file;
using nlohmann::json;
using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

class UpdaterHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(dir_ / "token", "tok-1\n");
    hub_.set_token("dev-1", "tok-1");
  }

  // releases/app-<version>.yaml with a quick analysis whose one check passes or fails.
  std::string publish(const std::string& version, bool healthy = true) {
    AppBundle bundle;
    bundle.version = version;
    fleet_.add_bundle("app", bundle);
    fleet_.add_release("app", bundle,
                       "  analysis:\n"
                       "    interval: 10ms\n"
                       "    iterations: 1\n"
                       "    threshold: 0\n"
                       "    probes:\n"
                       "      - {name: selftest, exec: {command: [" +
                           std::string(healthy ? "/bin/true" : "/bin/false") + "]}}\n");
    fleet_.set_rollout("app", version, "[1, 100]");
    return fleet_.repo().commit("app " + version);
  }

  Updater& updater() {
    if (updater_) return *updater_;
    UpdaterOptions o;
    o.device = {"dev-1", {{"site", "test"}}};
    o.source_url = fleet_.repo().url();
    o.allowed_signers = fleet_.allowed_signers();
    o.data_dir = dir_ / "data";
    o.apps["app"] = AppTarget{"app", dir_ / "apps/app", {}, {"/bin/true"}};
    HubOptions hub;
    hub.url = hub_.url();
    hub.token_file = dir_ / "token";
    hub.timeout = 5s;
    o.hub = hub;
    auto u = Updater::create(o, supervisor_);
    EXPECT_TRUE(u) << u.error().message;
    updater_ = std::move(*u);
    return *updater_;
  }

  // What the device's state store says (what `eddy status` and `eddy history` show).
  storage::StateStore& store() {
    (void)updater();
    if (!store_) {
      auto opened = storage::StateStore::open(dir_ / "data/eddy.db");
      EXPECT_TRUE(opened) << opened.error().message;
      store_.emplace(std::move(*opened));
    }
    return *store_;
  }
  std::string current() {
    auto installed = store().installed("app");
    return installed && *installed ? (*installed)->current_version : "";
  }
  json hub_status() { return hub_status_json(store(), hub_.url()); }
  // Journal entries whose message holds `needle`, of `kind` (transition | event).
  int journaled(const std::string& kind, const std::string& needle) {
    int n = 0;
    auto history = store().history(1000);
    EXPECT_TRUE(history);
    for (const auto& h : *history) n += h.kind == kind && has(h.message, needle) ? 1 : 0;
    return n;
  }

  // The transitions the hub received, as "from>to" for the release given.
  std::vector<std::string> reported_transitions(const std::string& release) {
    std::vector<std::string> out;
    for (const auto& r : hub_.reports())
      if (r["kind"] == "transition" && r["release"] == release)
        out.push_back(r["from"].get<std::string>() + ">" + r["to"].get<std::string>());
    return out;
  }

  TempDir dir_;
  eddy::testing::Fleet fleet_{dir_ / "fleet"};
  ScriptedHub hub_;
  AppSupervisor supervisor_;
  std::unique_ptr<Updater> updater_;
  std::optional<storage::StateStore> store_;
};

TEST_F(UpdaterHubTest, NotAdmittedByTheHubInstallsNothing) {
  auto commit = publish("1.0");
  hub_.set_gate("app", "app-1.0", false, 1);
  auto result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "not-admitted");
  EXPECT_TRUE(has(result.message, "not admitted yet by the hub")) << result.message;
  EXPECT_TRUE(has(result.message, "not this device's turn")) << result.message;  // the hub's own words
  EXPECT_FALSE(result.next_step_at);  // the hub paces the steps, not the clock
  EXPECT_EQ(current(), "");
  // The hub heard what the device accepted and runs.
  ASSERT_GE(hub_.syncs().size(), 1u);
  const auto sync = hub_.syncs().back();
  EXPECT_EQ(sync["commit"], commit);
  EXPECT_EQ(sync["labels"], (json{{"site", "test"}}));
  EXPECT_EQ(sync["targets"]["app"], (json{{"version", ""}, {"release", ""}, {"state", ""}}));
  // The acceptance of the commit was reported (fetched, verified, not admitted).
  std::vector<std::string> commit_transitions;
  for (const auto& r : hub_.reports())
    if (r["kind"] == "transition") commit_transitions.push_back(r["to"]);
  EXPECT_EQ(commit_transitions, (std::vector<std::string>{"fetched", "verified", "idle"}));
}

TEST_F(UpdaterHubTest, AdmittedByTheHubInstallsAndReportsEveryStep) {
  auto commit = publish("1.0");
  hub_.set_gate("app", "app-1.0", true, 1);
  auto result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "updated") << result.message;
  EXPECT_EQ(current(), "1.0");
  EXPECT_EQ(reported_transitions("app-1.0"),
            (std::vector<std::string>{"verified>admitted", "admitted>downloading", "downloading>staged",
                                      "staged>activating", "activating>probing", "probing>committed"}));
  json committed;
  bool probe_seen = false;
  for (const auto& r : hub_.reports()) {
    if (r["release"] != "app-1.0") continue;
    EXPECT_EQ(r["rollout"], "app");
    EXPECT_EQ(r["generation"], 1);
    EXPECT_EQ(r["commit"], commit);
    if (r["to"] == "committed") committed = r;
    if (!r["probes"].empty()) probe_seen = r["probes"][0]["name"] == "selftest" && r["probes"][0]["ok"] == true;
  }
  EXPECT_EQ(committed["outcome"], "committed");
  EXPECT_TRUE(probe_seen);
  EXPECT_EQ(hub_.duplicates(), 0);

  auto status = hub_status();
  EXPECT_EQ(status["url"], hub_.url());
  EXPECT_EQ(status["last_sync_result"], "ok");
  EXPECT_GT(status["last_sync_at"].get<std::int64_t>(), 0);
  EXPECT_EQ(status["outbox"], 0);
  EXPECT_EQ(status["rollouts"]["app"]["admitted"], true);
  EXPECT_TRUE(status["last_report_result"].get<std::string>().starts_with("ok: ")) << status.dump();

  // The next sync tells the hub what now runs.
  (void)updater().run_cycle();
  EXPECT_EQ(hub_.syncs().back()["targets"]["app"],
            (json{{"version", "1.0"}, {"release", "app-1.0"}, {"state", "committed"}}));
}

TEST_F(UpdaterHubTest, HubNamingAnotherReleaseAdmitsNothing) {
  publish("1.0");
  hub_.set_gate("app", "app-0.9", true, 1);  // the hub is at another commit
  auto result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "not-admitted");
  EXPECT_TRUE(has(result.message, "for release app-0.9, but this device's commit assigns app-1.0")) << result.message;
  EXPECT_EQ(current(), "");

  hub_.remove_gate("app");  // a hub that does not list the rollout at all
  result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "not-admitted");
  EXPECT_TRUE(has(result.message, "does not list rollout `app`")) << result.message;
  EXPECT_EQ(current(), "");
}

TEST_F(UpdaterHubTest, HubAwayAdmitsNothingThenTheReportsArriveInOrderWhenItIsBack) {
  publish("1.0");
  hub_.set_gate("app", "app-1.0", true, 1);
  hub_.stop();
  auto result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "not-admitted");
  EXPECT_TRUE(has(result.message, "could not be asked")) << result.message;
  EXPECT_TRUE(has(result.message, "next poll")) << result.message;
  EXPECT_EQ(current(), "");
  auto status = hub_status();
  EXPECT_TRUE(status["last_sync_result"].get<std::string>().starts_with("failed: ")) << status.dump();
  const auto waiting = status["outbox"].get<int>();
  EXPECT_GT(waiting, 3);  // the commit's transitions and the event that the hub went away

  // A second poll while away: one event about the hub, not one a poll.
  (void)updater().run_cycle();
  EXPECT_EQ(journaled("event", "the hub cannot be asked"), 1);

  hub_.start();
  result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "updated") << result.message;
  EXPECT_EQ(current(), "1.0");
  EXPECT_EQ(hub_status()["outbox"], 0);
  // Everything the device journaled while the hub was away arrived, in order, once.
  std::int64_t last = 0;
  bool away_reported = false, back_reported = false;
  for (const auto& r : hub_.reports()) {
    auto seq = std::stoll(r["id"].get<std::string>().substr(6));
    EXPECT_GT(seq, last);
    last = seq;
    away_reported = away_reported || has(r["message"].get<std::string>(), "the hub cannot be asked");
    back_reported = back_reported || has(r["message"].get<std::string>(), "answers again");
  }
  EXPECT_TRUE(away_reported);
  EXPECT_TRUE(back_reported);
  EXPECT_EQ(hub_.duplicates(), 0);
  EXPECT_EQ(reported_transitions("app-1.0").back(), "probing>committed");
}

TEST_F(UpdaterHubTest, RollbackOrderReturnsToThePreviousVersionUntilAHigherGeneration) {
  publish("1.0");
  hub_.set_gate("app", "app-1.0", true, 1);
  ASSERT_EQ(updater().run_cycle().outcome, "updated");
  publish("2.0");
  hub_.set_gate("app", "app-2.0", true, 1);
  ASSERT_EQ(updater().run_cycle().outcome, "updated");
  ASSERT_EQ(current(), "2.0");

  // The rollout halted with onFailure: rollback.
  hub_.set_gate("app", "app-2.0", false, 1, true, "rolled-back");
  auto result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "rolled-back") << result.message;
  EXPECT_TRUE(has(result.message, "the hub rolled rollout `app` back (generation 1, rolled-back)")) << result.message;
  EXPECT_EQ(current(), "1.0");
  // Recorded with why, and reported.
  EXPECT_EQ(journaled("transition", "the hub rolled rollout `app` back"), 1);
  EXPECT_EQ(reported_transitions("app-2.0").back(), "rolling-back>rolled-back");
  // The order is followed once: 1.0 is not the rollout's release.
  EXPECT_EQ(updater().run_cycle().outcome, "up-to-date");
  EXPECT_EQ(current(), "1.0");

  // Admitted again under the same generation: not taken.
  hub_.set_gate("app", "app-2.0", true, 1);
  result = updater().run_cycle();
  EXPECT_EQ(current(), "1.0") << result.message;
  // `eddy rollout retry`: generation 2 admits it again.
  hub_.set_gate("app", "app-2.0", true, 2);
  result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "updated") << result.message;
  EXPECT_EQ(current(), "2.0");
  EXPECT_EQ(hub_.reports().back()["generation"], 2);
}

TEST_F(UpdaterHubTest, ReleaseThatFailedHereIsRetriedOnlyUnderAHigherGeneration) {
  publish("1.0");
  hub_.set_gate("app", "app-1.0", true, 1);
  ASSERT_EQ(updater().run_cycle().outcome, "updated");
  publish("2.0", false);
  hub_.set_gate("app", "app-2.0", true, 3);
  auto result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "rolled-back") << result.message;
  EXPECT_EQ(current(), "1.0");
  json outcome;
  for (const auto& r : hub_.reports())
    if (r["release"] == "app-2.0" && !r["outcome"].get<std::string>().empty()) outcome = r;
  EXPECT_EQ(outcome["outcome"], "rolled-back");
  EXPECT_EQ(outcome["generation"], 3);

  const auto posts = hub_.report_posts();
  result = updater().run_cycle();  // generation 3 still: not retried
  EXPECT_EQ(result.outcome, "up-to-date") << result.message;
  EXPECT_EQ(reported_transitions("app-2.0").size(), 7u);  // admitted ... rolled-back, once
  EXPECT_EQ(hub_.report_posts(), posts);                    // nothing new to say

  hub_.set_gate("app", "app-2.0", true, 4);
  result = updater().run_cycle();
  EXPECT_EQ(result.outcome, "rolled-back") << result.message;  // tried again, fails again
  EXPECT_EQ(current(), "1.0");
}

TEST_F(UpdaterHubTest, RollbackOrderWithNoPreviousVersionKeepsTheAppAndSaysWhy) {
  publish("1.0");
  hub_.set_gate("app", "app-1.0", true, 1);
  ASSERT_EQ(updater().run_cycle().outcome, "updated");
  hub_.set_gate("app", "app-1.0", false, 1, true, "rolled-back");
  auto result = updater().run_cycle();
  EXPECT_EQ(current(), "1.0");
  EXPECT_TRUE(has(result.message, "cannot roll back app-1.0")) << result.message;
  (void)updater().run_cycle();
  EXPECT_EQ(journaled("event", "no previous committed version"), 1);  // said once, not at every poll
}

}  // namespace
}  // namespace eddy::ota
