// The bootloader backends against the real tools on file-backed environments: fw_setenv /
// fw_printenv on a mkenvimage file, grub-editenv on a grubenv file, autoboot.txt in a folder.
// The "bootloader side" of each scheme is simulated here (as RAUC's test suite does with its
// fake bootloader): each simulated boot applies the boot script's logic to the environment
// through the same tools and returns the slot it boots.
#include <gtest/gtest.h>

#include <optional>
#include <sstream>

#include "platform/bootenv/bootloader.hpp"
#include "platform/bootenv/detail.hpp"
#include "platform/bootenv/grub.hpp"
#include "platform/bootenv/uboot.hpp"
#include "tests/support/boot_sim.hpp"
#include "tests/support/support.hpp"

namespace eddy::bootenv {
namespace {

using testing::contains;
using testing::read_file;
using testing::run_ok;
using testing::TempDir;
using testing::write_file;
using testing::boot_grub_rauc;
using testing::boot_tryboot;
using testing::boot_uboot_mender;
using testing::boot_uboot_rauc;
using testing::grub_list;
using testing::make_grubenv;
using testing::make_uboot_env;
using testing::printenv;
namespace stdfs = std::filesystem;

std::unique_ptr<Bootloader> make(const BootloaderConfig& config) {
  auto bootloader = make_bootloader(config);
  EXPECT_TRUE(bootloader.has_value()) << bootloader.error().message;
  return std::move(*bootloader);
}

BootloaderConfig uboot_config(const stdfs::path& env_config, const std::string& preset) {
  BootloaderConfig c;
  c.type = "uboot";
  c.preset = preset;
  c.env_config = env_config;
  return c;
}

// ============================================================================================
// U-Boot, rauc preset
// ============================================================================================

TEST(UbootRauc, MarkGoodProvisionsTheCommittedState) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "bootdelay=2\n");
  auto bl = make(uboot_config(config, "rauc"));
  EXPECT_EQ(bl->primary().error().code, Errc::not_found);
  ASSERT_TRUE(bl->mark_good(Slot::a).has_value());
  auto env = printenv(config);
  EXPECT_EQ(env["BOOT_ORDER"], "A");
  EXPECT_EQ(env["BOOT_A_LEFT"], "3");
  EXPECT_EQ(env["BOOT_B_LEFT"], "0");
  EXPECT_EQ(env["bootdelay"], "2");  // other variables stay
  EXPECT_EQ(bl->primary().value(), Slot::a);
  EXPECT_EQ(bl->trial_pending().value(), std::nullopt);
  EXPECT_TRUE(bl->state(Slot::a)->good);
  EXPECT_FALSE(bl->state(Slot::b)->good);
  EXPECT_EQ(bl->name(), "uboot/rauc");
}

TEST(UbootRauc, SuccessfulTrialThenPowerCutsKeepBootingTheCommittedSlot) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n");
  auto bl = make(uboot_config(config, "rauc"));
  ASSERT_TRUE(bl->mark_good(Slot::a).has_value());
  ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());  // before writing slot B
  EXPECT_EQ(printenv(config)["BOOT_ORDER"], "A");
  EXPECT_EQ(boot_uboot_rauc(config), Slot::a);

  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  auto env = printenv(config);
  EXPECT_EQ(env["BOOT_ORDER"], "B A");
  EXPECT_EQ(env["BOOT_B_LEFT"], "1");
  EXPECT_EQ(env["BOOT_A_LEFT"], "3");
  EXPECT_EQ(bl->trial_pending().value(), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::b);

  EXPECT_EQ(boot_uboot_rauc(config), Slot::b);  // the trial boot
  EXPECT_EQ(bl->trial_pending().value(), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::a);  // a reset now would fall back
  ASSERT_TRUE(bl->mark_good(Slot::b).has_value());
  env = printenv(config);
  EXPECT_EQ(env["BOOT_ORDER"], "B");
  EXPECT_EQ(env["BOOT_B_LEFT"], "3");
  EXPECT_EQ(env["BOOT_A_LEFT"], "0");
  EXPECT_EQ(bl->trial_pending().value(), std::nullopt);

  // Power cuts before eddyd runs: the counter runs out, resets, and B boots every time.
  for (int i = 0; i < 12; ++i) EXPECT_EQ(boot_uboot_rauc(config), Slot::b) << "boot " << i;
  EXPECT_EQ(bl->primary().value(), Slot::b);
}

