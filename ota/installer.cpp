#include "ota/installer.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "ota/app_supervisor.hpp"
#include "platform/log.hpp"

namespace eddy::ota {

// ---------------------------------------------------------------------------------------------
// App bundles

std::filesystem::path AppTargetInstaller::version_dir(std::string_view version) const {
  return app_.dir / "versions" / std::string(version);
}

Status AppTargetInstaller::stage(const Release& release, ByteStream& bytes) {
  return installer_.stage(release.version, bytes);
}

Status AppTargetInstaller::restart() {
  if (!app_.run.empty()) return control_.restart(app_.name, app_.run, app_.dir / "current");
  if (!app_.restart.empty()) return run_restart_command(app_, std::chrono::seconds(120));
  return {};
}

Status AppTargetInstaller::run(const Release&, std::string_view) { return restart(); }

Status AppTargetInstaller::restore(std::string_view previous, std::vector<std::string>& warnings) {
  if (!previous.empty()) {
    if (auto st = installer_.activate(previous); !st) return st;
    if (auto st = restart(); !st) warnings.push_back("restart: " + st.error().message);
    return {};
  }
  // Nothing committed before: stop it and leave no `current`.
  if (!app_.run.empty()) control_.stop(app_.name);
  std::error_code ec;
  std::filesystem::remove(app_.dir / "current", ec);
  return {};
}

Status AppTargetInstaller::start(std::string_view version) {
  if (app_.run.empty()) return {};
  if (installer_.current_version() != version && installer_.is_staged(version)) (void)installer_.activate(version);
  return control_.restart(app_.name, app_.run, app_.dir / "current");
}

// ---------------------------------------------------------------------------------------------
// Containers

namespace {

std::string settings_key(std::string_view target, std::string_view version) {
  return "container:" + std::string(target) + ":" + std::string(version);
}

std::string images_key(std::string_view target) { return "container-images:" + std::string(target); }

}  // namespace

Expected<std::optional<ContainerSettings>> ContainerTargetInstaller::settings_of(std::string_view version) {
  auto text = store_.get(settings_key(name(), version));
  if (!text) return std::unexpected(text.error());
  if (!*text) return std::optional<ContainerSettings>();
  auto json = nlohmann::json::parse(**text, nullptr, false);
  auto settings = settings_from_json(json);
  if (!settings) return std::unexpected(settings.error().with_context(name() + " " + std::string(version)));
  return std::optional<ContainerSettings>(std::move(*settings));
}

Expected<std::vector<std::string>> ContainerTargetInstaller::known_images() {
  auto text = store_.get(images_key(name()));
  if (!text) return std::unexpected(text.error());
  std::vector<std::string> images;
  if (*text) {
    auto list = nlohmann::json::parse(**text, nullptr, false);
    if (list.is_array())
      for (const auto& i : list)
        if (i.is_string()) images.push_back(i.get<std::string>());
  }
  return images;
}

Expected<std::string> ContainerTargetInstaller::committed_version() {
  auto inst = store_.installed(name());
  if (!inst) return std::unexpected(inst.error().with_context("read the committed version of " + name()));
  return *inst ? (*inst)->current_version : std::string();
}

Status ContainerTargetInstaller::before_download(const Release& release, std::string_view previous) {
  if (release.payload.container.strategy != SwapStrategy::stop_then_start || previous.empty()) return {};
  return installer_.stop(previous);
}

Status ContainerTargetInstaller::stage(const Release& release, ByteStream& bytes) {
  const auto& settings = release.payload.container;
  // Recorded before the image is fetched: a rollback to this version later needs them, and a
  // stale entry of a version never activated is harmless.
  if (auto st = store_.put(settings_key(name(), release.version), settings_to_json(settings).dump()); !st) return st;
  auto known = known_images();
  if (!known) return std::unexpected(known.error());
  std::vector<std::string> images = std::move(*known);
  std::erase(images, settings.image);
  images.insert(images.begin(), settings.image);
  if (auto st = store_.put(images_key(name()), nlohmann::json(images).dump()); !st) return st;
  const std::string archive = release.payload.path.empty() ? release.payload.url : release.payload.path;
  return installer_.stage(release.version, settings, archive,
                          settings.source == ImageSource::registry ? nullptr : &bytes);
}

bool ContainerTargetInstaller::is_staged(std::string_view version) {
  const std::string what = name() + " " + std::string(version);
  // A rollback asks this of the version that serves, and "no" makes it remove every container of
  // the target. So only a definite "no" is a no: when the runtime or the store cannot answer, the
  // version counts as there, and the restore that follows reports the error and removes nothing.
  auto cannot_tell = [&](const Error& e) {
    log::warning("cannot tell whether " + what + " is still on this device (" + e.message +
                 "); taken as there, so that nothing serving is removed");
    return true;
  };
  auto settings = settings_of(version);
  if (!settings) return cannot_tell(settings.error());
  if (!*settings) return false;
  auto present = installer_.image_present((*settings)->image);
  if (!present) return cannot_tell(present.error());
  if (*present) return true;
  // A container keeps its image: one that runs is a second opinion against a wrong "absent".
  auto running = installer_.running(version);
  if (!running) return cannot_tell(running.error());
  return *running;
}

Status ContainerTargetInstaller::discard(std::string_view version) {
  if (auto st = installer_.discard_download(version); !st) return st;
  // The committed version serves alone again (stop-then-start stopped it before the download).
  // A store that cannot say which one it is leaves every container as it is: settling on "none"
  // would remove the one that serves.
  auto committed = committed_version();
  if (!committed) return std::unexpected(committed.error());
  auto settings = committed->empty() ? Expected<std::optional<ContainerSettings>>() : settings_of(*committed);
  if (!settings) return std::unexpected(settings.error());
  return installer_.settle(*committed, *settings);
}

Status ContainerTargetInstaller::run(const Release& release, std::string_view previous) {
  return installer_.start(release.version, release.payload.container, previous);
}

Status ContainerTargetInstaller::promote(const Release& release, std::string_view previous) {
  return installer_.promote(release.version, release.payload.container, previous);
}

Status ContainerTargetInstaller::restore(std::string_view previous, std::vector<std::string>&) {
  auto settings = previous.empty() ? Expected<std::optional<ContainerSettings>>() : settings_of(previous);
  if (!settings) return std::unexpected(settings.error());
  return installer_.settle(previous, *settings);
}

std::optional<std::string> ContainerTargetInstaller::current_version() {
  auto committed = committed_version();
  if (!committed) {
    log::warning(committed.error().message);
    return std::nullopt;
  }
  if (committed->empty()) return std::nullopt;
  return *committed;
}

Status ContainerTargetInstaller::start(std::string_view version) {
  auto settings = settings_of(version);
  if (!settings) return std::unexpected(settings.error());
  return installer_.settle(version, *settings);
}

Status ContainerTargetInstaller::prune(const std::set<std::string>& keep) {
  std::set<std::string> keep_images;
  for (const auto& version : keep) {
    auto settings = settings_of(version);
    if (settings && *settings) keep_images.insert((*settings)->image);
  }
  auto known = known_images();
  if (!known) return std::unexpected(known.error());
  std::vector<std::string> images = std::move(*known);
  return installer_.prune(images, keep_images);
}

}  // namespace eddy::ota
