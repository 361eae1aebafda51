#include "platform/bootenv/bootloader.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "platform/bootenv/detail.hpp"
#include "platform/bootenv/grub.hpp"
#include "platform/bootenv/tryboot.hpp"
#include "platform/bootenv/uboot.hpp"
#include "platform/fs.hpp"

namespace eddy::bootenv {

namespace stdfs = std::filesystem;

std::string_view slot_name(Slot slot) { return slot == Slot::a ? "A" : "B"; }

Slot other(Slot slot) { return slot == Slot::a ? Slot::b : Slot::a; }

Expected<Slot> parse_slot(std::string_view name) {
  if (name == "A" || name == "a") return Slot::a;
  if (name == "B" || name == "b") return Slot::b;
  return make_error(Errc::invalid_argument, "unknown slot `" + std::string(name) + "` (slots are A and B)");
}

Expected<std::unique_ptr<Bootloader>> make_bootloader(const BootloaderConfig& config) {
  if (config.type == "uboot") return make_uboot_bootloader(config);
  if (config.type == "grub") return make_grub_bootloader(config);
  if (config.type == "tryboot") return make_tryboot_bootloader(config);
  return make_error(Errc::invalid_argument,
                    "unknown bootloader type `" + config.type + "` (known: uboot, grub, tryboot)");
}

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Every spelling of a root device we can compare: the /dev/disk/by-* form of TAG=value, UUIDs in
// lower case, and the target of symbolic links that exist.
std::set<std::string> device_forms(const std::string& spec) {
  static const std::pair<std::string_view, std::string_view> tags[] = {{"PARTUUID=", "/dev/disk/by-partuuid/"},
                                                                       {"PARTLABEL=", "/dev/disk/by-partlabel/"},
                                                                       {"UUID=", "/dev/disk/by-uuid/"},
                                                                       {"LABEL=", "/dev/disk/by-label/"}};
  std::string path = spec;
  for (const auto& [tag, dir] : tags) {
    if (spec.starts_with(tag)) {
      path = std::string(dir) + spec.substr(tag.size());
      break;
    }
  }
  if (path.starts_with("/dev/disk/by-partuuid/") || path.starts_with("/dev/disk/by-uuid/")) {
    auto slash = path.rfind('/');
    path = path.substr(0, slash + 1) + lower(path.substr(slash + 1));
  }
  std::set<std::string> forms{path};
  std::error_code ec;
  auto resolved = stdfs::canonical(path, ec);
  if (!ec) forms.insert(resolved.string());
  return forms;
}

bool same_device(const std::string& a, const std::string& b) {
  auto fa = device_forms(a);
  auto fb = device_forms(b);
  return std::any_of(fa.begin(), fa.end(), [&](const std::string& f) { return fb.contains(f); });
}

}  // namespace

Expected<Slot> booted_slot(const BootedSlotConfig& config) {
  auto text = fs::read_file(config.cmdline, 64 * 1024);
  if (!text) return std::unexpected(text.error().with_context("tell the booted slot"));
  std::map<std::string, std::string> args;
  for (const auto& word : detail::split_words(*text)) {
    auto eq = word.find('=');
    if (eq == std::string::npos) continue;
    args[word.substr(0, eq)] = word.substr(eq + 1);  // the last one wins, as in the kernel
  }
  const std::string where = "kernel command line " + config.cmdline.string();
  if (!config.cmdline_key.empty()) {
    auto it = args.find(config.cmdline_key);
    if (it != args.end()) {
      if (it->second == config.bootname_a) return Slot::a;
      if (it->second == config.bootname_b) return Slot::b;
      return make_error(Errc::invalid_argument, where + ": " + config.cmdline_key + "=" + it->second +
                                                    " names neither slot " + config.bootname_a + " nor slot " +
                                                    config.bootname_b);
    }
  }
  auto root = args.find("root");
  if (root == args.end())
    return make_error(Errc::not_found, where + " has no root=" +
                                           (config.cmdline_key.empty() ? "" : " and no " + config.cmdline_key + "="));
  if (config.device_a.empty() || config.device_b.empty())
    return make_error(Errc::invalid_argument, "tell the booted slot: the devices of slots A and B are not configured");
  bool is_a = same_device(root->second, config.device_a);
  bool is_b = same_device(root->second, config.device_b);
  if (is_a && is_b)
    return make_error(Errc::invalid_argument,
                      "slots A (" + config.device_a + ") and B (" + config.device_b + ") name the same device");
  if (is_a) return Slot::a;
  if (is_b) return Slot::b;
  return make_error(Errc::not_found, where + ": root=" + root->second + " is neither slot A (" + config.device_a +
                                         ") nor slot B (" + config.device_b + ")");
}

}  // namespace eddy::bootenv
