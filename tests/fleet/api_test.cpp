// The hub's HTTP API (fleet/API.md) over real HTTP and HTTPS on loopback: tokens, sync gating,
// reports counted once, malformed input, operator routes, /metrics and the web page; and the
// follower refusing an unsigned commit while the hub stays on the last accepted one.
#include <gtest/gtest.h>

#include "ota/assignment.hpp"
#include "tests/fleet/hub_fixture.hpp"
#include "tests/support/tls_servers.hpp"

namespace eddy::fleet::testing {
namespace {

using eddy::testing::contains;
using json = nlohmann::json;

class ApiTest : public HubFixture {
 protected:
  void SetUp() override {
    commit_ = publish("1.0");
    start_hub(config());
    wait_for_commit(commit_);
  }

  json report(const std::string& id, const std::string& outcome = "committed") {
    return {{"id", id},           {"time", now_.load()},  {"kind", "transition"}, {"target", "app"},
            {"rollout", "app"},   {"release", "app-1.0"}, {"version", "1.0"},     {"commit", commit_},
            {"generation", 1},    {"from", "probing"},    {"to", outcome},        {"outcome", outcome},
            {"message", "done"},  {"probes", json::array({{{"name", "health"}, {"iteration", 1}, {"ok", true}, {"detail", "HTTP 200"}}})}};
  }

  Reply post_reports(const std::string& device, const json& reports) {
    return request("POST", "/v1/devices/" + device + "/reports", device_token(device), json{{"reports", reports}}.dump());
  }

