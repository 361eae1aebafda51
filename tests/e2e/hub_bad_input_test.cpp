// Bad input against a real eddy-hub process with real eddyd devices: malformed and wrongly typed
// reports, an oversized body, unknown, revoked and another device's tokens, replayed report
// ids, and a signed commit whose rollout names a release that does not exist. Each is refused
// with a message that says what was wrong, nothing of it is stored or half-applied, and the
// hub and its devices carry on. (tests/fleet/api_test.cpp checks each answer in-process; here
// the point is the real processes end to end.)
#include "tests/e2e/hub_fixture.hpp"

namespace eddy::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kEveryone = "  steps: [100]\n  bake: 0s\n  minDevices: 1\n";

class HubBadInput : public HubEndToEnd {
 protected:
  // The hub and two devices, with app-1.0 rolled out to both.
  void start_with_release_1_0() {
    good_commit_ = publish("1.0", true, kEveryone);
    hub_->start();
    for (const auto& id : running_) device(id).start();
    ASSERT_TRUE(wait_for_rollout([&](json& r) { return r["state"] == "complete" && run("1.0"); }, 60s));
  }
  // The next release, to both devices: the hub and the devices carry on.
  void roll_out_2_0() {
    publish("2.0", true, kEveryone);
    ASSERT_TRUE(wait_for_rollout(
        [&](json& r) { return r["release"] == "app-2.0" && r["state"] == "complete" && run("2.0"); }, 60s));
  }
  bool run(const std::string& version) {
    return std::all_of(running_.begin(), running_.end(),
                       [&](const std::string& id) { return device(id).current_version("app") == version; });
  }
  void expect_every_report_of_the_running_arrived() {
    for (const auto& id : running_) expect_every_report_arrived(device(id), id);
  }

  // A report of `device` as the hub stored it, in the API's format: the first matching `where`.
  json stored_report(const std::string& device, const std::string& where) {
    json out;
    auto db = storage::Database::open(hub_->data_dir() / "hub.db", {});
    EXPECT_TRUE(db) << db.error().message;
    if (!db) return out;
    (void)db->query("SELECT id, time, kind, target, rollout, release, version, fleet_commit, generation, from_state, "
                    "to_state, outcome, level, message, probes FROM reports WHERE device = ? AND " + where +
                        " ORDER BY id LIMIT 1",
                    {device}, [&](const storage::Row& r) {
                      out = {{"id", r.text(0)},      {"time", r.integer(1)},   {"kind", r.text(2)},
                             {"target", r.text(3)},  {"rollout", r.text(4)},   {"release", r.text(5)},
                             {"version", r.text(6)}, {"commit", r.text(7)},    {"generation", r.integer(8)},
                             {"from", r.text(9)},    {"to", r.text(10)},       {"outcome", r.text(11)},
                             {"level", r.text(12)},  {"message", r.text(13)}, {"probes", json::parse(r.text(14))}};
                    });
    return out;
  }

  // One counter of the hub's /metrics.
  std::int64_t metric(const std::string& name) {
    auto text = hub_->request("GET", "/metrics", "").body;
    auto at = text.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::stoll(text.substr(at + name.size() + 2));
  }

  HubProcess::Reply post(const std::string& route, const std::string& token, const std::string& body) {
    return hub_->request("POST", route, token, body);
  }

  const std::vector<std::string> running_{"dev-1", "dev-2"};
  std::string good_commit_;
};

