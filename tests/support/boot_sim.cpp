#include "tests/support/boot_sim.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <sstream>

#include "platform/bootenv/detail.hpp"
#include "platform/bootenv/grub.hpp"
#include "platform/bootenv/uboot.hpp"

namespace eddy::testing {

using bootenv::GrubEnvironment;
using bootenv::parse_slot;
using bootenv::Slot;
using bootenv::UbootEnvironment;
namespace detail = bootenv::detail;

std::map<std::string, std::string> parse_env_lines(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

// ---- U-Boot fixtures and boot-script simulations --------------------------------------------

// A U-Boot environment image made by mkenvimage, and the fw_env.config that names it.
stdfs::path make_uboot_env(const stdfs::path& dir, const std::string& variables, bool redundant) {
  write_file(dir / "env.txt", variables);
  std::string config;
  if (redundant) {
    run_ok({"mkenvimage", "-r", "-s", "0x4000", "-o", (dir / "uboot1.env").string(), (dir / "env.txt").string()});
    stdfs::copy_file(dir / "uboot1.env", dir / "uboot2.env");
    config = (dir / "uboot1.env").string() + " 0x0 0x4000\n" + (dir / "uboot2.env").string() + " 0x0 0x4000\n";
  } else {
    run_ok({"mkenvimage", "-s", "0x4000", "-o", (dir / "uboot.env").string(), (dir / "env.txt").string()});
    config = (dir / "uboot.env").string() + " 0x0 0x4000\n";
  }
  write_file(dir / "fw_env.config", config);
  return dir / "fw_env.config";
}

std::map<std::string, std::string> printenv(const stdfs::path& config) {
  return parse_env_lines(run_ok({"fw_printenv", "-c", config.string()}));
}

namespace {
std::string hex(long v) {
  std::ostringstream s;
  s << std::hex << v;
  return s.str();
}
}  // namespace

// RAUC's contrib/uboot.sh: the first slot in BOOT_ORDER with LEFT > 0 boots after LEFT is
// decremented and saved; none left: every LEFT back to 3, saveenv, reset (boot again).
Slot boot_uboot_rauc(const stdfs::path& config) {
  UbootEnvironment env(config);
  for (int pass = 0; pass < 2; ++pass) {
    auto vars = env.read().value();
    std::string order = vars.contains("BOOT_ORDER") ? vars["BOOT_ORDER"] : "A B";
    for (const auto& name : detail::split_words(order)) {
      std::string left_name = "BOOT_" + name + "_LEFT";
      long left = vars.contains(left_name) ? detail::parse_number(vars[left_name], 16).value() : 3;
      if (left > 0) {
        EXPECT_TRUE(env.write({{left_name, hex(left - 1)}}).has_value());
        return parse_slot(name).value();
      }
    }
    EXPECT_TRUE(env.write({{"BOOT_A_LEFT", "3"}, {"BOOT_B_LEFT", "3"}}).has_value());
  }
  ADD_FAILURE() << "no slot boots";
  return Slot::a;
}

// U-Boot with CONFIG_BOOTCOUNT_LIMIT + CONFIG_BOOTCOUNT_ENV and meta-mender's env_mender.h:
// bootcount counts only while upgrade_available=1; past bootlimit, mender_altbootcmd switches
// mender_boot_part and clears upgrade_available; then mender_boot_part boots.
Slot boot_uboot_mender(const stdfs::path& config, int part_a, int part_b) {
  UbootEnvironment env(config);
  auto vars = env.read().value();
  if (vars["upgrade_available"] == "1") {
    long count = detail::parse_number(vars["bootcount"], 10).value_or(0) + 1;
    EXPECT_TRUE(env.write({{"bootcount", std::to_string(count)}}).has_value());
    long limit = vars.contains("bootlimit") ? detail::parse_number(vars["bootlimit"], 10).value() : 0;
    if (limit > 0 && count > limit) {
      int next = vars["mender_boot_part"] == std::to_string(part_a) ? part_b : part_a;
      EXPECT_TRUE(env.write({{"mender_boot_part", std::to_string(next)},
                             {"mender_boot_part_hex", hex(next)},
                             {"upgrade_available", "0"}})
                      .has_value());
    }
  }
  vars = env.read().value();
  return vars["mender_boot_part"] == std::to_string(part_a) ? Slot::a : Slot::b;
}

std::string mender_board_env(int part_a, int part_b) {
  const std::string a = std::to_string(part_a), b = std::to_string(part_b);
  return "bootlimit=1\nbootcount=0\nupgrade_available=0\nmender_boot_part=" + a + "\nmender_boot_part_hex=" + hex(part_a) +
         "\nmender_altbootcmd=if test ${mender_boot_part} = " + a + "; then setenv mender_boot_part " + b +
         "; setenv mender_boot_part_hex " + hex(part_b) + "; else setenv mender_boot_part " + a +
         "; setenv mender_boot_part_hex " + hex(part_a) +
         "; fi; setenv upgrade_available 0; saveenv; run bootcmd\naltbootcmd=run mender_altbootcmd\n";
}

// ---- Raspberry Pi firmware ---------------------------------------------------------------

Slot boot_tryboot(const stdfs::path& dir, bool tryboot_flag, int part_a, int part_b) {
  std::istringstream in(read_file(dir / "autoboot.txt"));
  std::string line, section = "all";
  std::optional<std::string> partition;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    const bool applies = section == "all" || (section == "tryboot" && tryboot_flag);
    if (applies && line.starts_with("boot_partition=")) partition = line.substr(15);
  }
  if (partition == std::to_string(part_a)) return Slot::a;
  if (partition == std::to_string(part_b)) return Slot::b;
  ADD_FAILURE() << dir / "autoboot.txt" << ": boot_partition=" << partition.value_or("(none)")
                << " is neither slot's partition";
  return Slot::a;
}

// ---- GRUB --------------------------------------------------------------------------------

stdfs::path make_grubenv(const stdfs::path& dir, const std::vector<std::string>& assignments) {
  auto file = dir / "grubenv";
  run_ok({"grub-editenv", file.string(), "create"});
  if (!assignments.empty()) {
    std::vector<std::string> argv{"grub-editenv", file.string(), "set"};
    argv.insert(argv.end(), assignments.begin(), assignments.end());
    run_ok(argv);
  }
  return file;
}

std::map<std::string, std::string> grub_list(const stdfs::path& file) {
  return parse_env_lines(run_ok({"grub-editenv", file.string(), "list"}));
}

// Eddy's grub.cfg (grub.hpp): every slot looked at gets TRY=1; the first with OK=1 TRY=0 boots;
// none: the last name in ORDER boots; save_env A_TRY B_TRY.
Slot boot_grub_rauc(const stdfs::path& file) {
  GrubEnvironment env(file);
  auto vars = env.read().value();
  std::optional<Slot> chosen;
  std::string last;
  std::map<std::string, std::string> tries{{"A_TRY", vars["A_TRY"]}, {"B_TRY", vars["B_TRY"]}};
  for (const auto& name : detail::split_words(vars["ORDER"])) {
    tries[name + "_TRY"] = "1";
    last = name;
    if (!chosen && vars[name + "_OK"] == "1" && vars[name + "_TRY"] == "0") chosen = parse_slot(name).value();
  }
  EXPECT_TRUE(env.write({{"A_TRY", tries["A_TRY"]}, {"B_TRY", tries["B_TRY"]}}).has_value());
  return chosen ? *chosen : parse_slot(last).value();
}


// ---- RootfsDevice ---------------------------------------------------------------------------

std::string scheme_name(BootScheme scheme) {
  switch (scheme) {
    case BootScheme::uboot_rauc: return "UbootRauc";
    case BootScheme::grub_rauc: return "GrubRauc";
    case BootScheme::uboot_mender: return "UbootMender";
    case BootScheme::tryboot: return "Tryboot";
  }
  return "Unknown";
}

std::string rootfs_image(const std::string& version, std::size_t size) {
  std::string image(size, '\0');
  std::uint32_t x = 2166136261u;
  for (char c : version) x = (x ^ static_cast<unsigned char>(c)) * 16777619u;
  for (std::size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    image[i] = i % 4096 < 3072 ? static_cast<char>('A' + (i / 4096) % 26) : static_cast<char>(x & 0xff);
  }
  return image;
}

RootfsDevice::RootfsDevice(const stdfs::path& dir, BootScheme scheme)
    : dir_(dir), scheme_(scheme), factory_(rootfs_image("1.0.0")) {
  stdfs::create_directories(dir_ / "boot");
  fleet_ = std::make_unique<Fleet>(dir_ / "fleet");
  device_ = std::make_unique<Device>(dir_ / "device", fleet_->repo().url(), fleet_->allowed_signers());
  write_file(slot_path(Slot::a), factory_);
  write_file(slot_path(Slot::b), "");
  stdfs::resize_file(slot_path(Slot::a), slot_size());
  stdfs::resize_file(slot_path(Slot::b), slot_size());
  switch (scheme_) {
    case BootScheme::uboot_rauc:
    case BootScheme::uboot_mender:
      bootloader_.preset = scheme_ == BootScheme::uboot_rauc ? "rauc" : "mender";
      env_ = make_uboot_env(dir_ / "boot", scheme_ == BootScheme::uboot_rauc ? "" : mender_board_env());
      bootloader_.type = "uboot";
      bootloader_.env_config = env_;
      bootloader_yaml_ = "{type: uboot, preset: " + bootloader_.preset + ", env_config: " + env_.string() + "}";
      break;
    case BootScheme::grub_rauc:
      env_ = make_grubenv(dir_ / "boot", {});
      bootloader_.type = "grub";
      bootloader_.grub_env = env_;
      bootloader_yaml_ = "{type: grub, grub_env: " + env_.string() + "}";
      break;
    case BootScheme::tryboot:
      env_ = dir_ / "boot";  // the boot partition (partition 1), where autoboot.txt lives
      bootloader_.type = "tryboot";
      bootloader_.boot_dir = env_;
      bootloader_yaml_ = "{type: tryboot, boot_dir: " + env_.string() + "}";
      break;
  }
  // Provisioning: slot A committed, as a factory image leaves it.
  auto bootloader = bootenv::make_bootloader(bootloader_);
  if (!bootloader) throw std::runtime_error(bootloader.error().message);
  if (auto st = (*bootloader)->mark_good(Slot::a); !st) throw std::runtime_error(st.error().message);
  // One line per reboot command: "reboot", then each argument as one [word].
  write_file(dir_ / "reboot.sh", "#!/bin/sh\n{ printf reboot; for a in \"$@\"; do printf ' [%s]' \"$a\"; done; echo; } >> '" +
                                     (dir_ / "reboot-requested").string() + "'\n");
  stdfs::permissions(dir_ / "reboot.sh", stdfs::perms::owner_all);
  slot_specs_ = {slot_path(Slot::a).string(), slot_path(Slot::b).string()};
  write_config();
}

void RootfsDevice::write_config() {
  device_->write_config("rootfs:\n  a: " + slot_specs_[0] + "\n  b: " + slot_specs_[1] + "\n  cmdline: " +
                        (dir_ / "cmdline").string() + "\n  bootloader: " + bootloader_yaml_ + "\n  reboot: [" +
                        (dir_ / "reboot.sh").string() + "]\n  boot_id: " + (dir_ / "boot_id").string() + "\n");
}

void RootfsDevice::set_slot_spec(Slot slot, const std::string& spec) {
  slot_specs_[slot == Slot::a ? 0 : 1] = spec;
  write_config();
}

RootfsDevice::~RootfsDevice() = default;

stdfs::path RootfsDevice::slot_path(Slot slot) const { return dir_ / (slot == Slot::a ? "slot-a" : "slot-b"); }

Slot RootfsDevice::boot(bool start, const std::map<std::string, std::string>& env) {
  if (device_->running()) device_->stop();  // the old system goes down; a killed one is reaped
  const bool tryboot_flag = reboot_arguments() == std::vector<std::string>{"0 tryboot"};
  std::error_code ec;
  stdfs::remove(dir_ / "reboot-requested", ec);
  Slot slot = Slot::a;
  switch (scheme_) {
    case BootScheme::uboot_rauc: slot = boot_uboot_rauc(env_); break;
    case BootScheme::grub_rauc: slot = boot_grub_rauc(env_); break;
    case BootScheme::uboot_mender: slot = boot_uboot_mender(env_); break;
    case BootScheme::tryboot: slot = boot_tryboot(env_, tryboot_flag); break;
  }
  write_file(dir_ / "cmdline", "console=ttyS0 root=" + slot_path(slot).string() + " rootwait rw\n");
  write_file(dir_ / "boot_id", "boot-" + std::to_string(++boots_) + "\n");
  if (start) device_->start(env, /*wait_ready=*/env.empty());
  return slot;
}

bool RootfsDevice::reboot_requested() const { return stdfs::exists(dir_ / "reboot-requested"); }

int RootfsDevice::reboot_requests() const {
  if (!reboot_requested()) return 0;
  auto text = read_file(dir_ / "reboot-requested");
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

std::vector<std::string> RootfsDevice::reboot_arguments() const {
  if (!reboot_requested()) return {};
  std::istringstream in(read_file(dir_ / "reboot-requested"));
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  std::vector<std::string> args;
  for (auto open = last.find(" ["); open != std::string::npos; open = last.find(" [", open + 1)) {
    auto close = last.find("]", open);
    if (close == std::string::npos) break;
    args.push_back(last.substr(open + 2, close - open - 2));
  }
  return args;
}

std::string RootfsDevice::publish(const std::string& version, int probe_exit, bool wrong_digest,
                                  const std::string& delta_base, std::size_t image_size) {
  return publish(RootfsRelease{version, probe_exit, wrong_digest, delta_base, image_size, std::nullopt, {}});
}

std::string RootfsDevice::publish(const RootfsRelease& release) {
  const auto& [version, probe_exit, wrong_digest, delta_base, image_size, declared_size, extra_spec] = release;
  std::string image = rootfs_image(version, image_size);
  const auto repo = fleet_->repo().dir();
  stdfs::create_directories(repo / "payloads");
  stdfs::create_directories(repo / "releases");
  const std::string rel = "payloads/rootfs-" + version + ".img.zst";
  write_file(dir_ / "image.img", image);
  run_ok({"zstd", "-q", "-f", "-3", (dir_ / "image.img").string(), "-o", (repo / rel).string()});
  std::string sha = wrong_digest && delta_base.empty() ? std::string(64, 'e') : Fleet::sha256_of(repo / rel);
  std::string deltas;
  if (!delta_base.empty()) {
    write_file(dir_ / "base.img", delta_base);
    const std::string delta_rel = "payloads/rootfs-" + version + ".delta.zst";
    auto made = nlohmann::json::parse(run_ok({eddy_path().string(), "release", "delta", "--base",
                                              (dir_ / "base.img").string(), "--image", (dir_ / "image.img").string(),
                                              "--out", (repo / delta_rel).string(), "--json"}));
    const auto& d = made.at("deltas").at(0);
    deltas = "    deltas:\n      - {from_sha256: " + d.at("from_sha256").get<std::string>() +
             ", from_size: " + std::to_string(d.at("from_size").get<std::uint64_t>()) +
             // wrong_digest with a delta: the delta is intact, the image it names is not the one it rebuilds.
             ", image_sha256: " + (wrong_digest ? std::string(64, 'e') : d.at("image_sha256").get<std::string>()) +
             ", path: " + delta_rel +
             ", sha256: " + d.at("sha256").get<std::string>() +
             ", size: " + std::to_string(d.at("size").get<std::uint64_t>()) + "}\n";
  }
  write_file(repo / ("releases/rootfs-" + version + ".yaml"),
             "apiVersion: eddy/v1\nkind: Release\nmetadata: {name: rootfs-" + version + "}\nspec:\n  target: rootfs\n" +
                 "  version: " + version + "\n  payload:\n    type: rootfs\n    path: " + rel + "\n    sha256: " + sha +
                 "\n    size: " + std::to_string(declared_size.value_or(stdfs::file_size(repo / rel))) + "\n" + deltas + extra_spec +
                 "  analysis:\n    interval: 100ms\n    iterations: 2\n    threshold: 0\n    probes:\n"
                 "      - {name: selftest, exec: {command: [/bin/sh, -c, \"exit " +
                 std::to_string(probe_exit) + "\"], timeout: 10s}}\n");
  fleet_->set_rollout("rootfs", version);
  fleet_->repo().commit("rootfs " + version);
  return image;
}

std::string RootfsDevice::slot_bytes(Slot slot, std::size_t size) const {
  return read_file(slot_path(slot)).substr(0, size);
}

nlohmann::json RootfsDevice::status() const {
  auto status = device_->status();
  if (status.is_object() && status.contains("targets"))
    for (const auto& t : status["targets"])
      if (t.value("name", "") == "rootfs") return t;
  return nullptr;
}

std::string RootfsDevice::check(std::string* output) const {
  auto r = device_->eddy({"check"});
  if (output) *output = r.output;
  return r.json.is_object() ? r.json.value("outcome", "") : "";
}

Slot RootfsDevice::primary() const {
  // The firmware reads autoboot.txt itself; which section depends on the reboot's flag.
  if (scheme_ == BootScheme::tryboot) return boot_tryboot(env_, reboot_arguments() == std::vector<std::string>{"0 tryboot"});
  auto bootloader = bootenv::make_bootloader(bootloader_);
  if (!bootloader) throw std::runtime_error(bootloader.error().message);
  auto slot = (*bootloader)->primary();
  if (!slot) throw std::runtime_error(slot.error().message);
  return *slot;
}

}  // namespace eddy::testing
