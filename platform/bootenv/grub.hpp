// GRUB through grub-editenv (Debian grub-common) on a grubenv file.
//
// Preset `rauc` (RAUC's src/bootloaders/grub.c and its contrib/grub.conf).
//   Roles: order=ORDER, ok_a=<A>_OK, try_a=<A>_TRY, ok_b=<B>_OK, try_b=<B>_TRY.
//   grub.cfg: `load_env`; for each name in ORDER, set its TRY=1 and boot the first whose saved
//   OK=1 and TRY=0; `save_env A_TRY B_TRY`. Userspace clears TRY when the boot is good.
//   Eddy's grub.cfg differs from RAUC's example in one place: when no slot is left to try it
//   boots the last name in ORDER (the committed fallback) and re-arms nothing, where RAUC's
//   example resets the TRY flags and boots a rescue entry:
//       set ORDER="A B"; set A_OK=0; set B_OK=0; set A_TRY=0; set B_TRY=0
//       load_env
//       set default=""
//       for SLOT in $ORDER; do
//         if [ "$SLOT" == "A" ]; then INDEX=0; OK=$A_OK; TRY=$A_TRY; A_TRY=1; fi
//         if [ "$SLOT" == "B" ]; then INDEX=1; OK=$B_OK; TRY=$B_TRY; B_TRY=1; fi
//         LAST=$INDEX
//         if [ -z "$default" -a "$OK" -eq 1 -a "$TRY" -eq 0 ]; then default=$INDEX; fi
//       done
//       if [ -z "$default" ]; then default=$LAST; fi
//       save_env A_TRY B_TRY
//       menuentry "Slot A" { linux (hd0,2)/kernel root=PARTLABEL=rootfs-a rauc.slot=A ... }
//       menuentry "Slot B" { linux (hd0,3)/kernel root=PARTLABEL=rootfs-b rauc.slot=B ... }
//   Eddy's states:      ORDER    <new>_OK <new>_TRY   <old>_OK <old>_TRY
//     committed on X    "X"      X: 1     X: 0        0        0
//     trial of Y        "Y X"    Y: 1     Y: 0        X: 1     X: 0
//   A committed system lists one slot: once its TRY is set (a power cut before eddyd clears
//   it), GRUB still boots it as the last name in ORDER. A trial slot gets one boot.
//
// grub-editenv rewrites its file in place; Eddy edits a copy in the same folder and renames it
// over the original (after fsync), so a power cut leaves the old or the new block, never a
// truncated one.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "platform/bootenv/bootloader.hpp"
#include "platform/error.hpp"

namespace eddy::bootenv {

class GrubEnvironment {
 public:
  explicit GrubEnvironment(std::filesystem::path file, std::string grub_editenv = "grub-editenv");
  [[nodiscard]] Expected<std::map<std::string, std::string>> read() const;
  // All variables set in one atomic replacement of the file.
  [[nodiscard]] Status write(const std::vector<std::pair<std::string, std::string>>& changes) const;
  std::string describe() const { return "GRUB environment " + file_.string(); }

 private:
  std::filesystem::path file_;
  std::string tool_;
};

[[nodiscard]] Expected<std::unique_ptr<Bootloader>> make_grub_bootloader(const BootloaderConfig& config);

}  // namespace eddy::bootenv
