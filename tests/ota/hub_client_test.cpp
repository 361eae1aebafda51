// The device's hub client against a hub on loopback (plain HTTP and HTTPS with a test CA):
// what it sends, how it reads the gates, and an error that names what failed for each way the
// hub can fail.
#include "ota/hub_client.hpp"

#include <gtest/gtest.h>

#include "tests/support/raw_http_server.hpp"
#include "tests/support/scripted_hub.hpp"
#include "tests/support/support.hpp"
#include "tests/support/tls_servers.hpp"

namespace eddy::ota {
namespace {

using eddy::testing::RawHttpServer;
using eddy::testing::ScriptedHub;
using eddy::testing::TempDir;
using eddy::testing::TestPki;
using eddy::testing::write_file;
using nlohmann::json;
using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

class HubClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(dir_ / "token", "  tok-1\n");
    hub_.set_token("dev-1", "tok-1");
    hub_.set_token("dev-2", "tok-2");
  }
  HubClient client(const std::string& url, const std::string& device = "dev-1") {
    HubOptions options;
    options.url = url;
    options.token_file = dir_ / "token";
    options.timeout = 2s;
    auto c = HubClient::create(options, device);
    EXPECT_TRUE(c) << c.error().message;
    return std::move(*c);
  }
  static SyncRequest request() {
    SyncRequest r;
    r.labels = {{"site", "berlin"}};
    r.commit = "c0ffee";
    r.targets["app"] = TargetReport{"1.0", "app-1.0", "committed"};
    return r;
  }
  TempDir dir_;
  ScriptedHub hub_;
};

TEST_F(HubClientTest, SyncSendsWhatTheDeviceRunsAndReadsTheGates) {
  hub_.set_gate("app", "app-1.1", true, 2);
  hub_.set_gate("other", "other-3", false, 1, true, "rolled-back");
  auto answer = client(hub_.url() + "/").sync(request());  // a trailing slash in hub.url is fine
  ASSERT_TRUE(answer) << answer.error().message;
  ASSERT_EQ(answer->rollouts.size(), 2u);
  const auto& gate = answer->rollouts.at("app");
  EXPECT_EQ(gate.release, "app-1.1");
  EXPECT_TRUE(gate.admitted);
  EXPECT_FALSE(gate.rollback);
  EXPECT_EQ(gate.generation, 2);
  EXPECT_EQ(gate.state, "progressing");
  EXPECT_TRUE(answer->rollouts.at("other").rollback);

  ASSERT_EQ(hub_.syncs().size(), 1u);
  const auto sent = hub_.syncs()[0];
  EXPECT_EQ(sent["labels"], (json{{"site", "berlin"}}));
  EXPECT_EQ(sent["commit"], "c0ffee");
  EXPECT_EQ(sent["targets"]["app"], (json{{"version", "1.0"}, {"release", "app-1.0"}, {"state", "committed"}}));
  // The token from the file, without its surrounding white space.
  EXPECT_EQ(hub_.authorizations().back(), "Bearer tok-1");
}

TEST_F(HubClientTest, PostReportsReturnsTheAcknowledgedIds) {
  json reports = json::array({{{"id", "dev-1:7"}, {"kind", "event"}, {"message", "a"}},
                              {{"id", "dev-1:8"}, {"kind", "event"}, {"message", "b"}}});
  auto c = client(hub_.url());
  auto acknowledged = c.post_reports(reports);
  ASSERT_TRUE(acknowledged) << acknowledged.error().message;
  EXPECT_EQ(*acknowledged, (std::vector<std::string>{"dev-1:7", "dev-1:8"}));
  // Sent twice: acknowledged again, stored once.
  ASSERT_TRUE(c.post_reports(reports));
  EXPECT_EQ(hub_.reports().size(), 2u);
  EXPECT_EQ(hub_.duplicates(), 2);
}

TEST_F(HubClientTest, UnknownTokenIsUnauthorizedAndSaysWhichFile) {
  write_file(dir_ / "token", "stolen\n");
  auto answer = client(hub_.url()).sync(request());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::unauthorized);
  EXPECT_TRUE(has(answer.error().message, "401")) << answer.error().message;
  EXPECT_TRUE(has(answer.error().message, (dir_ / "token").string())) << answer.error().message;
  EXPECT_TRUE(has(answer.error().message, hub_.url() + "/v1/devices/dev-1/sync")) << answer.error().message;
}

TEST_F(HubClientTest, AnotherDevicesTokenIsForbidden) {
  write_file(dir_ / "token", "tok-2\n");
  auto answer = client(hub_.url()).post_reports(json::array());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::unauthorized);
  EXPECT_TRUE(has(answer.error().message, "403")) << answer.error().message;
  EXPECT_TRUE(has(answer.error().message, "belongs to another device")) << answer.error().message;
}

TEST_F(HubClientTest, EmptyTokenFileIsRefusedBeforeAnythingIsSent) {
  write_file(dir_ / "token", "\n");
  auto answer = client(hub_.url()).sync(request());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::invalid_argument);
  EXPECT_TRUE(has(answer.error().message, "is empty")) << answer.error().message;
  EXPECT_EQ(hub_.sync_count(), 0);
}

