#include "platform/bootenv/uboot.hpp"

#include <algorithm>
#include <charconv>
#include <sstream>

#include "platform/bootenv/detail.hpp"
#include "platform/fs.hpp"
#include "platform/process.hpp"

namespace eddy::bootenv {

namespace stdfs = std::filesystem;
using detail::Env;

namespace {

// The device (or file) lines of a fw_env.config: first word of each non-comment line.
std::vector<std::string> config_devices(const stdfs::path& config) {
  std::vector<std::string> devices;
  auto text = fs::read_file(config, 64 * 1024);
  if (!text) return devices;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    auto words = detail::split_words(line);
    if (!words.empty() && words[0][0] != '#') devices.push_back(words[0]);
  }
  return devices;
}

Error tool_error(const Error& err, const std::string& tool) {
  if (err.message.find("cannot start") != std::string::npos)
    return err.with_context(tool + " is needed for U-Boot environments (Debian: libubootenv-tool)");
  return err;
}

}  // namespace

UbootEnvironment::UbootEnvironment(stdfs::path config, std::string fw_printenv, std::string fw_setenv)
    : config_(std::move(config)), fw_printenv_(std::move(fw_printenv)), fw_setenv_(std::move(fw_setenv)) {}

std::string UbootEnvironment::describe() const {
  auto devices = config_devices(config_);
  std::string out = "U-Boot environment ";
  for (std::size_t i = 0; i < devices.size(); ++i) out += (i ? " + " : "") + devices[i];
  return out + (devices.empty() ? "" : " ") + "(fw_env.config " + config_.string() + ")";
}

