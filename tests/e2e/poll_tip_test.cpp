// End-to-end: a poll that can only find nothing new starts no update worker; eddyd asks the
// remote for the branch's tip itself (ota/remote_tip.hpp) and, with a hub, sends the hub the
// sync a worker would (ota/hub_client.hpp). A moved tip, a force-push and a missing branch start
// the worker as before, over file://, git:// (git daemon) and smart HTTP (lighttpd + git
// http-backend); so do a hub answer that asks for work and a hub that refuses or garbles its
// answer. The workers are counted by a wrapper named in EDDY_WORKER.
#include <fstream>
#include <iostream>
#include <memory>

#include <gtest/gtest.h>

#include "tests/e2e/device_fixture.hpp"
#include "tests/support/git_servers.hpp"
#include "tests/support/scripted_hub.hpp"
#include "tests/support/tls_servers.hpp"

namespace eddy::testing {
namespace {

// A device whose every update worker leaves a line in workers.txt.
class WorkerCountingTest : public DeviceTest {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    std::string wrapper = "#!/bin/sh\necho started >> '" + counter().string() + "'\nexec";
    for (const auto& word : emulator()) wrapper += " '" + word + "'";
    wrapper += " '" + eddyd_worker_path().string() + "' \"$@\"\n";
    write_file(tmp_ / "count-worker", wrapper);
    stdfs::permissions(tmp_ / "count-worker", stdfs::perms::owner_all);
  }

  std::map<std::string, std::string> counting_env() const { return {{"EDDY_WORKER", (tmp_ / "count-worker").string()}}; }
  stdfs::path counter() const { return tmp_.path() / "workers.txt"; }

  int workers() const {
    std::ifstream in(counter());
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }

