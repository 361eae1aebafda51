#include "daemon/config.hpp"

#include <arpa/inet.h>
#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <limits>
#include <set>
#include <yaml-cpp/yaml.h>

#include "ota/hub_token.hpp"
#include "ota/slot_device.hpp"
#include "platform/byte_size.hpp"
#include "platform/fs.hpp"
#include "platform/http_client.hpp"

namespace eddy::daemon {

namespace {

namespace stdfs = std::filesystem;

constexpr std::string_view default_machine_id_file = "/etc/machine-id";

struct Section {
  std::string_view name;  // as users write the path: "source", "apps.<name>"
  std::vector<std::string_view> keys;
};

const Section top_keys{"", {"device", "source", "hub", "data_dir", "socket", "socket_group", "apps", "containers",
                            "rootfs", "log_level"}};
const Section device_keys{"device", {"id", "labels", "machine_id_file"}};
const Section source_keys{"source", {"url", "branch", "interval", "allowed_signers"}};
const Section hub_keys{"hub", {"url", "token_file", "ca_file", "outbox_limit"}};
const Section app_keys{"apps.<name>", {"dir", "run", "restart", "max_unpacked", "keep_versions"}};
const Section container_keys{"containers", {"runtime", "keep"}};
const Section rootfs_keys{"rootfs", {"a", "b", "cmdline", "cmdline_key", "bootloader", "reboot", "max_reboots",
                                    "boot_id"}};
const Section bootloader_keys{"rootfs.bootloader", {"type", "preset", "env_config", "grub_env", "boot_dir",
                                                    "variables", "partition_a", "partition_b", "bootname_a",
                                                    "bootname_b"}};
const std::array<const Section*, 8> all_sections{&top_keys, &device_keys,    &source_keys, &hub_keys,
                                                 &app_keys, &container_keys, &rootfs_keys, &bootloader_keys};

// Edit distance counting a swap of neighbours as one edit ("rnu" is one from "run").
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// "did you mean `interval`?", or where the key belongs, or nothing.
std::string suggestion(std::string_view key, const Section& section) {
  std::string_view best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (auto candidate : section.keys) {
    auto d = edit_distance(key, candidate);
    if (d < best_distance) best = candidate, best_distance = d;
  }
  if (best_distance <= std::max<std::size_t>(1, std::min<std::size_t>(2, key.size() / 3)))
    return " (did you mean `" + std::string(best) + "`?)";
  for (const auto* other : all_sections) {
    if (other == &section) continue;
    if (std::find(other->keys.begin(), other->keys.end(), key) != other->keys.end())
      return other->name.empty() ? " (it belongs at the top level)"
                                 : " (it belongs under `" + std::string(other->name) + "`)";
  }
  std::string known;
  for (auto candidate : section.keys) known += (known.empty() ? "" : ", ") + std::string(candidate);
  return " (known keys: " + known + ")";
}

class Parser {
 public:
  Parser(stdfs::path file) : file_(std::move(file)) {
    std::error_code ec;
    auto absolute = stdfs::absolute(file_, ec);
    base_ = ec ? file_.parent_path() : absolute.parent_path();
  }

  Expected<Config> parse(std::string_view text);

 private:
  std::string at(const YAML::Node& node) const {
    auto mark = node.Mark();
    if (mark.line < 0) return file_.string();
    return file_.string() + ":" + std::to_string(mark.line + 1);
  }
  std::unexpected<Error> fail(const YAML::Node& node, std::string message) const {
    return make_error(Errc::invalid_argument, at(node) + ": " + message);
  }

  std::string describe(const YAML::Node& node) const {
    switch (node.Type()) {
      case YAML::NodeType::Null: return "nothing";
      case YAML::NodeType::Scalar: return "`" + node.Scalar() + "`";
      case YAML::NodeType::Sequence: return "a list";
      case YAML::NodeType::Map: return "a mapping";
      default: return "nothing";
    }
  }

