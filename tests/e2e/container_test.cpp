// End-to-end for container releases (issue 5): a real eddyd follows a signed fleet repository
// whose releases name OCI images (archives in the repository, built from busybox-static),
// installs them through the real Podman, probes them, hands over or rolls back, and ends with
// exactly one healthy version serving after SIGKILL in any state.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/containers.hpp"
#include "tests/support/fleet.hpp"

namespace eddy::testing {
namespace {

class ContainerDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = podman_unavailable(); !why.empty()) GTEST_SKIP() << "real Podman test skipped: " << why;
    target_ = "web" + std::to_string(::getpid());
    port_ = free_port();
    candidate_port_ = free_port();
    fleet_.emplace(dir_ / "fleet");
    device_.emplace(dir_ / "device", fleet_->repo().url(), fleet_->allowed_signers());
    device_->write_config("containers: {runtime: podman, keep: 2}\n");
  }
  void TearDown() override {
    if (target_.empty()) return;
    if (device_ && device_->running()) device_->stop();
    remove_test_containers(target_);
    remove_test_images(target_);
  }

  // Publish version `v` (healthy: it serves /healthz) as a container release of `strategy`.
  void publish(const std::string& v, bool healthy, const std::string& strategy = "hand-over") {
    std::map<std::string, std::string> www = {{"index.html", v + "\n"}};
    if (healthy) www["healthz"] = "ok\n";
    auto image = make_test_image(dir_.path(), target_, v, www, /*zstd=*/true);
    const std::string payload = "payloads/" + target_ + "-" + v + ".oci.tar.zst";
    stdfs::create_directories(fleet_->repo().dir() / "payloads");
    stdfs::copy_file(image.archive, fleet_->repo().dir() / payload, stdfs::copy_options::overwrite_existing);
    fleet_->repo().write(
        "releases/" + target_ + "-" + v + ".yaml",
        "apiVersion: eddy/v1\nkind: Release\nmetadata: {name: " + target_ + "-" + v + "}\nspec:\n  target: " + target_ +
            "\n  version: " + v + "\n  payload:\n    type: container\n    image: " + image.reference +
            "\n    path: " + payload + "\n    sha256: " + image.sha256 + "\n    size: " + std::to_string(image.size) +
            "\n    ports: [{ip: 127.0.0.1, host: " + std::to_string(port_) + ", container: 80, candidate: " +
            std::to_string(candidate_port_) + "}]\n    restart: \"no\"\n    strategy: " + strategy +
            "\n  analysis:\n    interval: 300ms\n    iterations: 3\n    threshold: 0\n    probes:\n"
            "      - {name: health, http: {url: \"http://127.0.0.1:" +
            std::to_string(strategy == "hand-over" ? candidate_port_ : port_) + "/healthz\", timeout: 1s}}\n");
    fleet_->set_rollout(target_, v);
    fleet_->repo().commit("release " + v);
  }

  std::string serving() { return http_get(port_, "/").value_or(""); }
  std::vector<std::string> containers() {
    auto out = run({"podman", "ps", "--filter", "label=eddy.target=" + target_, "--format", "{{.Names}}"}).output;
    std::vector<std::string> names;
    std::string line;
    for (char c : out + "\n") {
      if (c != '\n') line += c;
      else if (!line.empty()) names.push_back(std::exchange(line, {}));
    }
    return names;
  }
  std::string name_of(const std::string& v) { return "eddy-" + target_ + "-" + v; }
  // The nat rules of this target's hand-over redirect (comment eddy:<target>).
  int redirect_rules() {
    return std::stoi(run({"sh", "-c", "iptables -w -t nat -S | grep -c -e 'eddy:" + target_ + "\\b'"}).output);
  }

  void install_v1() {
    publish("1.0.0", true);
    device_->start();
    auto r = device_->eddy({"check"});
    ASSERT_EQ(r.exit_code, 0) << r.output << device_->log();
    ASSERT_EQ(device_->current_version(target_), "1.0.0") << r.output << device_->log();
    ASSERT_TRUE(wait_until([&] { return serving() == "1.0.0\n"; })) << device_->log();
  }

  TempDir dir_;
  std::string target_;
  int port_ = 0;
  int candidate_port_ = 0;
  std::optional<Fleet> fleet_;
  std::optional<Device> device_;
};