TEST(UbootRauc, FailedTrialFallsBackAndIsReported) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "BOOT_ORDER=A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n");
  auto bl = make(uboot_config(config, "rauc"));
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  EXPECT_EQ(boot_uboot_rauc(config), Slot::b);  // B does not come up (no mark_good)
  EXPECT_EQ(boot_uboot_rauc(config), Slot::a);  // the bootloader falls back by itself
  // What eddyd on A sees: B was armed, A runs, A is primary.
  EXPECT_EQ(bl->trial_pending().value(), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::a);
  ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());
  EXPECT_EQ(bl->trial_pending().value(), std::nullopt);
  EXPECT_EQ(printenv(config)["BOOT_ORDER"], "A");
  for (int i = 0; i < 6; ++i) EXPECT_EQ(boot_uboot_rauc(config), Slot::a);
}

TEST(UbootRauc, RebootLoopOfTheTrialStopsAtTheAttemptCap) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "BOOT_ORDER=A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n");
  auto c = uboot_config(config, "rauc");
  c.trial_attempts = 2;
  auto bl = make(c);
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  int b_boots = 0;
  for (int i = 0; i < 10; ++i) {
    Slot booted = boot_uboot_rauc(config);
    if (booted == Slot::b) {
      ++b_boots;  // crashes before eddyd can mark it good
    } else if (bl->trial_pending().value() == Slot::b) {
      ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());  // eddyd on A records the failed trial
    }
  }
  EXPECT_EQ(b_boots, 2);
}

TEST(UbootRauc, RefusesWhatWouldLeaveNoSlotAndWritesNothing) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "BOOT_ORDER=A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n");
  auto bl = make(uboot_config(config, "rauc"));
  auto before = read_file(dir / "uboot.env");
  EXPECT_EQ(bl->mark_bad(Slot::a).error().code, Errc::conflict);
  EXPECT_EQ(bl->set_trial(Slot::a).error().code, Errc::conflict);
  EXPECT_EQ(read_file(dir / "uboot.env"), before);
}

TEST(UbootRauc, KeepsUnknownOrderEntriesAndHonoursRenamedVariables) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "ORDER_X=system0 R\nLEFT0=3\nLEFT1=0\n");
  auto c = uboot_config(config, "rauc");
  c.bootname_a = "system0";
  c.bootname_b = "system1";
  c.variables = {{"order", "ORDER_X"}, {"left_a", "LEFT0"}, {"left_b", "LEFT1"}};
  auto bl = make(c);
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  auto env = printenv(config);
  EXPECT_EQ(env["ORDER_X"], "system1 system0 R");
  EXPECT_EQ(env["LEFT1"], "1");
  EXPECT_FALSE(env.contains("BOOT_ORDER"));
}

TEST(UbootRauc, RedundantEnvironment) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "BOOT_ORDER=A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n", true);
  auto bl = make(uboot_config(config, "rauc"));
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  EXPECT_EQ(boot_uboot_rauc(config), Slot::b);
  ASSERT_TRUE(bl->mark_good(Slot::b).has_value());
  EXPECT_EQ(bl->primary().value(), Slot::b);
  EXPECT_NE(read_file(dir / "uboot1.env"), read_file(dir / "uboot2.env"));  // both copies in use
}

TEST(UbootErrors, MissingVariableNamesItAndTheFile) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "BOOT_ORDER=A B\nBOOT_A_LEFT=3\n");
  auto bl = make(uboot_config(config, "rauc"));
  auto err = bl->primary().error();
  EXPECT_EQ(err.code, Errc::not_found);
  EXPECT_TRUE(contains(err.message, "BOOT_B_LEFT")) << err.message;
  EXPECT_TRUE(contains(err.message, (dir / "uboot.env").string())) << err.message;
}

TEST(UbootErrors, CorruptEnvironmentIsAnErrorNotTheDefaults) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "BOOT_ORDER=A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n");
  auto image = read_file(dir / "uboot.env");
  image[10] = static_cast<char>(image[10] ^ 0x55);
  write_file(dir / "uboot.env", image);
  auto bl = make(uboot_config(config, "rauc"));
  auto err = bl->primary().error();
  EXPECT_EQ(err.code, Errc::io);
  EXPECT_TRUE(contains(err.message, (dir / "uboot.env").string())) << err.message;
  EXPECT_EQ(bl->mark_good(Slot::a).error().code, Errc::io);
  EXPECT_EQ(read_file(dir / "uboot.env"), image);  // nothing written over it
}

