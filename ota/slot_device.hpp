// Naming a slot's device in eddyd.yaml (rootfs.a / rootfs.b). In the resident library, so that
// eddyd --check-config resolves the slots without linking the update engine.
#pragma once

#include <filesystem>
#include <string_view>

#include "platform/error.hpp"

namespace eddy::ota {

// Resolve a slot's device from configuration: "/dev/mmcblk0p2" (or any absolute path, such as
// a file standing in for a slot), "PARTUUID=…", "PARTLABEL=…", "UUID=…", "LABEL=…" through the
// links in <dev_dir>/disk/by-partuuid, by-partlabel, by-uuid and by-label that udev makes
// (labels escaped the way udev escapes them, UUIDs matched without regard to case). Paths under
// /dev are looked up under `dev_dir` (tests pass a fake /dev tree). Returns the device the link
// points at. Errors: Errc::invalid_argument for an unknown form, Errc::not_found naming the
// spec and the folder looked in.
Expected<std::filesystem::path> resolve_slot_device(std::string_view spec,
                                                    const std::filesystem::path& dev_dir = "/dev");

}  // namespace eddy::ota
