// Webhooks (fleet/webhooks.hpp) to a recording HTTP server on loopback: the JSON body of
// fleet/API.md, the events filter, retries with backoff after a failing answer, giving up after
// the bounded number of attempts; and the hub sending them when a rollout halts.
#include "fleet/webhooks.hpp"

#include <gtest/gtest.h>

#include <mutex>

#include "tests/fleet/hub_fixture.hpp"

namespace eddy::fleet::testing {
namespace {

using json = nlohmann::json;

// Records every POST; answers `failures` 500s first, then 204s.
class RecordingServer {
 public:
  explicit RecordingServer(int failures = 0) : failures_(failures) {
    auto started = loop_.call([&] {
      return http::Server::start(loop_.loop(), http::ServerOptions{},
                                 [this](http::ServerRequest request, std::function<void(http::ServerResponse)> respond) {
                                   std::lock_guard lock(mutex_);
                                   ++attempts_;
                                   if (failures_ > 0) {
                                     --failures_;
                                     return respond(http::ServerResponse{500, {}, "not now\n"});
                                   }
                                   bodies_.push_back(json::parse(request.body, nullptr, false));
                                   paths_.push_back(request.path);
                                   respond(http::ServerResponse{204, {}, ""});
                                 });
    });
    EXPECT_TRUE(started) << started.error().message;
    server_ = std::move(*started);
  }
  ~RecordingServer() {
    loop_.call([&] {
      server_.reset();
      return 0;
    });
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(server_->port()) + path; }
  std::vector<json> bodies() {
    std::lock_guard lock(mutex_);
    return bodies_;
  }
  std::vector<std::string> paths() {
    std::lock_guard lock(mutex_);
    return paths_;
  }
  int attempts() {
    std::lock_guard lock(mutex_);
    return attempts_;
  }

 private:
  LoopThread loop_;
  std::unique_ptr<http::Server> server_;
  std::mutex mutex_;
  int failures_;
  int attempts_ = 0;
  std::vector<json> bodies_;
  std::vector<std::string> paths_;
};

WebhookEvent halt_event() {
  return WebhookEvent{"halt", "sensor-app", "sensor-app-1.4.2", 1, 2, 50, 1764151800,
                      "step 3 of 4 (50%): 10 devices admitted", 0.2, 0.05};
}

TEST(WebhookSenderTest, PostsTheEventAsJsonToEveryHookThatWantsIt) {
  RecordingServer server;
  WebhookOptions options;
  options.hooks = {{server.url("/all"), {"step", "halt", "complete", "rollback"}},
                   {server.url("/steps-only"), {"step"}}};
  WebhookSender sender(options);
  sender.send(halt_event());
  ASSERT_TRUE(eddy::testing::wait_until([&] { return sender.stats().delivered == 1; }));
  auto bodies = server.bodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(server.paths()[0], "/all");
  EXPECT_EQ(bodies[0], json::parse(R"({"event": "halt", "rollout": "sensor-app", "release": "sensor-app-1.4.2",
      "generation": 1, "step": 2, "percent": 50.0, "at": 1764151800,
      "message": "step 3 of 4 (50%): 10 devices admitted", "value": 0.2, "threshold": 0.05})"));
}

TEST(WebhookSenderTest, AFailingAnswerIsRetriedWithBackoff) {
  RecordingServer server(2);
  WebhookOptions options;
  options.hooks = {{server.url("/hook"), {"halt"}}};
  options.first_backoff = std::chrono::milliseconds(10);
  WebhookSender sender(options);
  sender.send(halt_event());
  ASSERT_TRUE(eddy::testing::wait_until([&] { return sender.stats().delivered == 1; }));
  EXPECT_EQ(server.attempts(), 3);
  EXPECT_EQ(sender.stats().attempts, 3u);
  EXPECT_EQ(server.bodies().size(), 1u);
}

TEST(WebhookSenderTest, AnUnreachableHookIsGivenUpAfterTheLastAttemptWithoutBlockingSend) {
  WebhookOptions options;
  options.hooks = {{"http://127.0.0.1:" + std::to_string(eddy::testing::free_port()) + "/gone", {"halt"}}};
  options.first_backoff = std::chrono::milliseconds(5);
  options.max_attempts = 3;
  WebhookSender sender(options);
  for (int i = 0; i < 3; ++i) sender.send(halt_event());
  ASSERT_TRUE(eddy::testing::wait_until([&] { return sender.stats().failed == 3; }));
  EXPECT_EQ(sender.stats().attempts, 9u);
  EXPECT_EQ(sender.stats().delivered, 0u);
}

TEST(WebhookSenderTest, AFullQueueDropsTheOldest) {
  WebhookOptions options;
  options.hooks = {{"http://127.0.0.1:" + std::to_string(eddy::testing::free_port()) + "/gone", {"halt"}}};
  options.first_backoff = std::chrono::hours(1);
  options.max_queue = 2;
  WebhookSender sender(options);
  for (int i = 0; i < 5; ++i) sender.send(halt_event());
  ASSERT_TRUE(eddy::testing::wait_until([&] { return sender.stats().dropped >= 2; }));
}

class HubWebhookTest : public HubFixture {};

TEST_F(HubWebhookTest, AHaltIsPostedWithItsValueAndThreshold) {
  RecordingServer server;
  const std::string commit = publish("1.0", "  steps: [10, 100]\n  bake: 1h\n  minDevices: 2\n");
  auto c = config();
  c.webhooks = {{server.url("/hook"), {"halt", "rollback"}}};
  start_hub(c);
  wait_for_commit(commit);
  for (const auto& id : devices_) sync(id);
  tick();
  auto status = op("GET", "/v1/rollouts/app").body;
  ASSERT_GE(status["admitted"].get<int>(), 2) << status;
  // The first admitted device reports a rollback: 1 of 1 decided failed.
  std::string failing;
  for (const auto& id : devices_)
    if (failing.empty() && sync(id).body["rollouts"]["app"]["admitted"] == true) failing = id;
  json report = {{"id", failing + ":1"}, {"kind", "transition"}, {"rollout", "app"}, {"release", "app-1.0"},
                 {"generation", 1},      {"from", "probing"},    {"to", "rolled-back"}, {"outcome", "rolled-back"}};
  auto r = request("POST", "/v1/devices/" + failing + "/reports", device_token(failing),
                   json{{"reports", json::array({report})}}.dump());
  ASSERT_EQ(r.status, 200) << r.text;
  // The report batch makes the director look again at once: no tick needed.
  ASSERT_TRUE(eddy::testing::wait_until([&] { return server.bodies().size() == 2; }));
  auto bodies = server.bodies();
  EXPECT_EQ(bodies[0]["event"], "halt");
  EXPECT_EQ(bodies[1]["event"], "rollback");
  EXPECT_EQ(bodies[0]["rollout"], "app");
  EXPECT_EQ(bodies[0]["value"], 1.0);
  EXPECT_EQ(bodies[0]["threshold"], 0.05);
  EXPECT_EQ(op("GET", "/v1/rollouts/app").body["state"], "rolled-back");
}

}  // namespace
}  // namespace eddy::fleet::testing
