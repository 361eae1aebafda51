// Installer for payloads of type `container`: an OCI image (by digest) loaded from a verified
// archive or pulled from a registry, and a container per version started through the container
// runtime seam (platform/container_runtime.hpp), swapped in by the release's strategy:
//
// - hand-over: the new version starts beside the old one as `<name>-candidate`, publishing its
//   ports' `candidate` host ports (the release's probes address those). Passing: the service
//   ports are redirected to the candidate (iptables, tagged `eddy:<target>`), the old one is
//   removed, the new version is started on the service ports, and once it answers the redirect
//   and then the candidate go: no connection finds the service port closed. Failing: the
//   candidate goes and the old one never stopped.
// - download-then-stop: the image is staged while the old container serves; then the old one
//   stops and the new one starts on the service ports and is probed there.
// - stop-then-start: the old container stops before the download (a device without room for two),
//   then as download-then-stop.
//
// Containers are named `eddy-<target>-<version>` ('+' becomes '_') and labelled
// eddy.target=<target>: settle() can always reach "exactly this version runs" from whatever a
// crash left behind. What each version was started with is kept by the caller (settings_to_json),
// so that a rollback restarts the previous version without the release that named it.
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ota/byte_stream.hpp"
#include "ota/model.hpp"
#include "platform/container_runtime.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

struct ContainerTarget {
  std::string name;               // the release's spec.target
  std::filesystem::path dir;      // image downloads; the probes' working folder
  int keep_images = 2;            // images of this target kept (the running one included)
  std::chrono::seconds stop_grace{10};
};

nlohmann::json settings_to_json(const ContainerSettings& settings);
// Errc::invalid_argument when the stored text is not what settings_to_json wrote.
Expected<ContainerSettings> settings_from_json(const nlohmann::json& json);

class ContainerInstaller {
 public:
  ContainerInstaller(ContainerRuntime& runtime, ContainerTarget target);

  std::string container_name(std::string_view version) const;
  std::string candidate_name(std::string_view version) const;

  // Bring the image of `settings` into the runtime. From an archive: `bytes` (the caller's
  // verifying stream: digest and size checked as they flow) is read to its end into
  // dir/images/.<version>.tar (zstd-decoded when `archive_name` ends in .zst), and only then
  // loaded; the file goes afterwards. The archive must hold settings.image, else
  // Errc::invalid_argument naming both. From a registry: pulled by digest (bytes unused). An
  // image already present is not fetched again (bytes are still read and checked).
  Status stage(std::string_view version, const ContainerSettings& settings, std::string_view archive_name,
               ByteStream* bytes);
  Status discard_download(std::string_view version);
  Expected<bool> image_present(const std::string& reference) { return runtime_.image_exists(reference); }

  // Start `version`: beside the old one (hand-over), or in its place (the other strategies; the
  // previous version's container is stopped first).
  Status start(std::string_view version, const ContainerSettings& settings, std::string_view previous);
  // The new version passed: it serves on the service ports alone; the previous container is removed.
  Status promote(std::string_view version, const ContainerSettings& settings, std::string_view previous);
  // Exactly `version` serving on its service ports (started from `settings` unless it runs), and
  // every other container of the target removed. `version` empty: none serving.
  Status settle(std::string_view version, const std::optional<ContainerSettings>& settings);
  // Stop the running container of `version` (stop-then-start, before the download).
  Status stop(std::string_view version);

  // Whether the final container of `version` runs.
  Expected<bool> running(std::string_view version);

  // Remove this target's images that are not in `keep` (references), beyond keep_images, never
  // one that a container uses. `known`: every reference this target ever ran, newest first.
  Status prune(const std::vector<std::string>& known, const std::set<std::string>& keep);

  const ContainerTarget& target() const { return target_; }

 private:
  ContainerSpec spec_for(std::string_view name, std::string_view version, const ContainerSettings& settings,
                         bool candidate) const;
  Status run_fresh(const ContainerSpec& spec);
  // Pin the MAC address of the bridges `container` is on (pin_bridge_address): a candidate's veth
  // joining or leaving must not change it and cut the serving container off for seconds. A
  // failure is a warning: the swap still works, as it did before.
  void pin_bridges_of(const std::string& container);
  std::filesystem::path download_path(std::string_view version) const;
  // Redirect the service `ports` to the running `candidate` (ContainerRuntime::redirect_ports)
  // and try each TCP port through it; false, with a log line saying why, when that cannot be done
  // here: the hand-over then has the gap of one removal and one start, as before. An error only
  // when a redirect that did not work cannot be removed again.
  Expected<bool> bridge_to(const std::string& candidate, const std::vector<PortMapping>& ports);
  // Until the container of `spec` accepts connections on its TCP ports at its own address (at
  // most 30 s; then a log line).
  void wait_answering(const ContainerSpec& spec);

  ContainerRuntime& runtime_;
  ContainerTarget target_;
};

}  // namespace eddy::ota