TEST(UbootErrors, MissingToolConfigOrImage) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "BOOT_ORDER=A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n");
  auto c = uboot_config(config, "rauc");
  c.fw_printenv = (dir / "no-such-fw_printenv").string();
  auto err = make(c)->primary().error();
  EXPECT_EQ(err.code, Errc::process);
  EXPECT_TRUE(contains(err.message, "libubootenv-tool")) << err.message;

  EXPECT_EQ(make(uboot_config(dir / "missing.config", "rauc"))->primary().error().code, Errc::not_found);
  stdfs::remove(dir / "uboot.env");
  err = make(uboot_config(config, "rauc"))->primary().error();
  EXPECT_EQ(err.code, Errc::not_found);
  EXPECT_TRUE(contains(err.message, "uboot.env")) << err.message;
}

TEST(UbootErrors, BadConfiguration) {
  BootloaderConfig c = uboot_config("/x/fw_env.config", "rauc");
  c.variables = {{"ordr", "X"}};
  auto err = make_bootloader(c).error();
  EXPECT_EQ(err.code, Errc::invalid_argument);
  EXPECT_TRUE(contains(err.message, "ordr") && contains(err.message, "order")) << err.message;
  c.variables = {{"order", "BAD NAME"}};
  EXPECT_EQ(make_bootloader(c).error().code, Errc::invalid_argument);
  c.variables.clear();
  c.preset = "barebox";
  EXPECT_EQ(make_bootloader(c).error().code, Errc::invalid_argument);
  c.type = "lilo";
  EXPECT_EQ(make_bootloader(c).error().code, Errc::invalid_argument);
  EXPECT_EQ(parse_slot("C").error().code, Errc::invalid_argument);
  EXPECT_EQ(parse_slot("b").value(), Slot::b);
}

// ============================================================================================
// U-Boot, mender preset
// ============================================================================================

const char* kMenderEnv = "bootlimit=1\nbootcount=0\nupgrade_available=0\nmender_boot_part=2\nmender_boot_part_hex=2\n";

TEST(UbootMender, SuccessfulTrialThenPowerCutsNeverFallBack) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), kMenderEnv);
  auto bl = make(uboot_config(config, "mender"));
  EXPECT_EQ(bl->primary().value(), Slot::a);
  ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());  // the inactive slot: nothing to write
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  auto env = printenv(config);
  EXPECT_EQ(env["mender_boot_part"], "3");
  EXPECT_EQ(env["mender_boot_part_hex"], "3");
  EXPECT_EQ(env["upgrade_available"], "1");
  EXPECT_EQ(env["bootcount"], "0");
  EXPECT_EQ(bl->trial_pending().value(), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::b);

  EXPECT_EQ(boot_uboot_mender(config), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::a);  // one more reset would run altbootcmd
  EXPECT_EQ(bl->state(Slot::b)->attempts_left, 0);
  ASSERT_TRUE(bl->mark_good(Slot::b).has_value());
  env = printenv(config);
  EXPECT_EQ(env["upgrade_available"], "0");
  EXPECT_EQ(env["bootcount"], "0");
  EXPECT_EQ(bl->trial_pending().value(), std::nullopt);
  EXPECT_TRUE(bl->state(Slot::b)->good);

  for (int i = 0; i < 10; ++i) EXPECT_EQ(boot_uboot_mender(config), Slot::b);
  EXPECT_EQ(printenv(config)["bootcount"], "0");  // not counted on a committed system
}

TEST(UbootMender, FailedTrialRollsBackInTheBootloader) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), kMenderEnv);
  auto bl = make(uboot_config(config, "mender"));
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  EXPECT_EQ(boot_uboot_mender(config), Slot::b);  // hangs, watchdog resets
  EXPECT_EQ(boot_uboot_mender(config), Slot::a);  // altbootcmd
  EXPECT_EQ(bl->primary().value(), Slot::a);
  EXPECT_EQ(bl->trial_pending().value(), std::nullopt);  // booted A != armed B: a failed trial
  ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(boot_uboot_mender(config), Slot::a);
}

TEST(UbootMender, RebootLoopStopsAfterOneTrialBoot) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), kMenderEnv);
  auto bl = make(uboot_config(config, "mender"));
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  int b_boots = 0;
  for (int i = 0; i < 10; ++i)
    if (boot_uboot_mender(config) == Slot::b) ++b_boots;
  EXPECT_EQ(b_boots, 1);
}