  std::string check_outcome() {
    auto r = device_->eddy({"check"});
    return r.json.value("outcome", "<" + r.output + ">");
  }
};

class PollTipTest : public WorkerCountingTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    WorkerCountingTest::SetUp();
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
  }

  void start_v1() {
    fleet_->publish("sensor-app", bundle("1.0.0"));
    device_->start(counting_env());
    auto r = device_->eddy({"check"});
    ASSERT_EQ(r.exit_code, 0) << r.output << device_->log();
    ASSERT_EQ(device_->current_version("sensor-app"), "1.0.0") << r.output << device_->log();
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

// With a hub (ScriptedHub: the device routes of fleet/API.md, gates set by the test), over plain
// HTTP, and over HTTPS (hub.ca_file), where eddyd resumes the worker's TLS session.
class HubPollTipTest : public WorkerCountingTest {
 protected:
  void use_hub(bool https) {
    std::string ca_line;
    if (https) {
      pki_ = std::make_unique<TestPki>(tmp_ / "pki");
      hub_ = std::make_unique<ScriptedHub>(ScriptedHub::Tls{pki_->server.cert, pki_->server.key});
      ca_line = "  ca_file: " + pki_->ca.cert.string() + "\n";
    } else {
      hub_ = std::make_unique<ScriptedHub>();
    }
    hub_->set_token("test-device", "device-token-1");
    write_file(tmp_ / "token", "device-token-1\n");
    device_->write_config("hub:\n  url: " + hub_->url() + "\n  token_file: " + (tmp_ / "token").string() + "\n" +
                          ca_line);
  }

  void TearDown() override {
    if (HasFailure()) std::cerr << "---- eddyd log ----\n" << device_->log();
  }

  // v1 published, admitted by the hub and installed (by the poll at start-up or the first
  // check); then a poll by a worker that finds it up to date, after which the device is quiet.
  void start_v1(bool https = false) {
    use_hub(https);
    fleet_->publish("sensor-app", bundle("1.0.0"));
    hub_->set_gate("sensor-app", "sensor-app-1.0.0", true, 1);
    device_->start(counting_env());
    auto r = device_->eddy({"check"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_EQ(device_->current_version("sensor-app"), "1.0.0") << r.output;
    ASSERT_EQ(check_outcome(), "up-to-date");
  }

  // `eddy check` answered by eddyd alone: the outcome, with no worker started and one more sync
  // at the hub.
  void expect_quiet_check(const std::string& outcome) {
    const int before = workers();
    const int syncs = hub_->sync_count();
    auto r = device_->eddy({"check"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.json.value("outcome", ""), outcome) << r.output;
    EXPECT_EQ(r.json.value("commit", ""), fleet_->repo().head()) << r.output;
    EXPECT_EQ(workers(), before) << "a worker started";
    EXPECT_EQ(hub_->sync_count(), syncs + 1) << "eddyd did not sync with the hub";
  }

  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<ScriptedHub> hub_;
};

TEST_F(HubPollTipTest, ANoOpPollSyncsWithTheHubWithoutAWorkerAndAnAnswerAskingForWorkStartsOne) {
  start_v1();
  const int base = workers();
  for (int i = 0; i < 2; ++i) expect_quiet_check("up-to-date");
  // eddyd's sync is the worker's: same labels, commit and targets, and recorded for `eddy status`.
  auto syncs = hub_->syncs();
  ASSERT_GE(syncs.size(), 3u);
  EXPECT_EQ(syncs[syncs.size() - 1], syncs[syncs.size() - 3]);
  EXPECT_EQ(syncs.back()["targets"]["sensor-app"].value("version", ""), "1.0.0") << syncs.back();
  EXPECT_EQ(db_value("hub_last_sync_result"), "ok");
  EXPECT_EQ(db_value("last_poll_result"), "up-to-date");

  // A new commit the hub does not admit yet: a worker fetches and waits; then eddyd alone.
  fleet_->publish("sensor-app", bundle("2.0.0"));
  hub_->set_gate("sensor-app", "sensor-app-2.0.0", false, 1);
  EXPECT_EQ(check_outcome(), "not-admitted");
  EXPECT_EQ(workers(), base + 1);
  expect_quiet_check("not-admitted");
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");

  // The hub admits it: its answer changed, a worker installs.
  hub_->set_gate("sensor-app", "sensor-app-2.0.0", true, 1);
  EXPECT_EQ(check_outcome(), "updated");
  EXPECT_EQ(workers(), base + 2);
  EXPECT_EQ(device_->current_version("sensor-app"), "2.0.0");
  EXPECT_EQ(check_outcome(), "up-to-date");  // a worker again: the last poll installed
  expect_quiet_check("up-to-date");
  EXPECT_EQ(workers(), base + 3);

  // A rollback order: a worker rolls back.
  hub_->set_gate("sensor-app", "sensor-app-2.0.0", true, 1, true, "rolled-back");
  EXPECT_EQ(check_outcome(), "rolled-back");
  EXPECT_EQ(workers(), base + 4);
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");
}

TEST_F(HubPollTipTest, AHubThatFailsRefusesOrGarblesItsAnswerLeavesThePollToTheWorker) {
  start_v1();
  expect_quiet_check("up-to-date");
  int expected = workers();
  // Each fault: eddyd's own sync fails, a worker polls (and records the failure), and so does
  // the next poll, as long as the last worker's sync did not go through.
  auto expect_worker_polls = [&](const std::string& what) {
    for (int i = 0; i < 2; ++i) {
      auto r = device_->eddy({"check"});
      EXPECT_EQ(workers(), ++expected) << what << ": " << r.output;
      EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0") << what;
    }
    EXPECT_NE(db_value("hub_last_sync_result"), "ok") << what;
    EXPECT_EQ(db_value("hub_reachable"), "no") << what;
  };
  hub_->set_failing(503);
  expect_worker_polls("a failing hub");
  hub_->set_failing(0);
  hub_->set_raw_sync_answer("{\"commit\": \"\", \"rollouts\": 7}");
  expect_worker_polls("a garbled answer");
  hub_->set_raw_sync_answer("");
  hub_->set_token("test-device", "device-token-2");  // this device's token revoked
  expect_worker_polls("a revoked token");

  // The hub back: one worker poll goes through, then eddyd alone again.
  hub_->set_token("test-device", "device-token-1");
  EXPECT_EQ(check_outcome(), "up-to-date");
  EXPECT_EQ(workers(), ++expected);
  EXPECT_EQ(db_value("hub_reachable"), "yes");
  expect_quiet_check("up-to-date");
}

TEST_F(HubPollTipTest, AnHttpsHubIsSyncedByEddydOverTheWorkersResumedTlsSession) {
  // The worker's poll in start_v1 handed eddyd its TLS session; eddyd resumes it (it never
  // runs a full handshake: tls_resume_only) and the hub renews its ticket each time.
  start_v1(true);
  const int base = workers();
  for (int i = 0; i < 3; ++i) expect_quiet_check("up-to-date");
  EXPECT_EQ(workers(), base);
  EXPECT_EQ(db_value("hub_last_sync_result"), "ok");

  // The hub restarted with a new ticket key: it refuses eddyd's session, so eddyd stops its
  // handshake at the ServerHello, before sending a request, and a worker polls (offering the
  // same session, falling back to a full handshake) and hands over its new session.
  hub_->stop();
  hub_->start();
  const int syncs = hub_->sync_count();
  EXPECT_EQ(check_outcome(), "up-to-date");
  EXPECT_EQ(workers(), base + 1);
  EXPECT_EQ(hub_->sync_count(), syncs + 1) << "one sync, the worker's";
  expect_quiet_check("up-to-date");
  EXPECT_EQ(workers(), base + 1);

  // A change the hub asks for still reaches a worker.
  fleet_->publish("sensor-app", bundle("2.0.0"));
  hub_->set_gate("sensor-app", "sensor-app-2.0.0", true, 1);
  EXPECT_EQ(check_outcome(), "updated");
  EXPECT_EQ(device_->current_version("sensor-app"), "2.0.0");
  EXPECT_EQ(check_outcome(), "up-to-date");  // a worker again: the last poll installed
  expect_quiet_check("up-to-date");
  EXPECT_EQ(workers(), base + 3);
}

}  // namespace
}  // namespace eddy::testing