  // The entries of a mapping, keys checked against `section` (unknown and duplicate keys refused).
  Expected<std::vector<std::pair<std::string, YAML::Node>>> entries(const YAML::Node& node, const Section& section,
                                                                    std::string_view what) const {
    if (!node.IsMap()) return fail(node, std::string(what) + " must be a mapping of keys, got " + describe(node));
    std::vector<std::pair<std::string, YAML::Node>> out;
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) return fail(it->first, "keys of " + std::string(what) + " must be plain words");
      std::string key = it->first.Scalar();
      if (!seen.insert(key).second)
        return fail(it->first, "key `" + key + "` appears twice in " + std::string(what));
      if (section.keys.size() > 0 &&
          std::find(section.keys.begin(), section.keys.end(), key) == section.keys.end())
        return fail(it->first, "unknown key `" + key + "` in " + std::string(what) + suggestion(key, section));
      out.emplace_back(key, it->second);
    }
    return out;
  }

  Expected<std::string> string(const YAML::Node& node, std::string_view key, bool allow_empty = false) const {
    if (!node.IsScalar())
      return fail(node, "`" + std::string(key) + "` must be a text value, got " + describe(node));
    if (!allow_empty && node.Scalar().empty()) return fail(node, "`" + std::string(key) + "` must not be empty");
    return node.Scalar();
  }

  Expected<stdfs::path> path(const YAML::Node& node, std::string_view key) const {
    auto text = string(node, key);
    if (!text) return std::unexpected(text.error());
    stdfs::path p(*text);
    return (p.is_absolute() ? p : base_ / p).lexically_normal();
  }

  Expected<std::vector<std::string>> command(const YAML::Node& node, std::string_view key) const {
    auto hint = "`" + std::string(key) + "` must be a list of words, like [bin/sensor-app, --port, \"8080\"]";
    if (!node.IsSequence()) return fail(node, hint + ", got " + describe(node));
    if (node.size() == 0) return fail(node, "`" + std::string(key) + "` must not be an empty list");
    std::vector<std::string> argv;
    for (const auto& word : node) {
      if (!word.IsScalar()) return fail(word, hint + "; one of them is " + describe(word));
      argv.push_back(word.Scalar());
    }
    if (argv[0].empty()) return fail(node, "`" + std::string(key) + "`: the program name is empty");
    return argv;
  }

  Expected<std::int64_t> integer(const YAML::Node& node, std::string_view key, std::int64_t min,
                                 std::int64_t max) const {
    auto text = string(node, key);
    if (!text) return std::unexpected(text.error());
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size())
      return fail(node, "`" + std::string(key) + "` must be a whole number, got `" + *text + "`");
    if (value < min || value > max)
      return fail(node, "`" + std::string(key) + "` must be between " + std::to_string(min) + " and " +
                            std::to_string(max) + ", got " + *text);
    return value;
  }

  Status parse_device(const YAML::Node& node, Config& config, stdfs::path& machine_id_file, bool& id_set);
  Status parse_source(const YAML::Node& node, Config& config);
  Status parse_hub(const YAML::Node& node, Config& config);
  Status parse_containers(const YAML::Node& node, Config& config);
  Status parse_apps(const YAML::Node& node, Config& config);
  Status parse_rootfs(const YAML::Node& node, Config& config);
  Status parse_bootloader(const YAML::Node& node, bootenv::BootloaderConfig& bootloader);

  stdfs::path file_;
  stdfs::path base_;
};

