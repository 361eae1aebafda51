// The rollback of a bad container release never takes down the container that serves, whatever
// the runtime answers while it runs: ContainerTargetInstaller (the updater's view of a container
// target) and ContainerInstaller::settle() driven through the recording runner, so that a
// runtime's transient failure is replayed exactly, and every command the rollback ran is checked.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>

#include "ota/byte_stream.hpp"
#include "ota/container_installer.hpp"
#include "ota/installer.hpp"
#include "platform/container_runtime.hpp"
#include "storage/state_store.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using Argv = std::vector<std::string>;
namespace t = eddy::testing;

constexpr std::string_view kOld = "localhost/web@sha256:1111111111111111111111111111111111111111111111111111111111111111";
constexpr std::string_view kNew = "localhost/web@sha256:2222222222222222222222222222222222222222222222222222222222222222";

// What the OCI runtime or the store says under load when a file it looks for is gone for a
// moment: an error, not an answer about the container.
constexpr std::string_view kTransient =
    "Error: runc: container state: open /run/runc/0f3c/state.json: no such file or directory\n";

Release release(const std::string& version, std::string_view image) {
  Release r;
  r.name = "web-" + version;
  r.target = "web";
  r.version = version;
  r.payload.type = "container";
  r.payload.container.image = std::string(image);
  r.payload.container.source = ImageSource::registry;
  r.payload.container.ports = {ContainerPort{"127.0.0.1", 8080, 80, 18080, "tcp"}};
  r.payload.container.restart = "no";
  return r;
}

bool removes(const std::vector<Argv>& calls, const std::string& name) {
  return std::ranges::any_of(calls, [&](const Argv& argv) {
    return std::ranges::find(argv, "rm") != argv.end() && argv.back() == name;
  });
}

class ContainerRollbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = storage::StateStore::open(dir_ / "eddy.db");
    ASSERT_TRUE(store) << store.error().message;
    store_.emplace(std::move(*store));
    runtime_ = make_container_runtime(RuntimeKind::podman, rec_.runner());
    target_.emplace(*runtime_, ContainerTarget{"web", dir_ / "web", 2, std::chrono::seconds(1)}, *store_);
    // 2.0.0 staged (its image is present: `image exists` answers 0) and committed; 3.0.0 staged.
    MemoryStream none("");
    ASSERT_TRUE(target_->stage(release("2.0.0", kOld), none));
    ASSERT_TRUE(store_->set_installed("web", "2.0.0", "web-2.0.0"));
    ASSERT_TRUE(target_->stage(release("3.0.0", kNew), none));
    calls_before_ = rec_.calls().size();
  }

  std::vector<Argv> calls_since_setup() const {
    return {rec_.calls().begin() + static_cast<std::ptrdiff_t>(calls_before_), rec_.calls().end()};
  }

  t::TempDir dir_;
  RecordingRunner rec_;
  std::unique_ptr<ContainerRuntime> runtime_;
  std::optional<storage::StateStore> store_;
  std::optional<ContainerTargetInstaller> target_;
  std::size_t calls_before_ = 0;
};

// `podman image exists` failing (not "absent": exit 125) leaves the serving version "staged",
// so that the updater restores it instead of removing every container of the target.
TEST_F(ContainerRollbackTest, RuntimeErrorDuringIsStagedKeepsTheServingVersion) {
  rec_.reply(125, std::string(kTransient));
  EXPECT_TRUE(target_->is_staged("2.0.0"));

  // A definite "absent" (exit 1) with no container of that version is not staged.
  rec_.reply(1);
  rec_.reply(125, "Error: inspecting object: no such container eddy-web-2.0.0\n");
  EXPECT_FALSE(target_->is_staged("2.0.0"));

  // "Absent" while the version's container runs: the container keeps its image; it is there.
  rec_.reply(1);
  rec_.reply(0, "true 1111\n");
  EXPECT_TRUE(target_->is_staged("2.0.0"));

  // A version never staged on this device is not, without asking the runtime.
  const auto before = rec_.calls().size();
  EXPECT_FALSE(target_->is_staged("9.9.9"));
  EXPECT_EQ(rec_.calls().size(), before);
}

// The restore after a failed candidate: the candidate goes, the serving container is inspected;
// when that inspection fails with an error that mentions a missing file, the restore fails (the
// updater keeps the update in rolling-back and recovery retries), and the serving container is
// neither removed nor started again.
TEST_F(ContainerRollbackTest, TransientInspectErrorNeverReplacesTheServingContainer) {
  rec_.reply(0);                                                // iptables -S: no port redirect left
  rec_.reply(0, "eddy-web-2.0.0\neddy-web-3.0.0-candidate\n");  // ps --all --filter label=…
  rec_.reply(0);                                                // the candidate's addresses: none
  rec_.reply(0);                                                // rm --force the candidate
  rec_.reply(125, std::string(kTransient));                     // container inspect eddy-web-2.0.0
  std::vector<std::string> warnings;
  auto restored = target_->restore("2.0.0", warnings);
  ASSERT_FALSE(restored);
  EXPECT_EQ(restored.error().code, Errc::process);
  EXPECT_NE(restored.error().message.find("eddy-web-2.0.0"), std::string::npos) << restored.error().message;
  EXPECT_NE(restored.error().message.find("no such file or directory"), std::string::npos)
      << restored.error().message;

  const auto calls = calls_since_setup();
  EXPECT_TRUE(removes(calls, "eddy-web-3.0.0-candidate"));
  EXPECT_FALSE(removes(calls, "eddy-web-2.0.0")) << "the serving container was removed";
  EXPECT_FALSE(std::ranges::any_of(calls, [](const Argv& a) { return a.size() > 1 && a[1] == "run"; }))
      << "the serving container was started again";

  // Asked again with the runtime answering, the same restore keeps the running container as it is.
  rec_.reply(0);  // iptables -S
  rec_.reply(0, "eddy-web-2.0.0\n");
  rec_.reply(0, "true 1111\n");
  ASSERT_TRUE(target_->restore("2.0.0", warnings));
  EXPECT_FALSE(removes(calls_since_setup(), "eddy-web-2.0.0"));
}