Expected<Env> UbootEnvironment::read() const {
  std::error_code ec;
  if (!stdfs::exists(config_, ec))
    return make_error(Errc::not_found, "fw_env.config " + config_.string() +
                                           " does not exist: it names where the U-Boot environment is");
  auto devices = config_devices(config_);
  if (devices.empty())
    return make_error(Errc::invalid_argument,
                      "fw_env.config " + config_.string() + " names no environment device or file");
  for (const auto& device : devices)
    if (!stdfs::exists(device, ec)) return make_error(Errc::not_found, describe() + ": " + device + " does not exist");
  auto result = process::run({fw_printenv_, "-c", config_.string()});
  if (!result) return std::unexpected(tool_error(result.error(), fw_printenv_).with_context("read " + describe()));
  // libubootenv falls back to a default environment on a CRC error: never take that for ours.
  if (result->exit_code != 0 || result->output.find("Cannot read environment") != std::string::npos ||
      result->timed_out)
    return make_error(Errc::io, "cannot read " + describe() + ": " + fw_printenv_ + " exited with status " +
                                    std::to_string(result->exit_code) + ": " + result->output +
                                    "(a CRC error means the environment is corrupt or was never "
                                    "written: restore it with mkenvimage or from U-Boot's saveenv)");
  Env env;
  std::istringstream in(result->output);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

Status UbootEnvironment::write(const std::vector<std::pair<std::string, std::optional<std::string>>>& changes) const {
  std::string script;
  for (const auto& [name, value] : changes) {
    if (!detail::valid_name(name))
      return make_error(Errc::invalid_argument, "U-Boot variable name `" + name + "` is not usable");
    if (value && value->find('\n') != std::string::npos)
      return make_error(Errc::invalid_argument, "U-Boot variable " + name + ": a value cannot hold a newline");
    script += name + "=" + value.value_or("") + "\n";
  }
  process::Options options;
  options.stdin_data = script;
  options.timeout = std::chrono::seconds(30);
  auto result = process::run_checked({fw_setenv_, "-c", config_.string(), "-s", "-"}, options);
  if (!result) return std::unexpected(tool_error(result.error(), fw_setenv_).with_context("write " + describe()));
  // fw_setenv skips script lines it does not understand: check that every change landed.
  auto env = read();
  if (!env) return std::unexpected(env.error().with_context("read back after writing"));
  for (const auto& [name, value] : changes) {
    auto it = env->find(name);
    bool ok = value ? (it != env->end() && it->second == *value) : it == env->end();
    if (!ok)
      return make_error(Errc::io, describe() + ": " + name + " does not read back as `" + value.value_or("(unset)") +
                                      "` after " + fw_setenv_);
  }
  return {};
}

namespace {

using Changes = std::vector<std::pair<std::string, std::optional<std::string>>>;

Expected<std::string> require(const Env& env, const std::string& name, const UbootEnvironment& where) {
  auto it = env.find(name);
  if (it == env.end())
    return make_error(Errc::not_found, where.describe() + ": variable " + name +
                                           " is not set (provision the environment: mark the "
                                           "running slot good)");
  return it->second;
}

Expected<long> require_number(const Env& env, const std::string& name, int base, const UbootEnvironment& where) {
  auto text = require(env, name, where);
  if (!text) return std::unexpected(text.error());
  auto value = detail::parse_number(*text, base);
  if (!value)
    return make_error(Errc::invalid_argument, where.describe() + ": variable " + name + "=" + *text + " is not a " +
                                                  (base == 16 ? "hexadecimal" : "decimal") + " number");
  return *value;
}

std::string hex(long value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, 16);
  return std::string(buf, end);
}

// ---- rauc preset -------------------------------------------------------------------------

class UbootRauc final : public Bootloader {
 public:
  UbootRauc(UbootEnvironment env, detail::Bootnames names, std::map<std::string, std::string> vars, int trial_attempts,
            int committed_attempts)
      : env_(std::move(env)),
        names_(std::move(names)),
        vars_(std::move(vars)),
        trial_attempts_(trial_attempts),
        committed_attempts_(committed_attempts) {}

  std::string_view name() const override { return "uboot/rauc"; }

  Expected<Slot> primary() override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    for (Slot slot : s->order.slots)
      if (s->left(slot) > 0) return slot;
    // None left: the script resets every counter and boots the first name again.
    return s->order.slots.front();
  }

  Expected<SlotState> state(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    auto left = left_of(s->env, slot);
    if (!left) return std::unexpected(left.error());
    return SlotState{s->order.contains(slot) && *left > 0, static_cast<int>(*left)};
  }

  Expected<std::optional<Slot>> trial_pending() override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    return detail::pending_trial(s->order);
  }

  Status set_trial(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    Slot fallback = other(slot);
    if (auto st = detail::check_trial_allowed(s->order, s->order_text, slot, env_.describe(), vars_.at("order")); !st)
      return st;
    return env_.write({{vars_.at("order"), s->order.with(slot, fallback, names_)},
                       {left_name(slot), hex(trial_attempts_)},
                       {left_name(fallback), hex(committed_attempts_)}});
  }

  Status mark_good(Slot slot) override {
    auto env = env_.read();
    if (!env) return std::unexpected(env.error());
    // A fresh environment may not have BOOT_ORDER yet: this writes the whole committed state.
    auto it = env->find(vars_.at("order"));
    auto order = detail::parse_order(it == env->end() ? "" : it->second, names_);
    return env_.write({{vars_.at("order"), order.with(slot, std::nullopt, names_)},
                       {left_name(slot), hex(committed_attempts_)},
                       {left_name(other(slot)), "0"}});
  }

  Status mark_bad(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    if (s->order.slots.size() == 1 && s->order.slots.front() == slot)
      return make_error(Errc::conflict, env_.describe() + ": refusing to mark slot " + std::string(slot_name(slot)) +
                                            " bad: it is the only slot in " + vars_.at("order") + "=" + s->order_text);
    std::optional<Slot> keep;
    for (Slot x : s->order.slots)
      if (x != slot) keep = x;
    return env_.write({{vars_.at("order"), s->order.with(keep, std::nullopt, names_)}, {left_name(slot), "0"}});
  }

 private:
  struct Snapshot {
    Env env;
    std::string order_text;
    detail::Order order;
    std::map<Slot, long> lefts;
    long left(Slot slot) const { return lefts.at(slot); }
  };

  std::string left_name(Slot slot) const { return vars_.at(slot == Slot::a ? "left_a" : "left_b"); }

  Expected<long> left_of(const Env& env, Slot slot) const { return require_number(env, left_name(slot), 16, env_); }

  Expected<Snapshot> load() const {
    auto env = env_.read();
    if (!env) return std::unexpected(env.error());
    Snapshot s;
    s.env = std::move(*env);
    auto order = require(s.env, vars_.at("order"), env_);
    if (!order) return std::unexpected(order.error());
    s.order_text = *order;
    s.order = detail::parse_order(*order, names_);
    if (s.order.slots.empty())
      return make_error(Errc::invalid_argument, env_.describe() + ": " + vars_.at("order") + "=" + *order +
                                                    " names neither " + names_.a + " nor " + names_.b);
    for (Slot slot : s.order.slots) {
      auto left = left_of(s.env, slot);
      if (!left) return std::unexpected(left.error());
      s.lefts[slot] = *left;
    }
    return s;
  }

  UbootEnvironment env_;
  detail::Bootnames names_;
  std::map<std::string, std::string> vars_;
  int trial_attempts_, committed_attempts_;
};

