// The Raspberry Pi firmware's own A/B boot (Pi 4 and 5, no U-Boot): autoboot.txt in the boot
// partition (FAT, partition 1) names the partition to boot; `reboot "0 tryboot"` sets a
// one-shot flag under which the firmware reads the [tryboot] section instead.
//
//   committed on X:   [all]  tryboot_a_b=1  boot_partition=<X>
//   trial of Y:       [all]  tryboot_a_b=1  boot_partition=<X>
//                     [tryboot]             boot_partition=<Y>
//
// The trial is one boot by construction: the firmware clears the flag, so any reset of the
// trial system (watchdog, power cut, failed boot) returns to [all]. Nothing counts on a
// committed system. mark_good(Y) rewrites [all] to Y and drops [tryboot]; mark_bad(Y) drops
// [tryboot]. The file is replaced atomically (temp file, fsync, rename, fsync folder); Eddy
// owns it, so other lines in it are not kept. Partition numbers per slot are configurable
// (BootloaderConfig::partition_a/b, defaults 2 and 3).
#pragma once

#include <memory>

#include "platform/bootenv/bootloader.hpp"
#include "platform/error.hpp"

namespace eddy::bootenv {

[[nodiscard]] Expected<std::unique_ptr<Bootloader>> make_tryboot_bootloader(const BootloaderConfig& config);

}  // namespace eddy::bootenv