TEST(UbootMender, RollbackDuringProbingAndRefusals) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), kMenderEnv);
  auto bl = make(uboot_config(config, "mender"));
  EXPECT_EQ(bl->mark_bad(Slot::a).error().code, Errc::conflict);   // committed
  EXPECT_EQ(bl->set_trial(Slot::a).error().code, Errc::conflict);  // committed
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  EXPECT_EQ(bl->mark_bad(Slot::a).error().code, Errc::conflict);  // the trial's fallback
  EXPECT_EQ(boot_uboot_mender(config), Slot::b);
  ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());  // analysis failed: Mender's rollback
  auto env = printenv(config);
  EXPECT_EQ(env["mender_boot_part"], "2");
  EXPECT_EQ(env["upgrade_available"], "0");
  EXPECT_EQ(boot_uboot_mender(config), Slot::a);
}

TEST(UbootMender, HexPartitionAndMissingBootlimit) {
  TempDir dir;
  auto config = make_uboot_env(dir.path(), "bootcount=0\nupgrade_available=0\nmender_boot_part=9\nmender_boot_part_hex=9\n");
  auto c = uboot_config(config, "mender");
  c.partition_a = 9;
  c.partition_b = 10;
  auto bl = make(c);
  auto err = bl->set_trial(Slot::b).error();
  EXPECT_EQ(err.code, Errc::conflict);
  EXPECT_TRUE(contains(err.message, "bootlimit")) << err.message;
  run_ok({"fw_setenv", "-c", config.string(), "bootlimit", "1"});
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  EXPECT_EQ(printenv(config)["mender_boot_part_hex"], "a");
  EXPECT_EQ(boot_uboot_mender(config, 9, 10), Slot::b);

  run_ok({"fw_setenv", "-c", config.string(), "mender_boot_part", "5"});
  err = bl->primary().error();
  EXPECT_EQ(err.code, Errc::invalid_argument);
  EXPECT_TRUE(contains(err.message, "mender_boot_part=5")) << err.message;
}

// ============================================================================================
// GRUB, rauc preset
// ============================================================================================

BootloaderConfig grub_config(const stdfs::path& file) {
  BootloaderConfig c;
  c.type = "grub";
  c.grub_env = file;
  return c;
}

TEST(GrubRauc, SuccessfulTrialThenPowerCutsKeepBootingTheCommittedSlot) {
  TempDir dir;
  auto file = make_grubenv(dir.path(), {});
  auto bl = make(grub_config(file));
  EXPECT_EQ(bl->primary().error().code, Errc::not_found);
  ASSERT_TRUE(bl->mark_good(Slot::a).has_value());
  auto env = grub_list(file);
  EXPECT_EQ(env["ORDER"], "A");
  EXPECT_EQ(env["A_OK"], "1");
  EXPECT_EQ(env["A_TRY"], "0");
  EXPECT_EQ(env["B_OK"], "0");
  EXPECT_EQ(boot_grub_rauc(file), Slot::a);
  ASSERT_TRUE(bl->mark_good(Slot::a).has_value());  // eddyd at each start on a committed slot

  ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  env = grub_list(file);
  EXPECT_EQ(env["ORDER"], "B A");
  EXPECT_EQ(env["B_OK"], "1");
  EXPECT_EQ(env["B_TRY"], "0");
  EXPECT_EQ(bl->trial_pending().value(), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::b);
  EXPECT_EQ(boot_grub_rauc(file), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::a);
  ASSERT_TRUE(bl->mark_good(Slot::b).has_value());
  EXPECT_EQ(grub_list(file)["ORDER"], "B");
  EXPECT_EQ(bl->trial_pending().value(), std::nullopt);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(boot_grub_rauc(file), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::b);
  // No temporary files left beside the environment.
  int files = 0;
  for ([[maybe_unused]] const auto& e : stdfs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);
}

TEST(GrubRauc, FailedTrialFallsBackAndTheLoopStopsAfterOneTrialBoot) {
  TempDir dir;
  auto file = make_grubenv(dir.path(), {"ORDER=A", "A_OK=1", "A_TRY=0", "B_OK=0", "B_TRY=0"});
  auto bl = make(grub_config(file));
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  EXPECT_EQ(boot_grub_rauc(file), Slot::b);
  int b_boots = 1;
  // A keeps losing power before eddyd runs: still A, B is not tried again.
  for (int i = 0; i < 6; ++i)
    if (boot_grub_rauc(file) == Slot::b) ++b_boots;
  EXPECT_EQ(b_boots, 1);
  EXPECT_EQ(bl->trial_pending().value(), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::a);
  ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());
  auto env = grub_list(file);
  EXPECT_EQ(env["ORDER"], "A");
  EXPECT_EQ(env["B_OK"], "0");
  EXPECT_EQ(bl->trial_pending().value(), std::nullopt);
  EXPECT_EQ(bl->mark_bad(Slot::a).error().code, Errc::conflict);
}