TEST_F(HubBadInput, MalformedOversizedAndReplayedReportsChangeNothingAndTheFleetCarriesOn) {
  start_with_release_1_0();
  expect_every_report_of_the_running_arrived();
  const auto stored = hub_report_ids(*hub_, "dev-1").size();
  const std::string token = hub_->device_token("dev-1");
  const std::string route = "/v1/devices/dev-1/reports";

  auto not_json = post(route, token, R"({"reports": [{"id": "dev-1:9001", "kind": "event")");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_TRUE(contains(not_json.json.value("error", ""), "JSON")) << not_json.body;

  json fine = {{"id", "dev-1:9002"}, {"kind", "event"}, {"level", "info"}, {"message", "fine"}};
  json wrong = fine;
  wrong["id"] = "dev-1:9003";
  wrong["generation"] = "two";
  auto typed = post(route, token, json{{"reports", json::array({fine, wrong})}}.dump());
  EXPECT_EQ(typed.status, 400);
  EXPECT_TRUE(contains(typed.json.value("error", ""), "reports[1].generation")) << typed.body;

  auto huge = post(route, token, R"({"reports": [], "padding": ")" + std::string(1 << 20, 'x') + "\"}");
  EXPECT_EQ(huge.status, 413);
  EXPECT_TRUE(contains(huge.body, "exceeds the limit of 1048576 bytes")) << huge.body.substr(0, 200);

  // None of it was stored: not even the well-formed report beside the bad one.
  EXPECT_EQ(hub_report_ids(*hub_, "dev-1").size(), stored);

  // dev-1's report of its commit, replayed as stored and once more with its outcome turned to a
  // failure: acknowledged both times (the device may delete it), counted once, verdict unchanged.
  const json committed = stored_report("dev-1", "outcome = 'committed'");
  ASSERT_FALSE(committed.is_null());
  const auto duplicates = metric("eddy_hub_reports_duplicate_total");
  auto again = post(route, token, json{{"reports", json::array({committed})}}.dump());
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json["acknowledged"], json::array({committed["id"]}));
  json forged = committed;
  forged["to"] = "rolled-back";
  forged["outcome"] = "rolled-back";
  auto twice = post(route, token, json{{"reports", json::array({forged})}}.dump());
  EXPECT_EQ(twice.status, 200) << twice.body;
  EXPECT_EQ(twice.json["acknowledged"], json::array({committed["id"]}));
  EXPECT_EQ(metric("eddy_hub_reports_duplicate_total"), duplicates + 2);
  EXPECT_EQ(hub_report_ids(*hub_, "dev-1").size(), stored);
  EXPECT_EQ(stored_report("dev-1", "id = '" + committed["id"].get<std::string>() + "'"), committed);
  auto r = rollout();
  EXPECT_EQ(r["state"], "complete");
  EXPECT_EQ(r["devices"]["succeeded"], 2);
  EXPECT_EQ(r["devices"]["failed"], 0);

  // The same hub process rolls the next release out to both devices, and hears all of it.
  roll_out_2_0();
  expect_every_report_of_the_running_arrived();
}

TEST_F(HubBadInput, UnknownRevokedAndAnotherDevicesTokensAreRefusedAndNoReportIsLost) {
  start_with_release_1_0();

  auto unknown = post("/v1/devices/dev-1/sync", "device-token-nobody-has", "{}");
  EXPECT_EQ(unknown.status, 401);
  EXPECT_TRUE(contains(unknown.json.value("error", ""), "unknown or revoked token")) << unknown.body;
  auto none = post("/v1/devices/dev-1/reports", "", R"({"reports": []})");
  EXPECT_EQ(none.status, 401);
  EXPECT_TRUE(contains(none.json.value("error", ""), "Authorization")) << none.body;

  // dev-1's token is revoked while it runs: its syncs are refused (401), and what it journals
  // meanwhile waits in its outbox. dev-2 is given dev-3's token: refused too (403).
  const auto dev1_reports = hub_report_ids(*hub_, "dev-1").size();
  hub_->revoke_device("dev-1");
  write_file(token_file(device("dev-2")), hub_->device_token("dev-3") + "\n");
  std::map<std::string, std::string> said;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& id : running_) {
          auto hub = device(id).status()["hub"];
          said[id] = hub["last_sync_result"].get<std::string>();
          if (!said[id].starts_with("failed") || hub["outbox"].get<int>() == 0) return false;
        }
        return true;
      },
      30s));
  EXPECT_TRUE(contains(said["dev-1"], "does not accept this device's token (401: unknown or revoked token"))
      << said["dev-1"];
  EXPECT_TRUE(contains(said["dev-1"], token_file(device("dev-1")).string())) << said["dev-1"];
  EXPECT_TRUE(contains(said["dev-2"], "refused the token for device `dev-2` (403: this token is device dev-3's"))
      << said["dev-2"];
  EXPECT_TRUE(contains(said["dev-2"], "belongs to another device")) << said["dev-2"];
  EXPECT_EQ(hub_report_ids(*hub_, "dev-1").size(), dev1_reports);
  EXPECT_TRUE(hub_report_ids(*hub_, "dev-3").empty());
  auto devices = hub_->request("GET", "/v1/devices", hub_->operator_token()).json["devices"];
  EXPECT_EQ(devices.size(), 2u) << devices.dump();  // dev-3 never synced: nobody spoke for it

  // Their own tokens again: everything they journaled arrives, once.
  hub_->device_token("dev-1");
  write_file(token_file(device("dev-2")), hub_->device_token("dev-2") + "\n");
  ASSERT_TRUE(wait_until([&] {
    return std::all_of(running_.begin(), running_.end(),
                       [&](const std::string& id) { return device(id).status()["hub"]["last_sync_result"] == "ok"; });
  }));
  expect_every_report_of_the_running_arrived();
  EXPECT_GT(hub_report_ids(*hub_, "dev-1").size(), dev1_reports);
}

