// Group commit (fleet/api.hpp): the writes of device requests that arrive together are committed
// in one transaction and each request is answered only after that commit. A real eddy-hub is
// killed by a fault point just before and just after a group's commit while devices report on
// several connections at once: before, nothing is stored and nothing acknowledged; after,
// everything is stored, and the reports sent again are acknowledged and counted once. The same
// reports arriving on two connections at once (in one group) are stored once.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "fleet/store.hpp"
#include "platform/http_client.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/hub.hpp"
#include "tests/support/support.hpp"

namespace eddy::testing {
namespace {

using json = nlohmann::json;

constexpr int kDevices = 12;
constexpr int kReportsEach = 5;

std::string device(int i) { return "pi-" + std::to_string(i); }

json reports_of(int i) {
  json list = json::array();
  for (int seq = 1; seq <= kReportsEach; ++seq)
    list.push_back({{"id", device(i) + ":" + std::to_string(seq)},
                    {"time", 1800000000},
                    {"kind", "transition"},
                    {"release", "app-1.0"},
                    {"from", "activating"},
                    {"to", "probing"}});
  return json{{"reports", list}};
}

// How many reports hub.db holds (the hub is not running).
std::int64_t stored_reports(const stdfs::path& data_dir) {
  auto store = fleet::SqliteStore::open(data_dir / "hub.db");
  if (!store) throw std::runtime_error(store.error().message);
  auto n = (*store)->database().query_integer("SELECT COUNT(*) FROM reports");
  if (!n) throw std::runtime_error(n.error().message);
  return n->value_or(0);
}

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_.publish("app", AppBundle{"1.0", true, 1, {}});
    for (int i = 0; i < kDevices; ++i) tokens_.push_back(hub_.device_token(device(i)));
  }

  // Every device posts its reports at once, `copies` times, each on a connection of its own;
  // the HTTP status of each (0: no answer, the connection closed).
  std::vector<int> report_all_at_once(int copies = 1) {
    std::vector<int> statuses(static_cast<std::size_t>(kDevices * copies));
    std::vector<std::thread> threads;
    for (int n = 0; n < kDevices * copies; ++n) {
      threads.emplace_back([&, n] {
        const int i = n % kDevices;
        http::RequestOptions options;
        options.method = "POST";
        options.headers = {{"Authorization", "Bearer " + tokens_[static_cast<std::size_t>(i)]},
                           {"Content-Type", "application/json"}};
        options.body = reports_of(i).dump();
        auto response = http::request(hub_.url() + "/v1/devices/" + device(i) + "/reports", options);
        statuses[static_cast<std::size_t>(n)] = response ? response->status : 0;
      });
    }
    for (auto& t : threads) t.join();
    return statuses;
  }

  // Wait for the hub killed by its fault point; true when SIGKILL ended it.
  bool killed_by_fault() {
    auto status = hub_.stop();  // reaps it (it is already gone)
    return status && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL;
  }

  double metric(const std::string& name) {
    auto reply = hub_.request("GET", "/metrics", "");
    auto at = reply.body.find("\n" + name + " ");
    if (at == std::string::npos) throw std::runtime_error("no metric " + name + " in\n" + reply.body);
    return std::stod(reply.body.substr(at + name.size() + 2));
  }

  TempDir dir_;
  Fleet fleet_{dir_ / "fleet"};
  HubProcess hub_{dir_ / "hub", fleet_.repo().url(), fleet_.allowed_signers()};
  std::vector<std::string> tokens_;
};

TEST_F(GroupCommitTest, ACrashBeforeTheCommitAcknowledgesNothingAndStoresNothing) {
  hub_.start({{"EDDY_FAULT_KILL_AT", "hub:before-group-commit"}});
  for (int status : report_all_at_once()) EXPECT_NE(status, 200) << "a report was acknowledged before its commit";
  ASSERT_TRUE(killed_by_fault()) << hub_.log();
  EXPECT_TRUE(contains(hub_.log(), "fault point hub:before-group-commit")) << hub_.log();
  EXPECT_EQ(stored_reports(hub_.data_dir()), 0);

  // The devices send their outboxes again to the restarted hub: each report is counted once.
  hub_.start();
  for (int status : report_all_at_once()) EXPECT_EQ(status, 200);
  for (int status : report_all_at_once()) EXPECT_EQ(status, 200);
  EXPECT_EQ(metric("eddy_hub_reports_total"), kDevices * kReportsEach);
  EXPECT_EQ(metric("eddy_hub_reports_duplicate_total"), kDevices * kReportsEach);
  ASSERT_EQ(hub_.stop(), 0);
  EXPECT_EQ(stored_reports(hub_.data_dir()), kDevices * kReportsEach);
}

TEST_F(GroupCommitTest, ACrashAfterTheCommitLosesNothingAndReportsSentAgainCountOnce) {
  hub_.start({{"EDDY_FAULT_KILL_AT", "hub:after-group-commit"}});
  for (int status : report_all_at_once()) EXPECT_NE(status, 200);
  ASSERT_TRUE(killed_by_fault()) << hub_.log();
  // The first group was committed (at least one device's batch, all of it or none of each).
  const auto committed = stored_reports(hub_.data_dir());
  EXPECT_GE(committed, kReportsEach);
  EXPECT_EQ(committed % kReportsEach, 0);

  hub_.start();
  for (int status : report_all_at_once()) EXPECT_EQ(status, 200);
  EXPECT_EQ(metric("eddy_hub_reports_duplicate_total"), static_cast<double>(committed));
  EXPECT_EQ(metric("eddy_hub_reports_total"), static_cast<double>(kDevices * kReportsEach - committed));
  ASSERT_EQ(hub_.stop(), 0);
  EXPECT_EQ(stored_reports(hub_.data_dir()), kDevices * kReportsEach);
}

TEST_F(GroupCommitTest, TheSameReportsOnTwoConnectionsAtOnceAreStoredOnce) {
  hub_.start();
  for (int status : report_all_at_once(2)) EXPECT_EQ(status, 200);
  EXPECT_EQ(metric("eddy_hub_reports_total"), kDevices * kReportsEach);
  EXPECT_EQ(metric("eddy_hub_reports_duplicate_total"), kDevices * kReportsEach);
  ASSERT_EQ(hub_.stop(), 0);
  EXPECT_EQ(stored_reports(hub_.data_dir()), kDevices * kReportsEach);
}

}  // namespace
}  // namespace eddy::testing