TEST(GrubRauc, MissingCorruptAndMissingVariable) {
  TempDir dir;
  auto bl = make(grub_config(dir / "grubenv"));
  auto err = bl->primary().error();
  EXPECT_EQ(err.code, Errc::not_found);
  EXPECT_TRUE(contains(err.message, (dir / "grubenv").string())) << err.message;

  write_file(dir / "grubenv", std::string(1024, 'x'));
  EXPECT_EQ(bl->primary().error().code, Errc::io);
  EXPECT_EQ(bl->mark_good(Slot::a).error().code, Errc::io);
  EXPECT_EQ(read_file(dir / "grubenv"), std::string(1024, 'x'));

  stdfs::remove(dir / "grubenv");
  make_grubenv(dir.path(), {"ORDER=A B", "A_OK=1", "A_TRY=0", "B_OK=1"});
  err = bl->primary().error();
  EXPECT_EQ(err.code, Errc::not_found);
  EXPECT_TRUE(contains(err.message, "B_TRY")) << err.message;

  auto c = grub_config(dir / "grubenv");
  c.grub_editenv = "/nonexistent/grub-editenv";
  err = make(c)->primary().error();
  EXPECT_EQ(err.code, Errc::process);
  EXPECT_TRUE(contains(err.message, "grub-common")) << err.message;
}

// ============================================================================================
// Raspberry Pi tryboot
// ============================================================================================

BootloaderConfig tryboot_config(const stdfs::path& dir) {
  BootloaderConfig c;
  c.type = "tryboot";
  c.boot_dir = dir;
  return c;
}

TEST(Tryboot, SuccessfulTrial) {
  TempDir dir;
  auto bl = make(tryboot_config(dir.path()));
  EXPECT_EQ(bl->primary().error().code, Errc::not_found);
  ASSERT_TRUE(bl->mark_good(Slot::a).has_value());
  EXPECT_EQ(read_file(dir / "autoboot.txt"), "[all]\ntryboot_a_b=1\nboot_partition=2\n");
  EXPECT_EQ(bl->reboot_argument().value(), "");
  ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  EXPECT_EQ(read_file(dir / "autoboot.txt"), "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n");
  EXPECT_EQ(bl->trial_pending().value(), Slot::b);
  EXPECT_EQ(bl->reboot_argument().value(), "0 tryboot");
  EXPECT_EQ(bl->primary().value(), Slot::a);  // without the flag the firmware boots [all]
  EXPECT_EQ(boot_tryboot(dir.path(), true), Slot::b);
  ASSERT_TRUE(bl->mark_good(Slot::b).has_value());
  EXPECT_EQ(read_file(dir / "autoboot.txt"), "[all]\ntryboot_a_b=1\nboot_partition=3\n");
  EXPECT_EQ(bl->trial_pending().value(), std::nullopt);
  EXPECT_EQ(bl->reboot_argument().value(), "");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(boot_tryboot(dir.path(), false), Slot::b);
  EXPECT_FALSE(stdfs::exists(dir / "autoboot.txt.tmp"));
}

TEST(Tryboot, FailedTrialFallsBackByItself) {
  TempDir dir;
  write_file(dir / "autoboot.txt", "# provisioned\n[all]\ntryboot_a_b=1\nboot_partition=2\n");
  auto bl = make(tryboot_config(dir.path()));
  ASSERT_TRUE(bl->set_trial(Slot::b).has_value());
  EXPECT_EQ(boot_tryboot(dir.path(), true), Slot::b);   // the one-shot flag
  EXPECT_EQ(boot_tryboot(dir.path(), false), Slot::a);  // any reset clears it
  EXPECT_EQ(bl->trial_pending().value(), Slot::b);
  EXPECT_EQ(bl->primary().value(), Slot::a);
  EXPECT_EQ(bl->mark_bad(Slot::a).error().code, Errc::conflict);
  ASSERT_TRUE(bl->mark_bad(Slot::b).has_value());
  EXPECT_EQ(bl->trial_pending().value(), std::nullopt);
  EXPECT_EQ(bl->reboot_argument().value(), "");
}