// A container the runtime really does not know (its own words) is started again by settle().
TEST_F(ContainerRollbackTest, MissingServingContainerIsStartedAgain) {
  rec_.reply(0);  // iptables -S
  rec_.reply(0, "eddy-web-3.0.0-candidate\n");
  rec_.reply(0);
  rec_.reply(0);
  rec_.reply(125, "Error: inspecting object: no such container eddy-web-2.0.0\n");
  std::vector<std::string> warnings;
  ASSERT_TRUE(target_->restore("2.0.0", warnings));
  const auto calls = calls_since_setup();
  auto run = std::ranges::find_if(calls, [](const Argv& a) { return a.size() > 5 && a[1] == "run"; });
  ASSERT_NE(run, calls.end());
  EXPECT_NE(std::ranges::find(*run, "eddy-web-2.0.0"), run->end());
  EXPECT_NE(std::ranges::find(*run, "127.0.0.1:8080:80/tcp"), run->end());
  EXPECT_EQ(run->back(), std::string(kOld));
}

// After a rollback the failed version is discarded and the committed one settled on. When the
// store cannot say which version is committed, nothing is settled: settling on "none" would
// remove the container that serves.
TEST_F(ContainerRollbackTest, UnreadableStoreDuringDiscardRemovesNothing) {
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "eddy.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "ALTER TABLE installed RENAME TO installed_elsewhere", nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(other);
  sqlite3_close(other);

  auto discarded = target_->discard("3.0.0");
  ASSERT_FALSE(discarded);
  EXPECT_NE(discarded.error().message.find("web"), std::string::npos) << discarded.error().message;
  EXPECT_TRUE(calls_since_setup().empty()) << "the runtime was asked to change containers";
  EXPECT_EQ(target_->current_version(), std::nullopt);
}

// With the store readable, discarding the failed version settles on the committed one: the
// candidate goes, the serving container stays.
TEST_F(ContainerRollbackTest, DiscardSettlesOnTheCommittedVersion) {
  rec_.reply(0);  // iptables -S
  rec_.reply(0, "eddy-web-2.0.0\neddy-web-3.0.0-candidate\n");
  rec_.reply(0);
  rec_.reply(0);
  rec_.reply(0, "true 1111\n");
  ASSERT_TRUE(target_->discard("3.0.0"));
  const auto calls = calls_since_setup();
  EXPECT_TRUE(removes(calls, "eddy-web-3.0.0-candidate"));
  EXPECT_FALSE(removes(calls, "eddy-web-2.0.0"));
  EXPECT_EQ(target_->current_version(), "2.0.0");
}

// A hand-over interrupted by a crash can leave its port redirect (to a candidate that settle()
// removes): settle() removes every rule marked eddy:<target> first, and another target's stays.
TEST_F(ContainerRollbackTest, SettleRemovesALeftoverPortRedirect) {
  rec_.reply(0,
             "-P OUTPUT ACCEPT\n"
             "-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -m comment --comment \"eddy:web\" -j DNAT "
             "--to-destination 10.88.0.9:80\n"
             "-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 8081 -m comment --comment \"eddy:webcam\" -j DNAT "
             "--to-destination 10.88.0.5:80\n");
  rec_.reply(0);  // the -D
  rec_.reply(0, "eddy-web-2.0.0\neddy-web-3.0.0-candidate\n");
  rec_.reply(0);
  rec_.reply(0);
  rec_.reply(0, "true 1111\n");
  std::vector<std::string> warnings;
  ASSERT_TRUE(target_->restore("2.0.0", warnings));
  const auto calls = calls_since_setup();
  ASSERT_GE(calls.size(), 3u);
  EXPECT_EQ(calls[0], (Argv{"iptables", "-w", "-t", "nat", "-S"}));
  EXPECT_EQ(calls[1], (Argv{"iptables", "-w", "-t", "nat", "-D", "OUTPUT", "-d", "127.0.0.1/32", "-p", "tcp", "-m",
                            "tcp", "--dport", "8080", "-m", "comment", "--comment", "eddy:web", "-j", "DNAT",
                            "--to-destination", "10.88.0.9:80"}));
  EXPECT_EQ(calls[2][1], "ps");
  EXPECT_TRUE(removes(calls, "eddy-web-3.0.0-candidate"));
  EXPECT_FALSE(removes(calls, "eddy-web-2.0.0"));

  // A redirect that cannot be removed fails the settle, before any container changes: the
  // candidate it points at must not go while clients are sent there.
  rec_.reply(0, "-A OUTPUT -p tcp -m tcp --dport 8080 -m comment --comment eddy:web -j DNAT --to-destination "
                "10.88.0.9:80\n");
  rec_.reply(4, "iptables: Resource temporarily unavailable.\n");
  const auto before = rec_.calls().size();
  auto failed = target_->restore("2.0.0", warnings);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, Errc::process);
  EXPECT_NE(failed.error().message.find("eddy:web"), std::string::npos) << failed.error().message;
  EXPECT_EQ(rec_.calls().size(), before + 2);
}

}  // namespace
}  // namespace eddy::ota
