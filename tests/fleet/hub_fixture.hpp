// An in-process eddy-hub (fleet::Hub) on a real event loop thread, following a real signed
// fleet repository, listening on a loopback port the OS picks, with an injected clock and real
// token files: what the API, follower and webhook tests drive over real HTTP(S).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "fleet/hub.hpp"
#include "platform/event_loop.hpp"
#include "platform/http_client.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/loop_thread.hpp"
#include "tests/support/support.hpp"

namespace eddy::fleet::testing {

using eddy::testing::LoopThread;
using eddy::testing::TempDir;

constexpr std::int64_t kHubStart = 1'800'000'000;

inline std::string device_token(const std::string& id) { return "device-token-" + id + "-0123456789"; }
inline const std::string kOperatorToken = "operator-token-alice-0123456789";

struct Reply {
  int status = 0;
  nlohmann::json body;
  std::string text;
  std::map<std::string, std::string> headers;
};

class HubFixture : public ::testing::Test {
 protected:
  // A rollout file for releases/app-<version>.yaml.
  static std::string rollout_yaml(const std::string& version, const std::string& spec_extra) {
    return "apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: app}\nspec:\n  release: app-" + version +
           "\n  selector: {matchLabels: {site: berlin}}\n" + spec_extra;
  }

  // Publish app <version> with a rollout (steps etc. in spec_extra) as one signed commit.
  std::string publish(const std::string& version,
                      const std::string& spec_extra = "  steps: [50, 100]\n  bake: 1h\n") {
    eddy::testing::AppBundle bundle{version, true, 1, {}};
    fleet_.add_bundle("app", bundle);
    fleet_.add_release("app", bundle);
    fleet_.repo().write("rollouts/app.yaml", rollout_yaml(version, spec_extra));
    return fleet_.repo().commit("app " + version);
  }

  void write_device_tokens(const std::vector<std::string>& ids) {
    std::string text = "# device tokens\n";
    for (const auto& id : ids) text += id + " " + device_token(id) + "\n";
    eddy::testing::write_file(dir_ / "device-tokens", text);
  }

  HubConfig config() {
    HubConfig c;
    c.file = dir_ / "hub.yaml";
    c.listen = "127.0.0.1:0";
    c.source_url = fleet_.repo().url();
    c.allowed_signers = fleet_.allowed_signers();
    c.data_dir = dir_ / "hub-data";
    c.device_tokens = dir_ / "device-tokens";
    c.operator_tokens = dir_ / "operator-tokens";
    c.tick = std::chrono::hours(1);             // the tests tick the director themselves
    c.source_interval = std::chrono::hours(1);  // and poll with poll_now()
    return c;
  }

  void start_hub(HubConfig c, WebhookOptions webhooks = {}) {
    if (!std::filesystem::exists(dir_ / "device-tokens")) write_device_tokens(devices_);
    eddy::testing::write_file(dir_ / "operator-tokens", "alice " + kOperatorToken + "\n");
    tls_ = !c.tls_cert.empty();
    auto started = loop_.call([&] {
      return Hub::start(loop_.loop(), HubOptions{c, [this] { return now_.load(); }, webhooks});
    });
    ASSERT_TRUE(started) << started.error().message;
    hub_ = std::move(*started);
  }

  void stop_hub() {
    loop_.call([&] {
      hub_.reset();
      return 0;
    });
  }

  void TearDown() override {
    if (hub_) stop_hub();
  }

  std::string hub_commit() {
    return loop_.call([&] { return hub_->director().commit(); });
  }

  // Poll now and wait until the hub's accepted commit is `commit`.
  void wait_for_commit(const std::string& commit) {
    hub_->poll_now();
    ASSERT_TRUE(eddy::testing::wait_until([&] { return hub_commit() == commit; }))
        << "the hub did not accept " << commit << "; it has " << hub_commit();
  }

  void tick() {
    auto st = loop_.call([&] { return hub_->director().tick(); });
    ASSERT_TRUE(st) << st.error().message;
  }

  Reply request(const std::string& method, const std::string& target, const std::string& token,
                const std::string& body = {}) {
    http::RequestOptions options;
    options.method = method;
    if (!token.empty()) options.headers["Authorization"] = "Bearer " + token;
    if (!body.empty()) options.headers["Content-Type"] = "application/json";
    options.body = body;
    options.ca_file = ca_file_;
    options.timeout = std::chrono::seconds(20);
    auto response = http::request(hub_->url() + target, options);
    EXPECT_TRUE(response) << response.error().message;
    Reply reply;
    if (!response) return reply;
    reply.status = response->status;
    reply.text = response->body;
    reply.headers = response->headers;
    reply.body = nlohmann::json::parse(response->body, nullptr, false);
    return reply;
  }

  Reply sync(const std::string& id, nlohmann::json body = {{"labels", {{"site", "berlin"}}}}) {
    return request("POST", "/v1/devices/" + id + "/sync", device_token(id), body.dump());
  }

  Reply op(const std::string& method, const std::string& target) { return request(method, target, kOperatorToken); }

  TempDir dir_;
  eddy::testing::Fleet fleet_{dir_ / "fleet-repo"};
  std::vector<std::string> devices_{"dev-0", "dev-1", "dev-2", "dev-3", "dev-4",
                                    "dev-5", "dev-6", "dev-7", "dev-8", "dev-9"};
  std::atomic<std::int64_t> now_{kHubStart};
  std::filesystem::path ca_file_ = "/etc/ssl/certs/ca-certificates.crt";
  bool tls_ = false;
  LoopThread loop_;
  std::unique_ptr<Hub> hub_;
};

}  // namespace eddy::fleet::testing