// 127.0.0.0/8, ::1 and localhost: where plain http:// to the hub is allowed.
bool is_loopback(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr address{};
  return ::inet_pton(AF_INET, std::string(host).c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

bool valid_name_char(char c, std::string_view extra) {
  return std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != std::string_view::npos;
}

bool valid_word(std::string_view text, std::string_view extra, std::size_t max_size) {
  if (text.empty() || text.size() > max_size) return false;
  return std::all_of(text.begin(), text.end(), [&](char c) { return valid_name_char(c, extra); });
}

Status Parser::parse_device(const YAML::Node& node, Config& config, stdfs::path& machine_id_file, bool& id_set) {
  if (node.IsNull()) return {};
  auto items = entries(node, device_keys, "`device`");
  if (!items) return std::unexpected(items.error());
  for (const auto& [key, value] : *items) {
    if (key == "id") {
      auto id = string(value, "device.id");
      if (!id) return std::unexpected(id.error());
      if (!valid_word(*id, "._:@-", 128))
        return fail(value, "device.id `" + *id +
                               "` may hold only letters, digits and . _ : @ - (at most 128 characters)");
      config.device_id = *id;
      id_set = true;
    } else if (key == "labels") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) return fail(value, "device.labels must be a mapping like {site: berlin}, got " + describe(value));
      std::set<std::string> seen;
      for (auto it = value.begin(); it != value.end(); ++it) {
        auto name = string(it->first, "label name");
        if (!name) return std::unexpected(name.error());
        if (!valid_word(*name, "._/-", 253))
          return fail(it->first, "label name `" + *name + "` may hold only letters, digits and . _ / -");
        if (!seen.insert(*name).second) return fail(it->first, "label `" + *name + "` appears twice");
        auto label = string(it->second, "device.labels." + *name, true);
        if (!label) return std::unexpected(label.error());
        if (!label->empty() && !valid_word(*label, "._-", 253))
          return fail(it->second, "label value `" + *label + "` may hold only letters, digits and . _ -");
        config.labels[*name] = *label;
      }
    } else if (key == "machine_id_file") {
      auto p = path(value, "device.machine_id_file");
      if (!p) return std::unexpected(p.error());
      machine_id_file = *p;
    }
  }
  return {};
}

Status Parser::parse_source(const YAML::Node& node, Config& config) {
  auto items = entries(node, source_keys, "`source`");
  if (!items) return std::unexpected(items.error());
  bool have_url = false;
  bool have_signers = false;
  for (const auto& [key, value] : *items) {
    if (key == "url") {
      auto url = string(value, "source.url");
      if (!url) return std::unexpected(url.error());
      static constexpr std::array<std::string_view, 6> schemes{"file://", "git://", "http://", "https://",
                                                               "ssh://", "git+ssh://"};
      if (std::none_of(schemes.begin(), schemes.end(), [&](auto s) { return url->starts_with(s); }))
        return fail(value, "source.url `" + *url +
                               "` must start with file://, git://, http://, https:// or ssh:// "
                               "(write ssh://git@host/path.git rather than git@host:path.git)");
      config.source_url = *url;
      have_url = true;
    } else if (key == "branch") {
      auto branch = string(value, "source.branch");
      if (!branch) return std::unexpected(branch.error());
      if (!valid_word(*branch, "._/-", 255) || branch->find("..") != std::string::npos || branch->starts_with("/") ||
          branch->ends_with("/") || branch->ends_with(".lock"))
        return fail(value, "source.branch `" + *branch + "` is not a valid Git branch name");
      config.source_branch = *branch;
    } else if (key == "interval") {
      auto text = string(value, "source.interval");
      if (!text) return std::unexpected(text.error());
      auto interval = parse_duration(*text);
      if (!interval) return fail(value, "source.interval: " + interval.error().message);
      if (interval->count() <= 0) return fail(value, "source.interval must be longer than 0s");
      config.source_interval = *interval;
    } else if (key == "allowed_signers") {
      auto p = path(value, "source.allowed_signers");
      if (!p) return std::unexpected(p.error());
      config.allowed_signers = *p;
      have_signers = true;
    }
  }
  if (!have_url) return fail(node, "`source` has no `url` (the fleet repository to follow)");
  if (!have_signers)
    return fail(node, "`source` has no `allowed_signers` (the file of keys whose signed commits are accepted)");
  return {};
}

