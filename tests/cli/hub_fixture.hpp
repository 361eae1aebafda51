// A real eddy-hub process following a signed fleet repository, and devices played over the
// hub's device API (sync and reports, as eddyd sends them): what the `eddy rollout|fleet` and
// web view tests drive.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/fleet.hpp"
#include "tests/support/hub.hpp"
#include "tests/support/support.hpp"

namespace eddy::testing {

class HubCliFixture : public ::testing::Test {
 protected:
  std::string device_token(const std::string& id) const { return hub_->device_token(id); }

  // Write <target>-<version> and rollouts/<target>.yaml naming it (`spec` holds the rollout's
  // spec lines after `release:` and the selector site=berlin); commit() signs them.
  void add_rollout(const std::string& version, const std::string& spec, const std::string& target = "app") {
    AppBundle bundle{version, true, 1, {}};
    fleet_.add_bundle(target, bundle);
    fleet_.add_release(target, bundle);
    fleet_.repo().write("rollouts/" + target + ".yaml", "apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: " +
                                                            target + "}\nspec:\n  release: " + target + "-" + version +
                                                            "\n  selector: {matchLabels: {site: berlin}}\n" + spec);
  }
  // add_rollout of app and a signed commit.
  std::string publish(const std::string& version, const std::string& spec) {
    add_rollout(version, spec);
    return fleet_.repo().commit("app " + version);
  }

  // Start eddy-hub (config `extra` appended; on `port` when not 0) and wait until it serves
  // rollout `app` of `release`.
  void start_hub(const std::string& release, const std::string& extra = {}, int port = 0) {
    for (const auto& id : devices_) hub_->device_token(id);
    hub_->write_config("100ms", "200ms", extra, "127.0.0.1:" + std::to_string(port));
    if (!ca_file_.empty()) hub_->set_ca_file(ca_file_);
    hub_->start();
    wait_for_release(release);
  }

  void wait_for_release(const std::string& release) {
    ASSERT_TRUE(wait_until([&] { return rollout().value("release", "") == release; }))
        << "the hub does not serve rollout app of " << release << "; it has " << rollout().dump() << "\nlog:\n"
        << hub_->log();
  }

  // GET /v1/rollouts/<name> as the operator (an empty object when it fails).
  nlohmann::json rollout(const std::string& name = "app") const {
    auto reply = hub_->request("GET", "/v1/rollouts/" + name, operator_token);
    return reply.status == 200 && reply.json.is_object() ? reply.json : nlohmann::json::object();
  }

  // POST /v1/devices/<id>/sync with labels and, when `version` is given, <target>-<version>
  // installed in `state`. Returns the hub's gate for rollout <target> (null when there is none).
  nlohmann::json sync(const std::string& id, const std::map<std::string, std::string>& labels,
                      const std::string& version = {}, const std::string& state = {},
                      const std::string& target = "app") const {
    nlohmann::json body{{"labels", labels}, {"commit", ""}, {"targets", nlohmann::json::object()}};
    if (!version.empty())
      body["targets"][target] = {{"version", version}, {"release", target + "-" + version}, {"state", state}};
    auto reply = hub_->request("POST", "/v1/devices/" + id + "/sync", device_token(id), body.dump());
    EXPECT_EQ(reply.status, 200) << reply.body;
    if (reply.status != 200 || !reply.json.contains("rollouts") || !reply.json["rollouts"].contains(target))
      return nullptr;
    return reply.json["rollouts"][target];
  }

  // A report that the device's update of <target>-<version> ended with `outcome`.
  void report_outcome(const std::string& id, const std::string& version, std::int64_t generation,
                      const std::string& outcome, const std::string& target = "app") {
    nlohmann::json report{{"id", id + ":" + std::to_string(++report_sequence_)},
                          {"time", 1764151200},
                          {"kind", "transition"},
                          {"target", target},
                          {"rollout", target},
                          {"release", target + "-" + version},
                          {"version", version},
                          {"generation", generation},
                          {"from", "probing"},
                          {"to", outcome},
                          {"outcome", outcome},
                          {"message", "test device " + id}};
    auto reply = hub_->request("POST", "/v1/devices/" + id + "/reports", device_token(id),
                               nlohmann::json{{"reports", {report}}}.dump());
    EXPECT_EQ(reply.status, 200) << reply.body;
  }

  // Every device syncs; the admitted ones run app-<version> with `outcome` (committed: they
  // sync it as installed; rolled-back: they report the outcome). Returns how many are admitted.
  int play_devices(const std::string& version, const std::string& outcome) {
    int admitted = 0;
    for (const auto& id : devices_) {
      auto gate = sync(id, {{"site", "berlin"}});
      if (!gate.is_object() || !gate.value("admitted", false) || gate.value("release", "") != "app-" + version)
        continue;
      ++admitted;
      if (outcome == "committed")
        sync(id, {{"site", "berlin"}}, version, "committed");
      else
        report_outcome(id, version, gate.value("generation", 0), outcome);
    }
    return admitted;
  }

  // `eddy ARGS` with the hub and the operator token in the environment, and nothing from the
  // user's own (HOME and XDG_CONFIG_HOME point into the test's folder).
  // With `tee_to`, what it prints also goes to that file as it prints it (for a test that must
  // see a running `--wait` get somewhere).
  CommandResult eddy(std::vector<std::string> args, std::map<std::string, std::string> env = {},
                     const std::filesystem::path& tee_to = {}) const {
    args.insert(args.begin(), eddy_path().string());
    if (!tee_to.empty()) {
      args.insert(args.begin(), {"bash", "-c", "set -o pipefail; \"$@\" 2>&1 | tee \"$EDDY_TEST_TEE\"", "bash"});
      env["EDDY_TEST_TEE"] = tee_to.string();
    }
    std::map<std::string, std::string> base{{"EDDY_HUB", hub_->url()},
                                            {"EDDY_TOKEN", operator_token},
                                            {"EDDY_TOKEN_FILE", ""},
                                            {"EDDY_CA_FILE", ""},
                                            {"HOME", (dir_ / "home").string()},
                                            {"XDG_CONFIG_HOME", (dir_ / "home" / "config").string()},
                                            {"TZ", "UTC"}};
    for (auto& [k, v] : env) base[k] = v;
    return run(args, {}, base);
  }

  static nlohmann::json parse(const CommandResult& result) {
    auto value = nlohmann::json::parse(result.output, nullptr, false);
    EXPECT_FALSE(value.is_discarded()) << "not JSON: " << result.output;
    return value;
  }

  TempDir dir_;
  Fleet fleet_{dir_ / "fleet"};
  std::vector<std::string> devices_{"pi-1", "pi-2", "pi-3", "pi-4"};
  std::filesystem::path ca_file_;
  std::unique_ptr<HubProcess> hub_ =
      std::make_unique<HubProcess>(dir_ / "hub", fleet_.repo().url(), fleet_.allowed_signers());
  const std::string operator_token = hub_->operator_token();
  int report_sequence_ = 0;
};

}  // namespace eddy::testing
