#include "platform/bootenv/tryboot.hpp"

#include <sstream>

#include "platform/bootenv/detail.hpp"
#include "platform/fs.hpp"

namespace eddy::bootenv {

namespace stdfs = std::filesystem;

namespace {

std::string trim(std::string s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.back())) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && is_space(s[i])) ++i;
  return s.substr(i);
}

class Tryboot final : public Bootloader {
 public:
  Tryboot(stdfs::path file, int part_a, int part_b) : file_(std::move(file)), part_a_(part_a), part_b_(part_b) {}

  std::string_view name() const override { return "tryboot"; }

  Expected<Slot> primary() override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    return s->committed;
  }

  Expected<SlotState> state(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    return SlotState{slot == s->committed, std::nullopt};
  }

  Expected<std::optional<Slot>> trial_pending() override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    return s->trial;
  }

  Expected<std::string> reboot_argument() override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    return std::string(s->trial ? "0 tryboot" : "");
  }

  Status set_trial(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    if (slot == s->committed)
      return make_error(Errc::conflict, describe() + ": slot " + std::string(slot_name(slot)) +
                                            " is the committed slot ([all] boot_partition=" +
                                            std::to_string(part(slot)) + "), not a trial");
    return store(s->committed, slot);
  }

  Status mark_good(Slot slot) override {
    // Writes the whole committed state: this also provisions a boot partition.
    std::error_code ec;
    if (!stdfs::is_directory(file_.parent_path(), ec))
      return make_error(Errc::not_found, describe() + ": the boot folder " + file_.parent_path().string() +
                                             " does not exist (is the boot partition mounted?)");
    return store(slot, std::nullopt);
  }

  Status mark_bad(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    if (slot == s->committed)
      return make_error(Errc::conflict,
                        describe() + ": refusing to mark slot " + std::string(slot_name(slot)) +
                            " bad: it is the committed slot ([all] boot_partition=" + std::to_string(part(slot)) + ")");
    if (s->trial != slot) return {};  // never booted without a [tryboot] section naming it
    return store(s->committed, std::nullopt);
  }

 private:
  struct Snapshot {
    Slot committed = Slot::a;
    std::optional<Slot> trial;
  };

  std::string describe() const { return "tryboot " + file_.string(); }
  int part(Slot slot) const { return slot == Slot::a ? part_a_ : part_b_; }

  Expected<Slot> slot_of(const std::string& section, const std::string& value) const {
    auto number = detail::parse_number(value, 10);
    if (number && *number == part_a_) return Slot::a;
    if (number && *number == part_b_) return Slot::b;
    return make_error(Errc::invalid_argument, describe() + ": [" + section + "] boot_partition=" + value +
                                                  " is neither slot A's partition " + std::to_string(part_a_) +
                                                  " nor slot B's " + std::to_string(part_b_));
  }

  Expected<Snapshot> load() const {
    std::error_code ec;
    if (!stdfs::exists(file_, ec))
      return make_error(Errc::not_found, describe() + " does not exist (provision it: mark the running slot good)");
    auto text = fs::read_file(file_, 64 * 1024);
    if (!text) return std::unexpected(text.error().with_context("read " + describe()));
    std::map<std::string, std::map<std::string, std::string>> sections;
    std::string section = "all";  // keys before any section header apply to all boots
    std::istringstream in(*text);
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      line = trim(line);
      if (line.empty() || line[0] == '#') continue;
      if (line.front() == '[') {
        if (line.back() != ']')
          return make_error(Errc::invalid_argument,
                            describe() + ":" + std::to_string(number) + ": unterminated section header `" + line + "`");
        section = trim(line.substr(1, line.size() - 2));
        continue;
      }
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      sections[section][trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
    }
    Snapshot s;
    auto all = sections["all"].find("boot_partition");
    if (all == sections["all"].end()) return make_error(Errc::not_found, describe() + ": [all] has no boot_partition");
    auto committed = slot_of("all", all->second);
    if (!committed) return std::unexpected(committed.error());
    s.committed = *committed;
    auto tryboot = sections.find("tryboot");
    if (tryboot != sections.end()) {
      auto it = tryboot->second.find("boot_partition");
      if (it != tryboot->second.end()) {
        auto trial = slot_of("tryboot", it->second);
        if (!trial) return std::unexpected(trial.error());
        if (*trial != s.committed) s.trial = *trial;
      }
    }
    return s;
  }

  Status store(Slot committed, std::optional<Slot> trial) const {
    std::string text = "[all]\ntryboot_a_b=1\nboot_partition=" + std::to_string(part(committed)) + "\n";
    if (trial) text += "[tryboot]\nboot_partition=" + std::to_string(part(*trial)) + "\n";
    auto st = fs::write_file_atomic(file_, text);
    if (!st) return std::unexpected(st.error().with_context("write " + describe()));
    return {};
  }

  stdfs::path file_;
  int part_a_, part_b_;
};

}  // namespace

Expected<std::unique_ptr<Bootloader>> make_tryboot_bootloader(const BootloaderConfig& config) {
  if (config.boot_dir.empty())
    return make_error(Errc::invalid_argument, "bootloader tryboot: boot_dir (the boot partition folder) is not set");
  if (!config.preset.empty() && config.preset != "tryboot")
    return make_error(Errc::invalid_argument, "bootloader tryboot: has no preset `" + config.preset + "`");
  if (config.partition_a <= 0 || config.partition_b <= 0 || config.partition_a == config.partition_b)
    return make_error(Errc::invalid_argument,
                      "bootloader tryboot: partition_a and partition_b must be two different partition numbers");
  if (!config.variables.empty())
    return make_error(Errc::invalid_argument, "bootloader tryboot: has no variables to rename");
  return std::make_unique<Tryboot>(config.boot_dir / "autoboot.txt", config.partition_a, config.partition_b);
}

}  // namespace eddy::bootenv