  std::string commit_;
};

TEST_F(ApiTest, DeviceRoutesTakeOnlyTheDevicesOwnToken) {
  auto none = request("POST", "/v1/devices/dev-0/sync", "", "{}");
  EXPECT_EQ(none.status, 401);
  EXPECT_TRUE(contains(none.body.value("error", ""), "Authorization")) << none.text;
  EXPECT_EQ(request("POST", "/v1/devices/dev-0/sync", "not-a-token-anyone-has", "{}").status, 401);
  auto other = request("POST", "/v1/devices/dev-0/sync", device_token("dev-1"), "{}");
  EXPECT_EQ(other.status, 403);
  EXPECT_TRUE(contains(other.body.value("error", ""), "dev-1")) << other.text;
  EXPECT_EQ(request("POST", "/v1/devices/dev-0/sync", kOperatorToken, "{}").status, 403);
  EXPECT_EQ(request("POST", "/v1/devices/dev-0/reports", device_token("dev-1"), "{\"reports\": []}").status, 403);
  EXPECT_EQ(sync("dev-0").status, 200);
}

TEST_F(ApiTest, ARevokedTokenIsRefusedAtOnce) {
  EXPECT_EQ(sync("dev-3").status, 200);
  std::vector<std::string> others;
  for (const auto& d : devices_)
    if (d != "dev-3") others.push_back(d);
  write_device_tokens(others);
  auto revoked = sync("dev-3");
  EXPECT_EQ(revoked.status, 401);
  EXPECT_TRUE(contains(revoked.body.value("error", ""), "revoked")) << revoked.text;
  EXPECT_EQ(sync("dev-4").status, 200);
}

TEST_F(ApiTest, SyncAnswersTheGateOfEachRolloutByPlaceInLine) {
  for (const auto& id : devices_) {
    auto r = sync(id, {{"labels", {{"site", "berlin"}}}, {"commit", commit_},
                       {"targets", {{"app", {{"version", ""}, {"release", ""}, {"state", ""}}}}}});
    ASSERT_EQ(r.status, 200) << r.text;
    EXPECT_EQ(r.body["commit"], commit_);
    const auto& gate = r.body["rollouts"]["app"];
    EXPECT_EQ(gate["release"], "app-1.0");
    EXPECT_EQ(gate["generation"], 1);
    EXPECT_EQ(gate["state"], "progressing");
    EXPECT_EQ(gate["step"], 0);
    EXPECT_EQ(gate["percent"], 50);
    EXPECT_EQ(gate["rollback"], false);
    EXPECT_EQ(gate["admitted"].get<bool>(), ota::place_in_line(id, "app") < 50) << id << ": " << gate["reason"];
    EXPECT_FALSE(gate["reason"].get<std::string>().empty());
  }
  // A device the selector does not match gets no entry.
  auto paris = sync("dev-0", {{"labels", {{"site", "paris"}}}});
  EXPECT_TRUE(paris.body["rollouts"].empty()) << paris.text;
}

TEST_F(ApiTest, AReportSentTwiceIsAcknowledgedTwiceAndCountedOnce) {
  sync("dev-0");
  auto first = post_reports("dev-0", json::array({report("dev-0:1"), report("dev-0:2")}));
  ASSERT_EQ(first.status, 200) << first.text;
  EXPECT_EQ(first.body["acknowledged"], json::array({"dev-0:1", "dev-0:2"}));
  auto again = post_reports("dev-0", json::array({report("dev-0:2")}));
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(again.body["acknowledged"], json::array({"dev-0:2"}));
  auto metrics = request("GET", "/metrics", "");
  EXPECT_TRUE(contains(metrics.text, "\neddy_hub_reports_total 2\n")) << metrics.text;
  EXPECT_TRUE(contains(metrics.text, "\neddy_hub_reports_duplicate_total 1\n")) << metrics.text;
}

TEST_F(ApiTest, MalformedReportsAre400sThatNameTheField) {
  auto not_json = request("POST", "/v1/devices/dev-0/reports", device_token("dev-0"), "{\"reports\": [");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_TRUE(contains(not_json.body.value("error", ""), "JSON")) << not_json.text;

  auto missing_id = report("x");
  missing_id.erase("id");
  auto r = post_reports("dev-0", json::array({report("dev-0:1"), missing_id}));
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(contains(r.body.value("error", ""), "reports[1].id")) << r.text;

  auto bad_kind = report("dev-0:3");
  bad_kind["kind"] = "gossip";
  r = post_reports("dev-0", json::array({bad_kind}));
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(contains(r.body.value("error", ""), "reports[0].kind")) << r.text;

  auto bad_probe = report("dev-0:4");
  bad_probe["probes"][0]["ok"] = "yes";
  r = post_reports("dev-0", json::array({bad_probe}));
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(contains(r.body.value("error", ""), "reports[0].probes[0].ok")) << r.text;

  json many = json::array();
  for (int i = 0; i < 101; ++i) many.push_back(report("dev-0:" + std::to_string(100 + i)));
  r = post_reports("dev-0", many);
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(contains(r.body.value("error", ""), "at most 100")) << r.text;

  // Nothing of a refused request was stored: dev-0:1 is new when it comes alone.
  auto metrics = request("GET", "/metrics", "");
  EXPECT_TRUE(contains(metrics.text, "\neddy_hub_reports_total 0\n")) << metrics.text;

  auto bad_sync = request("POST", "/v1/devices/dev-0/sync", device_token("dev-0"), R"({"labels": {"site": 3}})");
  EXPECT_EQ(bad_sync.status, 400);
  EXPECT_TRUE(contains(bad_sync.body.value("error", ""), "labels.site")) << bad_sync.text;
}

TEST_F(ApiTest, ABodyOverOneMebibyteIs413) {
  std::string body = "{\"reports\": [], \"padding\": \"" + std::string(1 << 20, 'x') + "\"}";
  auto r = request("POST", "/v1/devices/dev-0/reports", device_token("dev-0"), body);
  EXPECT_EQ(r.status, 413);
}

TEST_F(ApiTest, OperatorRoutesShowAndSteerRollouts) {
  for (const auto& id : devices_) sync(id);
  tick();
  auto list = op("GET", "/v1/rollouts");
  ASSERT_EQ(list.status, 200) << list.text;
  ASSERT_EQ(list.body["rollouts"].size(), 1u);
  auto status = op("GET", "/v1/rollouts/app");
  ASSERT_EQ(status.status, 200);
  const auto& s = status.body;
  EXPECT_EQ(s["name"], "app");
  EXPECT_EQ(s["release"], "app-1.0");
  EXPECT_EQ(s["commit"], commit_);
  EXPECT_EQ(s["steps"], json::array({50, 100}));
  EXPECT_EQ(s["bake_seconds"], 3600);
  EXPECT_EQ(s["selected"], 10);
  EXPECT_EQ(s["on_failure"], "rollback");
  EXPECT_DOUBLE_EQ(s["max_failure_rate"].get<double>(), 0.05);
  const auto& d = s["devices"];
  EXPECT_EQ(d["no_data"].get<int>() + d["waiting"].get<int>(), 10);
  EXPECT_EQ(s["last_verdict"]["decision"], "wait");
  EXPECT_FALSE(s["events"].empty());

  EXPECT_EQ(op("GET", "/v1/rollouts/nope").status, 404);
  EXPECT_EQ(request("GET", "/v1/rollouts", device_token("dev-0")).status, 403);
  EXPECT_EQ(request("GET", "/v1/rollouts", "").status, 401);

  auto retry = op("POST", "/v1/rollouts/app/retry");
  EXPECT_EQ(retry.status, 409);
  EXPECT_TRUE(contains(retry.body.value("error", ""), "progressing")) << retry.text;
  EXPECT_EQ(op("POST", "/v1/rollouts/app/pause").body["state"], "paused");
  EXPECT_EQ(op("POST", "/v1/rollouts/app/resume").body["state"], "progressing");
  EXPECT_EQ(op("POST", "/v1/rollouts/app/promote").body["step"], 1);
  auto aborted = op("POST", "/v1/rollouts/app/abort");
  EXPECT_EQ(aborted.body["state"], "rolled-back");
  EXPECT_EQ(sync("dev-0").body["rollouts"]["app"]["rollback"], true);
  auto retried = op("POST", "/v1/rollouts/app/retry");
  EXPECT_EQ(retried.body["generation"], 2);
  EXPECT_EQ(retried.body["step"], 0);
  EXPECT_EQ(op("POST", "/v1/rollouts/app/explode").status, 404);
  EXPECT_EQ(op("GET", "/v1/rollouts/app/pause").status, 405);

  auto events = op("GET", "/v1/events?since=0");
  ASSERT_EQ(events.status, 200);
  std::vector<std::string> kinds;
  for (const auto& e : events.body["events"]) kinds.push_back(e["kind"]);
  for (const char* kind : {"accepted", "generation", "paused", "resumed", "step", "halt", "rollback"})
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), kind), kinds.end()) << kind << " in " << events.text;
  EXPECT_EQ(op("GET", "/v1/events?since=later").status, 400);
  EXPECT_TRUE(op("GET", "/v1/events?since=" + std::to_string(kHubStart + 1)).body["events"].empty());
}

