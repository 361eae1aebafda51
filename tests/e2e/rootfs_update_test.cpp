// Root file system releases through a real eddyd (issue 3), on file-backed A/B slots and each boot
// scheme's real environment: a file-backed U-Boot environment (rauc and mender presets), a real
// GRUB grubenv, and the Raspberry Pi firmware's autoboot.txt (tryboot); the harness reboots
// (tests/support/boot_sim.hpp, RootfsDevice).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/boot_sim.hpp"

namespace eddy::testing {
namespace {

using bootenv::Slot;

class RootfsTest : public ::testing::TestWithParam<BootScheme> {
 protected:
  void SetUp() override {
    rig_ = std::make_unique<RootfsDevice>(tmp_.path(), GetParam());
    ASSERT_EQ(rig_->boot(), Slot::a);
    // eddyd polls once as it starts. A check queues behind that poll, so once it answers (it
    // fails: the fleet has no branch yet), a release published next is found by the test's own
    // check, not by the start-up poll (which under qemu could still be fetching then).
    ASSERT_EQ(rig_->check(), "failed") << log();
  }

  std::string log() { return rig_->device().log(); }

  // What eddyd must pass to the reboot command to boot an armed trial: the Raspberry Pi
  // firmware's one-shot tryboot flag, as one word (reboot(8) "0 tryboot"); nothing otherwise.
  std::vector<std::string> trial_reboot_arguments() const {
    if (GetParam() == BootScheme::tryboot) return {"0 tryboot"};
    return {};
  }

  // One update that reboots into the trial slot and, booted there, commits.
  void install_good(const std::string& version, Slot expect_slot, const std::string& delta_base = {}) {
    RootfsRelease release;
    release.version = version;
    release.delta_base = delta_base;
    install_good(release, expect_slot);
  }
  void install_good(const RootfsRelease& release, Slot expect_slot) {
    const std::string& version = release.version;
    std::string image = rig_->publish(release);
    std::string output;
    ASSERT_EQ(rig_->check(&output), "rebooting") << output << log();
    ASSERT_TRUE(wait_until([&] { return rig_->reboot_requested(); })) << log();
    EXPECT_EQ(rig_->reboot_arguments(), trial_reboot_arguments());
    EXPECT_EQ(rig_->status()["state"], "rebooting");
    EXPECT_EQ(rig_->primary(), expect_slot);  // armed for one trial boot
    ASSERT_EQ(rig_->boot(), expect_slot);
    ASSERT_EQ(rig_->check(&output), "up-to-date") << output << log();
    auto status = rig_->status();
    EXPECT_EQ(status["current_version"], version) << status.dump() << log();
    EXPECT_EQ(status["last_outcome"], "committed") << status.dump();
    EXPECT_EQ(rig_->slot_bytes(expect_slot, image.size()), image);
    EXPECT_FALSE(rig_->reboot_requested());
    // Committed: the next boots come back to it.
    EXPECT_EQ(rig_->boot(), expect_slot);
    EXPECT_EQ(rig_->boot(), expect_slot);
    // Queued behind the start-up poll: a release published next is found by the test's check.
    ASSERT_EQ(rig_->check(&output), "up-to-date") << output << log();
  }

  // Nothing happened to the slots: no reboot asked for, `active` still the slot that boots
  // (also after a power cut) and holding `image`.
  void expect_untouched(Slot active, const std::string& image) {
    EXPECT_FALSE(rig_->reboot_requested());
    EXPECT_EQ(rig_->primary(), active);
    EXPECT_EQ(rig_->slot_bytes(active, image.size()), image);
    EXPECT_EQ(rig_->boot(), active);
  }

  // `eddy history` has an event whose message holds every one of `needles`.
  bool history_has(const std::vector<std::string>& needles) {
    auto history = rig_->device().eddy({"history", "-n", "200"});
    if (!history.json.is_object() || !history.json["entries"].is_array()) return false;
    for (const auto& entry : history.json["entries"]) {
      const std::string message = entry.value("message", "");
      if (std::all_of(needles.begin(), needles.end(), [&](const std::string& n) { return contains(message, n); }))
        return true;
    }
    return false;
  }

  // The update was refused before any trial: `failed` with `needles` in its message, no reboot,
  // A still primary and holding what it held, and A boots.
  void expect_refused_before_trial(const std::vector<std::string>& needles) {
    auto status = rig_->status();
    EXPECT_EQ(status["last_outcome"], "failed") << status.dump();
    for (const auto& needle : needles)
      EXPECT_TRUE(contains(status.value("last_message", ""), needle)) << needle << " in " << status.dump();
    expect_untouched(Slot::a, rig_->factory_image());
  }

