// The "bootloader side" of the boot schemes (as RAUC's test suite does with its fake
// bootloader): file-backed environments made with the real tools (mkenvimage + fw_env.config,
// grub-editenv), and one simulated boot of each scheme's boot script that updates the environment
// through the same tools and returns the slot that boots. Used by tests/platform/bootenv_test.cpp
// and the rootfs end-to-end tests, whose device (RootfsDevice, below) is a real eddyd with
// file-backed A/B slots and a real file-backed bootloader environment, following a signed fleet
// repository. The harness is the bootloader and the power supply: the reboot command is a script
// that tells it, and RootfsDevice::boot() stops eddyd, runs the boot script's logic on the
// environment, writes the kernel command line naming the slot that booted and a new boot id, and
// starts eddyd again.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/bootenv/bootloader.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/support.hpp"

namespace eddy::testing {

// "NAME=value" lines (fw_printenv, grub-editenv list) as a map.
std::map<std::string, std::string> parse_env_lines(const std::string& text);

// A U-Boot environment image made by mkenvimage from `variables` ("NAME=value" lines) in `dir`,
// and the fw_env.config naming it (two copies with `redundant`); returns the config's path.
stdfs::path make_uboot_env(const stdfs::path& dir, const std::string& variables, bool redundant = false);
std::map<std::string, std::string> printenv(const stdfs::path& env_config);

// RAUC's contrib/uboot.sh: the first slot in BOOT_ORDER with LEFT > 0 boots after LEFT is
// decremented and saved; none left: every LEFT back to 3, saveenv, reset (boot again).
bootenv::Slot boot_uboot_rauc(const stdfs::path& env_config);

// U-Boot with CONFIG_BOOTCOUNT_LIMIT + CONFIG_BOOTCOUNT_ENV and meta-mender's env_mender.h:
// bootcount counts only while upgrade_available=1; past bootlimit, mender_altbootcmd switches
// mender_boot_part and clears upgrade_available; then mender_boot_part boots.
bootenv::Slot boot_uboot_mender(const stdfs::path& env_config, int part_a = 2, int part_b = 3);

// A grubenv file made by grub-editenv in `dir`, with `assignments` ("NAME=value") set.
stdfs::path make_grubenv(const stdfs::path& dir, const std::vector<std::string>& assignments);
std::map<std::string, std::string> grub_list(const stdfs::path& grubenv);

// Eddy's grub.cfg (platform/bootenv/grub.hpp): every slot looked at gets TRY=1; the first with
// OK=1 TRY=0 boots; none: the last name in ORDER boots; save_env A_TRY B_TRY.
bootenv::Slot boot_grub_rauc(const stdfs::path& grubenv);

// ---- A device with A/B root file system slots ----------------------------------------------

enum class BootScheme { uboot_rauc, grub_rauc };

// A root file system image of `size` bytes whose content depends on `version`: runs of repeated
// bytes (compresses like a file system) with noise between them.
std::string rootfs_image(const std::string& version, std::size_t size = 3u << 20);

class RootfsDevice {
 public:
  // Slot A holds factory_image() and is committed in the environment; nothing runs yet.
  RootfsDevice(const stdfs::path& dir, BootScheme scheme);
  ~RootfsDevice();

  // The bootloader's side of one boot (see above). `start`: eddyd starts on the booted system
  // (false: the new kernel hangs); `env` goes to eddyd (EDDY_FAULT_KILL_AT=...), which is then
  // not waited for.
  bootenv::Slot boot(bool start = true, const std::map<std::string, std::string>& env = {});
  bool reboot_requested() const;
  // How many times the reboot command ran since the last boot.
  int reboot_requests() const;

  // Publish rootfs `version` in the fleet repository: its image zstd-compressed, an exec probe
  // exiting with `probe_exit`, and a delta (made by `eddy release delta`) from `delta_base` when
  // given; `wrong_digest`: a wrong sha256 of the payload, or with a delta a wrong image_sha256; the image has `image_size` bytes (slots have
  // slot_size()). Returns the image.
  std::string publish(const std::string& version, int probe_exit = 0, bool wrong_digest = false,
                      const std::string& delta_base = {}, std::size_t image_size = 3u << 20);
  static constexpr std::uint64_t slot_size() { return 8u << 20; }

  std::string slot_bytes(bootenv::Slot slot, std::size_t size) const;
  // The `rootfs` entry of `eddy status --json`'s targets (null if absent).
  nlohmann::json status() const;
  // `eddy check --json`'s outcome ("" when eddyd did not answer).
  std::string check(std::string* output = nullptr) const;
  // The bootloader's own view: the slot it boots next, and whether a trial is armed.
  bootenv::Slot primary() const;

  Device& device() { return *device_; }
  const std::string& factory_image() const { return factory_; }
  stdfs::path slot_path(bootenv::Slot slot) const;

 private:
  stdfs::path dir_;
  BootScheme scheme_;
  std::string factory_;
  std::unique_ptr<Fleet> fleet_;
  std::unique_ptr<Device> device_;
  stdfs::path env_;
  bootenv::BootloaderConfig bootloader_;
  int boots_ = 0;
};

}  // namespace eddy::testing
