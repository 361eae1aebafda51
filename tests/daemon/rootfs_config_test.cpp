// eddyd.yaml's `rootfs:` section (issue 3): the A/B slots, how the booted slot is told, the
// bootloader, the reboot command and the cap on reboots.
#include <gtest/gtest.h>

#include "daemon/config.hpp"
#include "tests/support/support.hpp"

namespace {

using eddy::Errc;
using eddy::daemon::check_config;
using eddy::daemon::check_rootfs_slots;
using eddy::daemon::parse_config;
using eddy::testing::TempDir;
using eddy::testing::write_file;

constexpr const char* file = "/etc/eddy/eddyd.yaml";

constexpr const char* minimal = "device: {id: dev-1}\n"
                                "source:\n"
                                "  url: file:///srv/fleet.git\n"
                                "  allowed_signers: /etc/eddy/allowed_signers\n";

std::string with_rootfs(const std::string& rootfs) { return minimal + ("rootfs:\n" + rootfs); }

// Parse, expect Errc::invalid_argument naming the file, `line` and `needle`.
void expect_refused(const std::string& yaml, int line, const std::string& needle) {
  auto config = parse_config(yaml, file);
  ASSERT_FALSE(config) << yaml;
  EXPECT_EQ(config.error().code, Errc::invalid_argument) << config.error().message;
  EXPECT_TRUE(config.error().message.starts_with(std::string(file) + ":" + std::to_string(line) + ":"))
      << "expected line " << line << " in: " << config.error().message;
  EXPECT_NE(config.error().message.find(needle), std::string::npos)
      << "expected `" << needle << "` in: " << config.error().message;
}

TEST(ConfigRootfs, AbsentMeansNoRootfsReleases) {
  auto config = parse_config(minimal, file);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_FALSE(config->rootfs);
}

TEST(ConfigRootfs, UbootWithDefaults) {
  auto config = parse_config(with_rootfs("  a: /dev/mmcblk0p2\n"
                                         "  b: PARTLABEL=rootfs-b\n"
                                         "  bootloader: {type: uboot, env_config: /etc/fw_env.config}\n"),
                             file);
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_TRUE(config->rootfs);
  const auto& r = *config->rootfs;
  EXPECT_EQ(r.slot_a, "/dev/mmcblk0p2");
  EXPECT_EQ(r.slot_b, "PARTLABEL=rootfs-b");
  EXPECT_EQ(r.booted.cmdline, "/proc/cmdline");
  EXPECT_EQ(r.booted.device_a, "/dev/mmcblk0p2");
  EXPECT_EQ(r.booted.device_b, "PARTLABEL=rootfs-b");
  EXPECT_TRUE(r.booted.cmdline_key.empty());
  EXPECT_EQ(r.bootloader.type, "uboot");
  EXPECT_EQ(r.bootloader.env_config, "/etc/fw_env.config");
  EXPECT_EQ(r.reboot, (std::vector<std::string>{"systemctl", "reboot"}));
  EXPECT_EQ(r.max_reboots, 3);
  EXPECT_EQ(r.boot_id, "/proc/sys/kernel/random/boot_id");
}

TEST(ConfigRootfs, EveryKeyAndRelativePaths) {
  auto config = parse_config(with_rootfs("  a: UUID=1234-abcd\n"
                                         "  b: LABEL=root-b\n"
                                         "  cmdline: cmdline.txt\n"
                                         "  cmdline_key: rauc.slot\n"
                                         "  bootloader:\n"
                                         "    type: grub\n"
                                         "    preset: rauc\n"
                                         "    grub_env: boot/grubenv\n"
                                         "    variables: {order: MY_ORDER}\n"
                                         "    bootname_a: system0\n"
                                         "    bootname_b: system1\n"
                                         "    partition_a: 5\n"
                                         "    partition_b: 6\n"
                                         "  reboot: [/sbin/reboot, -f]\n"
                                         "  max_reboots: 5\n"
                                         "  boot_id: boot-id\n"),
                             "/etc/eddy/eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  const auto& r = *config->rootfs;
  EXPECT_EQ(r.booted.cmdline, "/etc/eddy/cmdline.txt");
  EXPECT_EQ(r.booted.cmdline_key, "rauc.slot");
  EXPECT_EQ(r.bootloader.type, "grub");
  EXPECT_EQ(r.bootloader.grub_env, "/etc/eddy/boot/grubenv");
  EXPECT_EQ(r.bootloader.variables.at("order"), "MY_ORDER");
  EXPECT_EQ(r.bootloader.bootname_a, "system0");
  EXPECT_EQ(r.bootloader.bootname_b, "system1");
  EXPECT_EQ(r.booted.bootname_b, "system1");
  EXPECT_EQ(r.bootloader.partition_a, 5);
  EXPECT_EQ(r.bootloader.partition_b, 6);
  EXPECT_EQ(r.reboot, (std::vector<std::string>{"/sbin/reboot", "-f"}));
  EXPECT_EQ(r.max_reboots, 5);
  EXPECT_EQ(r.boot_id, "/etc/eddy/boot-id");
}

TEST(ConfigRootfs, BadInputNamesFileLineAndTheRemedy) {
  const std::string uboot = "  bootloader: {type: uboot, env_config: /etc/fw_env.config}\n";
  expect_refused(with_rootfs("  a: /dev/sda2\n" + uboot), 6, "has no `b`");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda2\n" + uboot), 6, "name the same device");
  expect_refused(with_rootfs("  a: sda2\n  b: /dev/sda3\n" + uboot), 6, "absolute device path");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n"), 6, "has no `bootloader`");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n  bootloader: {type: lilo}\n"), 8,
                 "unknown bootloader type `lilo`");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n  bootloader: {type: uboot, preset: barebox, "
                             "env_config: /x}\n"),
                 8, "unknown preset `barebox`");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n  bootloader: {type: grub}\n"), 8, "grub_env");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n  bootloader: {type: tryboot, boot_dir: /boot, "
                             "partition_a: 0}\n"),
                 8, "partition_a");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n  bootloader: {preset: rauc}\n"), 8, "has no `type`");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n  bootloader: {type: uboot, env_confg: /x}\n"), 8,
                 "did you mean `env_config`");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n" + uboot + "  max_reboots: 0\n"), 9,
                 "rootfs.max_reboots");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n" + uboot + "  reboot: systemctl reboot\n"), 9,
                 "list of words");
  expect_refused(with_rootfs("  a: /dev/sda2\n  b: /dev/sda3\n" + uboot + "  slots: {}\n"), 9,
                 "unknown key `slots`");
}

