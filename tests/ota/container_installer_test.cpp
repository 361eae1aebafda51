// ota/container_installer against the real Podman: images built from a busybox-static tree,
// served by busybox httpd on loopback ports, a client polling the service through every swap.
#include "ota/container_installer.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include "ota/analysis.hpp"
#include "ota/payload.hpp"
#include "platform/http_client.hpp"
#include "tests/support/containers.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using namespace std::chrono_literals;
namespace t = eddy::testing;

std::string get(int port, const std::string& path = "/") {
  http::RequestOptions options;
  options.timeout = 1s;
  auto r = http::request("http://127.0.0.1:" + std::to_string(port) + path, options);
  return r && r->status == 200 ? r->body : std::string();
}

class ContainerInstallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = t::podman_unavailable(); !why.empty()) GTEST_SKIP() << "real Podman test skipped: " << why;
    target_ = "ci" + std::to_string(::getpid());
    runtime_ = make_container_runtime(RuntimeKind::podman, process_runner());
    installer_.emplace(*runtime_, ContainerTarget{target_, dir_ / "target", 2, std::chrono::seconds(5)});
    port_ = t::free_port();
    candidate_port_ = t::free_port();
  }
  void TearDown() override {
    if (target_.empty()) return;
    t::remove_test_containers(target_);
    t::remove_test_images(target_);
  }

  ContainerSettings settings_for(const t::TestImage& image, SwapStrategy strategy = SwapStrategy::hand_over) {
    ContainerSettings s;
    s.image = image.reference;
    s.ports = {ContainerPort{"127.0.0.1", static_cast<std::uint16_t>(port_), 80,
                             static_cast<std::uint16_t>(candidate_port_), "tcp"}};
    s.restart = "no";
    s.strategy = strategy;
    return s;
  }

  Status stage(const std::string& version, const t::TestImage& image, const ContainerSettings& s,
               std::string sha256 = {}) {
    VerifyingStream bytes(std::make_unique<MemoryStream>(t::read_file(image.archive)),
                          sha256.empty() ? image.sha256 : sha256, image.size, "test image");
    return installer_->stage(version, s, image.archive.filename().string(), &bytes);
  }

  // The release's analysis: the candidate's health page, on the candidate port.
  AnalysisVerdict analyse(int port) {
    Analysis a;
    a.interval = 200ms;
    a.iterations = 3;
    a.threshold = 0;
    a.probes = {Probe{"health", HttpProbe{"http://127.0.0.1:" + std::to_string(port) + "/healthz", 200, "", 1000ms}}};
    return run_analysis(a, installer_->target().dir, [](int, const ProbeResult&) {});
  }

  t::TempDir dir_;
  std::string target_;
  std::unique_ptr<ContainerRuntime> runtime_;
  std::optional<ContainerInstaller> installer_;
  int port_ = 0;
  int candidate_port_ = 0;
};

// v1 installed, then v2 handed over while a client polls; then a bad v3 (no health page) is
// started beside v2, fails its analysis, and goes: v2 serves throughout, not one request failed.
TEST_F(ContainerInstallerTest, HandOverGoodThenBadImage) {
  auto v1 = t::make_test_image(dir_.path(), target_, "1", {{"index.html", "one\n"}, {"healthz", "ok\n"}});
  auto v2 = t::make_test_image(dir_.path(), target_, "2", {{"index.html", "two\n"}, {"healthz", "ok\n"}}, true);
  auto v3 = t::make_test_image(dir_.path(), target_, "3", {{"index.html", "three\n"}});

  auto s1 = settings_for(v1);
  ASSERT_TRUE(stage("1", v1, s1));
  ASSERT_TRUE(installer_->start("1", s1, ""));
  ASSERT_TRUE(analyse(candidate_port_).passed);
  ASSERT_TRUE(installer_->promote("1", s1, ""));
  ASSERT_TRUE(t::wait_until([&] { return get(port_) == "one\n"; }));
  EXPECT_EQ(get(candidate_port_), "");  // the candidate is gone

  // v2 from a .tar.zst archive, beside v1.
  auto s2 = settings_for(v2);
  ASSERT_TRUE(stage("2", v2, s2));
  t::HttpPoller during_good(port_);
  ASSERT_TRUE(installer_->start("2", s2, "1"));
  ASSERT_TRUE(analyse(candidate_port_).passed);
  EXPECT_EQ(get(candidate_port_), "two\n");
  EXPECT_EQ(get(port_), "one\n");  // the old one serves the service port while the new is probed
  ASSERT_TRUE(installer_->promote("2", s2, "1"));
  ASSERT_TRUE(t::wait_until([&] { return get(port_) == "two\n"; }));
  auto good = during_good.stop();
  std::cout << "hand-over of a good image: " << good.requests << " requests, " << good.failures
            << " failed, longest gap " << good.longest_gap.count() << " ms\n";
  EXPECT_GT(good.requests - good.failures, 0);
  // Issue 5's goal: the service port switches to the new container without a failed request
  // (redirected to the healthy candidate while the old one goes and the final one starts).
  EXPECT_EQ(good.failures, 0) << good.requests << " requests; first failure: " << good.first_failure;
  EXPECT_EQ(t::run({"sh", "-c", "iptables -w -t nat -S | grep -c -e 'eddy:" + target_ + "\\b'"}).output, "0\n")
      << "the redirect to the candidate was left";
  EXPECT_EQ(runtime_->containers_labelled("eddy.target", target_).value(),
            std::vector<std::string>{installer_->container_name("2")});

  // A bad v3: its probe fails on the candidate; it is removed and v2 never stops.
  auto s3 = settings_for(v3);
  ASSERT_TRUE(stage("3", v3, s3));
  // 3 s a request (late is not failed; the gap is printed). The seconds without an answer once
  // seen here under load were stale NAT towards containers removed earlier (see
  // ContainerRuntime::remove) and the bridge changing its MAC address (pin_bridge_address).
  t::HttpPoller during_bad(port_, std::chrono::seconds(3));
  ASSERT_TRUE(t::wait_until([&] { return during_bad.answered() > 0; }));
  // The bridge v2 is on keeps its MAC address while the candidate's veth joins and leaves it: a
  // bridge that followed its lowest port address changed it half the time, and the host then
  // could not reach v2 for seconds (netavark 1.4; see pin_bridge_address).
  auto bridges = runtime_->bridges_of(installer_->container_name("2"));
  ASSERT_TRUE(bridges) << bridges.error().message;
  ASSERT_FALSE(bridges->empty());
  const auto sys = std::filesystem::path("/sys/class/net") / bridges->front();
  const std::string mac_before = t::read_file(sys / "address");
  ASSERT_TRUE(installer_->start("3", s3, "2"));
  EXPECT_EQ(t::read_file(sys / "addr_assign_type"), "3\n") << bridges->front() << " is not pinned";
  EXPECT_EQ(t::read_file(sys / "address"), mac_before) << "the candidate changed the bridge's address";
  ASSERT_TRUE(t::wait_until([&] { return get(candidate_port_) == "three\n"; }));
  auto verdict = analyse(candidate_port_);
  EXPECT_FALSE(verdict.passed);
  EXPECT_NE(verdict.reason.find("404"), std::string::npos) << verdict.reason;
  ASSERT_TRUE(installer_->settle("2", s2));
  EXPECT_EQ(t::read_file(sys / "address"), mac_before) << "the candidate's removal changed the bridge's address";
  auto bad = during_bad.stop();
  EXPECT_EQ(bad.failures, 0) << bad.requests << " requests; first failure: " << bad.first_failure;
  EXPECT_EQ(get(port_), "two\n");
  EXPECT_EQ(get(candidate_port_), "");
  EXPECT_EQ(runtime_->containers_labelled("eddy.target", target_).value(),
            std::vector<std::string>{installer_->container_name("2")});

  // Housekeeping, keep_images 2, newest first: v3 takes a place, v2 must stay (and runs), v1 goes.
  ASSERT_TRUE(installer_->prune({v3.reference, v2.reference, v1.reference}, {v2.reference}));
  EXPECT_TRUE(runtime_->image_exists(v2.reference).value());   // in use and kept
  EXPECT_TRUE(runtime_->image_exists(v3.reference).value());   // within keep_images (2)
  EXPECT_FALSE(runtime_->image_exists(v1.reference).value());  // beyond the count
}