Status Parser::parse_hub(const YAML::Node& node, Config& config) {
  if (node.IsNull()) return {};
  auto items = entries(node, hub_keys, "`hub`");
  if (!items) return std::unexpected(items.error());
  for (const auto& [key, value] : *items) {
    if (key == "url") {
      auto url = string(value, "hub.url");
      if (!url) return std::unexpected(url.error());
      if (!url->starts_with("https://") && !url->starts_with("http://"))
        return fail(value, "hub.url `" + *url + "` must start with https:// (or http:// on loopback)");
      auto parsed = http::parse_url(*url);
      if (!parsed) return fail(value, "hub.url: " + parsed.error().message);
      if (parsed->scheme == "http" && !is_loopback(parsed->host))
        return fail(value, "hub.url `" + *url + "` is plain http:// to a host that is not this machine: the " +
                               "device's token would cross the network in clear text; use https://");
      config.hub_url = *url;
    } else if (key == "token_file") {
      auto p = path(value, "hub.token_file");
      if (!p) return std::unexpected(p.error());
      config.hub_token_file = *p;
    } else if (key == "ca_file") {
      auto p = path(value, "hub.ca_file");
      if (!p) return std::unexpected(p.error());
      config.hub_ca_file = *p;
    } else if (key == "outbox_limit") {
      auto limit = integer(value, "hub.outbox_limit", 100, 10'000'000);
      if (!limit) return std::unexpected(limit.error());
      config.hub_outbox_limit = *limit;
    }
  }
  if (!config.hub_url) return fail(node, "`hub` has no `url` (leave the whole `hub` section out to run without a hub)");
  if (config.hub_token_file.empty())
    return fail(node, "`hub` has no `token_file` (the file holding this device's token for the hub)");
  return {};
}

Status Parser::parse_containers(const YAML::Node& node, Config& config) {
  config.containers.emplace();
  if (node.IsNull()) return {};
  auto items = entries(node, container_keys, "`containers`");
  if (!items) return std::unexpected(items.error());
  for (const auto& [key, value] : *items) {
    if (key == "runtime") {
      auto name = string(value, "containers.runtime");
      if (!name) return std::unexpected(name.error());
      auto kind = parse_runtime_kind(*name);
      if (!kind) return fail(value, "containers.runtime: " + kind.error().message);
      config.containers->runtime = *kind;
    } else if (key == "keep") {
      auto keep = integer(value, "containers.keep", 1, 100);
      if (!keep) return std::unexpected(keep.error());
      config.containers->keep = static_cast<int>(*keep);
    }
  }
  return {};
}

Status Parser::parse_bootloader(const YAML::Node& node, bootenv::BootloaderConfig& bootloader) {
  auto items = entries(node, bootloader_keys, "`rootfs.bootloader`");
  if (!items) return std::unexpected(items.error());
  for (const auto& [key, value] : *items) {
    const std::string full = "rootfs.bootloader." + key;
    if (key == "type" || key == "preset") {
      auto text = string(value, full);
      if (!text) return std::unexpected(text.error());
      (key == "type" ? bootloader.type : bootloader.preset) = *text;
    } else if (key == "env_config" || key == "grub_env" || key == "boot_dir") {
      auto p = path(value, full);
      if (!p) return std::unexpected(p.error());
      (key == "env_config" ? bootloader.env_config : key == "grub_env" ? bootloader.grub_env : bootloader.boot_dir) = *p;
    } else if (key == "partition_a" || key == "partition_b") {
      // mender_boot_part and tryboot's boot_partition: the partition number of each slot.
      auto number = integer(value, full, 1, 128);
      if (!number) return std::unexpected(number.error());
      (key == "partition_a" ? bootloader.partition_a : bootloader.partition_b) = static_cast<int>(*number);
    } else if (key == "bootname_a" || key == "bootname_b") {
      // The slots' names in the rauc presets' variables (BOOT_ORDER="A B", BOOT_A_LEFT).
      auto name = string(value, full);
      if (!name) return std::unexpected(name.error());
      (key == "bootname_a" ? bootloader.bootname_a : bootloader.bootname_b) = *name;
    } else if (key == "variables") {
      if (!value.IsMap())
        return fail(value, full + " must be a mapping of roles to variable names, like {order: BOOT_ORDER}, got " +
                               describe(value));
      for (auto it = value.begin(); it != value.end(); ++it) {
        auto role = string(it->first, full + " role");
        if (!role) return std::unexpected(role.error());
        auto name = string(it->second, full + "." + *role);
        if (!name) return std::unexpected(name.error());
        bootloader.variables[*role] = *name;
      }
    }
  }
  if (bootloader.type.empty())
    return fail(node, "`rootfs.bootloader` has no `type` (uboot, grub or tryboot)");
  // The backend checks its own settings (preset, variable roles, files it needs) without
  // touching the environment.
  if (auto made = bootenv::make_bootloader(bootloader); !made) return fail(node, made.error().message);
  return {};
}

