// eddyd's side of the update worker, against workers that are shell scripts speaking the
// protocol (or breaking it) and against the real eddyd-worker on a real signed fleet.
#include "daemon/update_worker.hpp"

#include <atomic>
#include <future>
#include <mutex>

#include <gtest/gtest.h>

#include "daemon/version.hpp"
#include "ota/app_supervisor.hpp"
#include "platform/process.hpp"
#include "tests/support/fleet.hpp"

namespace eddy::testing {
namespace {

using namespace std::chrono_literals;
using daemon::UpdateWorker;
using daemon::WorkerResult;
using daemon::WorkerSettings;
using nlohmann::json;

// Records what the worker asked for; app requests go to `apps` when set, else are recorded.
class RecordingHost : public daemon::WorkerHost, public ota::AppControl {
 public:
  std::mutex mutex;
  std::vector<std::string> activities;
  std::vector<json> updates;
  std::vector<std::string> app_calls;
  bool apps_started = false;
  Status restart_result;
  ota::AppControl* apps = nullptr;

  void worker_activity(const std::string& text) override {
    std::lock_guard lock(mutex);
    activities.push_back(text);
  }
  void worker_update(const json& update) override {
    std::lock_guard lock(mutex);
    updates.push_back(update);
  }
  void worker_started_apps() override { apps_started = true; }
  ota::AppControl& worker_apps() override { return apps ? *apps : *this; }
  std::vector<tls::SavedSession> hub_sessions;
  void worker_hub_session(tls::SavedSession session) override {
    std::lock_guard lock(mutex);
    hub_sessions.push_back(std::move(session));
  }

  Status restart(const std::string& name, const std::vector<std::string>& argv,
                 const std::filesystem::path& cwd) override {
    std::lock_guard lock(mutex);
    app_calls.push_back("restart " + name + " " + process::describe(argv) + " in " + cwd.string());
    return restart_result;
  }
  void stop(const std::string& name) override {
    std::lock_guard lock(mutex);
    app_calls.push_back("stop " + name);
  }
  bool saw_activity(const std::string& text) {
    std::lock_guard lock(mutex);
    return std::find(activities.begin(), activities.end(), text) != activities.end();
  }
};

class UpdateWorkerTest : public ::testing::Test {
 protected:
  // A worker that is a shell script; $DIR is the test's folder.
  WorkerSettings script(const std::string& body) {
    auto path = tmp_ / ("worker-" + std::to_string(++scripts_) + ".sh");
    write_file(path, "#!/bin/sh\nDIR='" + tmp_.path().string() + "'\n" + body);
    stdfs::permissions(path, stdfs::perms::owner_all);
    return WorkerSettings{path, "/etc/eddy/eddyd.yaml", "device: {id: pi-0042}\n"};
  }
  static daemon::worker_protocol::Job poll_job() {
    daemon::worker_protocol::Job job;
    job.kind = "poll";
    return job;
  }