// ---- mender preset -----------------------------------------------------------------------

class UbootMender final : public Bootloader {
 public:
  UbootMender(UbootEnvironment env, std::map<std::string, std::string> vars, int part_a, int part_b)
      : env_(std::move(env)), vars_(std::move(vars)), part_a_(part_a), part_b_(part_b) {}

  std::string_view name() const override { return "uboot/mender"; }

  Expected<Slot> primary() override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    // The next boot increments bootcount; past bootlimit, altbootcmd switches partitions.
    if (s->upgrade_available && s->bootlimit > 0 && s->bootcount + 1 > s->bootlimit) return other(s->part);
    return s->part;
  }

  Expected<SlotState> state(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    if (slot != s->part) return SlotState{false, std::nullopt};
    if (!s->upgrade_available) return SlotState{true, std::nullopt};
    int left = s->bootlimit > 0 ? static_cast<int>(std::max(0L, s->bootlimit - s->bootcount)) : 0;
    return SlotState{false, left};
  }

  Expected<std::optional<Slot>> trial_pending() override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    if (s->upgrade_available) return std::optional<Slot>(s->part);
    return std::optional<Slot>();
  }

  Status set_trial(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    if (s->part == slot && !s->upgrade_available)
      return make_error(Errc::conflict, env_.describe() + ": slot " + std::string(slot_name(slot)) +
                                            " is the committed slot (" + vars_.at("boot_part") + "=" +
                                            std::to_string(part(slot)) + "), not a trial");
    if (s->part != slot && s->upgrade_available)
      return make_error(Errc::conflict, env_.describe() + ": a trial of slot " + std::string(slot_name(s->part)) +
                                            " is pending; settle it before arming slot " +
                                            std::string(slot_name(slot)));
    if (s->bootlimit <= 0)
      return make_error(Errc::conflict, env_.describe() + ": " + vars_.at("bootlimit") +
                                            " is not set, so U-Boot would never fall back from a failed "
                                            "trial; set it (Mender uses 1)");
    return env_.write(boot_part_changes(slot, true));
  }

  Status mark_good(Slot slot) override {
    auto env = env_.read();  // refuse to write an environment that does not read
    if (!env) return std::unexpected(env.error());
    return env_.write(boot_part_changes(slot, false));
  }

  Status mark_bad(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    if (!s->upgrade_available) {
      if (slot == s->part)
        return make_error(Errc::conflict, env_.describe() + ": refusing to mark slot " + std::string(slot_name(slot)) +
                                              " bad: it is the committed slot (" + vars_.at("boot_part") + "=" +
                                              std::to_string(part(slot)) + ")");
      return {};  // the inactive slot has no state here: U-Boot never boots it without a trial
    }
    if (slot != s->part)
      return make_error(Errc::conflict, env_.describe() + ": refusing to mark slot " + std::string(slot_name(slot)) +
                                            " bad: it is the fallback of the "
                                            "pending trial of slot " +
                                            std::string(slot_name(s->part)));
    return env_.write(boot_part_changes(other(slot), false));  // Mender's rollback
  }

 private:
  struct Snapshot {
    Slot part = Slot::a;
    bool upgrade_available = false;
    long bootcount = 0, bootlimit = 0;
  };

  int part(Slot slot) const { return slot == Slot::a ? part_a_ : part_b_; }

  Changes boot_part_changes(Slot slot, bool trial) const {
    return {{vars_.at("boot_part"), std::to_string(part(slot))},
            {vars_.at("boot_part_hex"), hex(part(slot))},
            {vars_.at("upgrade_available"), trial ? "1" : "0"},
            {vars_.at("bootcount"), "0"}};
  }

  Expected<Snapshot> load() const {
    auto env = env_.read();
    if (!env) return std::unexpected(env.error());
    Snapshot s;
    auto part_number = require_number(*env, vars_.at("boot_part"), 10, env_);
    if (!part_number) return std::unexpected(part_number.error());
    if (*part_number == part_a_)
      s.part = Slot::a;
    else if (*part_number == part_b_)
      s.part = Slot::b;
    else
      return make_error(Errc::invalid_argument, env_.describe() + ": " + vars_.at("boot_part") + "=" +
                                                    std::to_string(*part_number) + " is neither slot A's partition " +
                                                    std::to_string(part_a_) + " nor slot B's " +
                                                    std::to_string(part_b_));
    auto upgrade = require_number(*env, vars_.at("upgrade_available"), 10, env_);
    if (!upgrade) return std::unexpected(upgrade.error());
    s.upgrade_available = *upgrade != 0;
    if (s.upgrade_available) {
      auto count = require_number(*env, vars_.at("bootcount"), 10, env_);
      if (!count) return std::unexpected(count.error());
      s.bootcount = *count;
    }
    if (env->contains(vars_.at("bootlimit"))) {
      auto limit = require_number(*env, vars_.at("bootlimit"), 10, env_);
      if (!limit) return std::unexpected(limit.error());
      s.bootlimit = *limit;
    }
    return s;
  }

  UbootEnvironment env_;
  std::map<std::string, std::string> vars_;
  int part_a_, part_b_;
};

}  // namespace