// A good image hands over, a bad one is stopped and the old one keeps serving (a client polls
// throughout and no request of the bad swap fails), then an operator rollback.
TEST_F(ContainerDeviceTest, HandOverGoodImageRollBackBadImage) {
  install_v1();
  EXPECT_EQ(containers(), std::vector<std::string>{name_of("1.0.0")});

  publish("2.0.0", true);
  {
    // 3 s a request, as below: an answer late under load is not a failed one (the longest gap,
    // from one answer to the next, is printed and recorded in bench/RESULTS.md).
    HttpPoller poller(port_, std::chrono::seconds(3));
    auto r = device_->eddy({"check"});
    ASSERT_EQ(r.exit_code, 0) << r.output << device_->log();
    EXPECT_EQ(r.json.value("outcome", ""), "updated") << r.output;
    ASSERT_TRUE(wait_until([&] { return serving() == "2.0.0\n"; })) << device_->log();
    auto stats = poller.stop();
    std::cout << "hand-over of a good image through eddyd: " << stats.requests << " requests, " << stats.failures
              << " failed, longest gap " << stats.longest_gap.count() << " ms\n";
    // Issue 5's goal: the service port switches without a failed request (redirected to the
    // healthy candidate while the old container goes and the new one starts).
    EXPECT_EQ(stats.failures, 0) << stats.requests << " requests; first failure: " << stats.first_failure << "\n"
                                 << device_->log();
    EXPECT_EQ(redirect_rules(), 0) << "the redirect to the candidate was left";
  }
  EXPECT_EQ(device_->current_version(target_), "2.0.0");
  EXPECT_EQ(containers(), std::vector<std::string>{name_of("2.0.0")});

  publish("3.0.0", false);
  {
    // 3 s a request (late is not failed; the gap is printed). The seconds without an answer once
    // seen here under load were stale NAT towards containers removed earlier (see
    // ContainerRuntime::remove) and the bridge changing its MAC address (pin_bridge_address).
    HttpPoller poller(port_, std::chrono::seconds(3));
    ASSERT_TRUE(wait_until([&] { return poller.answered() > 0; }));
    auto r = device_->eddy({"check"});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(r.json.value("outcome", ""), "rolled-back") << r.output << device_->log();
    auto stats = poller.stop();
    std::cout << "a bad image tried beside the old one through eddyd: " << stats.requests << " requests, "
              << stats.failures << " failed, longest gap " << stats.longest_gap.count() << " ms\n";
    EXPECT_EQ(stats.failures, 0) << stats.requests << " requests; first failure: " << stats.first_failure;
    if (stats.failures > 0) {
      // An intermittent failure is only understood with what the machine looked like right then.
      std::cout << "after the failed requests: serving() answers `" << serving() << "`\n"
                << run({"sh", "-c",
                        "podman ps --all --format '{{.Names}} {{.Status}} {{.Ports}}'; iptables -t nat -S | grep -e " +
                            std::to_string(port_) + " -e " + std::to_string(candidate_port_) +
                            "; ss -ltnp; ip -br link show type bridge; ip neigh; grep -e 'dport=" +
                            std::to_string(port_) + " ' /proc/net/nf_conntrack | grep -v -e TIME_WAIT -e ESTABLISHED"})
                       .output
                << "eddyd's log:\n"
                << device_->log() << "\n";
    }
  }
  EXPECT_EQ(device_->current_version(target_), "2.0.0");
  EXPECT_EQ(serving(), "2.0.0\n");
  EXPECT_EQ(containers(), std::vector<std::string>{name_of("2.0.0")});
  auto history = device_->eddy({"history", "--limit", "200"}).json.dump();
  EXPECT_NE(history.find("\"probe\":\"health\""), std::string::npos);

  auto r = device_->eddy({"rollback", target_});
  ASSERT_EQ(r.exit_code, 0) << r.output << device_->log();
  EXPECT_EQ(r.json.value("to_version", ""), "1.0.0");
  EXPECT_TRUE(wait_until([&] { return serving() == "1.0.0\n"; })) << device_->log();
  EXPECT_EQ(containers(), std::vector<std::string>{name_of("1.0.0")});
}

