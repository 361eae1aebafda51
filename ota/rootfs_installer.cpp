#include "ota/rootfs_installer.hpp"

#include <chrono>
#include <map>

#include "ota/delta.hpp"
#include "ota/slot_writer.hpp"
#include "platform/bootenv/detail.hpp"
#include "platform/fs.hpp"
#include "platform/log.hpp"
#include "platform/process.hpp"

namespace eddy::ota {

namespace {

using bootenv::Slot;

std::string slot_key(Slot slot) { return "rootfs:slot:" + std::string(bootenv::slot_name(slot)); }
constexpr std::string_view committed_key = "rootfs:committed";

std::string slot_label(Slot slot) { return "rootfs." + std::string(slot == Slot::a ? "a" : "b"); }

}  // namespace

Expected<std::unique_ptr<RootfsInstaller>> RootfsInstaller::create(const RootfsOptions& options,
                                                                   storage::StateStore& store,
                                                                   std::filesystem::path work_dir) {
  auto bootloader = bootenv::make_bootloader(options.bootloader);
  if (!bootloader) return std::unexpected(bootloader.error().with_context("rootfs"));
  if (auto st = fs::create_directories(work_dir, 0750); !st) return std::unexpected(st.error());
  return std::unique_ptr<RootfsInstaller>(
      new RootfsInstaller(options, store, std::move(work_dir), std::move(*bootloader)));
}

Expected<Slot> RootfsInstaller::booted() {
  auto slot = bootenv::booted_slot(options_.booted);
  if (!slot) return std::unexpected(slot.error().with_context("rootfs"));
  return slot;
}

Expected<std::filesystem::path> RootfsInstaller::device(Slot slot) const {
  auto path = resolve_slot_device(slot == Slot::a ? options_.slot_a : options_.slot_b, options_.dev_dir);
  if (!path) return std::unexpected(path.error().with_context(slot_label(slot)));
  return path;
}

Expected<std::optional<Slot>> RootfsInstaller::slot_holding(std::string_view version) {
  for (Slot slot : {Slot::a, Slot::b}) {
    auto held = store_.get(slot_key(slot));
    if (!held) return std::unexpected(held.error());
    if (*held && !version.empty() && **held == version) return std::optional<Slot>(slot);
  }
  return std::optional<Slot>();
}

// The slot the bootloader boots for good. Before the first rootfs update it is the booted one
// (recorded when the first image is staged, which happens only on a committed system).
Expected<Slot> RootfsInstaller::committed() {
  auto text = store_.get(committed_key);
  if (!text) return std::unexpected(text.error());
  if (*text) return bootenv::parse_slot(**text);
  return booted();
}

Status RootfsInstaller::stage(const Release& release, ByteStream& bytes) {
  auto running = booted();
  if (!running) return std::unexpected(running.error());
  auto known = store_.get(committed_key);
  if (!known) return std::unexpected(known.error());
  if (!*known) {
    if (auto st = store_.put(committed_key, bootenv::slot_name(*running)); !st) return st;
  } else if (**known != bootenv::slot_name(*running)) {
    return make_error(Errc::conflict, "rootfs: the system runs slot " + std::string(bootenv::slot_name(*running)) +
                                          ", but slot " + **known +
                                          " is the committed one; reboot into it before installing a rootfs release");
  }
  const Slot target = bootenv::other(*running);
  auto path = device(target);
  if (!path) return std::unexpected(path.error());
  // rauc's order: the target is taken out of booting before a byte of it changes.
  if (auto st = bootloader_->mark_bad(target); !st) return std::unexpected(st.error().with_context("rootfs"));
  if (auto st = store_.put(slot_key(target), ""); !st) return st;

  SlotWriteOptions write;
  write.slot_name = slot_label(target) + " (" + path->string() + ")";
  write.progress_every = std::chrono::seconds(5);
  write.progress = [&](const SlotWriteProgress& p) {
    log::info("rootfs " + release.version + ": " +
              (p.phase == SlotWriteProgress::Phase::writing ? "written " : "verified ") +
              std::to_string(p.bytes_out >> 20) + " MiB" +
              (p.image_size ? " of " + std::to_string(*p.image_size >> 20) + " MiB" : std::string()) + " at " +
              std::to_string(static_cast<std::uint64_t>(p.bytes_per_second) >> 20) + " MiB/s");
  };
  Expected<SlotWriteResult> written = [&]() -> Expected<SlotWriteResult> {
    if (!delta_) return write_slot_image(bytes, *path, write);
    auto active = device(*running);
    if (!active) return std::unexpected(active.error());
    write.expected_image_sha256 = delta_->image_sha256;
    return write_slot_from_delta(bytes, *active, delta_->from_sha256, delta_->from_size, *path, write);
  }();
  if (!written) return std::unexpected(written.error().with_context("release " + release.name));
  log::info("rootfs " + release.version + " written to " + write.slot_name + ": " +
            std::to_string(written->image_bytes) + " bytes, sha256 " + written->image_sha256);
  return store_.put(slot_key(target), release.version);
}

Expected<std::optional<DeltaSpec>> RootfsInstaller::delta_for(const Release& release) {
  delta_.reset();
  if (release.payload.deltas.empty()) return delta_;
  auto running = booted();
  if (!running) return std::unexpected(running.error());
  auto active = device(*running);
  if (!active) return std::unexpected(active.error());
  auto capacity = slot_size(*active);
  if (!capacity) return std::unexpected(capacity.error());
  std::map<std::uint64_t, std::string> digests;  // by prefix length: each hashed once
  for (const auto& d : release.payload.deltas) {
    if (d.from_size > *capacity) continue;
    auto it = digests.find(d.from_size);
    if (it == digests.end()) {
      auto digest = slot_prefix_sha256(*active, d.from_size);
      if (!digest) return std::unexpected(digest.error().with_context("rootfs: look for a delta of " + release.name));
      it = digests.emplace(d.from_size, std::move(*digest)).first;
    }
    if (it->second == d.from_sha256) {
      delta_ = d;
      log::info("rootfs " + release.version + ": the active slot " + std::string(bootenv::slot_name(*running)) +
                " is the base of a delta: downloading " + std::to_string(d.size) + " bytes instead of " +
                std::to_string(release.payload.size));
      return delta_;
    }
  }
  log::info("rootfs " + release.version + ": no delta has the active slot as its base; downloading the full image");
  return delta_;
}

bool RootfsInstaller::is_staged(std::string_view version) {
  auto slot = slot_holding(version);
  return slot && *slot;
}

Status RootfsInstaller::discard(std::string_view version) {
  auto slot = slot_holding(version);
  if (!slot) return std::unexpected(slot.error());
  auto running = booted();
  if (!running) return std::unexpected(running.error());
  // The slot being written when the stream failed holds "" (or a stale version): the inactive one.
  Slot target = *slot ? **slot : bootenv::other(*running);
  if (target == *running) return {};  // it runs: never taken out from under the system
  auto good = committed();
  if (!good) return std::unexpected(good.error());
  if (target == *good) return {};
  if (auto st = bootloader_->mark_bad(target); !st) return std::unexpected(st.error().with_context("rootfs"));
  return store_.put(slot_key(target), "");
}

Status RootfsInstaller::switch_in(const Release& release) {
  auto slot = slot_holding(release.version);
  if (!slot) return std::unexpected(slot.error());
  if (!*slot) return make_error(Errc::not_found, "rootfs " + release.version + " is in neither slot; stage it first");
  auto running = booted();
  if (!running) return std::unexpected(running.error());
  if (**slot == *running)
    return make_error(Errc::conflict, "rootfs " + release.version + " is in the running slot " +
                                          std::string(bootenv::slot_name(*running)) + "; nothing to try");
  if (auto st = bootloader_->set_trial(**slot); !st) return std::unexpected(st.error().with_context("rootfs"));
  return {};
}

Status RootfsInstaller::promote(const Release& release, std::string_view) {
  auto slot = slot_holding(release.version);
  if (!slot) return std::unexpected(slot.error());
  auto running = booted();
  if (!running) return std::unexpected(running.error());
  if (!*slot || **slot != *running)
    return make_error(Errc::conflict, "rootfs " + release.version + " does not run (slot " +
                                          std::string(bootenv::slot_name(*running)) + " booted); not committed");
  if (auto st = bootloader_->mark_good(*running); !st) return std::unexpected(st.error().with_context("rootfs"));
  return store_.put(committed_key, bootenv::slot_name(*running));
}

Status RootfsInstaller::restore(std::string_view, std::vector<std::string>&) {
  auto good = committed();
  if (!good) return std::unexpected(good.error());
  if (auto st = bootloader_->mark_bad(bootenv::other(*good)); !st)
    return std::unexpected(st.error().with_context("rootfs"));
  if (auto st = bootloader_->mark_good(*good); !st) return std::unexpected(st.error().with_context("rootfs"));
  return {};
}

std::optional<std::string> RootfsInstaller::current_version() {
  auto running = booted();
  if (!running) return std::nullopt;
  auto held = store_.get(slot_key(*running));
  if (!held || !*held || (*held)->empty()) return std::nullopt;
  return **held;
}

Expected<bool> RootfsInstaller::restore_needs_reboot() {
  auto good = committed();
  if (!good) return std::unexpected(good.error());
  auto running = booted();
  if (!running) return std::unexpected(running.error());
  return *running != *good;
}

Status RootfsInstaller::reboot() {
  std::vector<std::string> argv = options_.reboot;
  auto argument = bootloader_->reboot_argument();
  if (!argument) return std::unexpected(argument.error().with_context("rootfs"));
  if (!argument->empty()) argv.push_back(*argument);  // reboot(8) takes "0 tryboot" as one word
  process::Options run;
  run.timeout = std::chrono::seconds(120);
  auto done = process::run_checked(argv, run);
  if (!done) return std::unexpected(done.error().with_context("rootfs: reboot"));
  return {};
}

Expected<std::string> RootfsInstaller::boot_id() {
  auto text = fs::read_file(options_.boot_id, 4096);
  if (!text) return std::unexpected(text.error().with_context("rootfs: tell this boot from the last"));
  auto words = bootenv::detail::split_words(*text);
  if (words.empty()) return make_error(Errc::invalid_argument, "rootfs: " + options_.boot_id.string() + " is empty");
  return words.front();
}

}  // namespace eddy::ota