// stop-then-start: the old container stops, the new one starts on the service ports.
TEST_F(ContainerInstallerTest, StopThenStartSwapsOnTheServicePort) {
  auto v1 = t::make_test_image(dir_.path(), target_, "1", {{"index.html", "one\n"}, {"healthz", "ok\n"}});
  auto v2 = t::make_test_image(dir_.path(), target_, "2", {{"index.html", "two\n"}, {"healthz", "ok\n"}});
  auto s1 = settings_for(v1, SwapStrategy::stop_then_start);
  auto s2 = settings_for(v2, SwapStrategy::stop_then_start);
  ASSERT_TRUE(stage("1", v1, s1));
  ASSERT_TRUE(installer_->start("1", s1, ""));
  ASSERT_TRUE(t::wait_until([&] { return get(port_) == "one\n"; }));
  ASSERT_TRUE(installer_->stop("1"));  // stop-then-start stops before the download
  EXPECT_FALSE(installer_->running("1").value());
  ASSERT_TRUE(stage("2", v2, s2));
  ASSERT_TRUE(installer_->start("2", s2, "1"));
  ASSERT_TRUE(analyse(port_).passed);
  ASSERT_TRUE(installer_->promote("2", s2, "1"));
  EXPECT_EQ(get(port_), "two\n");
  EXPECT_EQ(runtime_->containers_labelled("eddy.target", target_).value(),
            std::vector<std::string>{installer_->container_name("2")});
  // Rolling back: settle on v1 restarts it from its settings and removes v2.
  ASSERT_TRUE(installer_->settle("1", s1));
  ASSERT_TRUE(t::wait_until([&] { return get(port_) == "one\n"; }));
  EXPECT_TRUE(installer_->running("1").value());
  EXPECT_EQ(runtime_->containers_labelled("eddy.target", target_).value(),
            std::vector<std::string>{installer_->container_name("1")});
}

// A bad archive is refused before anything is loaded; an archive of another image is refused
// after loading, naming both.
TEST_F(ContainerInstallerTest, StageRefusesBadArchives) {
  auto v1 = t::make_test_image(dir_.path(), target_, "1", {{"index.html", "one\n"}});
  auto v2 = t::make_test_image(dir_.path(), target_, "2", {{"index.html", "two\n"}});
  auto s1 = settings_for(v1);
  auto wrong = stage("1", v1, s1, std::string(64, 'a'));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Errc::digest_mismatch) << wrong.error().message;
  EXPECT_FALSE(runtime_->image_exists(v1.reference).value());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "target" / "images" / ".1.tar"));

  auto other = stage("1", v2, s1);  // v2's archive, for a release that names v1's image
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, Errc::invalid_argument);
  EXPECT_NE(other.error().message.find(v1.reference), std::string::npos) << other.error().message;

  auto stored = settings_from_json(settings_to_json(s1));
  ASSERT_TRUE(stored);
  EXPECT_EQ(settings_to_json(*stored), settings_to_json(s1));
  auto broken = settings_from_json(nlohmann::json{{"image", 3}});
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace eddy::ota