// stop-then-start on the service port, probed there.
TEST_F(ContainerDeviceTest, StopThenStart) {
  install_v1();
  publish("2.0.0", true, "stop-then-start");
  auto r = device_->eddy({"check"});
  ASSERT_EQ(r.exit_code, 0) << r.output << device_->log();
  EXPECT_TRUE(wait_until([&] { return serving() == "2.0.0\n"; })) << device_->log();
  EXPECT_EQ(containers(), std::vector<std::string>{name_of("2.0.0")});
  publish("3.0.0", false, "stop-then-start");
  r = device_->eddy({"check"});
  EXPECT_EQ(r.json.value("outcome", ""), "rolled-back") << r.output << device_->log();
  EXPECT_TRUE(wait_until([&] { return serving() == "2.0.0\n"; })) << device_->log();
  EXPECT_EQ(containers(), std::vector<std::string>{name_of("2.0.0")});
}

class ContainerKillInState : public ContainerDeviceTest, public ::testing::WithParamInterface<KillCase> {};

// SIGKILL eddyd at a state of a hand-over; started again, it ends with exactly one container
// serving, the right version.
TEST_P(ContainerKillInState, EndsWithOneHealthyContainer) {
  const auto& c = GetParam();
  install_v1();
  device_->stop();
  publish("2.0.0", c.healthy_v2);
  device_->start({{"EDDY_FAULT_KILL_AT", c.point}}, /*wait_ready=*/false);
  auto status = device_->wait_exit(std::chrono::seconds(60));
  ASSERT_TRUE(status) << "eddyd never reached " << c.point << "\n" << device_->log();
  ASSERT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << device_->log();
  device_->kill_session();
  // Killed in the middle of the port switch: the redirect to the candidate is still there.
  if (c.point.starts_with("container:")) {
    EXPECT_GT(redirect_rules(), 0) << device_->log();
  }

  device_->start();
  auto r = device_->eddy({"check"});
  if (device_->current_version(target_) != c.end_version) r = device_->eddy({"check"});
  EXPECT_EQ(device_->current_version(target_), c.end_version) << r.output << device_->log();
  EXPECT_TRUE(wait_until([&] { return serving() == c.end_version + "\n"; })) << serving() << device_->log();
  EXPECT_EQ(containers(), std::vector<std::string>{name_of(c.end_version)}) << device_->log();
  EXPECT_EQ(redirect_rules(), 0) << "a port redirect was left\n" << device_->log();
}

INSTANTIATE_TEST_SUITE_P(
    States, ContainerKillInState,
    ::testing::Values(KillCase{"stream:mid", true, "2.0.0"}, KillCase{"state:staged", true, "2.0.0"},
                      KillCase{"state:activating", true, "2.0.0"}, KillCase{"state:probing", true, "2.0.0"},
                      KillCase{"container:redirected", true, "2.0.0"},
                      KillCase{"container:final-started", true, "2.0.0"},
                      KillCase{"state:committed", true, "2.0.0"}, KillCase{"state:rolling-back", false, "1.0.0"},
                      KillCase{"state:rolled-back", false, "1.0.0"}),
    kill_case_name);

}  // namespace
}  // namespace eddy::testing
