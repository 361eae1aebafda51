// The A/B root file system target (`rootfs`, payload type rootfs) behind the Installer seam: the
// image goes to the slot that did not boot, the bootloader tries it for one boot, and the
// release's analysis on the new system decides mark_good (commit) or back to the old slot. What
// it must remember across reboots lives in the state store:
//   rootfs:slot:A / rootfs:slot:B  the version written to each slot ("" while being written)
//   rootfs:committed               the slot the bootloader boots for good (A or B)
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ota/installer.hpp"
#include "platform/bootenv/bootloader.hpp"
#include "storage/state_store.hpp"

namespace eddy::ota {

// eddyd.yaml `rootfs:` (daemon/config.hpp RootfsConfig), as the updater needs it.
struct RootfsOptions {
  std::string slot_a, slot_b;  // device paths or LABEL=/UUID=/PARTLABEL=/PARTUUID=
  std::filesystem::path dev_dir = "/dev";
  bootenv::BootedSlotConfig booted;
  bootenv::BootloaderConfig bootloader;
  std::vector<std::string> reboot{"systemctl", "reboot"};
  int max_reboots = 3;
  std::filesystem::path boot_id = "/proc/sys/kernel/random/boot_id";
};

class RootfsInstaller final : public Installer {
 public:
  // `work_dir`: where the release's hooks and exec probes run (created when missing).
  static Expected<std::unique_ptr<RootfsInstaller>> create(const RootfsOptions& options, storage::StateStore& store,
                                                           std::filesystem::path work_dir);

  const std::string& name() const override { return name_; }
  std::filesystem::path version_dir(std::string_view) const override { return work_dir_; }
  std::filesystem::path active_dir() const override { return work_dir_; }
  Status before_download(const Release&, std::string_view) override { return {}; }
  // Mark the inactive slot bad, write the image into it (decoded as it streams, fsynced, read
  // back), then record which version it holds.
  Status stage(const Release& release, ByteStream& bytes) override;
  bool is_staged(std::string_view version) override;
  // A slot holding `version` that did not boot: marked bad, its record cleared.
  Status discard(std::string_view version) override;
  // Arm one trial boot of the slot holding the release.
  Status switch_in(const Release& release) override;
  // The new system runs after the reboot; nothing to start here.
  Status run(const Release&, std::string_view) override { return {}; }
  // The trial slot booted and passed: it becomes the committed slot (mark_good).
  Status promote(const Release& release, std::string_view previous) override;
  // The committed slot boots again: the other one is marked bad, the committed one good.
  Status restore(std::string_view previous, std::vector<std::string>& warnings) override;
  // The version recorded for the booted slot.
  std::optional<std::string> current_version() override;
  Status start(std::string_view) override { return {}; }
  Status prune(const std::set<std::string>&) override { return {}; }
  bool activates_by_reboot() const override { return true; }
  // The first of the release's deltas whose base is the active slot (its first from_size bytes
  // hash to from_sha256), remembered for stage(); nullopt when none fits.
  Expected<std::optional<DeltaSpec>> delta_for(const Release& release) override;
  Expected<bool> restore_needs_reboot() override;
  Status reboot() override;
  Expected<std::string> boot_id() override;

  Expected<bootenv::Slot> booted();

 private:
  RootfsInstaller(const RootfsOptions& options, storage::StateStore& store, std::filesystem::path work_dir,
                  std::unique_ptr<bootenv::Bootloader> bootloader)
      : options_(options), store_(store), work_dir_(std::move(work_dir)), bootloader_(std::move(bootloader)) {}
  Expected<std::optional<bootenv::Slot>> slot_holding(std::string_view version);
  Expected<bootenv::Slot> committed();
  Expected<std::filesystem::path> device(bootenv::Slot slot) const;

  std::string name_ = "rootfs";
  const RootfsOptions& options_;
  storage::StateStore& store_;
  std::filesystem::path work_dir_;
  std::unique_ptr<bootenv::Bootloader> bootloader_;
  std::optional<DeltaSpec> delta_;  // what delta_for() chose: stage() rebuilds the image from it
};

}  // namespace eddy::ota