TEST(Tryboot, PartitionNumbersAndBadFiles) {
  TempDir dir;
  auto c = tryboot_config(dir.path());
  c.partition_a = 5;
  c.partition_b = 6;
  auto bl = make(c);
  write_file(dir / "autoboot.txt", "[all]\nboot_partition=6\n");
  EXPECT_EQ(bl->primary().value(), Slot::b);
  write_file(dir / "autoboot.txt", "[all]\nboot_partition=2\n");
  auto err = bl->primary().error();
  EXPECT_EQ(err.code, Errc::invalid_argument);
  EXPECT_TRUE(contains(err.message, "boot_partition=2")) << err.message;
  write_file(dir / "autoboot.txt", "[all]\ntryboot_a_b=1\n");
  EXPECT_EQ(bl->primary().error().code, Errc::not_found);
  c.boot_dir = dir / "not-mounted";
  EXPECT_EQ(make(c)->mark_good(Slot::a).error().code, Errc::not_found);
}

// ============================================================================================
// The booted slot
// ============================================================================================

TEST(BootedSlot, FromRootInTheCommandLine) {
  TempDir dir;
  BootedSlotConfig c;
  c.cmdline = dir / "cmdline";
  c.device_a = "/dev/mmcblk0p2";
  c.device_b = "/dev/mmcblk0p3";
  write_file(c.cmdline, "console=ttyS0 root=/dev/mmcblk0p3 rootwait\n");
  EXPECT_EQ(booted_slot(c).value(), Slot::b);

  c.device_a = "/dev/disk/by-partuuid/abcd0001-02";
  c.device_b = "PARTUUID=abcd0001-03";
  write_file(c.cmdline, "root=PARTUUID=ABCD0001-02 ro");
  EXPECT_EQ(booted_slot(c).value(), Slot::a);
  write_file(c.cmdline, "root=/dev/disk/by-partuuid/abcd0001-03");
  EXPECT_EQ(booted_slot(c).value(), Slot::b);

  c.device_a = "PARTLABEL=rootfs-a";
  c.device_b = "LABEL=rootfs-b";
  write_file(c.cmdline, "root=/dev/disk/by-label/rootfs-b");
  EXPECT_EQ(booted_slot(c).value(), Slot::b);
  write_file(c.cmdline, "root=PARTLABEL=rootfs-a");
  EXPECT_EQ(booted_slot(c).value(), Slot::a);
  c.device_b = "UUID=0F3A-11";
  write_file(c.cmdline, "root=UUID=0f3a-11");
  EXPECT_EQ(booted_slot(c).value(), Slot::b);
}

TEST(BootedSlot, FollowsLinksAndReadsTheBootScriptsKey) {
  TempDir dir;
  write_file(dir / "sda2", "");
  write_file(dir / "sda3", "");
  stdfs::create_symlink(dir / "sda3", dir / "rootfs-b");
  BootedSlotConfig c;
  c.cmdline = dir / "cmdline";
  c.device_a = (dir / "sda2").string();
  c.device_b = (dir / "rootfs-b").string();
  write_file(c.cmdline, "root=" + (dir / "sda3").string());
  EXPECT_EQ(booted_slot(c).value(), Slot::b);

  c.cmdline_key = "rauc.slot";
  write_file(c.cmdline, "root=/dev/nfs rauc.slot=A");
  EXPECT_EQ(booted_slot(c).value(), Slot::a);
  write_file(c.cmdline, "rauc.slot=R");
  EXPECT_EQ(booted_slot(c).error().code, Errc::invalid_argument);
}

TEST(BootedSlot, ClearErrors) {
  TempDir dir;
  BootedSlotConfig c;
  c.cmdline = dir / "cmdline";
  c.device_a = "/dev/sda2";
  c.device_b = "/dev/sda3";
  EXPECT_EQ(booted_slot(c).error().code, Errc::not_found);
  write_file(c.cmdline, "root=/dev/sda5");
  auto err = booted_slot(c).error();
  EXPECT_EQ(err.code, Errc::not_found);
  EXPECT_TRUE(contains(err.message, "/dev/sda5") && contains(err.message, "/dev/sda2")) << err.message;
  write_file(c.cmdline, "quiet");
  EXPECT_EQ(booted_slot(c).error().code, Errc::not_found);
  c.device_b = "/dev/sda2";
  write_file(c.cmdline, "root=/dev/sda2");
  EXPECT_EQ(booted_slot(c).error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace eddy::bootenv