Status Parser::parse_rootfs(const YAML::Node& node, Config& config) {
  auto items = entries(node, rootfs_keys, "`rootfs`");
  if (!items) return std::unexpected(items.error());
  RootfsConfig rootfs;
  bool have_bootloader = false;
  for (const auto& [key, value] : *items) {
    const std::string full = "rootfs." + key;
    if (key == "a" || key == "b") {
      auto spec = string(value, full);
      if (!spec) return std::unexpected(spec.error());
      static constexpr std::array<std::string_view, 4> tags{"LABEL=", "UUID=", "PARTLABEL=", "PARTUUID="};
      if (!spec->starts_with("/") && std::none_of(tags.begin(), tags.end(), [&](auto t) { return spec->starts_with(t); }))
        return fail(value, full + " `" + *spec +
                               "` must be an absolute device path (/dev/mmcblk0p2) or LABEL=, UUID=, PARTLABEL=, "
                               "PARTUUID=");
      (key == "a" ? rootfs.slot_a : rootfs.slot_b) = *spec;
    } else if (key == "cmdline" || key == "boot_id") {
      auto p = path(value, full);
      if (!p) return std::unexpected(p.error());
      (key == "cmdline" ? rootfs.booted.cmdline : rootfs.boot_id) = *p;
    } else if (key == "cmdline_key") {
      auto text = string(value, full);
      if (!text) return std::unexpected(text.error());
      if (!valid_word(*text, "._-", 64))
        return fail(value, full + " `" + *text + "` must be a kernel argument name (letters, digits and . _ -)");
      rootfs.booted.cmdline_key = *text;
    } else if (key == "bootloader") {
      if (auto st = parse_bootloader(value, rootfs.bootloader); !st) return st;
      have_bootloader = true;
    } else if (key == "reboot") {
      auto argv = command(value, full);
      if (!argv) return std::unexpected(argv.error());
      rootfs.reboot = *argv;
    } else if (key == "max_reboots") {
      auto cap = integer(value, full, 1, 100);
      if (!cap) return std::unexpected(cap.error());
      rootfs.max_reboots = static_cast<int>(*cap);
    }
  }
  if (rootfs.slot_a.empty() || rootfs.slot_b.empty())
    return fail(node, std::string("`rootfs` has no `") + (rootfs.slot_a.empty() ? "a" : "b") +
                          "` (the device of each slot: a path, or LABEL=, UUID=, PARTLABEL=, PARTUUID=)");
  if (rootfs.slot_a == rootfs.slot_b) return fail(node, "rootfs.a and rootfs.b name the same device `" + rootfs.slot_a + "`");
  if (!have_bootloader)
    return fail(node, "`rootfs` has no `bootloader` (type uboot, grub or tryboot, and its environment)");
  rootfs.booted.device_a = rootfs.slot_a;
  rootfs.booted.device_b = rootfs.slot_b;
  rootfs.booted.bootname_a = rootfs.bootloader.bootname_a;
  rootfs.booted.bootname_b = rootfs.bootloader.bootname_b;
  config.rootfs = std::move(rootfs);
  return {};
}

