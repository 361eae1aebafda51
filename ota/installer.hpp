// What the update state machine (ota/updater) does to one target, whatever its payload type:
// stage a version, start it, keep it or go back. Two kinds: app bundles (AppTargetInstaller:
// version folders, a `current` link, eddyd's supervised `run` command) and containers
// (ContainerTargetInstaller: an image by digest and a container per version); root file systems
// are in ota/rootfs_installer.hpp.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ota/app_control.hpp"
#include "ota/app_installer.hpp"
#include "ota/byte_stream.hpp"
#include "ota/container_installer.hpp"
#include "ota/model.hpp"
#include "platform/error.hpp"
#include "storage/state_store.hpp"

namespace eddy::ota {

class Installer {
 public:
  virtual ~Installer() = default;
  virtual const std::string& name() const = 0;
  // Where the hooks of a version run before it is switched in (pre-activate, rollback).
  virtual std::filesystem::path version_dir(std::string_view version) const = 0;
  // Where the probes and the later hooks run once it is switched in.
  virtual std::filesystem::path active_dir() const = 0;
  // Before the download, with the committed version (stop-then-start stops it here).
  virtual Status before_download(const Release& release, std::string_view previous) = 0;
  // Stage the release's payload from `bytes` (verified as they flow), read to its end.
  virtual Status stage(const Release& release, ByteStream& bytes) = 0;
  virtual bool is_staged(std::string_view version) = 0;
  // Remove a staged or half-staged version that will not be activated (the committed one keeps
  // serving: a container stopped before the download is started again).
  virtual Status discard(std::string_view version) = 0;
  // Switch `release` in (an app's `current` link), then start it (`previous`: the committed
  // version, may be empty). A failed switch leaves the previous version as it was.
  virtual Status switch_in(const Release& release) = 0;
  virtual Status run(const Release& release, std::string_view previous) = 0;
  // The analysis passed: make the new version the only one (before the commit is recorded).
  virtual Status promote(const Release& release, std::string_view previous) = 0;
  // Back to `previous` serving alone (empty: nothing serving). A failure to restart it that
  // leaves it switched in is a warning, pushed to `warnings`.
  virtual Status restore(std::string_view previous, std::vector<std::string>& warnings) = 0;
  // The version switched in now, if the installer can tell.
  virtual std::optional<std::string> current_version() = 0;
  // At start-up: the committed `version` switched in and running.
  virtual Status start(std::string_view version) = 0;
  // Housekeeping after a commit; never removes what `keep` names or what runs.
  virtual Status prune(const std::set<std::string>& keep) = 0;

  // Targets whose switch_in takes effect at the next boot (rootfs, ota/rootfs_installer.hpp):
  // the updater persists `rebooting` and calls reboot() where others run(), and after a
  // restore() reboots while restore_needs_reboot() says the previous version is not running.
  // boot_id() changes at every boot: a reboot asked for and not yet happened keeps it. Targets
  // that switch at once keep these defaults, and the updater never asks them to reboot.
  virtual bool activates_by_reboot() const { return false; }
  // Bytes to download instead of the release's payload (rootfs: a delta whose base is the
  // active slot); stage() then receives those. Nullopt: the payload itself.
  virtual Expected<std::optional<DeltaSpec>> delta_for(const Release&) { return std::optional<DeltaSpec>(); }
  virtual Expected<bool> restore_needs_reboot() { return false; }
  virtual Status reboot() { return {}; }
  virtual Expected<std::string> boot_id() { return std::string(); }
};

// App bundles: AppInstaller's folders plus the app's `run` (through AppControl) or `restart`.
class AppTargetInstaller final : public Installer {
 public:
  AppTargetInstaller(const AppTarget& app, AppControl& control) : app_(app), control_(control), installer_(app) {}
  const std::string& name() const override { return app_.name; }
  std::filesystem::path version_dir(std::string_view version) const override;
  std::filesystem::path active_dir() const override { return app_.dir / "current"; }
  Status before_download(const Release&, std::string_view) override { return {}; }
  Status stage(const Release& release, ByteStream& bytes) override;
  bool is_staged(std::string_view version) override { return installer_.is_staged(version); }
  Status discard(std::string_view version) override { return installer_.discard(version); }
  Status switch_in(const Release& release) override { return installer_.activate(release.version); }
  Status run(const Release& release, std::string_view previous) override;
  Status promote(const Release&, std::string_view) override { return {}; }
  Status restore(std::string_view previous, std::vector<std::string>& warnings) override;
  std::optional<std::string> current_version() override { return installer_.current_version(); }
  Status start(std::string_view version) override;
  Status prune(const std::set<std::string>& keep) override { return installer_.prune(keep); }

 private:
  Status restart();

  const AppTarget& app_;
  AppControl& control_;
  AppInstaller installer_;
};

// Containers. What each version runs with and the images this target used are kept in the
// state store (keys `container:<target>:<version>` and `container-images:<target>`), so that
// a rollback or a recovery after a crash restarts the previous version without its release.
class ContainerTargetInstaller final : public Installer {
 public:
  ContainerTargetInstaller(ContainerRuntime& runtime, ContainerTarget target, storage::StateStore& store)
      : installer_(runtime, std::move(target)), store_(store) {}
  const std::string& name() const override { return installer_.target().name; }
  std::filesystem::path version_dir(std::string_view) const override { return installer_.target().dir; }
  std::filesystem::path active_dir() const override { return installer_.target().dir; }
  Status before_download(const Release& release, std::string_view previous) override;
  Status stage(const Release& release, ByteStream& bytes) override;
  // The image is present (or the version's container runs). When the runtime or the store cannot
  // answer, true: a rollback then tries to restore the version and reports the error, rather
  // than taking "not staged" for "nothing to go back to" and removing the container that serves.
  bool is_staged(std::string_view version) override;
  Status discard(std::string_view version) override;
  Status switch_in(const Release&) override { return {}; }
  Status run(const Release& release, std::string_view previous) override;
  Status promote(const Release& release, std::string_view previous) override;
  Status restore(std::string_view previous, std::vector<std::string>& warnings) override;
  std::optional<std::string> current_version() override;
  Status start(std::string_view version) override;
  Status prune(const std::set<std::string>& keep) override;

  // The settings `version` was staged with, from the store.
  Expected<std::optional<ContainerSettings>> settings_of(std::string_view version);

 private:
  // The committed version from the store; empty when none is.
  Expected<std::string> committed_version();
  // Every image reference this target staged, newest first.
  Expected<std::vector<std::string>> known_images();

  ContainerInstaller installer_;
  storage::StateStore& store_;
};

}  // namespace eddy::ota