  TempDir tmp_;
  std::unique_ptr<RootfsDevice> rig_;
};

TEST_P(RootfsTest, GoodReleaseCommitsOnBAndTheNextGoesBackToA) {
  install_good("1.1.0", Slot::b);
  install_good("1.2.0", Slot::a);
  EXPECT_EQ(rig_->status()["previous_version"], "1.1.0");
}

// The active slot A holds the base of the release's delta: the device downloads the delta and
// rebuilds the image into B against A.
TEST_P(RootfsTest, DeltaRebuildsTheImageAgainstTheActiveSlot) {
  install_good("1.1.0", Slot::b, /*delta_base=*/rig_->factory_image());
  EXPECT_TRUE(contains(log(), "is the base of a delta")) << log();
  // 1.2.0's delta is from 1.0.0, which B (now active) does not hold: the full image is taken.
  install_good("1.2.0", Slot::a, /*delta_base=*/rig_->factory_image());
  EXPECT_TRUE(contains(log(), "no delta has the active slot as its base")) << log();
}

TEST_P(RootfsTest, FailingProbeRollsBackToA) {
  rig_->publish("1.1.0", /*probe_exit=*/1);
  std::string output;
  ASSERT_EQ(rig_->check(&output), "rebooting") << output << log();
  ASSERT_TRUE(wait_until([&] { return rig_->reboot_requested(); })) << log();
  ASSERT_EQ(rig_->boot(), Slot::b);
  // On B the analysis (of the poll eddyd starts with) fails: B is marked bad, A good, and eddyd
  // reboots into A, with a plain reboot (A is the committed slot: no trial flag).
  ASSERT_TRUE(wait_until([&] { return rig_->reboot_requested(); })) << log();
  EXPECT_TRUE(rig_->reboot_arguments().empty());
  EXPECT_EQ(rig_->primary(), Slot::a);
  ASSERT_EQ(rig_->boot(), Slot::a);
  ASSERT_EQ(rig_->check(&output), "up-to-date") << output << log();  // the release is not retried
  auto status = rig_->status();
  EXPECT_EQ(status["last_outcome"], "rolled-back") << status.dump() << log();
  EXPECT_TRUE(contains(status.value("last_message", ""), "health analysis failed")) << status.dump();
  EXPECT_TRUE(status["current_version"].is_null());
  EXPECT_EQ(rig_->slot_bytes(Slot::a, rig_->factory_image().size()), rig_->factory_image());
  EXPECT_EQ(rig_->boot(), Slot::a);
  EXPECT_FALSE(rig_->reboot_requested());
}

TEST_P(RootfsTest, NewSystemNeverComesUpAndTheOldOneRecordsTheFailedTrial) {
  rig_->publish("1.1.0");
  std::string output;
  ASSERT_EQ(rig_->check(&output), "rebooting") << output << log();
  ASSERT_TRUE(wait_until([&] { return rig_->reboot_requested(); })) << log();
  ASSERT_EQ(rig_->boot(/*start=*/false), Slot::b);  // the new kernel hangs: no eddyd
  ASSERT_EQ(rig_->boot(), Slot::a);                 // the bootloader falls back by itself
  ASSERT_EQ(rig_->check(&output), "up-to-date") << output << log();
  auto status = rig_->status();
  EXPECT_EQ(status["last_outcome"], "rolled-back") << status.dump() << log();
  EXPECT_TRUE(contains(status.value("last_message", ""), "did not come up")) << status.dump();
  EXPECT_FALSE(rig_->reboot_requested());
  EXPECT_EQ(rig_->slot_bytes(Slot::a, rig_->factory_image().size()), rig_->factory_image());
  EXPECT_EQ(rig_->boot(), Slot::a);
}

TEST_P(RootfsTest, WrongDigestMarksTheInactiveSlotBadAndLeavesTheActiveOne) {
  rig_->publish("1.1.0", 0, /*wrong_digest=*/true);
  std::string output;
  ASSERT_EQ(rig_->check(&output), "failed") << output << log();
  expect_refused_before_trial({"sha256"});
  EXPECT_EQ(rig_->boot(), Slot::a);
}

// The delta and its base are intact, but what they rebuild is not the image the release names:
// refused at the end of the rebuild, with the inactive slot marked bad and the active one as it was.
TEST_P(RootfsTest, DeltaThatRebuildsAnotherImageIsRefused) {
  rig_->publish("1.1.0", 0, /*wrong_digest=*/true, /*delta_base=*/rig_->factory_image());
  std::string output;
  ASSERT_EQ(rig_->check(&output), "failed") << output << log();
  EXPECT_TRUE(contains(log(), "is the base of a delta")) << log();
  expect_refused_before_trial({"sha256"});
}

TEST_P(RootfsTest, ImageLargerThanTheSlotIsRefusedBeforeTheSlotEnds) {
  rig_->publish("1.1.0", 0, false, {}, RootfsDevice::slot_size() + (1u << 20));
  std::string output;
  ASSERT_EQ(rig_->check(&output), "failed") << output << log();
  expect_refused_before_trial({"rootfs.b", "the image is at least"});
}

// `size` is the download limit the signed release sets: a payload larger than it is refused
// before a byte reaches a slot, however much room the slot has.
TEST_P(RootfsTest, PayloadLargerThanTheReleaseSizeIsRefused) {
  RootfsRelease release;
  release.version = "1.1.0";
  release.declared_size = 4096;
  rig_->publish(release);
  std::string output;
  ASSERT_EQ(rig_->check(&output), "failed") << output << log();
  expect_refused_before_trial({"payloads/rootfs-1.1.0.img.zst", "4096"});
  ASSERT_EQ(rig_->check(&output), "up-to-date") << output << log();  // remembered: not fetched again
}

// A release built for other hardware is never installed; `eddy history` says why.
TEST_P(RootfsTest, ReleaseForOtherHardwareIsRefused) {
  RootfsRelease release;
  release.version = "1.1.0";
  release.extra_spec = "  compatible: {hw: [pi4, pi5]}\n";
  rig_->publish(release);
  std::string output;
  ASSERT_EQ(rig_->check(&output), "up-to-date") << output << log();  // nothing for this device
  EXPECT_TRUE(history_has({"rootfs-1.1.0", "not compatible", "hw in [pi4, pi5]", "no hw label"})) << output << log();
  auto status = rig_->status();
  EXPECT_TRUE(status["current_version"].is_null()) << status.dump();
  expect_untouched(Slot::a, rig_->factory_image());
}

// Slot B is named in eddyd.yaml but the device has no such partition: the update is refused
// before the bootloader or any slot is touched, naming the slot and what was looked for.
TEST_P(RootfsTest, SlotTheDeviceDoesNotHaveIsRefused) {
  const std::string missing = (tmp_.path() / "no-such-slot-b").string();
  rig_->set_slot_spec(Slot::b, missing);
  // `eddyd --check-config` names it; eddyd itself starts with a warning (udev may be late at boot).
  auto checked = run({eddyd_path().string(), "--config", rig_->device().config_path().string(), "--check-config"});
  EXPECT_EQ(checked.exit_code, 2) << checked.output;
  EXPECT_TRUE(contains(checked.output, "rootfs.b") && contains(checked.output, missing)) << checked.output;
  ASSERT_EQ(rig_->boot(), Slot::a);
  EXPECT_TRUE(contains(log(), "starting anyway")) << log();
  ASSERT_EQ(rig_->check(), "failed") << log();  // the start-up poll: no fleet yet
  rig_->publish("1.1.0");
  std::string output;
  ASSERT_EQ(rig_->check(&output), "failed") << output << log();
  expect_refused_before_trial({"rootfs.b", missing, "does not exist"});
}

// An older version than the committed one is refused; the same release saying
// `allowDowngrade: true` goes back.
TEST_P(RootfsTest, OlderVersionIsRefusedUnlessTheReleaseAllowsDowngrade) {
  install_good("1.1.0", Slot::b);
  const std::string running = rootfs_image("1.1.0");
  rig_->publish("1.0.5");
  std::string output;
  ASSERT_EQ(rig_->check(&output), "up-to-date") << output << log();
  EXPECT_TRUE(history_has({"rootfs-1.0.5", "older than the running 1.1.0", "allowDowngrade"})) << output << log();
  auto status = rig_->status();
  EXPECT_EQ(status["current_version"], "1.1.0") << status.dump();
  expect_untouched(Slot::b, running);
  ASSERT_EQ(rig_->check(&output), "up-to-date") << output << log();  // still refused, after the boot too

  RootfsRelease back;
  back.version = "1.0.5";
  back.extra_spec = "  allowDowngrade: true\n";
  install_good(back, Slot::a);
  EXPECT_EQ(rig_->status()["previous_version"], "1.1.0");
}

INSTANTIATE_TEST_SUITE_P(Bootloaders, RootfsTest,
                         ::testing::Values(BootScheme::uboot_rauc, BootScheme::grub_rauc, BootScheme::uboot_mender,
                                           BootScheme::tryboot),
                         [](const auto& param_info) { return scheme_name(param_info.param); });

}  // namespace
}  // namespace eddy::testing