TEST_F(HubClientTest, ServerErrorsAndWrongRoutesSayWhatAndWhere) {
  hub_.set_failing(503);
  auto answer = client(hub_.url()).sync(request());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::network);
  EXPECT_TRUE(has(answer.error().message, "503: scripted failure")) << answer.error().message;
  EXPECT_TRUE(has(answer.error().message, hub_.url())) << answer.error().message;

  hub_.set_failing(400);
  answer = client(hub_.url()).sync(request());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::invalid_argument);

  hub_.set_failing(0);
  answer = client(hub_.url() + "/not-the-hub").sync(request());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::not_found);
  EXPECT_TRUE(has(answer.error().message, "hub.url")) << answer.error().message;
}

TEST_F(HubClientTest, AnswersNotInTheApiFormatAreRefusedNamingTheField) {
  hub_.set_raw_sync_answer(R"({"commit": "x", "rollouts": {"app": {"release": 5}}})");
  auto answer = client(hub_.url()).sync(request());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::network);
  EXPECT_TRUE(has(answer.error().message, "rollouts.app: `release` must be a string")) << answer.error().message;

  hub_.set_raw_sync_answer("<html>proxy error</html>");
  answer = client(hub_.url()).sync(request());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::network);
  EXPECT_TRUE(has(answer.error().message, "not JSON")) << answer.error().message;
}

TEST(HubSyncAnswer, EveryRequiredFieldIsChecked) {
  auto entry = json{{"release", "app-2"}, {"admitted", true}, {"rollback", false}, {"generation", 1}};
  ASSERT_TRUE(parse_sync_response({{"rollouts", {{"app", entry}}}}));
  EXPECT_TRUE(parse_sync_response({{"rollouts", json::object()}}));
  struct Case {
    json body;
    std::string needle;
  };
  auto without = [&](const char* key) {
    json e = entry;
    e.erase(key);
    return json{{"rollouts", {{"app", e}}}};
  };
  auto with = [&](const char* key, json value) {
    json e = entry;
    e[key] = std::move(value);
    return json{{"rollouts", {{"app", e}}}};
  };
  for (const auto& c : std::vector<Case>{
           {json::array(), "not a JSON object"},
           {json::object(), "has no `rollouts`"},
           {{{"rollouts", json::array()}}, "`rollouts` must be an object"},
           {{{"rollouts", {{"app", 3}}}}, "rollouts.app must be an object"},
           {without("release"), "rollouts.app has no `release`"},
           {without("admitted"), "has no `admitted`"},
           {without("rollback"), "has no `rollback`"},
           {without("generation"), "has no `generation`"},
           {with("admitted", "yes"), "`admitted` must be true or false"},
           {with("generation", -1), "`generation` must be a whole number"},
           {with("generation", 1.5), "`generation` must be a whole number"},
           {with("percent", "ten"), "`percent` must be a number"},
           {with("reason", 5), "`reason` must be a string"},
           {{{"commit", 7}, {"rollouts", json::object()}}, "`commit` must be a string"},
       }) {
    auto parsed = parse_sync_response(c.body);
    ASSERT_FALSE(parsed) << c.body.dump();
    EXPECT_EQ(parsed.error().code, Errc::invalid_argument);
    EXPECT_TRUE(has(parsed.error().message, c.needle)) << parsed.error().message << " / expected " << c.needle;
  }
}

TEST_F(HubClientTest, HubThatIsNotThereIsANetworkError) {
  auto url = hub_.url();
  hub_.stop();
  auto answer = client(url).sync(request());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::network);
  EXPECT_TRUE(has(answer.error().message, url)) << answer.error().message;
}

TEST_F(HubClientTest, HubThatDoesNotAnswerTimesOut) {
  RawHttpServer silent([](RawHttpServer::Connection& c) { c.wait_for_peer_close(); });
  HubOptions options;
  options.url = "http://127.0.0.1:" + std::to_string(silent.port());
  options.token_file = dir_ / "token";
  options.timeout = 300ms;
  auto c = HubClient::create(options, "dev-1");
  ASSERT_TRUE(c);
  auto answer = c->sync(request());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, Errc::timeout);
  EXPECT_TRUE(has(answer.error().message, options.url)) << answer.error().message;
}

TEST(HubClientHttps, TalksToAHubWhoseCertificateChainsToTheConfiguredCa) {
  TempDir dir;
  TestPki pki(dir / "pki");
  ScriptedHub hub({pki.server.cert, pki.server.key});
  hub.set_token("dev-1", "tok-1");
  hub.set_gate("app", "app-1.1", true, 1);
  write_file(dir / "token", "tok-1");
  HubOptions options;
  options.url = hub.url();
  options.token_file = dir / "token";
  options.ca_file = pki.ca.cert;
  auto c = HubClient::create(options, "dev-1");
  ASSERT_TRUE(c);
  auto answer = c->sync({});
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_TRUE(answer->rollouts.at("app").admitted);

  // A hub whose certificate another CA signed is not talked to (the token is never sent).
  options.ca_file = pki.other_ca.cert;
  auto untrusting = HubClient::create(options, "dev-1");
  ASSERT_TRUE(untrusting);
  const int syncs = hub.sync_count();
  auto refused = untrusting->sync({});
  ASSERT_FALSE(refused);
  EXPECT_TRUE(has(refused.error().message, hub.url())) << refused.error().message;
  EXPECT_EQ(hub.sync_count(), syncs);
}

TEST(HubClientCreate, RefusesAUrlThatDoesNotParse) {
  HubOptions options;
  options.url = "https://user:pw@hub";
  auto c = HubClient::create(options, "dev-1");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::invalid_argument);
  EXPECT_TRUE(has(c.error().message, "hub.url")) << c.error().message;
}

}  // namespace
}  // namespace eddy::ota