  TempDir tmp_;
  RecordingHost host_;
  int scripts_ = 0;
};

TEST_F(UpdateWorkerTest, RelaysActivityAndUpdatesAndReturnsTheResult) {
  UpdateWorker worker(script(R"(read -r job <&3
printf '%s\n' "$job" > "$DIR/job.json"
echo '{"activity":"fetching file:///srv/fleet"}' >&3
echo '{"update":{"target":"sensor-app","state":"downloading"}}' >&3
echo '{"update":null}' >&3
echo '{"apps_started":true}' >&3
echo '{"hub_tls_session":{"host":"hub.example","port":8443,"ca_file":"/etc/eddy/hub-ca.pem","ca_stamp":"1:2","client_cert":"","data":"00ff10"}}' >&3
echo '{"result":{"outcome":"up-to-date","commit":"1a2b3c4","message":"up to date at 1a2b3c4","poll_failed":false}}' >&3
)"),
                      host_);
  auto job = poll_job();
  job.start_apps = true;
  WorkerResult r = worker.run(job);
  ASSERT_FALSE(r.failure) << r.failure->message;
  ASSERT_TRUE(r.job) << r.job.error().message;
  EXPECT_EQ((*r.job)["outcome"], "up-to-date");
  EXPECT_EQ(host_.activities, std::vector<std::string>{"fetching file:///srv/fleet"});
  ASSERT_EQ(host_.updates.size(), 2u);
  EXPECT_EQ(host_.updates[0]["state"], "downloading");
  EXPECT_TRUE(host_.updates[1].is_null());
  EXPECT_TRUE(host_.apps_started);
  ASSERT_EQ(host_.hub_sessions.size(), 1u);
  EXPECT_EQ(host_.hub_sessions[0].host, "hub.example");
  EXPECT_EQ(host_.hub_sessions[0].port, 8443);
  EXPECT_EQ(host_.hub_sessions[0].data, std::string("\x00\xff\x10", 3));
  EXPECT_FALSE(worker.pid()) << "reaped";

  // What the worker was given: the job, eddyd's version, pid and configuration text.
  auto sent = json::parse(read_file(tmp_ / "job.json"));
  EXPECT_EQ(sent["job"], "poll");
  EXPECT_EQ(sent["start_apps"], true);
  EXPECT_EQ(sent["version"], std::string(daemon::version()));
  EXPECT_EQ(sent["eddyd_pid"], ::getpid());
  EXPECT_EQ(sent["config_file"], "/etc/eddy/eddyd.yaml");
  EXPECT_EQ(sent["config"], "device: {id: pi-0042}\n");
}

TEST_F(UpdateWorkerTest, AppRequestsAreServedAndAnswered) {
  host_.restart_result = make_error(Errc::not_found, "start app sensor-app: cannot resolve its folder");
  UpdateWorker worker(script(R"(read -r job <&3
echo '{"app":"restart","name":"sensor-app","argv":["bin/app","--port","8080"],"cwd":"/opt/sensor-app/current"}' >&3
read -r reply <&3
printf '%s\n' "$reply" > "$DIR/restart-reply"
echo '{"app":"stop","name":"other-app"}' >&3
read -r reply <&3
printf '%s\n' "$reply" > "$DIR/stop-reply"
echo '{"error":{"code":"conflict","message":"sensor-app has no previous committed version to roll back to"}}' >&3
)"),
                      host_);
  auto job = poll_job();
  job.kind = "rollback";
  WorkerResult r = worker.run(job);
  ASSERT_FALSE(r.failure) << r.failure->message;
  ASSERT_FALSE(r.job) << "the job's own error comes back as the job's result";
  EXPECT_EQ(r.job.error().code, Errc::conflict);
  EXPECT_NE(r.job.error().message.find("no previous committed version"), std::string::npos);
  EXPECT_EQ(host_.app_calls,
            (std::vector<std::string>{"restart sensor-app bin/app --port 8080 in /opt/sensor-app/current",
                                      "stop other-app"}));
  EXPECT_EQ(json::parse(read_file(tmp_ / "restart-reply")),
            (json{{"ok", false},
                  {"error", {{"code", "not-found"}, {"message", "start app sensor-app: cannot resolve its folder"}}}}));
  EXPECT_EQ(json::parse(read_file(tmp_ / "stop-reply")), (json{{"ok", true}}));
}

TEST_F(UpdateWorkerTest, AWorkerThatDiesWithoutAResultIsAFailureThatSaysHow) {
  {
    UpdateWorker worker(script("read -r job <&3\necho '{\"activity\":\"probing sensor-app-2.0.0\"}' >&3\nkill -9 $$\n"),
                        host_);
    WorkerResult r = worker.run(poll_job());
    ASSERT_TRUE(r.failure);
    EXPECT_EQ(r.failure->code, Errc::process);
    EXPECT_NE(r.failure->message.find("killed by signal 9"), std::string::npos) << r.failure->message;
    EXPECT_NE(r.failure->message.find("during a poll"), std::string::npos) << r.failure->message;
    EXPECT_TRUE(host_.saw_activity("probing sensor-app-2.0.0"));
  }
  {
    UpdateWorker worker(script("read -r job <&3\nexit 3\n"), host_);
    WorkerResult r = worker.run(poll_job());
    ASSERT_TRUE(r.failure);
    EXPECT_EQ(r.failure->code, Errc::process);
    EXPECT_NE(r.failure->message.find("exited with status 3"), std::string::npos) << r.failure->message;
  }
}

TEST_F(UpdateWorkerTest, AWorkerThatBreaksTheProtocolIsKilled) {
  struct Case {
    std::string line;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"this is not json", "not a JSON object: this is not json"},
      {R"({"hello":"eddyd"})", "an unknown message"},
      {R"({"app":"reboot","name":"sensor-app"})", "unknown app request \"reboot\""},
      {R"({"app":"restart","name":"sensor-app","argv":"bin/app"})", "without \"argv\" and \"cwd\""},
      {R"({"hub_tls_session":{"host":"h","port":1,"ca_file":"c","ca_stamp":"s","client_cert":"","data":"secret"}})",
       "no \"data\" in hexadecimal"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.line);
    // After the bad line it would wait forever for an answer: eddyd kills it instead.
    UpdateWorker worker(script("read -r job <&3\necho '" + c.line + "' >&3\nexec sleep 600\n"), host_);
    WorkerResult r = worker.run(poll_job());
    ASSERT_TRUE(r.failure);
    EXPECT_EQ(r.failure->code, Errc::internal);
    EXPECT_NE(r.failure->message.find(c.expect), std::string::npos) << r.failure->message;
    EXPECT_NE(r.failure->message.find("killed by signal 9"), std::string::npos) << r.failure->message;
    EXPECT_EQ(r.failure->message.find("secret"), std::string::npos) << "a session's data is never shown";
  }
}

TEST_F(UpdateWorkerTest, AWorkerThatLingersAfterItsResultIsKilled) {
  auto settings = script("read -r job <&3\necho '{\"result\":{\"ok\":1}}' >&3\nexec 3>&-\nexec sleep 600\n");
  settings.exit_grace = 100ms;
  UpdateWorker worker(settings, host_);
  WorkerResult r = worker.run(poll_job());
  ASSERT_FALSE(r.failure) << r.failure->message;
  ASSERT_TRUE(r.job);
  EXPECT_EQ(*r.job, (json{{"ok", 1}}));
  EXPECT_FALSE(worker.pid());
}

TEST_F(UpdateWorkerTest, StopAsksTheWorkerToEndAndKillMakesSureItDoes) {
  {
    UpdateWorker worker(
        script(R"(trap 'echo "{\"error\":{\"code\":\"conflict\",\"message\":\"stopped\"}}" >&3; exit 0' TERM
read -r job <&3
echo '{"activity":"probing"}' >&3
while :; do sleep 0.05; done
)"),
        host_);
    auto running = std::async(std::launch::async, [&] { return worker.run(poll_job()); });
    ASSERT_TRUE(wait_until([&] { return host_.saw_activity("probing"); }));
    worker.stop();
    WorkerResult r = running.get();
    ASSERT_FALSE(r.failure) << r.failure->message;
    ASSERT_FALSE(r.job);
    EXPECT_EQ(r.job.error().message, "stopped");

    // Once stopped, no new worker starts.
    auto again = worker.run(poll_job());
    ASSERT_TRUE(again.failure);
    EXPECT_EQ(again.failure->code, Errc::conflict);
  }
  {
    UpdateWorker worker(script("trap '' TERM\nread -r job <&3\necho '{\"activity\":\"downloading\"}' >&3\n"
                               "while :; do sleep 0.05; done\n"),
                        host_);
    auto running = std::async(std::launch::async, [&] { return worker.run(poll_job()); });
    ASSERT_TRUE(wait_until([&] { return host_.saw_activity("downloading"); }));
    worker.stop();
    worker.kill();
    WorkerResult r = running.get();
    ASSERT_TRUE(r.failure);
    EXPECT_NE(r.failure->message.find("killed by signal 9"), std::string::npos) << r.failure->message;
  }
}

TEST_F(UpdateWorkerTest, AWorkerThatCannotStartIsAFailure) {
  UpdateWorker worker(WorkerSettings{tmp_ / "no-such-worker", "/etc/eddy/eddyd.yaml", ""}, host_);
  WorkerResult r = worker.run(poll_job());
  ASSERT_TRUE(r.failure);
  EXPECT_NE(r.failure->message.find("no-such-worker"), std::string::npos) << r.failure->message;
}

// The real worker on a real signed fleet: it installs v1, asking for the app's restart,
// which a real AppSupervisor does here as eddyd would.
TEST_F(UpdateWorkerTest, TheRealWorkerInstallsAndAsksForTheRestart) {
  int port = free_port();
  Fleet fleet(tmp_.path());
  fleet.publish("sensor-app", AppBundle{"1.0.0", true, port, {}});
  auto device = tmp_ / "device";
  std::string config =
      "device: {id: test-device, labels: {site: test}}\n"
      "source: {url: " +
      fleet.repo().url() + ", branch: main, interval: 1h, allowed_signers: " + fleet.allowed_signers().string() +
      "}\n"
      "data_dir: " +
      (device / "data").string() +
      "\n"
      "socket: " +
      (device / "eddyd.sock").string() +
      "\n"
      "apps:\n  sensor-app: {dir: " +
      (device / "apps/sensor-app").string() + ", run: [bin/app]}\n";
  ota::AppSupervisor supervisor;
  host_.apps = &supervisor;
  UpdateWorker worker(WorkerSettings{eddyd_worker_path(), device / "eddyd.yaml", config}, host_);
  auto job = poll_job();
  job.start_apps = true;
  WorkerResult r = worker.run(job);
  ASSERT_FALSE(r.failure) << r.failure->message;
  ASSERT_TRUE(r.job) << r.job.error().message;
  EXPECT_EQ((*r.job)["outcome"], "updated") << *r.job;
  EXPECT_TRUE(host_.apps_started);
  EXPECT_TRUE(supervisor.pid("sensor-app").has_value()) << "the app runs as this process's child";
  EXPECT_EQ(http_get(port, "/version"), "1.0.0\n");
  std::lock_guard lock(host_.mutex);
  EXPECT_FALSE(host_.updates.empty());
  EXPECT_TRUE(host_.updates.back().is_null()) << "the update in progress ends with the job";
}

}  // namespace
}  // namespace eddy::testing
