#include "platform/bootenv/grub.hpp"

#include <sstream>

#include "platform/bootenv/detail.hpp"
#include "platform/fs.hpp"
#include "platform/process.hpp"

namespace eddy::bootenv {

namespace stdfs = std::filesystem;
using detail::Env;

namespace {

Error tool_error(const Error& err, const std::string& tool) {
  if (err.message.find("cannot start") != std::string::npos)
    return err.with_context(tool + " is needed for GRUB environments (Debian: grub-common)");
  return err;
}

}  // namespace

GrubEnvironment::GrubEnvironment(stdfs::path file, std::string grub_editenv)
    : file_(std::move(file)), tool_(std::move(grub_editenv)) {}

Expected<Env> GrubEnvironment::read() const {
  std::error_code ec;
  // grub-editenv lists a missing file as an empty environment: that must not pass for one.
  if (!stdfs::is_regular_file(file_, ec))
    return make_error(Errc::not_found,
                      describe() + " does not exist (create it with `grub-editenv " + file_.string() + " create`)");
  auto result = process::run({tool_, file_.string(), "list"});
  if (!result) return std::unexpected(tool_error(result.error(), tool_).with_context("read " + describe()));
  if (result->exit_code != 0 || result->timed_out)
    return make_error(Errc::io, "cannot read " + describe() + ": " + result->output +
                                    "(an invalid environment block is corrupt or not a grubenv file)");
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

Status GrubEnvironment::write(const std::vector<std::pair<std::string, std::string>>& changes) const {
  std::vector<std::string> argv{tool_, "", "set"};
  for (const auto& [name, value] : changes) {
    if (!detail::valid_name(name))
      return make_error(Errc::invalid_argument, "GRUB variable name `" + name + "` is not usable");
    if (value.find('\n') != std::string::npos)
      return make_error(Errc::invalid_argument, "GRUB variable " + name + ": a value cannot hold a newline");
    argv.push_back(name + "=" + value);
  }
  auto original = fs::read_file(file_, 1 << 20);
  if (!original) return std::unexpected(original.error().with_context("write " + describe()));
  std::error_code ec;
  auto perms = static_cast<unsigned>(stdfs::status(file_, ec).permissions() & stdfs::perms::mask);
  if (ec) perms = 0644;
  // Edit a copy beside the file, then replace the file whole.
  // (Built with append rather than `"." + name`: GCC 12 at -O3 warns falsely on the latter.)
  std::string copy_name = ".";
  copy_name.append(file_.filename().string()).append(".eddy-edit");
  stdfs::path copy = file_.parent_path() / copy_name;
  if (auto st = fs::write_file_atomic(copy, *original, 0600); !st)
    return std::unexpected(st.error().with_context("write " + describe()));
  argv[1] = copy.string();
  auto edited = [&]() -> Expected<std::string> {
    auto result = process::run_checked(argv);
    if (!result) return std::unexpected(tool_error(result.error(), tool_));
    return fs::read_file(copy, 1 << 20);
  }();
  stdfs::remove(copy, ec);
  if (!edited) return std::unexpected(edited.error().with_context("write " + describe()));
  if (auto st = fs::write_file_atomic(file_, *edited, perms); !st)
    return std::unexpected(st.error().with_context("write " + describe()));
  auto env = read();
  if (!env) return std::unexpected(env.error().with_context("read back after writing"));
  for (const auto& [name, value] : changes) {
    auto it = env->find(name);
    if (it == env->end() || it->second != value)
      return make_error(Errc::io, describe() + ": " + name + " does not read back as `" + value + "`");
  }
  return {};
}

namespace {

class GrubRauc final : public Bootloader {
 public:
  GrubRauc(GrubEnvironment env, detail::Bootnames names, std::map<std::string, std::string> vars)
      : env_(std::move(env)), names_(std::move(names)), vars_(std::move(vars)) {}

  std::string_view name() const override { return "grub/rauc"; }

  Expected<Slot> primary() override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    for (Slot slot : s->order.slots)
      if (s->bootable(slot)) return slot;
    return s->order.slots.back();  // nothing left to try: the last name, the committed fallback
  }

  Expected<SlotState> state(Slot slot) override {
    auto s = load();
    if (!s) return std::unexpected(s.error());
    auto flags = flags_of(s->env, slot);
    if (!flags) return std::unexpected(flags.error());
    bool fresh = flags->first && !flags->second;
    return SlotState{s->order.contains(slot) && fresh, fresh ? 1 : 0};
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
                       {ok(slot), "1"},
                       {try_(slot), "0"},
                       {ok(fallback), "1"},
                       {try_(fallback), "0"}});
  }

