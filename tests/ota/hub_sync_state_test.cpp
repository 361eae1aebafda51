// What the update worker and eddyd's own no-op poll share of a sync with the hub
// (ota/hub_client.hpp): the request read from the state store, the answer recorded for
// `eddy status`, and when two answers tell the device the same.
#include <gtest/gtest.h>

#include "ota/hub_client.hpp"
#include "ota/hub_status.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using eddy::testing::TempDir;
using nlohmann::json;

SyncResponse answer(const json& body) {
  auto parsed = parse_sync_response(body);
  EXPECT_TRUE(parsed) << parsed.error().message;
  return parsed ? *parsed : SyncResponse{};
}

json gate(const std::string& release, bool admitted, std::int64_t generation, const std::string& reason = "r") {
  return {{"release", release}, {"admitted", admitted}, {"rollback", false}, {"generation", generation},
          {"state", "progressing"}, {"step", 0}, {"percent", 100}, {"reason", reason}};
}

TEST(HubSyncStateTest, TheRequestTellsWhatIsInstalledAndTheLatestAttemptPerTarget) {
  TempDir dir;
  auto store = storage::StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE(store->set_installed("app", "1.0", "app-1.0"));
  storage::UpdateSubject subject{"app", "app-1.1", "1.1", "00", "1.0", "app", 1};
  ASSERT_TRUE(store->begin_update("c0ffee", "admitted", "admitted", subject));

  auto request = sync_request_from_store(*store, {{"site", "berlin"}}, {"app", "other"}, "c0ffee");
  EXPECT_EQ(request.commit, "c0ffee");
  EXPECT_EQ(request.labels, (std::map<std::string, std::string>{{"site", "berlin"}}));
  ASSERT_EQ(request.targets.size(), 2u);
  EXPECT_EQ(request.targets.at("app").version, "1.0");
  EXPECT_EQ(request.targets.at("app").release, "app-1.0");
  EXPECT_EQ(request.targets.at("app").state, "admitted");
  // A target with nothing installed and no attempt: empty strings, as fleet/API.md says.
  EXPECT_EQ(request.targets.at("other").version, "");
  EXPECT_EQ(request.targets.at("other").state, "");
}

TEST(HubSyncStateTest, AnAnswerIsRecordedForStatus) {
  TempDir dir;
  auto store = storage::StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE(store->put(kHubReachable, "no"));
  record_sync_answer(*store, answer({{"commit", "abc"}, {"rollouts", {{"app", gate("app-1.1", true, 2)}}}}));
  auto status = hub_status_json(*store, "http://hub");
  EXPECT_EQ(status["last_sync_result"], "ok");
  EXPECT_GT(status["last_sync_at"].get<std::int64_t>(), 0);
  EXPECT_EQ(status["rollouts"]["app"]["release"], "app-1.1");
  auto reachable = store->get(kHubReachable);
  ASSERT_TRUE(reachable && *reachable);
  EXPECT_EQ(**reachable, "yes");
}

TEST(HubSyncStateTest, AnswersAreTheSameOnlyWhenEveryGateAndTheCommitAreAlike) {
  const json base = {{"commit", "abc"}, {"rollouts", {{"app", gate("app-1.1", false, 1)}}}};
  EXPECT_TRUE(same_answer(answer(base), answer(base)));
  // Key order and number spelling do not matter; values do.
  json reordered = json::parse(R"({"rollouts": {"app": {"reason": "r", "percent": 100, "step": 0,
      "state": "progressing", "generation": 1, "rollback": false, "admitted": false, "release": "app-1.1"}},
      "commit": "abc"})");
  EXPECT_TRUE(same_answer(answer(base), answer(reordered)));

  std::vector<std::pair<std::string, json>> changed;
  auto with = [&](const std::string& what, const std::function<void(json&)>& edit) {
    json copy = base;
    edit(copy);
    changed.emplace_back(what, copy);
  };
  with("admitted", [](json& j) { j["rollouts"]["app"]["admitted"] = true; });
  with("rollback", [](json& j) { j["rollouts"]["app"]["rollback"] = true; });
  with("generation", [](json& j) { j["rollouts"]["app"]["generation"] = 2; });
  with("release", [](json& j) { j["rollouts"]["app"]["release"] = "app-1.2"; });
  with("reason", [](json& j) { j["rollouts"]["app"]["reason"] = "other words"; });
  with("another rollout", [](json& j) { j["rollouts"]["db"] = gate("db-2", true, 1); });
  with("no rollout", [](json& j) { j["rollouts"] = json::object(); });
  with("the hub's commit", [](json& j) { j["commit"] = "def"; });
  for (const auto& [what, body] : changed) EXPECT_FALSE(same_answer(answer(base), answer(body))) << what;
}

}  // namespace
}  // namespace eddy::ota
