// The hub end-to-end tests' fixture: a signed fleet repository, a real eddy-hub on a fixed
// loopback port (the OS's pick, once, so that a restarted hub comes back where its devices look)
// and kDevices real eddyd processes `dev-1` … `dev-6` (labels site=berlin) reporting to it, with
// an app `app` whose process stays up (/bin/sleep) and whose health check is the bundle's own
// script: what each device's check answers is steered per device by files the test writes
// beside the app (hold, fail_first), so a test decides when and how each device reaches its
// verdict instead of hoping for an order.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "storage/database.hpp"
#include "storage/migrations.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/hub.hpp"

namespace eddy::testing {

// The hub's own records, straight from its database: reports stored for `device`, and the
// devices admitted to a generation of a rollout with the step that admitted them.
inline std::vector<std::string> hub_report_ids(const HubProcess& hub, const std::string& device) {
  std::vector<std::string> out;
  auto db = storage::Database::open(hub.data_dir() / "hub.db", {});
  EXPECT_TRUE(db) << db.error().message;
  if (!db) return out;
  (void)db->query("SELECT id FROM reports WHERE device = ?", {device},
                  [&](const storage::Row& r) { out.push_back(r.text(0)); });
  return out;
}

inline std::map<std::string, std::int64_t> hub_admissions(const HubProcess& hub, const std::string& rollout,
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
    hub_url_ = "http://127.0.0.1:" + std::to_string(free_port());
    hub_->write_config("1s", "1s", {}, hub_url_.substr(7));
    for (const auto& id : ids_) {
      auto device = std::make_unique<Device>(tmp_ / id, fleet_->repo().url(), fleet_->allowed_signers(), id,
                                             std::map<std::string, std::string>{{"site", "berlin"}});
      // The app's process stays up (the health check is the bundle's, below): what matters here
      // is which version each device runs.
      device->add_app("app", {"/bin/sleep", "600"});
      device->set_poll_interval("1s");
      write_file(token_file(*device), hub_->device_token(id) + "\n");
      device->write_config("hub:\n  url: " + hub_url_ + "\n  token_file: " + token_file(*device).string() + "\n");
      devices_.push_back(std::move(device));
    }
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "---- eddy-hub log (end) ----\n" << tail(hub_->log());
      for (std::size_t i = 0; i < devices_.size(); ++i)
        if (!devices_[i]->log().empty()) std::cerr << "---- " << ids_[i] << " log (end) ----\n" << tail(devices_[i]->log(), 2500);
    }
    // A held check would keep its eddyd busy until the check's timeout.
    for (const auto& id : ids_) release(id);
    for (auto& d : devices_) d->stop();
    (void)hub_->stop();
  }

  Device& device(const std::string& id) {
    auto it = std::find(ids_.begin(), ids_.end(), id);
    if (it == ids_.end()) throw std::runtime_error("no device " + id);
    return *devices_[static_cast<std::size_t>(it - ids_.begin())];
  }
  static stdfs::path token_file(const Device& d) { return d.dir() / "token"; }

  // The files the bundle's check reads, in the app's folder (two levels above the version the
  // check runs in). hold: the check waits while it exists (the device stays in its analysis,
  // with no verdict); fail_first: the next n checks fail; checks: how many ran so far.
  stdfs::path control(const std::string& id, const std::string& name) { return device(id).app_dir("app") / name; }
  void hold(const std::string& id) { write_file(control(id, "hold"), ""); }
  void release(const std::string& id) { stdfs::remove(control(id, "hold")); }
  void fail_first(const std::string& id, int n) {
    stdfs::remove(control(id, "calls"));
    write_file(control(id, "fail-first"), std::to_string(n) + "\n");
  }
  int checks(const std::string& id) {
    if (!stdfs::exists(control(id, "calls"))) return 0;
    auto text = read_file(control(id, "calls"));
    return text.empty() ? 0 : std::stoi(text);
  }

  nlohmann::json rollout(const std::string& name = "app") const {
    auto reply = hub_->request("GET", "/v1/rollouts/" + name, hub_->operator_token());
    return reply.json;
  }
  HubProcess::Reply command(const std::string& name, const std::string& what) const {
    return hub_->request("POST", "/v1/rollouts/" + name + "/" + what, hub_->operator_token());
  }
  // `eddy ARGS` as an operator: the hub and the operator token from the environment, nothing
  // from the user's own configuration.
  CommandResult operator_eddy(std::vector<std::string> args) const {
    args.insert(args.begin(), eddy_path().string());
    return run(args, {},
               {{"EDDY_HUB", hub_->url()},
                {"EDDY_TOKEN", hub_->operator_token()},
                {"EDDY_TOKEN_FILE", ""},
                {"EDDY_CA_FILE", ""},
                {"HOME", (tmp_ / "home").string()},
                {"XDG_CONFIG_HOME", (tmp_ / "home" / "config").string()}});
  }

  static std::string tail(const std::string& text, std::size_t size = 6000) {
    return text.size() > size ? text.substr(text.size() - size) : text;
  }

  // The release's analysis: the bundle's check every 200ms, `iterations` times, `threshold`
  // failed checks tolerated.
  static std::string check_analysis(int iterations, int threshold) {
    return "  analysis:\n"
           "    interval: 200ms\n"
           "    iterations: " + std::to_string(iterations) + "\n"
           "    threshold: " + std::to_string(threshold) + "\n"
           "    probes:\n"
           "      - {name: health, exec: {command: [/bin/sh, bin/check], timeout: 60s}}\n";
  }

  // releases/app-<version>.yaml whose bundle is healthy or fails its check on every device,
  // and rollouts/app.yaml naming it; one signed commit.
  std::string publish(const std::string& version, bool healthy, const std::string& rollout_spec,
                      const std::string& analysis = check_analysis(2, 0)) {
    AppBundle bundle;
    bundle.version = version;
    bundle.healthy = healthy;
    bundle.extra_files["bin/check"] =
        "test -f www/healthz || { echo 'www/healthz is missing: an unhealthy bundle'; exit 1; }\n"
        "cd -P ../.. || exit 1\n"
        "calls=$(( $(cat calls 2>/dev/null || echo 0) + 1 ))\n"
        "echo \"$calls\" > calls\n"
        "while test -f hold; do sleep 0.1; done\n"
        "if test \"$calls\" -le \"$(cat fail-first 2>/dev/null || echo 0)\"; then\n"
        "  echo \"check $calls fails (fail-first)\"; exit 1\n"
        "fi\n"
        "echo \"check $calls ok\"\n";
    fleet_->add_bundle("app", bundle);
    fleet_->add_release("app", bundle, analysis);
    fleet_->repo().write("rollouts/app.yaml", "apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: app}\nspec:\n"
                                              "  release: app-" + version + "\n"
                                              "  selector: {matchLabels: {site: berlin}}\n" + rollout_spec);
    return fleet_->repo().commit("app " + version);
  }

  void start_all() {
    hub_->start();
    for (auto& d : devices_) d->start();
  }
  // start_all on a signed fleet commit with no rollout yet, until the hub knows every device:
  // the first step's minDevices fill (the lowest places among the devices the hub knows) then
  // picks by place in line among all of them, not among those that happened to sync first.
  void start_all_known() {
    fleet_->repo().write("README.md", "The fleet of the hub end-to-end tests.\n");
    fleet_->repo().commit("fleet: no rollout yet");
    start_all();
    ASSERT_TRUE(wait_until(
        [&] { return hub_->request("GET", "/v1/devices", hub_->operator_token()).json["devices"].size() == kDevices; },
        std::chrono::seconds(30)))
        << hub_->request("GET", "/v1/devices", hub_->operator_token()).body;
  }

  // Poll the rollout's status until `condition` holds for it: that status, or nullopt (and a
  // failure that shows the last status seen).
  std::optional<nlohmann::json> wait_for_rollout(const std::function<bool(nlohmann::json&)>& condition,
                                                 std::chrono::seconds timeout = std::chrono::seconds(30)) {
    nlohmann::json r;
    if (wait_until([&] { return condition(r = rollout()); }, timeout)) return r;
    ADD_FAILURE() << "the rollout did not get there in " << timeout.count() << " s; it is:\n" << r.dump(1);
    return std::nullopt;
  }
  // The rollout once the director has looked at it twice more since `seen` (each tick records
  // its verdict with the time, in seconds): whatever it decided meanwhile.
  nlohmann::json looked_again(const nlohmann::json& seen) {
    const auto at = seen["last_verdict"]["at"].get<std::int64_t>();
    auto r = wait_for_rollout([&](nlohmann::json& now) { return now["last_verdict"]["at"].get<std::int64_t>() >= at + 2; });
    return r ? *r : nlohmann::json::object();
  }
  // Wait until the rollout is complete with every device running `version`, each a success.
  std::optional<nlohmann::json> wait_complete(const std::string& version) {
    auto r = wait_for_rollout([&](nlohmann::json& now) { return now["state"] == "complete" && all_run(version); },
                              std::chrono::seconds(60));
    if (!r) return r;
    EXPECT_EQ((*r)["devices"]["succeeded"], kDevices) << r->dump(1);
    EXPECT_EQ((*r)["devices"]["failed"], 0) << r->dump(1);
    return r;
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
        std::chrono::seconds(60));
    EXPECT_TRUE(settled) << id << ": " << journal << " journal entries, " << ids.size() << " reports at the hub";
    std::set<std::int64_t> seqs;
    for (const auto& rid : ids) {
      ASSERT_TRUE(rid.starts_with(id + ":")) << rid;
      seqs.insert(std::stoll(rid.substr(id.size() + 1)));
    }
    ASSERT_FALSE(seqs.empty());
    EXPECT_EQ(*seqs.rbegin() - *seqs.begin() + 1, static_cast<std::int64_t>(seqs.size())) << id << ": a gap";
  }
  void expect_every_report_arrived() {
    for (std::size_t i = 0; i < devices_.size(); ++i) expect_every_report_arrived(*devices_[i], ids_[i]);
  }

  TempDir tmp_;
  std::unique_ptr<Fleet> fleet_;
  std::vector<std::string> ids_;
  std::unique_ptr<HubProcess> hub_;
  std::string hub_url_;
  std::vector<std::unique_ptr<Device>> devices_;
};

}  // namespace eddy::testing
