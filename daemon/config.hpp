// eddyd's configuration, /etc/eddy/eddyd.yaml (the format is the contract in DESIGN.md,
// "Device configuration"; packaging/eddyd.yaml documents every key). Parsing is strict: an
// unknown key, a value of the wrong type or a missing required field is Errc::invalid_argument
// with "file:line: what (what to do)". Relative paths are taken relative to the folder of the
// configuration file.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/bootenv/bootloader.hpp"
#include "platform/container_runtime.hpp"
#include "platform/duration.hpp"
#include "platform/error.hpp"

namespace eddy::daemon {

struct AppConfig {
  std::string name;
  std::filesystem::path dir;             // versions/<version>/ and current -> versions/<version>
  std::vector<std::string> run;          // supervised by eddyd, cwd = current/
  std::vector<std::string> restart;      // or: a command that restarts the app (run and restart exclude each other)
  std::uint64_t max_unpacked_bytes = 1ull << 30;  // key max_unpacked: "512MiB", "2GB" or a number of bytes
  int keep_versions = 2;                 // versions kept on disk, the current one included (>= 2: rollback needs one)
};

// containers: {runtime: podman | docker, keep: 2}. Present (even empty): releases of payload type
// container are installed, through `runtime` (default: podman if on PATH, else docker).
struct ContainersConfig {
  std::optional<RuntimeKind> runtime;
  int keep = 2;  // images kept per container target, the running one included (>= 1)
};

// rootfs: the A/B root file system slots (target `rootfs`, payload type rootfs). Present: releases
// of payload type rootfs are installed into the slot that did not boot, tried once through the
// bootloader and committed by the health analysis run after the reboot.
struct RootfsConfig {
  std::string slot_a, slot_b;  // a: / b: a device path, or LABEL=, UUID=, PARTLABEL=, PARTUUID=
  // How the booted slot is told: cmdline (default /proc/cmdline), its root= matched against the
  // slots, or cmdline_key (rauc.slot=A) when set.
  bootenv::BootedSlotConfig booted;
  bootenv::BootloaderConfig bootloader;              // bootloader: {type, preset, env_config, ...}
  std::vector<std::string> reboot{"systemctl", "reboot"};  // the bootloader's reboot argument is appended
  int max_reboots = 3;  // reboots one update may ask for; a loop stops there
  // Changes at every boot: tells a reboot that happened from one that was only asked for.
  std::filesystem::path boot_id = "/proc/sys/kernel/random/boot_id";
};

struct Config {
  std::filesystem::path file;                 // where it was read from
  std::string device_id;                      // device.id; default: contents of device.machine_id_file
  std::map<std::string, std::string> labels;  // device.labels
  std::string source_url;
  std::string source_branch = "main";
  std::chrono::milliseconds source_interval{60000};
  std::filesystem::path allowed_signers;      // required
  std::optional<std::string> hub_url;         // hub section; absent: steps are paced by time
  std::filesystem::path hub_token_file;
  std::filesystem::path hub_ca_file;          // empty: the system's CA certificates
  std::int64_t hub_outbox_limit = 10000;      // hub.outbox_limit: reports kept while the hub is away
  std::filesystem::path data_dir = "/var/lib/eddy";
  std::filesystem::path socket = "/run/eddy/eddyd.sock";
  std::string socket_group;                   // default "eddy" if that group exists, else none ("")
  std::map<std::string, AppConfig> apps;
  std::optional<ContainersConfig> containers;
  std::optional<RootfsConfig> rootfs;
  std::string log_level = "info";             // error | warning | notice | info | debug
};

// Read and parse a configuration file.
[[nodiscard]] Expected<Config> load_config(const std::filesystem::path& file);
// Parse configuration text; `file` names it in messages and anchors relative paths.
[[nodiscard]] Expected<Config> parse_config(std::string_view yaml, const std::filesystem::path& file);
// What parsing cannot see, for `eddyd --check-config` and start-up: allowed_signers readable,
// the hub's token file readable and holding one token, its CA file readable, data_dir creatable
// (it is created), app folders creatable. Reports every problem found, one a line.
[[nodiscard]] Status check_config(const Config& config);
// rootfs.a and rootfs.b resolve to devices that exist (a path, or the /dev/disk/by-* link udev
// makes for PARTLABEL= and the like): Errc::not_found naming each slot that does not, one a
// line. Apart from check_config because it is an error for `eddyd --check-config` but only a
// warning when eddyd starts: at boot udev may not have made the links yet, and the update
// worker resolves the slot again when it writes one.
[[nodiscard]] Status check_rootfs_slots(const Config& config);

// "512MiB", "1GiB", "100MB", "64k", "1048576": a size in bytes. Units B, K/KB (1000),
// KiB (1024), M/MB, MiB, G/GB, GiB, T/TB, TiB; case of the unit letters is ignored.
[[nodiscard]] Expected<std::uint64_t> parse_size(std::string_view text);

}  // namespace eddy::daemon