Status Parser::parse_apps(const YAML::Node& node, Config& config) {
  if (node.IsNull()) return {};
  static const Section any_name{"apps", {}};
  auto apps = entries(node, any_name, "`apps`");
  if (!apps) return std::unexpected(apps.error());
  std::map<stdfs::path, std::string> dirs;
  for (const auto& [name, body] : *apps) {
    const std::string where = "apps." + name;
    if (!valid_word(name, "._-", 64) || !std::isalnum(static_cast<unsigned char>(name[0])))
      return fail(body, "app name `" + name +
                            "` must start with a letter or digit and hold only letters, digits and . _ - "
                            "(at most 64 characters)");
    if (name == "rootfs") return fail(body, "`rootfs` names the A/B root file system target; call the app differently");
    AppConfig app;
    app.name = name;
    auto items = entries(body, app_keys, "`" + where + "`");
    if (!items) return std::unexpected(items.error());
    bool have_dir = false;
    for (const auto& [key, value] : *items) {
      const std::string full = where + "." + key;
      if (key == "dir") {
        auto p = path(value, full);
        if (!p) return std::unexpected(p.error());
        if (auto [it, inserted] = dirs.emplace(*p, name); !inserted)
          return fail(value, full + " is the same folder as apps." + it->second + ".dir; each app needs its own");
        app.dir = *p;
        have_dir = true;
      } else if (key == "run" || key == "restart") {
        auto argv = command(value, full);
        if (!argv) return std::unexpected(argv.error());
        (key == "run" ? app.run : app.restart) = *argv;
      } else if (key == "max_unpacked") {
        auto text = string(value, full);
        if (!text) return std::unexpected(text.error());
        auto size = parse_size(*text);
        if (!size) return fail(value, full + ": " + size.error().message);
        if (*size == 0) return fail(value, full + " must be more than 0 bytes");
        app.max_unpacked_bytes = *size;
      } else if (key == "keep_versions") {
        auto keep = integer(value, full, 2, 100);
        if (!keep) {
          auto error = keep.error();
          error.message += " (the current version and the previous one, for rollback, are always kept)";
          return std::unexpected(error);
        }
        app.keep_versions = static_cast<int>(*keep);
      }
    }
    if (!have_dir) return fail(body, "`" + where + "` has no `dir` (the folder holding the app's versions)");
    if (!app.run.empty() && !app.restart.empty())
      return fail(body, "`" + where + "` sets both `run` and `restart`: keep `run` for eddyd to supervise the app, "
                                      "or `restart` for a command that restarts it, not both");
    config.apps.emplace(name, std::move(app));
  }
  return {};
}