// A configuration in `dir` whose slots are the files slot-a and slot-b there (made), booted from A.
std::string rootfs_device_yaml(const TempDir& dir) {
  write_file(dir / "allowed_signers", "dev@example.com ssh-ed25519 AAAA\n");
  write_file(dir / "slot-a", "");
  write_file(dir / "slot-b", "");
  write_file(dir / "cmdline", "console=ttyS0 root=" + (dir / "slot-a").string() + " rw\n");
  return std::string("device: {id: dev-1}\nsource: {url: file:///srv/fleet.git, allowed_signers: allowed_signers}\n"
                     "data_dir: data\nsocket: eddyd.sock\nsocket_group: \"\"\nrootfs:\n  a: ") +
         (dir / "slot-a").string() + "\n  b: " + (dir / "slot-b").string() +
         "\n  cmdline: cmdline\n  bootloader: {type: grub, grub_env: grubenv}\n";
}

TEST(ConfigRootfs, CheckConfigTellsTheBootedSlot) {
  TempDir dir;
  auto config = parse_config(rootfs_device_yaml(dir), dir / "eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  auto ok = check_config(*config);
  EXPECT_TRUE(ok) << ok.error().message;

  // A command line that names neither slot.
  write_file(dir / "cmdline", "root=/dev/elsewhere\n");
  auto bad = check_config(*config);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("rootfs"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("root=/dev/elsewhere"), std::string::npos) << bad.error().message;
}

// eddyd --check-config (and, as a warning, eddyd's start) names each slot whose device is not there.
TEST(ConfigRootfs, CheckRootfsSlotsNamesEachSlotThatDoesNotResolve) {
  TempDir dir;
  auto config = parse_config(rootfs_device_yaml(dir), dir / "eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  auto ok = check_rootfs_slots(*config);
  EXPECT_TRUE(ok) << ok.error().message;

  std::filesystem::remove(dir / "slot-b");
  auto one = check_rootfs_slots(*config);
  ASSERT_FALSE(one);
  EXPECT_EQ(one.error().code, Errc::not_found);
  for (const auto& needle : {(dir / "eddyd.yaml").string(), std::string("rootfs.b"), (dir / "slot-b").string()})
    EXPECT_NE(one.error().message.find(needle), std::string::npos) << needle << " in " << one.error().message;
  EXPECT_EQ(one.error().message.find("rootfs.a"), std::string::npos) << one.error().message;
  EXPECT_TRUE(check_config(*config)) << "the booted slot A is still told";

  std::filesystem::remove(dir / "slot-a");
  auto both = check_rootfs_slots(*config);
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().message.find("2 problems"), std::string::npos) << both.error().message;
  EXPECT_NE(both.error().message.find("rootfs.a"), std::string::npos) << both.error().message;

  auto without = parse_config(minimal, file);
  ASSERT_TRUE(without) << without.error().message;
  EXPECT_TRUE(check_rootfs_slots(*without));  // no rootfs section: nothing to look up
}

}  // namespace
