// U-Boot through libubootenv's fw_printenv / fw_setenv (Debian libubootenv-tool), on the
// environment that a fw_env.config names (a device, or a file for tests; redundant copies work).
//
// Preset `rauc` (RAUC's src/bootloaders/uboot.c and its contrib/uboot.sh boot script).
//   Roles: order=BOOT_ORDER, left_a=BOOT_<bootname_a>_LEFT, left_b=BOOT_<bootname_b>_LEFT.
//   Boot script: for each name in BOOT_ORDER, the first whose LEFT (hex) is > 0 is booted after
//   LEFT is decremented and saved; when none is left, every LEFT is reset to 3 and the board
//   resets (so the first name in BOOT_ORDER boots again).
//   Eddy's states:      BOOT_ORDER   BOOT_<new>_LEFT      BOOT_<old>_LEFT
//     committed on X    "X"          X: committed (3)     0
//     trial of Y        "Y X"        Y: trial (1)         X: committed (3)
//   A committed system lists one slot, so a counter that runs out (power cuts before eddyd
//   refreshes it) resets and boots the same slot: it never falls back. A trial slot gets
//   `trial_attempts` boots, then the script boots X; two names in BOOT_ORDER mean a trial.
//
// Preset `mender` (meta-mender's env_mender.h with CONFIG_BOOTCOUNT_LIMIT/BOOTCOUNT_ENV, and
// what Mender's rootfs-image update module writes).
//   Roles: boot_part=mender_boot_part, boot_part_hex=mender_boot_part_hex,
//          upgrade_available=upgrade_available, bootcount=bootcount, bootlimit=bootlimit.
//   Boot: while upgrade_available=1, U-Boot increments bootcount at each boot; when bootcount
//   exceeds bootlimit (1), altbootcmd (mender_altbootcmd) switches mender_boot_part to the
//   other partition and sets upgrade_available=0. With upgrade_available=0 bootcount is ignored.
//   set_trial(Y):  mender_boot_part=<Y> mender_boot_part_hex=<Y hex> upgrade_available=1 bootcount=0
//   mark_good(S):  mender_boot_part=<S> mender_boot_part_hex=<S hex> upgrade_available=0 bootcount=0
//   mark_bad(trial slot): back to the other partition, upgrade_available=0 bootcount=0 (Mender's
//   rollback); the inactive slot has no state in this scheme, so marking it bad writes nothing.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "platform/bootenv/bootloader.hpp"
#include "platform/error.hpp"

namespace eddy::bootenv {

class UbootEnvironment {
 public:
  UbootEnvironment(std::filesystem::path config, std::string fw_printenv = "fw_printenv",
                   std::string fw_setenv = "fw_setenv");
  // Every variable (fw_printenv -c CONFIG). A CRC error or a missing file is an error naming
  // the environment, never the default environment that libubootenv falls back to.
  [[nodiscard]] Expected<std::map<std::string, std::string>> read() const;
  // All changes in one write (fw_setenv -c CONFIG -s -); a nullopt value deletes the variable.
  [[nodiscard]] Status write(const std::vector<std::pair<std::string, std::optional<std::string>>>& changes) const;
  // "U-Boot environment /boot/uboot.env (fw_env.config /etc/fw_env.config)", for messages.
  std::string describe() const;

 private:
  std::filesystem::path config_;
  std::string fw_printenv_, fw_setenv_;
};

[[nodiscard]] Expected<std::unique_ptr<Bootloader>> make_uboot_bootloader(const BootloaderConfig& config);

}  // namespace eddy::bootenv