Expected<Config> Parser::parse(std::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    std::string where = file_.string();
    if (e.mark.line >= 0)
      where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    return make_error(Errc::invalid_argument, where + ": not valid YAML: " + e.msg);
  }
  if (!root.IsDefined() || root.IsNull())
    return make_error(Errc::invalid_argument, file_.string() + ": the configuration is empty (see packaging/eddyd.yaml "
                                                               "for an example)");
  Config config;
  config.file = file_;
  stdfs::path machine_id_file(default_machine_id_file);
  bool id_set = false;
  bool have_source = false;
  bool group_set = false;

  auto items = entries(root, top_keys, "the configuration");
  if (!items) return std::unexpected(items.error());
  for (const auto& [key, value] : *items) {
    Status status;
    if (key == "device") {
      status = parse_device(value, config, machine_id_file, id_set);
    } else if (key == "source") {
      status = parse_source(value, config);
      have_source = true;
    } else if (key == "hub") {
      status = parse_hub(value, config);
    } else if (key == "apps") {
      status = parse_apps(value, config);
    } else if (key == "containers") {
      status = parse_containers(value, config);
    } else if (key == "rootfs") {
      status = parse_rootfs(value, config);
    } else if (key == "data_dir" || key == "socket") {
      auto p = path(value, key);
      if (!p) return std::unexpected(p.error());
      (key == "data_dir" ? config.data_dir : config.socket) = *p;
      if (key == "socket" && p->native().size() > 107)
        return fail(value, "socket path is longer than 107 bytes, the limit of Unix socket addresses");
    } else if (key == "socket_group") {
      if (value.IsNull()) continue;
      auto group = string(value, key, true);
      if (!group) return std::unexpected(group.error());
      config.socket_group = *group;
      group_set = true;
    } else if (key == "log_level") {
      auto level = string(value, key);
      if (!level) return std::unexpected(level.error());
      static const Section levels{"log_level", {"error", "warning", "notice", "info", "debug"}};
      if (std::find(levels.keys.begin(), levels.keys.end(), *level) == levels.keys.end()) {
        auto hint = suggestion(*level, levels);
        if (hint.starts_with(" (known keys: ")) hint.replace(0, 14, " (one of: ");
        return fail(value, "unknown log_level `" + *level + "`" + hint);
      }
      config.log_level = *level;
    }
    if (!status) return std::unexpected(status.error());
  }
  if (!have_source)
    return fail(root, "there is no `source` section (the signed fleet repository to follow: url, allowed_signers)");

  if (!id_set) {
    auto content = fs::read_file(machine_id_file, 4096);
    if (!content)
      return std::unexpected(Error{content.error().code, file_.string() + ": device.id is not set and its default, " +
                                                             content.error().message +
                                                             "; set device.id in the configuration"});
    std::string id = *content;
    id.erase(std::remove_if(id.begin(), id.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }),
             id.end());
    if (!valid_word(id, "._:@-", 128))
      return make_error(Errc::invalid_argument, file_.string() + ": device.id is not set and " +
                                                    machine_id_file.string() +
                                                    " does not hold a usable id; set device.id in the configuration");
    config.device_id = id;
  }
  if (!group_set) {
    // The packaged default: members of group `eddy` may use `eddy` without root.
    if (::getgrnam("eddy") != nullptr) config.socket_group = "eddy";
  }
  return config;
}

// The nearest folder of `path` (itself included) that exists.
stdfs::path nearest_existing(stdfs::path path) {
  std::error_code ec;
  while (!path.empty() && !stdfs::exists(path, ec)) {
    auto parent = path.parent_path();
    if (parent == path) break;
    path = parent;
  }
  return path;
}

void check_folder_creatable(const stdfs::path& dir, std::string_view key, std::vector<Error>& problems) {
  std::error_code ec;
  if (stdfs::exists(dir, ec)) {
    if (!stdfs::is_directory(dir, ec))
      problems.push_back({Errc::invalid_argument, std::string(key) + " " + dir.string() + " exists and is not a folder"});
    else if (::access(dir.c_str(), W_OK | X_OK) != 0)
      problems.push_back(errno_error(errno, std::string(key) + ": cannot write to", dir.string()));
    return;
  }
  auto existing = nearest_existing(dir);
  if (existing.empty() || !stdfs::is_directory(existing, ec))
    problems.push_back({Errc::invalid_argument, std::string(key) + " " + dir.string() + " cannot be created: " +
                                                    existing.string() + " is not a folder"});
  else if (::access(existing.c_str(), W_OK | X_OK) != 0)
    problems.push_back(errno_error(errno, std::string(key) + " " + dir.string() + " cannot be created in",
                                   existing.string()));
}

void check_readable(const stdfs::path& file, std::string_view key, std::string_view hint, std::vector<Error>& problems) {
  auto content = fs::read_file(file, 16u << 20);
  if (!content) {
    auto error = content.error();
    error.message = std::string(key) + ": " + error.message + std::string(hint);
    problems.push_back(std::move(error));
  }
}

}  // namespace

Expected<std::uint64_t> parse_size(std::string_view text) { return parse_byte_size(text); }

