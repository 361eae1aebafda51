// End-to-end: a poll that can only find nothing new starts no update worker; eddyd asks the
// remote for the branch's tip itself (ota/remote_tip.hpp). A moved tip, a force-push and a
// missing branch start the worker as before, over file://, git:// (git daemon) and smart HTTP
// (lighttpd + git http-backend). The workers are counted by a wrapper named in EDDY_WORKER.
#include <fstream>
#include <memory>

#include <gtest/gtest.h>

#include "tests/e2e/device_fixture.hpp"
#include "tests/support/git_servers.hpp"

namespace eddy::testing {
namespace {

class PollTipTest : public DeviceTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    const stdfs::path repo = fleet_->repo().dir();
    std::string url = fleet_->repo().url();
    if (GetParam() == "git") {
      daemon_ = std::make_unique<GitDaemonServer>(repo.parent_path(), tmp_ / "git-daemon");
      url = daemon_->url(repo.filename().string());
    } else if (GetParam() == "http") {
      http_ = std::make_unique<GitHttpServer>(repo.parent_path(), tmp_ / "http");
      url = http_->url(repo.filename().string());
    }
    device_ = std::make_unique<Device>(tmp_ / "device", url, fleet_->allowed_signers());
    device_->add_app("sensor-app");
    // Every worker eddyd starts leaves a line in workers.txt.
    std::string wrapper = "#!/bin/sh\necho started >> '" + counter().string() + "'\nexec";
    for (const auto& word : emulator()) wrapper += " '" + word + "'";
    wrapper += " '" + eddyd_worker_path().string() + "' \"$@\"\n";
    write_file(tmp_ / "count-worker", wrapper);
    stdfs::permissions(tmp_ / "count-worker", stdfs::perms::owner_all);
  }

  stdfs::path counter() const { return tmp_.path() / "workers.txt"; }

  int workers() const {
    std::ifstream in(counter());
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }

  void start_v1() {
    fleet_->publish("sensor-app", bundle("1.0.0"));
    device_->start({{"EDDY_WORKER", (tmp_ / "count-worker").string()}});
    auto r = device_->eddy({"check"});
    ASSERT_EQ(r.exit_code, 0) << r.output << device_->log();
    ASSERT_EQ(device_->current_version("sensor-app"), "1.0.0") << r.output << device_->log();
  }

  std::string check_outcome() {
    auto r = device_->eddy({"check"});
    return r.json.value("outcome", "<" + r.output + ">");
  }

  std::string git(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"git", "-C", fleet_->repo().dir().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_ok(argv);
  }

  std::unique_ptr<GitDaemonServer> daemon_;
  std::unique_ptr<GitHttpServer> http_;
};

TEST_P(PollTipTest, OnlyAPollThatMayFindSomethingStartsAWorker) {
  start_v1();
  const std::string v1 = fleet_->repo().head();
  // A worker looks once more after an install (here or in start_v1's poll, whichever came
  // second); from then on the tip is known to be up to date.
  EXPECT_EQ(check_outcome(), "up-to-date") << device_->log();
  const int base = workers();
  ASSERT_GE(base, 2);

  // Nothing new: answered by eddyd alone, twice, with the same reply a worker gives.
  for (int i = 0; i < 2; ++i) {
    auto r = device_->eddy({"check"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.json.value("outcome", ""), "up-to-date") << r.output << device_->log();
    EXPECT_EQ(r.json.value("commit", ""), v1) << r.output;
  }
  EXPECT_EQ(workers(), base) << device_->log();
  EXPECT_EQ(db_value("last_poll_result"), "up-to-date");

  // A moved tip: the worker fetches, verifies and installs.
  fleet_->publish("sensor-app", bundle("2.0.0"));
  const std::string v2 = fleet_->repo().head();
  EXPECT_EQ(check_outcome(), "updated") << device_->log();
  EXPECT_EQ(device_->current_version("sensor-app"), "2.0.0") << device_->log();
  EXPECT_EQ(workers(), base + 1);
  EXPECT_EQ(check_outcome(), "up-to-date");  // a worker again: the last poll installed
  EXPECT_EQ(check_outcome(), "up-to-date");  // eddyd alone
  EXPECT_EQ(workers(), base + 2);

  // A force-push (history rewritten on top of v1): the worker looks and refuses it, each poll.
  git({"reset", "-q", "--hard", v1});
  fleet_->publish("sensor-app", bundle("3.0.0"));
  EXPECT_EQ(check_outcome(), "refused") << device_->log();
  EXPECT_EQ(check_outcome(), "refused") << device_->log();
  EXPECT_EQ(workers(), base + 4);
  EXPECT_EQ(db_value("accepted_commit"), v2);
  EXPECT_EQ(device_->current_version("sensor-app"), "2.0.0");

  // Back to the accepted tip, then a branch that is gone: the worker says what failed.
  git({"reset", "-q", "--hard", v2});
  EXPECT_EQ(check_outcome(), "up-to-date");
  EXPECT_EQ(check_outcome(), "up-to-date");
  EXPECT_EQ(workers(), base + 5);
  git({"branch", "-q", "-m", "main", "renamed"});
  auto r = device_->eddy({"check"});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json.value("outcome", ""), "failed") << r.output;
  EXPECT_NE(r.json.value("message", "").find("main"), std::string::npos) << r.output;
  EXPECT_EQ(workers(), base + 6);
  EXPECT_EQ(device_->current_version("sensor-app"), "2.0.0");
}

INSTANTIATE_TEST_SUITE_P(Transports, PollTipTest, ::testing::Values("file", "git", "http"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace eddy::testing
