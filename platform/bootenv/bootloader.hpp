// The bootloader seam: which root slot boots next, a one-shot trial of the other slot, and the
// verdict on it (rauc's include/bootchooser.h). Backends sit beside this header: U-Boot
// (uboot.hpp: rauc and mender presets), GRUB (grub.hpp: rauc preset) and the Raspberry Pi
// firmware's tryboot (tryboot.hpp). Each header documents its variables and what the boot
// script does with them.
//
// The contract every backend keeps:
// - A committed system has exactly one boot target. Boot attempts are counted only while a
//   trial is pending, so power cuts on a committed system never make it fall back.
// - set_trial(slot) arms one trial boot (a small, fixed number of attempts); if the slot does
//   not come up and get marked good, the bootloader returns to the committed slot by itself.
// - mark_good(slot) commits: the slot becomes the only boot target and counting stops. It
//   writes the whole committed state, so it also provisions a fresh environment.
// - mark_bad(slot) takes a slot out of booting; marking the committed slot bad is refused
//   (Errc::conflict), as it would leave the device without a slot to boot.
// - Every change is one write of the environment: nothing is ever half-written.
//
// After a failed trial the device runs the old slot again: booted_slot() and primary() name the
// old slot, and trial_pending() still names the failed slot where the scheme keeps that trace
// (rauc presets, tryboot) or is empty where the bootloader resolved it (mender's altbootcmd).
// The caller, who recorded which slot it armed, tells a trial in progress (booted == trial
// slot) from a failed one (booted != trial slot) and settles it with mark_bad or mark_good.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "platform/error.hpp"

namespace eddy::bootenv {

enum class Slot { a, b };

// "A" / "B", as the presets name them.
std::string_view slot_name(Slot slot);
Slot other(Slot slot);
// "A", "a", "B", "b".
Expected<Slot> parse_slot(std::string_view name);

struct SlotState {
  bool good = false;                 // the scheme would boot it (rauc's get_state)
  std::optional<int> attempts_left;  // where the scheme counts attempts
};

class Bootloader {
 public:
  virtual ~Bootloader() = default;
  // The slot the bootloader will boot next if nothing changes.
  [[nodiscard]] virtual Expected<Slot> primary() = 0;
  [[nodiscard]] virtual Expected<SlotState> state(Slot slot) = 0;
  // Make `slot` primary for ONE trial boot; the other slot must be the committed one.
  [[nodiscard]] virtual Status set_trial(Slot slot) = 0;
  // Commit: `slot` becomes the permanent primary, boot counting stops.
  [[nodiscard]] virtual Status mark_good(Slot slot) = 0;
  // Never boot `slot` (before writing it, and after a failed trial).
  [[nodiscard]] virtual Status mark_bad(Slot slot) = 0;
  // The slot of an armed or running trial, if the environment still shows one.
  [[nodiscard]] virtual Expected<std::optional<Slot>> trial_pending() = 0;
  // What the caller passes to reboot(8) to boot into an armed trial: "0 tryboot" for the
  // Raspberry Pi firmware, empty for bootloaders that read their environment.
  [[nodiscard]] virtual Expected<std::string> reboot_argument() { return std::string(); }
  [[nodiscard]] virtual std::string_view name() const = 0;
};

struct BootloaderConfig {
  std::string type;                  // uboot | grub | tryboot
  std::string preset;                // uboot: rauc (default) | mender; grub: rauc (default); tryboot: none
  std::filesystem::path env_config;  // uboot: fw_env.config given to fw_printenv/fw_setenv -c
  std::filesystem::path grub_env;    // grub: the grubenv file
  std::filesystem::path boot_dir;    // tryboot: the boot partition holding autoboot.txt
  // Overrides of the scheme's variable names, by role (each backend lists its roles).
  std::map<std::string, std::string> variables;
  std::string bootname_a = "A", bootname_b = "B";  // rauc presets: names in BOOT_ORDER / ORDER
  int partition_a = 2, partition_b = 3;            // mender_boot_part and tryboot boot_partition
  int trial_attempts = 1;                          // uboot rauc: BOOT_<slot>_LEFT of a trial
  int committed_attempts = 3;                      // uboot rauc: BOOT_<slot>_LEFT of the committed/fallback slot
  std::string fw_printenv = "fw_printenv", fw_setenv = "fw_setenv";
  std::string grub_editenv = "grub-editenv";
};

[[nodiscard]] Expected<std::unique_ptr<Bootloader>> make_bootloader(const BootloaderConfig& config);

// How the running system tells which slot it booted from.
struct BootedSlotConfig {
  std::filesystem::path cmdline = "/proc/cmdline";
  // Matched against `root=`: /dev/..., PARTUUID=, PARTLABEL=, UUID=, LABEL= or the matching
  // /dev/disk/by-*/ link; symbolic links are followed on both sides where they exist.
  std::string device_a, device_b;
  // A kernel argument the boot script sets to the slot's bootname (rauc.slot=A); checked first.
  std::string cmdline_key;
  std::string bootname_a = "A", bootname_b = "B";
};

[[nodiscard]] Expected<Slot> booted_slot(const BootedSlotConfig& config);

}  // namespace eddy::bootenv
