// End-to-end with a real eddy-hub and several real eddyd processes on loopback, all following
// one signed fleet repository: a good release walks every step to 100%; a bad one halts in its
// first step, its devices roll back and no other device ever installs it; the hub going away
// and coming back loses no report; an operator's abort rolls back devices that had committed,
// and a retry (a higher generation) admits them again.
#include <gtest/gtest.h>

#include <iostream>
#include <set>

#include "storage/database.hpp"
#include "storage/migrations.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/hub.hpp"

namespace eddy::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The hub's own records, straight from its database: reports stored for `device`, and the
// devices admitted to a generation of a rollout with the step that admitted them.
std::vector<std::string> hub_report_ids(const HubProcess& hub, const std::string& device) {
  std::vector<std::string> out;
  auto db = storage::Database::open(hub.data_dir() / "hub.db", {});
  EXPECT_TRUE(db) << db.error().message;
  if (!db) return out;
  (void)db->query("SELECT id FROM reports WHERE device = ?", {device},
                  [&](const storage::Row& r) { out.push_back(r.text(0)); });
  return out;
}

std::map<std::string, std::int64_t> hub_admissions(const HubProcess& hub, const std::string& rollout,
                                                   std::int64_t generation) {
  std::map<std::string, std::int64_t> out;
  auto db = storage::Database::open(hub.data_dir() / "hub.db", {});
  EXPECT_TRUE(db) << db.error().message;
  if (!db) return out;
  (void)db->query("SELECT device, step FROM admissions WHERE rollout = ? AND generation = ?", {rollout, generation},
                  [&](const storage::Row& r) { out[r.text(0)] = r.integer(1); });
  return out;
}

class HubEndToEnd : public ::testing::Test {
 protected:
  static constexpr int kDevices = 6;

  void SetUp() override {
    fleet_ = std::make_unique<Fleet>(tmp_ / "fleet");
    for (int i = 1; i <= kDevices; ++i) ids_.push_back("dev-" + std::to_string(i));
    hub_ = std::make_unique<HubProcess>(tmp_ / "hub", fleet_->repo().url(), fleet_->allowed_signers());
    // A fixed port (the OS's pick, once), so that the hub comes back where its devices look.
    hub_url_ = "http://127.0.0.1:" + std::to_string(free_port());
    hub_->write_config("1s", "1s", {}, hub_url_.substr(7));
    for (const auto& id : ids_) {
      auto device = std::make_unique<Device>(tmp_ / id, fleet_->repo().url(), fleet_->allowed_signers(), id,
                                             std::map<std::string, std::string>{{"site", "berlin"}});
      // The app's process stays up (the health check is the bundle's, below): what matters here
      // is which version each device runs.
      device->add_app("app", {"/bin/sleep", "600"});
      device->set_poll_interval("1s");
      write_file(device->dir() / "token", hub_->device_token(id) + "\n");
      device->write_config("hub:\n  url: " + hub_url_ + "\n  token_file: " + (device->dir() / "token").string() +
                           "\n");
      devices_.push_back(std::move(device));
    }
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "---- eddy-hub log (end) ----\n" << tail(hub_->log()) << "---- " << ids_[0] << " log (end) ----\n"
                << tail(devices_[0]->log());
    }
    for (auto& d : devices_) d->stop();
    (void)hub_->stop();
  }

  json rollout(const std::string& name) const {
    auto reply = hub_->request("GET", "/v1/rollouts/" + name, hub_->operator_token());
    return reply.json;
  }
  HubProcess::Reply command(const std::string& name, const std::string& what) const {
    return hub_->request("POST", "/v1/rollouts/" + name + "/" + what, hub_->operator_token());
  }

  static std::string tail(const std::string& text) {
    return text.size() > 6000 ? text.substr(text.size() - 6000) : text;
  }

  // releases/app-<version>.yaml whose health check passes (healthy) or fails on every device,
  // and rollouts/app.yaml naming it; one signed commit.
  std::string publish(const std::string& version, bool healthy, const std::string& rollout_spec) {
    AppBundle bundle;
    bundle.version = version;
    bundle.healthy = healthy;
    fleet_->add_bundle("app", bundle);
    fleet_->add_release("app", bundle,
                        "  analysis:\n"
                        "    interval: 200ms\n"
                        "    iterations: 2\n"
                        "    threshold: 0\n"
                        "    probes:\n"
                        "      - {name: health, exec: {command: [/bin/sh, -c, \"test -f www/healthz\"], timeout: 10s}}\n");
    fleet_->repo().write("rollouts/app.yaml", "apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: app}\nspec:\n"
                                              "  release: app-" + version + "\n"
                                              "  selector: {matchLabels: {site: berlin}}\n" + rollout_spec);
    return fleet_->repo().commit("app " + version);
  }

  void start_all() {
    hub_->start();
    for (auto& d : devices_) d->start();
  }

  bool all_run(const std::string& version) {
    for (auto& d : devices_)
      if (d->current_version("app") != version) return false;
    return true;
  }

  // Releases this device ever started to install (a transition of an attempt at it).
  static bool ever_installed(Device& d, const std::string& release) {
    auto history = d.eddy({"history", "-n", "10000"}).json;
    for (const auto& e : history["entries"])
      if (e["kind"] == "transition" && e.value("release", "") == release && e.value("to", "") == "downloading")
        return true;
    return false;
  }

  // Every journal entry of the device (transitions, probe results, events) is one report at
  // the hub, each once, with no gap in the device's sequence.
  void expect_every_report_arrived(Device& d, const std::string& id) {
    std::int64_t journal = -1;
    std::vector<std::string> ids;
    bool settled = wait_until(
        [&] {
          auto status = d.status();
          if (!status.contains("hub") || status["hub"]["outbox"] != 0) return false;
          auto db = storage::Database::open(d.data_dir() / "eddy.db", storage::device_migrations());
          if (!db) return false;
          journal = db->query_integer("SELECT (SELECT COUNT(*) FROM transitions) + (SELECT COUNT(*) FROM events) + "
                                      "(SELECT COUNT(*) FROM probe_results)")
                        ->value_or(-1);
          ids = hub_report_ids(*hub_, id);
          return static_cast<std::int64_t>(ids.size()) == journal;
        },
        60s);
    EXPECT_TRUE(settled) << id << ": " << journal << " journal entries, " << ids.size() << " reports at the hub";
    std::set<std::int64_t> seqs;
    for (const auto& rid : ids) {
      ASSERT_TRUE(rid.starts_with(id + ":")) << rid;
      seqs.insert(std::stoll(rid.substr(id.size() + 1)));
    }
    ASSERT_FALSE(seqs.empty());
    EXPECT_EQ(*seqs.rbegin() - *seqs.begin() + 1, static_cast<std::int64_t>(seqs.size())) << id << ": a gap";
  }

  TempDir tmp_;
  std::unique_ptr<Fleet> fleet_;
  std::vector<std::string> ids_;
  std::unique_ptr<HubProcess> hub_;
  std::string hub_url_;
  std::vector<std::unique_ptr<Device>> devices_;
};

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
  for (std::size_t i = 0; i < devices_.size(); ++i) expect_every_report_arrived(*devices_[i], ids_[i]);
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
  for (std::size_t i = 0; i < devices_.size(); ++i) expect_every_report_arrived(*devices_[i], ids_[i]);
}

}  // namespace
}  // namespace eddy::testing