TEST_F(HubBadInput, ARolloutNamingAMissingReleaseIsRefusedByTheHubAndTheDevices) {
  start_with_release_1_0();

  // A signed commit whose rollout names app-1.1, whose release file was never added.
  fleet_->repo().write("rollouts/app.yaml", "apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: app}\nspec:\n"
                                            "  release: app-1.1\n  selector: {matchLabels: {site: berlin}}\n" +
                                                std::string(kEveryone));
  const std::string bad = fleet_->repo().commit("app 1.1, its release forgotten");

  // The hub refuses it, says why, and stays on the commit it had.
  json refused;
  ASSERT_TRUE(wait_until([&] {
    auto events = hub_->request("GET", "/v1/events", hub_->operator_token()).json["events"];
    for (const auto& e : events)
      if (e["kind"] == "refused" && contains(e["message"], bad.substr(0, 7))) refused = e;
    return !refused.is_null();
  }));
  const std::string why = refused["message"];
  for (const std::string& needle : {std::string("rollouts/app.yaml"), std::string("release `app-1.1` does not exist"),
                                    "the hub stays on commit " + good_commit_.substr(0, 7)})
    EXPECT_TRUE(contains(why, needle)) << "`" << needle << "` in: " << why;
  EXPECT_TRUE(contains(hub_->log(), "commit " + bad.substr(0, 7) + " refused")) << tail(hub_->log());
  auto r = rollout();
  EXPECT_EQ(r["commit"], good_commit_);
  EXPECT_EQ(r["release"], "app-1.0");
  EXPECT_EQ(r["generation"], 1);
  EXPECT_EQ(r["state"], "complete");

  // So do the devices: the refusal is in their history, they keep their commit and version.
  for (const auto& id : running_) {
    Device& d = device(id);
    std::string message;
    ASSERT_TRUE(wait_until([&] {
      auto history = d.eddy({"history", "-n", "10000"}).json;
      for (const auto& e : history["entries"])
        if (e["kind"] == "event" && contains(e["message"], "commit " + bad.substr(0, 7) + " refused")) message = e["message"];
      return !message.empty();
    }))
        << id;
    EXPECT_TRUE(contains(message, "release `app-1.1` does not exist")) << message;
    EXPECT_EQ(d.status()["source"]["accepted_commit"], good_commit_) << id;
    EXPECT_EQ(d.current_version("app"), "1.0") << id;
  }

  // A signed commit on top that names a release that exists: the hub and the devices move on.
  roll_out_2_0();
  EXPECT_EQ(rollout()["generation"], 2);
}

}  // namespace
}  // namespace eddy::testing