  Status mark_good(Slot slot) override {
    auto env = env_.read();
    if (!env) return std::unexpected(env.error());
    auto it = env->find(vars_.at("order"));
    auto order = detail::parse_order(it == env->end() ? "" : it->second, names_);
    return env_.write({{vars_.at("order"), order.with(slot, std::nullopt, names_)},
                       {ok(slot), "1"},
                       {try_(slot), "0"},
                       {ok(other(slot)), "0"},
                       {try_(other(slot)), "0"}});
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
    return env_.write(
        {{vars_.at("order"), s->order.with(keep, std::nullopt, names_)}, {ok(slot), "0"}, {try_(slot), "0"}});
  }

 private:
  struct Snapshot {
    Env env;
    std::string order_text;
    detail::Order order;
    std::map<Slot, std::pair<bool, bool>> flags;  // OK, TRY
    bool bootable(Slot slot) const { return flags.at(slot).first && !flags.at(slot).second; }
  };

  std::string ok(Slot slot) const { return vars_.at(slot == Slot::a ? "ok_a" : "ok_b"); }
  std::string try_(Slot slot) const { return vars_.at(slot == Slot::a ? "try_a" : "try_b"); }

  Expected<bool> flag(const Env& env, const std::string& name) const {
    auto it = env.find(name);
    if (it == env.end())
      return make_error(Errc::not_found, env_.describe() + ": variable " + name +
                                             " is not set (provision the environment: mark the running slot good)");
    auto value = detail::parse_number(it->second, 10);
    if (!value || *value > 1)
      return make_error(Errc::invalid_argument,
                        env_.describe() + ": variable " + name + "=" + it->second + " is neither 0 nor 1");
    return *value == 1;
  }

  Expected<std::pair<bool, bool>> flags_of(const Env& env, Slot slot) const {
    auto o = flag(env, ok(slot));
    if (!o) return std::unexpected(o.error());
    auto t = flag(env, try_(slot));
    if (!t) return std::unexpected(t.error());
    return std::pair{*o, *t};
  }

  Expected<Snapshot> load() const {
    auto env = env_.read();
    if (!env) return std::unexpected(env.error());
    Snapshot s;
    s.env = std::move(*env);
    auto it = s.env.find(vars_.at("order"));
    if (it == s.env.end())
      return make_error(Errc::not_found, env_.describe() + ": variable " + vars_.at("order") +
                                             " is not set (provision the environment: mark the running slot good)");
    s.order_text = it->second;
    s.order = detail::parse_order(it->second, names_);
    if (s.order.slots.empty())
      return make_error(Errc::invalid_argument, env_.describe() + ": " + vars_.at("order") + "=" + it->second +
                                                    " names neither " + names_.a + " nor " + names_.b);
    for (Slot slot : s.order.slots) {
      auto f = flags_of(s.env, slot);
      if (!f) return std::unexpected(f.error());
      s.flags[slot] = *f;
    }
    return s;
  }

  GrubEnvironment env_;
  detail::Bootnames names_;
  std::map<std::string, std::string> vars_;
};

}  // namespace

Expected<std::unique_ptr<Bootloader>> make_grub_bootloader(const BootloaderConfig& config) {
  if (config.grub_env.empty())
    return make_error(Errc::invalid_argument, "bootloader grub: grub_env (the grubenv file) is not set");
  std::string preset = config.preset.empty() ? "rauc" : config.preset;
  if (preset != "rauc")
    return make_error(Errc::invalid_argument, "bootloader grub: unknown preset `" + config.preset + "` (known: rauc)");
  if (!detail::valid_name(config.bootname_a) || !detail::valid_name(config.bootname_b) ||
      config.bootname_a == config.bootname_b)
    return make_error(Errc::invalid_argument, "bootloader grub/rauc: bootnames `" + config.bootname_a + "` and `" +
                                                  config.bootname_b + "` must be two different simple names");
  auto vars = detail::resolve_names("bootloader grub/rauc",
                                    {{"order", "ORDER"},
                                     {"ok_a", config.bootname_a + "_OK"},
                                     {"try_a", config.bootname_a + "_TRY"},
                                     {"ok_b", config.bootname_b + "_OK"},
                                     {"try_b", config.bootname_b + "_TRY"}},
                                    config.variables);
  if (!vars) return std::unexpected(vars.error());
  return std::make_unique<GrubRauc>(GrubEnvironment(config.grub_env, config.grub_editenv),
                                    detail::Bootnames{config.bootname_a, config.bootname_b}, std::move(*vars));
}

}  // namespace eddy::bootenv
