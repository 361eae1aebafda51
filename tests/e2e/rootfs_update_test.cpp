// Root file system releases through a real eddyd (issue 3), on file-backed A/B slots with a real
// file-backed U-Boot environment (rauc preset) and a real GRUB grubenv; the harness reboots
// (tests/support/boot_sim.hpp, RootfsDevice).
#include <gtest/gtest.h>

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

  // One update that reboots into the trial slot and, booted there, commits.
  void install_good(const std::string& version, Slot expect_slot, const std::string& delta_base = {}) {
    std::string image = rig_->publish(version, 0, false, delta_base);
    std::string output;
    ASSERT_EQ(rig_->check(&output), "rebooting") << output << log();
    ASSERT_TRUE(wait_until([&] { return rig_->reboot_requested(); })) << log();
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
  }

  // The update was refused before any trial: `failed` with `needles` in its message, no reboot,
  // A still primary and holding what it held, and A boots.
  void expect_refused_before_trial(const std::vector<std::string>& needles) {
    auto status = rig_->status();
    EXPECT_EQ(status["last_outcome"], "failed") << status.dump();
    for (const auto& needle : needles)
      EXPECT_TRUE(contains(status.value("last_message", ""), needle)) << needle << " in " << status.dump();
    EXPECT_FALSE(rig_->reboot_requested());
    EXPECT_EQ(rig_->primary(), Slot::a);
    EXPECT_EQ(rig_->slot_bytes(Slot::a, rig_->factory_image().size()), rig_->factory_image());
    EXPECT_EQ(rig_->boot(), Slot::a);
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
  // reboots into A.
  ASSERT_TRUE(wait_until([&] { return rig_->reboot_requested(); })) << log();
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

INSTANTIATE_TEST_SUITE_P(Bootloaders, RootfsTest, ::testing::Values(BootScheme::uboot_rauc, BootScheme::grub_rauc),
                         [](const auto& param_info) {
                           return std::string(param_info.param == BootScheme::uboot_rauc ? "UbootRauc" : "GrubRauc");
                         });

}  // namespace
}  // namespace eddy::testing