TEST_F(ApiTest, DevicesAreListedWithLabelFilters) {
  sync("dev-0", {{"labels", {{"site", "berlin"}, {"hw", "pi4"}}}, {"commit", commit_}});
  sync("dev-1", {{"labels", {{"site", "berlin"}, {"hw", "pi5"}}}});
  sync("dev-2", {{"labels", {{"site", "paris"}, {"hw", "pi4"}}}});
  auto all = op("GET", "/v1/devices");
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(all.body["devices"].size(), 3u);
  auto some = op("GET", "/v1/devices?selector=site%3Dberlin,hw=pi4");
  ASSERT_EQ(some.body["devices"].size(), 1u) << some.text;
  EXPECT_EQ(some.body["devices"][0]["id"], "dev-0");
  EXPECT_EQ(some.body["devices"][0]["commit"], commit_);
  EXPECT_EQ(some.body["devices"][0]["last_seen"], kHubStart);
  EXPECT_EQ(op("GET", "/v1/devices?selector=site").status, 400);
  EXPECT_EQ(op("GET", "/v1/devices?selector=%zz").status, 400);
}

TEST_F(ApiTest, MetricsAreCountsWithoutDeviceIdsOrTokens) {
  for (const auto& id : devices_) sync(id);
  tick();
  auto r = request("GET", "/metrics", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(contains(r.headers["content-type"], "text/plain"));
  for (const char* line : {"eddy_hub_rollout_step{rollout=\"app\"} 0\n", "eddy_hub_rollout_percent{rollout=\"app\"} 50\n",
                           "eddy_hub_rollout_halted{rollout=\"app\"} 0\n", "eddy_hub_devices_known 10\n",
                           "eddy_hub_rollout_devices{rollout=\"app\",state=\"waiting\"} "})
    EXPECT_TRUE(contains(r.text, line)) << line << " in\n" << r.text;
  EXPECT_TRUE(contains(r.text, "eddy_hub_fleet_commit_timestamp_seconds 1")) << r.text;
  EXPECT_FALSE(contains(r.text, "dev-0"));
  EXPECT_FALSE(contains(r.text, "token"));
}

TEST_F(ApiTest, TheWebPageIsServedAtTheRoot) {
  auto r = request("GET", "/", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(contains(r.headers["content-type"], "text/html"));
  EXPECT_TRUE(contains(r.text, "/v1/rollouts"));
  EXPECT_EQ(request("GET", "/nothing-here", kOperatorToken).status, 404);
}

TEST_F(ApiTest, AnUnsignedCommitIsRefusedAndTheHubStaysOnTheLastAccepted) {
  fleet_.repo().write("rollouts/app.yaml", rollout_yaml("1.0", "  steps: [100]\n"));
  const std::string unsigned_commit = fleet_.repo().commit("unsigned change", false);
  hub_->poll_now();
  ASSERT_TRUE(eddy::testing::wait_until([&] {
    auto events = op("GET", "/v1/events");
    for (const auto& e : events.body["events"])
      if (e["kind"] == "refused") return true;
    return false;
  }));
  EXPECT_EQ(hub_commit(), commit_);
  auto events = op("GET", "/v1/events").body["events"];
  auto refused = std::find_if(events.begin(), events.end(), [](const json& e) { return e["kind"] == "refused"; });
  ASSERT_NE(refused, events.end());
  EXPECT_TRUE(contains((*refused)["message"], unsigned_commit.substr(0, 7))) << *refused;
  EXPECT_TRUE(contains((*refused)["message"], "unsigned")) << *refused;
  EXPECT_EQ(op("GET", "/v1/rollouts/app").body["steps"], json::array({50, 100}));

  // A signed commit on top is accepted, and a new release starts generation 2.
  const std::string next = publish("2.0");
  wait_for_commit(next);
  auto s = op("GET", "/v1/rollouts/app").body;
  EXPECT_EQ(s["release"], "app-2.0");
  EXPECT_EQ(s["generation"], 2);
}

TEST_F(ApiTest, StateSurvivesAHubRestart) {
  for (const auto& id : devices_) sync(id);
  tick();
  op("POST", "/v1/rollouts/app/promote");
  post_reports("dev-0", json::array({report("dev-0:1")}));
  stop_hub();
  start_hub(config());
  // Served from the stored commit before any poll.
  EXPECT_EQ(hub_commit(), commit_);
  auto s = op("GET", "/v1/rollouts/app").body;
  EXPECT_EQ(s["step"], 1);
  EXPECT_EQ(s["generation"], 1);
  EXPECT_EQ(s["admitted"], 10);
  // The report stored before the restart is still known: sending it again is a duplicate.
  post_reports("dev-0", json::array({report("dev-0:1")}));
  EXPECT_TRUE(contains(request("GET", "/metrics", "").text, "\neddy_hub_reports_duplicate_total 1\n"));
}

class HttpsApiTest : public HubFixture {};

TEST_F(HttpsApiTest, TheApiIsServedOverTls) {
  eddy::testing::TestPki pki(dir_ / "pki");
  const std::string commit = publish("1.0");
  auto c = config();
  c.tls_cert = pki.server.cert;
  c.tls_key = pki.server.key;
  ca_file_ = pki.ca.cert;
  start_hub(c);
  wait_for_commit(commit);
  EXPECT_TRUE(hub_->url().starts_with("https://127.0.0.1:"));
  auto r = sync("dev-0");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["commit"], commit);
  EXPECT_EQ(request("POST", "/v1/devices/dev-0/sync", "wrong-token-0123456789", "{}").status, 401);
}

}  // namespace
}  // namespace eddy::fleet::testing
