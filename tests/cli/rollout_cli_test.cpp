// `eddy rollout …` and `eddy fleet devices` as real processes against a real eddy-hub on
// loopback, following a signed fleet repository, with devices played over the device API.
#include <atomic>
#include <future>

#include "tests/cli/hub_fixture.hpp"
#include "tests/support/raw_http_server.hpp"
#include "tests/support/tls_servers.hpp"

namespace {

using eddy::testing::contains;
using eddy::testing::wait_until;
using nlohmann::json;

class RolloutCliTest : public eddy::testing::HubCliFixture {
 protected:
  // Play the devices (play_devices) until the `eddy` of `waiting` exits; its result.
  eddy::testing::CommandResult play_until_done(std::future<eddy::testing::CommandResult>& waiting,
                                               const std::string& version, const std::string& outcome) {
    bool done = wait_until(
        [&] {
          play_devices(version, outcome);
          return waiting.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready;
        },
        std::chrono::seconds(60));
    EXPECT_TRUE(done) << "eddy rollout status --wait did not end; the rollout: " << rollout().dump();
    return waiting.get();  // run() ends a command that outlives its own timeout
  }
};

// A rollout that stays in its first step (bake 1h) unless an operator moves it.
constexpr const char* held_rollout =
    "  steps: [50, 100]\n  bake: 1h\n  minDevices: 1\n  maxFailureRate: 0%\n"
    "  onFailure: rollback\n";

TEST_F(RolloutCliTest, StatusShowsTheRolloutAsTheHubSeesIt) {
  publish("1.0.0", held_rollout);
  start_hub("app-1.0.0");
  const int admitted = play_devices("1.0.0", "committed");
  ASSERT_GE(admitted, 1);
  ASSERT_TRUE(wait_until([&] { return rollout()["devices"].value("succeeded", -1) == admitted; })) << rollout().dump();

  auto result = eddy({"rollout", "status", "app", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto mine = parse(result);
  auto hubs = rollout();
  for (const char* key :
       {"name", "release", "commit", "generation", "state", "step", "steps", "percent", "selected", "admitted",
        "devices", "min_devices", "max_failure_rate", "on_failure", "progress_deadline_seconds"})
    EXPECT_EQ(mine[key], hubs[key]) << key;
  EXPECT_EQ(mine["selected"], 4);
  EXPECT_TRUE(mine["last_verdict"].contains("threshold")) << mine.dump();

  result = eddy({"rollout", "status", "app"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const std::string counts = std::to_string(admitted) + "/4 admitted \u00b7 " + std::to_string(admitted) + " ok";
  for (const std::string& needle :
       {std::string("app  progressing  release app-1.0.0 (generation 1, commit ") + fleet_.repo().head().substr(0, 12),
        std::string("steps    [50%] > 100%"), std::string("step 1/2 50%  [#"), counts,
        std::string("needs 1 device with a verdict"), std::string("verdict  wait"), std::string("events")})
    EXPECT_TRUE(contains(result.output, needle)) << "missing `" << needle << "` in:\n" << result.output;

  // Every rollout, and the options after the group as well as after the verb.
  result = eddy({"rollout", "--json", "status"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto all = parse(result);
  ASSERT_EQ(all["rollouts"].size(), 1u) << all.dump();
  EXPECT_EQ(all["rollouts"][0]["name"], "app");
}

TEST_F(RolloutCliTest, OperatorCommandsSteerTheRollout) {
  publish("1.0.0", held_rollout);
  start_hub("app-1.0.0");
  play_devices("1.0.0", "committed");

  auto result = eddy({"rollout", "pause", "app"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "paused app\napp  paused  release app-1.0.0")) << result.output;
  EXPECT_EQ(rollout()["state"], "paused");

  result = eddy({"rollout", "resume", "app", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(parse(result)["state"], "progressing");

  result = eddy({"rollout", "promote", "app", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(parse(result)["step"], 1);
  EXPECT_EQ(rollout()["percent"], 100);

  result = eddy({"rollout", "abort", "app"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "aborted app\napp  ROLLED-BACK")) << result.output;
  // A script waiting on the rollout sees it failed.
  result = eddy({"rollout", "status", "app"});
  EXPECT_EQ(result.exit_code, 4) << result.output;
  EXPECT_TRUE(contains(result.output, "app  ROLLED-BACK  release app-1.0.0")) << result.output;
  EXPECT_EQ(eddy({"rollout", "status"}).exit_code, 4);

  result = eddy({"rollout", "retry", "app", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto retried = parse(result);
  EXPECT_EQ(retried["state"], "progressing");
  EXPECT_EQ(retried["generation"], 2);
  EXPECT_EQ(retried["step"], 0);

  // Retrying a progressing rollout is a conflict: the hub's reason is shown, exit 1.
  result = eddy({"rollout", "retry", "app"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "eddy rollout retry: the hub at " + hub_->url() + " answered 409: "))
      << result.output;
  result = eddy({"rollout", "retry", "app", "--json"});
  EXPECT_EQ(result.exit_code, 1);
  auto error = json::parse(result.output.substr(result.output.find('{')), nullptr, false);
  ASSERT_TRUE(error.is_object()) << result.output;
  EXPECT_EQ(error["status"], 409);
  EXPECT_FALSE(error.value("error", "").empty());
}

TEST_F(RolloutCliTest, RefusalsAndAnUnreachableHubHaveTheirExitCodes) {
  publish("1.0.0", held_rollout);
  start_hub("app-1.0.0");

  auto result = eddy({"rollout", "status", "no-such-rollout"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "answered 404")) << result.output;
  EXPECT_TRUE(contains(result.output, "`eddy rollout status` lists the rollouts")) << result.output;
  EXPECT_EQ(eddy({"rollout", "pause", "no-such-rollout"}).exit_code, 1);

  result = eddy({"rollout", "status"}, {{"EDDY_TOKEN", "not-a-token-the-hub-knows"}});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "answered 401")) << result.output;
  EXPECT_TRUE(contains(result.output, "from $EDDY_TOKEN")) << result.output;

  eddy::testing::write_file(dir_ / "device.token", device_token("pi-1") + "\n");
  result = eddy({"rollout", "status", "--token-file", (dir_ / "device.token").string()});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "answered 403")) << result.output;
  EXPECT_TRUE(contains(result.output, "not a device token")) << result.output;

  // Usage: no token, a bad --timeout, a missing CA file.
  result = eddy({"rollout", "status"}, {{"EDDY_TOKEN", ""}});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_TRUE(contains(result.output, "no operator token given")) << result.output;
  EXPECT_EQ(eddy({"rollout", "status", "--timeout", "soon"}).exit_code, 2);
  EXPECT_EQ(eddy({"rollout", "status", "--ca-file", (dir_ / "none.pem").string()}).exit_code, 2);
  EXPECT_EQ(eddy({"rollout", "pause"}).exit_code, 2);  // NAME is required

  const auto url = hub_->url();
  hub_->stop();
  result = eddy({"rollout", "status"}, {{"EDDY_HUB", url}});
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_TRUE(contains(result.output, "cannot reach the hub at " + url)) << result.output;
  result = eddy({"rollout", "abort", "app", "--json"}, {{"EDDY_HUB", url}});
  EXPECT_EQ(result.exit_code, 3) << result.output;
  auto error = json::parse(result.output.substr(result.output.find('{')), nullptr, false);
  ASSERT_TRUE(error.is_object()) << result.output;
  EXPECT_EQ(error["status"], 0);
}

TEST_F(RolloutCliTest, FleetDevicesFiltersByLabels) {
  publish("1.0.0", held_rollout);
  devices_.push_back("paris-1");
  start_hub("app-1.0.0");
  sync("pi-1", {{"site", "berlin"}, {"hw", "pi4"}}, "1.0.0", "committed");
  sync("pi-2", {{"site", "berlin"}, {"hw", "pi5"}});
  sync("paris-1", {{"site", "paris"}, {"hw", "pi4"}});

  auto result = eddy({"fleet", "devices", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(parse(result)["devices"].size(), 3u) << result.output;

  result = eddy({"fleet", "devices", "--selector", "site=berlin,hw=pi4", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto devices = parse(result)["devices"];
  ASSERT_EQ(devices.size(), 1u) << result.output;
  EXPECT_EQ(devices[0]["id"], "pi-1");
  EXPECT_EQ(devices[0]["targets"]["app"]["version"], "1.0.0");

  result = eddy({"fleet", "devices", "--selector", "site=berlin"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* needle :
       {"ID", "LAST SEEN", "pi-1", "hw=pi4,site=berlin", "app 1.0.0 committed", "pi-2", "2 devices"})
    EXPECT_TRUE(contains(result.output, needle)) << "missing `" << needle << "` in:\n" << result.output;
  EXPECT_FALSE(contains(result.output, "paris-1")) << result.output;

  result = eddy({"fleet", "devices", "--selector", "site"});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_TRUE(contains(result.output, "`site` is not KEY=VALUE")) << result.output;
}

TEST_F(RolloutCliTest, WaitFollowsARolloutUntilItCompletesOrHalts) {
  publish("1.0.0", "  steps: [50, 100]\n  bake: 0s\n  minDevices: 1\n  maxFailureRate: 0%\n  onFailure: rollback\n");
  start_hub("app-1.0.0");
  play_devices("1.0.0", "");  // the devices register; none has a verdict yet

  // Its output also goes to a file, so that the devices play only once it has shown step 1:
  // a fast hub could otherwise close step 1 between two of its looks.
  const auto shown = dir_ / "wait-output";
  auto waiting = std::async(std::launch::async, [&] {
    return eddy({"rollout", "status", "app", "--wait", "--interval", "100ms"}, {}, shown);
  });
  ASSERT_TRUE(wait_until([&] {
    return std::filesystem::exists(shown) &&
           contains(eddy::testing::read_file(shown), "  app  progressing  step 1/2 50%  ");
  }));
  // Devices take what they are admitted to, step by step, until the hub closes the last step.
  auto result = play_until_done(waiting, "1.0.0", "committed");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "  app  progressing  step 1/2 50%  ")) << result.output;  // a progress line
  EXPECT_TRUE(contains(result.output, "app  complete  release app-1.0.0")) << result.output;
  EXPECT_TRUE(contains(result.output, "4/4 admitted \u00b7 4 ok")) << result.output;

  // A bad release: the first step's devices roll back, the hub halts, --wait exits 4.
  publish("2.0.0", "  steps: [50, 100]\n  bake: 0s\n  minDevices: 1\n  maxFailureRate: 0%\n  onFailure: rollback\n");
  wait_for_release("app-2.0.0");
  waiting = std::async(std::launch::async, [&] {
    return eddy({"rollout", "status", "app", "--wait", "--interval", "100ms", "--json"});
  });
  result = play_until_done(waiting, "2.0.0", "rolled-back");
  EXPECT_EQ(result.exit_code, 4) << result.output;
  auto halted = parse(result);
  EXPECT_EQ(halted["state"], "rolled-back");
  EXPECT_EQ(halted["step"], 0);
  EXPECT_GE(halted["devices"].value("failed", 0), 1) << halted.dump();
  EXPECT_EQ(halted["last_verdict"]["decision"], "halt") << halted.dump();
}

TEST_F(RolloutCliTest, WaitOutlastsAHubThatIsAwayForAWhile) {
  publish("1.0.0", "  steps: [50, 100]\n  bake: 0s\n  minDevices: 1\n  maxFailureRate: 0%\n  onFailure: rollback\n");
  // The hub's port while it is away: connections are closed without an answer.
  std::atomic<int> attempts{0};
  auto away =
      std::make_unique<eddy::testing::RawHttpServer>([&](eddy::testing::RawHttpServer::Connection&) { ++attempts; });
  const int port = away->port();
  auto waiting = std::async(std::launch::async, [&] {
    return eddy({"rollout", "status", "app", "--wait", "--interval", "100ms"},
                {{"EDDY_HUB", "http://127.0.0.1:" + std::to_string(port)}});
  });
  ASSERT_TRUE(wait_until([&] { return attempts >= 2; }));  // it keeps asking
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  away.reset();

  // The hub comes (back) on that port; the rollout goes on to the end.
  start_hub("app-1.0.0", {}, port);
  auto result = play_until_done(waiting, "1.0.0", "committed");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  const std::string said = "cannot reach the hub at http://127.0.0.1:" + std::to_string(port);
  EXPECT_TRUE(contains(result.output, said + ": ")) << result.output;
  EXPECT_EQ(result.output.find(said), result.output.rfind(said)) << "said more than once:\n" << result.output;
  EXPECT_TRUE(contains(result.output, "waiting for it to answer again")) << result.output;
  EXPECT_TRUE(contains(result.output, "answers again")) << result.output;
  EXPECT_TRUE(contains(result.output, "app  complete  release app-1.0.0")) << result.output;

  // Without --wait, an unreachable hub is exit 3 at once.
  hub_->stop();
  EXPECT_EQ(eddy({"rollout", "status", "app"}, {{"EDDY_HUB", "http://127.0.0.1:" + std::to_string(port)}}).exit_code,
            3);
}

TEST_F(RolloutCliTest, HttpsHubWithAPrivateCa) {
  eddy::testing::TestPki pki(dir_ / "pki");
  ca_file_ = pki.ca.cert;
  publish("1.0.0", held_rollout);
  start_hub("app-1.0.0", "tls: {cert: " + pki.server.cert.string() + ", key: " + pki.server.key.string() + "}\n");
  ASSERT_TRUE(hub_->url().starts_with("https://")) << hub_->url();

  auto result = eddy({"rollout", "status", "app", "--ca-file", pki.ca.cert.string(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(parse(result)["release"], "app-1.0.0");
  EXPECT_EQ(eddy({"rollout", "status", "app"}, {{"EDDY_CA_FILE", pki.ca.cert.string()}}).exit_code, 0);

  // The hub's certificate does not chain to the system's CAs: cannot reach it, and says why.
  result = eddy({"rollout", "status", "app"});
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_TRUE(contains(result.output, "needs --ca-file")) << result.output;

  // The same settings from ~/.config/eddy/cli.yaml (here: $XDG_CONFIG_HOME/eddy/cli.yaml).
  eddy::testing::write_file(dir_ / "home" / "config" / "eddy" / "operator-token", operator_token + "\n");
  eddy::testing::write_file(
      dir_ / "home" / "config" / "eddy" / "cli.yaml",
      "hub:\n  url: " + hub_->url() + "\n  token_file: operator-token\n  ca_file: " + pki.ca.cert.string() + "\n");
  result = eddy({"rollout", "status", "app"}, {{"EDDY_HUB", ""}, {"EDDY_TOKEN", ""}});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "app  progressing")) << result.output;
}

}  // namespace
