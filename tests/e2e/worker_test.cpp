// End-to-end: eddyd runs every poll in a short-lived update worker. A worker that dies is a
// failed poll and the next one recovers its update; SIGTERM stops the worker, then the apps.
#include <signal.h>
#include <sys/wait.h>

#include <future>

#include <gtest/gtest.h>

#include "tests/e2e/device_fixture.hpp"

namespace eddy::testing {
namespace {

class WorkerTest : public DeviceTest {
 protected:
  // v2 with an analysis long enough (12 checks, 500 ms apart) to act while it is probed.
  void publish_slow_v2() {
    auto v2 = bundle("2.0.0");
    fleet_->add_bundle("sensor-app", v2);
    fleet_->add_release("sensor-app", v2,
                        "  analysis:\n"
                        "    interval: 500ms\n"
                        "    iterations: 12\n"
                        "    threshold: 3\n"
                        "    probes:\n"
                        "      - {name: health, http: {url: \"http://127.0.0.1:" +
                            std::to_string(port_) + "/healthz\", status: 200, timeout: 1s}}\n");
    fleet_->set_rollout("sensor-app", "2.0.0");
    fleet_->repo().commit("sensor-app 2.0.0, slowly analysed");
  }

  // Waits until eddyd's update worker probes v2; returns the worker's pid.
  pid_t worker_probing_v2() {
    pid_t pid = 0;
    bool probing = wait_until(
        [&] {
          auto s = device_->status();
          if (!s.is_object() || !s["update"].is_object() || s["update"].value("state", "") != "probing") return false;
          if (!s["worker"].is_object() || !s["worker"]["pid"].is_number_integer()) return false;
          pid = s["worker"]["pid"].get<pid_t>();
          return s["worker"].value("job", "") == "poll";
        },
        std::chrono::seconds(60));
    EXPECT_TRUE(probing) << device_->log();
    return pid;
  }

  std::string unfinished_state() {
    auto store = storage::StateStore::open(device_->data_dir() / "eddy.db");
    if (!store) return "<" + store.error().message + ">";
    auto u = store->unfinished_update();
    return u && *u ? (*u)->state : "";
  }
};

TEST_F(WorkerTest, AWorkerKilledMidUpdateIsAFailedPollAndTheNextPollRecovers) {
  install_v1();
  publish_slow_v2();
  auto check = std::async(std::launch::async, [&] { return device_->eddy({"check"}); });
  pid_t worker = worker_probing_v2();
  ASSERT_GT(worker, 0);
  ASSERT_EQ(read_file("/proc/" + std::to_string(worker) + "/comm"), "eddyd-worker\n");
  ::kill(worker, SIGKILL);  // as the OOM killer would

  auto r = check.get();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.json.value("outcome", ""), "failed") << r.output;
  EXPECT_NE(r.json.value("message", "").find("killed by signal 9"), std::string::npos) << r.output;
  // eddyd itself goes on, says what happened, and keeps the app of the cut-short update running.
  auto status = device_->status();
  ASSERT_TRUE(status.is_object()) << device_->log();
  EXPECT_TRUE(status["worker"].is_null()) << status.dump();
  EXPECT_TRUE(status["update"].is_null()) << status.dump();
  EXPECT_TRUE(status["source"].value("last_poll_result", "").starts_with("failed: ")) << status.dump();
  EXPECT_NE(device_->log().find("killed by signal 9"), std::string::npos) << device_->log();
  EXPECT_EQ(unfinished_state(), "probing");

  // The next poll's worker first rolls the interrupted update back, then tries v2 again.
  r = device_->eddy({"check"});
  EXPECT_EQ(r.exit_code, 0) << r.output << device_->log();
  EXPECT_EQ(device_->current_version("sensor-app"), "2.0.0") << r.output << device_->log();
  EXPECT_TRUE(wait_until([&] { return serving() == "2.0.0\n"; })) << device_->log();
  auto history = device_->eddy({"history", "--limit", "300"}).json.dump();
  EXPECT_NE(history.find("killed by signal 9"), std::string::npos) << history;
  EXPECT_NE(history.find("interrupted"), std::string::npos) << history;
}

TEST_F(WorkerTest, SigtermStopsTheWorkerThenTheAppsAndTheNextStartRecovers) {
  install_v1();
  publish_slow_v2();
  auto check = std::async(std::launch::async, [&] { return device_->eddy({"check"}); });
  ASSERT_GT(worker_probing_v2(), 0);

  ::kill(device_->pid(), SIGTERM);
  auto status = device_->wait_exit(std::chrono::seconds(60));
  ASSERT_TRUE(status) << device_->log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << device_->log();
  check.get();  // answered, or its connection closed: it does not hang
  // Nothing of eddyd is left behind: not the worker, not the app.
  EXPECT_TRUE(device_->session_processes().empty()) << device_->log();
  EXPECT_EQ(serving(), "(nothing)");
  // The analysis was interrupted where it was, and that is on disk for the next start.
  EXPECT_EQ(unfinished_state(), "probing");
  EXPECT_NE(device_->log().find("update worker: stopping (SIGTERM)"), std::string::npos) << device_->log();

  device_->start();
  auto r = device_->eddy({"check"});
  EXPECT_EQ(device_->current_version("sensor-app"), "2.0.0") << r.output << device_->log();
  EXPECT_TRUE(wait_until([&] { return serving() == "2.0.0\n"; })) << device_->log();
  EXPECT_EQ(unfinished_state(), "");
}

TEST_F(WorkerTest, AMissingWorkerIsAClearErrorAtStart) {
  device_->write_config();
  auto r = run({eddyd_path().string(), "--config", device_->config_path().string(), "--check-config"}, {},
               {{"EDDY_WORKER", (tmp_ / "no-such-worker").string()}});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("EDDY_WORKER names " + (tmp_ / "no-such-worker").string()), std::string::npos) << r.output;
  // Found beside eddyd, the configuration checks out.
  r = run({eddyd_path().string(), "--config", device_->config_path().string(), "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace eddy::testing