Expected<Config> parse_config(std::string_view yaml, const std::filesystem::path& file) {
  try {
    return Parser(file).parse(yaml);
  } catch (const YAML::Exception& e) {
    // yaml-cpp reports some problems only while nodes are walked.
    return make_error(Errc::invalid_argument, file.string() + ": not valid YAML: " + e.msg);
  }
}

Expected<Config> load_config(const std::filesystem::path& file) {
  auto text = fs::read_file(file, 4u << 20);
  if (!text) return std::unexpected(text.error().with_context("read configuration"));
  return parse_config(*text, file);
}

namespace {

// Every problem found, one a line, under the configuration file's name.
Status report_problems(const Config& config, const std::vector<Error>& problems) {
  if (problems.empty()) return {};
  if (problems.size() == 1) return std::unexpected(problems[0].with_context(config.file.string()));
  std::string message = config.file.string() + ": " + std::to_string(problems.size()) + " problems:";
  for (const auto& problem : problems) message += "\n  - " + problem.message;
  return make_error(problems[0].code, std::move(message));
}

}  // namespace

Status check_config(const Config& config) {
  std::vector<Error> problems;
  check_readable(config.allowed_signers, "source.allowed_signers",
                 " (it lists the keys whose signed commits are accepted, in Git's allowed_signers format)", problems);
  if (problems.empty()) {
    auto content = fs::read_file(config.allowed_signers, 16u << 20);
    if (content && content->find_first_not_of(" \t\r\n") == std::string::npos)
      problems.push_back({Errc::invalid_argument, "source.allowed_signers " + config.allowed_signers.string() +
                                                      " is empty: no commit could ever be accepted"});
  }
  if (config.hub_url) {
    if (auto token = ota::read_token(config.hub_token_file); !token)
      problems.push_back(token.error().with_context("hub.token_file"));
    if (!config.hub_ca_file.empty()) {
      check_readable(config.hub_ca_file, "hub.ca_file", " (the CA certificate that signed the hub's, PEM)", problems);
      auto content = fs::read_file(config.hub_ca_file, 16u << 20);
      if (content && content->find("-----BEGIN CERTIFICATE-----") == std::string::npos)
        problems.push_back({Errc::invalid_argument, "hub.ca_file " + config.hub_ca_file.string() +
                                                        " holds no PEM certificate (-----BEGIN CERTIFICATE-----)"});
    }
  }
  if (auto made = fs::create_directories(config.data_dir, 0755); !made)
    problems.push_back(made.error().with_context("data_dir"));
  else if (::access(config.data_dir.c_str(), W_OK | X_OK) != 0)
    problems.push_back(errno_error(errno, "data_dir: cannot write to", config.data_dir.string()));
  if (!config.socket_group.empty() && ::getgrnam(config.socket_group.c_str()) == nullptr)
    problems.push_back({Errc::not_found, "socket_group `" + config.socket_group +
                                             "` does not exist: create it (groupadd --system " + config.socket_group +
                                             ") or set socket_group: \"\""});
  check_folder_creatable(config.socket.parent_path(), "socket folder", problems);
  for (const auto& [name, app] : config.apps) check_folder_creatable(app.dir, "apps." + name + ".dir", problems);
  if (config.containers) {
    if (auto kind = discover_runtime(config.containers->runtime); !kind) problems.push_back(kind.error());
  }
  if (config.rootfs) {
    // The slot devices themselves: check_rootfs_slots.
    if (auto booted = bootenv::booted_slot(config.rootfs->booted); !booted)
      problems.push_back(booted.error().with_context("rootfs"));
  }

  return report_problems(config, problems);
}

Status check_rootfs_slots(const Config& config) {
  if (!config.rootfs) return {};
  std::vector<Error> problems;
  auto resolve = [&](const char* key, const std::string& spec) {
    if (auto device = ota::resolve_slot_device(spec); !device) problems.push_back(device.error().with_context(key));
  };
  resolve("rootfs.a", config.rootfs->slot_a);
  resolve("rootfs.b", config.rootfs->slot_b);
  return report_problems(config, problems);
}

}  // namespace eddy::daemon
