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

#include <array>
#include <map>
#include <optional>
#include <ostream>
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
// The U-Boot environment a Mender-style board starts with ("NAME=value" lines; README, "Preparing
// a board"): bootlimit, altbootcmd and mender_altbootcmd, committed on partition `part_a`.
std::string mender_board_env(int part_a = 2, int part_b = 3);

// The Raspberry Pi firmware reading `dir`/autoboot.txt: lines apply under [all] (and before any
// section), lines under [tryboot] only when the reboot carried the one-shot tryboot flag (`reboot
// "0 tryboot"`), other filters not at all; the last boot_partition that applies wins. The flag
// is the firmware's, not the file's: any other reset boots without it.
bootenv::Slot boot_tryboot(const stdfs::path& dir, bool tryboot_flag, int part_a = 2, int part_b = 3);

// A grubenv file made by grub-editenv in `dir`, with `assignments` ("NAME=value") set.
stdfs::path make_grubenv(const stdfs::path& dir, const std::vector<std::string>& assignments);
std::map<std::string, std::string> grub_list(const stdfs::path& grubenv);

// Eddy's grub.cfg (platform/bootenv/grub.hpp): every slot looked at gets TRY=1; the first with
// OK=1 TRY=0 boots; none: the last name in ORDER boots; save_env A_TRY B_TRY.
bootenv::Slot boot_grub_rauc(const stdfs::path& grubenv);

// ---- A device with A/B root file system slots ----------------------------------------------

enum class BootScheme { uboot_rauc, grub_rauc, uboot_mender, tryboot };
// "UbootRauc", "GrubRauc", "UbootMender", "Tryboot": test-name suffixes.
std::string scheme_name(BootScheme scheme);
inline void PrintTo(BootScheme scheme, std::ostream* os) { *os << scheme_name(scheme); }

// One rootfs release for RootfsDevice::publish.
struct RootfsRelease {
  std::string version;
  int probe_exit = 0;              // the exec probe's exit status
  bool wrong_digest = false;       // a wrong sha256 of the payload, or with a delta a wrong image_sha256
  std::string delta_base;          // a delta (made by `eddy release delta`) from this image, when given
  std::size_t image_size = 3u << 20;
  std::optional<std::uint64_t> declared_size;  // `size:` other than the payload's own
  std::string extra_spec;          // more lines under spec: (indented by 2): compatible, allowDowngrade
};

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
  // not waited for. A boot that follows a reboot request whose arguments are "0 tryboot" carries
  // the firmware's tryboot flag (tryboot scheme); any other boot (a power cut, a hang) does not.
  bootenv::Slot boot(bool start = true, const std::map<std::string, std::string>& env = {});
  bool reboot_requested() const;
  // How many times the reboot command ran since the last boot.
  int reboot_requests() const;
  // The arguments of the last reboot command since the last boot, one word each (the reboot
  // script records them as eddyd passed them); empty when none ran.
  std::vector<std::string> reboot_arguments() const;

  // Publish rootfs `version` in the fleet repository: its image zstd-compressed, an exec probe
  // exiting with `probe_exit`, and a delta (made by `eddy release delta`) from `delta_base` when
  // given; `wrong_digest`: a wrong sha256 of the payload, or with a delta a wrong image_sha256; the image has `image_size` bytes (slots have
  // slot_size()). Returns the image.
  std::string publish(const std::string& version, int probe_exit = 0, bool wrong_digest = false,
                      const std::string& delta_base = {}, std::size_t image_size = 3u << 20);
  std::string publish(const RootfsRelease& release);
  static constexpr std::uint64_t slot_size() { return 8u << 20; }

  std::string slot_bytes(bootenv::Slot slot, std::size_t size) const;
  // The `rootfs` entry of `eddy status --json`'s targets (null if absent).
  nlohmann::json status() const;
  // `eddy check --json`'s outcome ("" when eddyd did not answer).
  std::string check(std::string* output = nullptr) const;
  // The slot that boots next if the device reboots now: the bootloader environment's primary
  // slot; for tryboot, what the firmware would boot with the flag of the reboot asked for (if any).
  bootenv::Slot primary() const;

  // Name `slot` by `spec` in eddyd.yaml's rootfs section (the slot files otherwise); eddyd reads
  // it at its next start.
  void set_slot_spec(bootenv::Slot slot, const std::string& spec);

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
  std::string bootloader_yaml_;
  std::array<std::string, 2> slot_specs_;  // rootfs.a and rootfs.b in eddyd.yaml
  int boots_ = 0;

  void write_config();
};

}  // namespace eddy::testing