Expected<std::unique_ptr<Bootloader>> make_uboot_bootloader(const BootloaderConfig& config) {
  if (config.env_config.empty())
    return make_error(Errc::invalid_argument, "bootloader uboot: env_config (the fw_env.config path) is not set");
  UbootEnvironment env(config.env_config, config.fw_printenv, config.fw_setenv);
  std::string preset = config.preset.empty() ? "rauc" : config.preset;
  if (preset == "rauc") {
    if (!detail::valid_name(config.bootname_a) || !detail::valid_name(config.bootname_b) ||
        config.bootname_a == config.bootname_b)
      return make_error(Errc::invalid_argument, "bootloader uboot/rauc: bootnames `" + config.bootname_a + "` and `" +
                                                    config.bootname_b + "` must be two different simple names");
    if (config.trial_attempts < 1 || config.trial_attempts > 255 || config.committed_attempts < 1 ||
        config.committed_attempts > 255)
      return make_error(Errc::invalid_argument,
                        "bootloader uboot/rauc: trial_attempts and committed_attempts must be 1..255");
    auto vars = detail::resolve_names("bootloader uboot/rauc",
                                      {{"order", "BOOT_ORDER"},
                                       {"left_a", "BOOT_" + config.bootname_a + "_LEFT"},
                                       {"left_b", "BOOT_" + config.bootname_b + "_LEFT"}},
                                      config.variables);
    if (!vars) return std::unexpected(vars.error());
    return std::make_unique<UbootRauc>(std::move(env), detail::Bootnames{config.bootname_a, config.bootname_b},
                                       std::move(*vars), config.trial_attempts, config.committed_attempts);
  }
  if (preset == "mender") {
    if (config.partition_a <= 0 || config.partition_b <= 0 || config.partition_a == config.partition_b)
      return make_error(Errc::invalid_argument,
                        "bootloader uboot/mender: partition_a and partition_b must be two different partition numbers");
    auto vars = detail::resolve_names("bootloader uboot/mender",
                                      {{"boot_part", "mender_boot_part"},
                                       {"boot_part_hex", "mender_boot_part_hex"},
                                       {"upgrade_available", "upgrade_available"},
                                       {"bootcount", "bootcount"},
                                       {"bootlimit", "bootlimit"}},
                                      config.variables);
    if (!vars) return std::unexpected(vars.error());
    return std::make_unique<UbootMender>(std::move(env), std::move(*vars), config.partition_a, config.partition_b);
  }
  return make_error(Errc::invalid_argument,
                    "bootloader uboot: unknown preset `" + config.preset + "` (known: rauc, mender)");
}

}  // namespace eddy::bootenv
