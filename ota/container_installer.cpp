#include "ota/container_installer.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <thread>
#include <vector>

#include "platform/fault.hpp"
#include "platform/fs.hpp"
#include "platform/http_client.hpp"
#include "platform/log.hpp"
#include "platform/unique_fd.hpp"

namespace eddy::ota {

namespace {

std::string_view source_name(ImageSource s) { return s == ImageSource::registry ? "registry" : "archive"; }

Expected<SwapStrategy> strategy_from(std::string_view name) {
  for (auto s : {SwapStrategy::hand_over, SwapStrategy::stop_then_start, SwapStrategy::download_then_stop})
    if (strategy_name(s) == name) return s;
  return make_error(Errc::invalid_argument, "unknown strategy `" + std::string(name) + "` in stored container settings");
}

// The bytes of `in` into `fd`, zstd-decoded when `decode`: memory stays at two buffers.
Status copy_stream(ByteStream& in, int fd, bool decode, const std::filesystem::path& path) {
  std::vector<char> input(1 << 16);
  std::vector<char> output(decode ? ZSTD_DStreamOutSize() : 0);
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(decode ? ZSTD_createDCtx() : nullptr, &ZSTD_freeDCtx);
  std::size_t last = 0;
  bool any = false;
  for (;;) {
    auto n = in.read(input.data(), input.size());
    if (!n) return std::unexpected(n.error());
    if (*n == 0) break;
    any = true;
    if (!decode) {
      if (auto st = fs::write_all(fd, input.data(), *n, path); !st) return st;
      continue;
    }
    ZSTD_inBuffer ib{input.data(), *n, 0};
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob{output.data(), output.size(), 0};
      last = ZSTD_decompressStream(dctx.get(), &ob, &ib);
      if (ZSTD_isError(last))
        return make_error(Errc::invalid_argument, "image archive " + path.filename().string() +
                                                      ": not a valid zstd stream (" + ZSTD_getErrorName(last) + ")");
      if (auto st = fs::write_all(fd, output.data(), ob.pos, path); !st) return st;
    }
  }
  if (decode && (!any || last != 0))
    return make_error(Errc::invalid_argument,
                      "image archive " + path.filename().string() + ": the zstd stream is empty or truncated");
  return {};
}

}  // namespace

nlohmann::json settings_to_json(const ContainerSettings& s) {
  nlohmann::json ports = nlohmann::json::array();
  for (const auto& p : s.ports)
    ports.push_back({{"ip", p.ip}, {"host", p.host}, {"container", p.container}, {"candidate", p.candidate},
                     {"protocol", p.protocol}});
  return {{"image", s.image},     {"source", source_name(s.source)},  {"command", s.command},
          {"ports", ports},       {"env", s.env},                     {"volumes", s.volumes},
          {"restart", s.restart}, {"memory_bytes", s.memory_bytes},   {"strategy", strategy_name(s.strategy)}};
}

Expected<ContainerSettings> settings_from_json(const nlohmann::json& j) {
  try {
    ContainerSettings s;
    s.image = j.at("image").get<std::string>();
    s.source = j.at("source").get<std::string>() == "registry" ? ImageSource::registry : ImageSource::archive;
    s.command = j.at("command").get<std::vector<std::string>>();
    for (const auto& p : j.at("ports"))
      s.ports.push_back(ContainerPort{p.at("ip").get<std::string>(), p.at("host").get<std::uint16_t>(),
                                      p.at("container").get<std::uint16_t>(), p.at("candidate").get<std::uint16_t>(),
                                      p.at("protocol").get<std::string>()});
    s.env = j.at("env").get<std::map<std::string, std::string>>();
    s.volumes = j.at("volumes").get<std::vector<std::string>>();
    s.restart = j.at("restart").get<std::string>();
    s.memory_bytes = j.at("memory_bytes").get<std::uint64_t>();
    auto strategy = strategy_from(j.at("strategy").get<std::string>());
    if (!strategy) return std::unexpected(strategy.error());
    s.strategy = *strategy;
    return s;
  } catch (const nlohmann::json::exception& e) {
    return make_error(Errc::invalid_argument, std::string("stored container settings are unreadable: ") + e.what());
  }
}

ContainerInstaller::ContainerInstaller(ContainerRuntime& runtime, ContainerTarget target)
    : runtime_(runtime), target_(std::move(target)) {}

std::string ContainerInstaller::container_name(std::string_view version) const {
  std::string v(version);
  std::ranges::replace(v, '+', '_');
  return "eddy-" + target_.name + "-" + v;
}

std::string ContainerInstaller::candidate_name(std::string_view version) const {
  return container_name(version) + "-candidate";
}

std::filesystem::path ContainerInstaller::download_path(std::string_view version) const {
  return target_.dir / "images" / ("." + std::string(version) + ".tar");
}

Status ContainerInstaller::discard_download(std::string_view version) {
  std::error_code ec;
  std::filesystem::remove(download_path(version), ec);
  if (ec) return std::unexpected(errno_error(ec.value(), "remove", download_path(version).string()));
  return {};
}

Status ContainerInstaller::stage(std::string_view version, const ContainerSettings& settings,
                                 std::string_view archive_name, ByteStream* bytes) {
  const std::string what = target_.name + " " + std::string(version);
  auto present = runtime_.image_exists(settings.image);
  if (!present) return std::unexpected(present.error().with_context("stage " + what));
  if (settings.source == ImageSource::registry) {
    if (*present) return {};
    if (auto st = runtime_.pull(settings.image); !st) return std::unexpected(st.error().with_context("stage " + what));
    return {};
  }
  if (!bytes) return make_error(Errc::internal, "stage " + what + ": an archive image without its bytes");
  const auto path = download_path(version);
  if (auto st = fs::create_directories(path.parent_path(), 0750); !st) return st;
  struct RemoveFile {
    std::filesystem::path path;
    ~RemoveFile() {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
  } remove_after{path};
  {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return std::unexpected(errno_error(errno, "create", path.string()));
    // Read to the end even when the image is present: the digest is checked at the end.
    if (auto st = copy_stream(*bytes, fd.get(), archive_name.ends_with(".zst"), path); !st)
      return std::unexpected(st.error().with_context("stage " + what));
    if (::fsync(fd.get()) != 0) return std::unexpected(errno_error(errno, "fsync", path.string()));
  }
  if (*present) return {};
  if (auto st = runtime_.load(path.string()); !st) return std::unexpected(st.error().with_context("stage " + what));
  auto loaded = runtime_.image_exists(settings.image);
  if (!loaded) return std::unexpected(loaded.error().with_context("stage " + what));
  if (!*loaded)
    return make_error(Errc::invalid_argument, "stage " + what + ": the archive " + std::string(archive_name) +
                                                  " loaded, but it does not hold " + settings.image +
                                                  " (rebuild the release with the digest `podman load` reports)");
  return {};
}

ContainerSpec ContainerInstaller::spec_for(std::string_view name, std::string_view version,
                                           const ContainerSettings& s, bool candidate) const {
  ContainerSpec spec;
  spec.name = std::string(name);
  spec.image = s.image;
  spec.command = s.command;
  for (const auto& p : s.ports)
    spec.ports.push_back(PortMapping{p.ip, candidate ? p.candidate : p.host, p.container, p.protocol});
  spec.env = s.env;
  spec.volumes = s.volumes;
  // A candidate is not restarted by the runtime: it is on trial, and eddyd decides.
  spec.restart = candidate ? "no" : s.restart;
  spec.memory_bytes = s.memory_bytes;
  spec.labels = {{"eddy.target", target_.name}, {"eddy.version", std::string(version)}};
  return spec;
}

Status ContainerInstaller::run_fresh(const ContainerSpec& spec) {
  // A container of that name left by an interrupted attempt is replaced.
  if (auto st = runtime_.remove(spec.name); !st) return st;
  if (auto st = runtime_.run(spec); !st) return st;
  // Right after a start, when the address settles anyway (the bridge may just have been made).
  pin_bridges_of(spec.name);
  return {};
}

void ContainerInstaller::pin_bridges_of(const std::string& container) {
  auto bridges = runtime_.bridges_of(container);
  if (!bridges) {
    log::warning(target_.name + ": " + bridges.error().message +
                 "; the bridge's MAC address is not pinned, and a container joining or leaving it may cut "
                 "the serving one off for seconds");
    return;
  }
  for (const auto& bridge : *bridges) {
    auto pinned = pin_bridge_address(bridge);
    if (!pinned)
      log::warning(target_.name + ": cannot pin the MAC address of bridge " + bridge + ": " + pinned.error().message +
                   "; a container joining or leaving it may cut the serving one off for seconds");
    else if (*pinned)
      log::info(target_.name + ": pinned the MAC address of bridge " + bridge +
                " (containers joining or leaving it no longer change it)");
  }
}

Status ContainerInstaller::stop(std::string_view version) {
  if (version.empty()) return {};
  return runtime_.stop(container_name(version), target_.stop_grace);
}

Status ContainerInstaller::start(std::string_view version, const ContainerSettings& settings,
                                 std::string_view previous) {
  if (settings.strategy == SwapStrategy::hand_over) {
    // The old container serves throughout: its bridge must keep its address while the candidate's
    // veth joins and leaves it (pinned when it started; a bridge made before is pinned now).
    if (!previous.empty() && previous != version) pin_bridges_of(container_name(previous));
    return run_fresh(spec_for(candidate_name(version), version, settings, true));
  }
  if (auto st = stop(previous); !st) return st;
  return run_fresh(spec_for(container_name(version), version, settings, false));
}

Status ContainerInstaller::promote(std::string_view version, const ContainerSettings& settings,
                                   std::string_view previous) {
  if (settings.strategy != SwapStrategy::hand_over) {
    if (previous.empty() || previous == version) return {};
    return runtime_.remove(container_name(previous));
  }
  // The service ports are the old container's until it goes, and the final container can only
  // publish them then. The candidate (the same image, probed healthy) answers on its own address
  // throughout: new connections to the service ports are redirected to it meanwhile, so that no
  // client sees the port switch.
  const std::string candidate = candidate_name(version);
  const auto final_spec = spec_for(container_name(version), version, settings, false);
  auto redirected = bridge_to(candidate, final_spec.ports);
  if (!redirected) return std::unexpected(redirected.error());
  const bool bridged = *redirected;
  struct DropRedirect {
    ContainerInstaller* self = nullptr;
    ~DropRedirect() {
      if (!self) return;
      if (auto st = self->runtime_.remove_redirects(self->target_.name); !st)
        log::warning(self->target_.name + ": " + st.error().message + " (settle() removes it later)");
    }
  } drop_on_failure{bridged ? this : nullptr};
  fault::point("container:redirected");
  if (!previous.empty()) {
    if (bridged) runtime_.drain(container_name(previous), target_.stop_grace);
    if (auto st = runtime_.remove(container_name(previous)); !st) return st;
  }
  if (auto st = run_fresh(final_spec); !st) return st;
  if (bridged) {
    wait_answering(final_spec);
    fault::point("container:final-started");
    drop_on_failure.self = nullptr;
    // A rule left here would send clients to the candidate after it goes: it stays until removed.
    if (auto st = runtime_.remove_redirects(target_.name); !st) return st;
    runtime_.drain(candidate, target_.stop_grace);
  }
  return runtime_.remove(candidate);
}

Expected<bool> ContainerInstaller::bridge_to(const std::string& candidate, const std::vector<PortMapping>& ports) {
  if (ports.empty()) return false;
  auto inserted = runtime_.redirect_ports(target_.name, candidate, ports);
  if (!inserted) {
    log::warning(target_.name + ": the service ports are not redirected to " + candidate + " during the hand-over (" +
                 inserted.error().message + "): they do not answer between the old container's removal and the new "
                 "one's start");
    return false;
  }
  // A redirect that matches but leads nowhere (a runtime that leaves loopback unroutable to its
  // bridge) would be worse than the gap: each TCP port is tried through it first.
  for (const auto& p : ports) {
    if (p.protocol != "tcp") continue;
    const std::string host = p.host_ip.empty() || p.host_ip == "0.0.0.0" ? "127.0.0.1" : p.host_ip;
    const std::string address = host + ":" + std::to_string(p.host_port);
    if (auto reached = http::check_tcp(address, std::chrono::seconds(2)); !reached) {
      if (auto st = runtime_.remove_redirects(target_.name); !st) return std::unexpected(st.error());
      log::warning(target_.name + ": the redirect of " + address + " to " + candidate + " does not connect (" +
                   reached.error().message + "); the hand-over goes on without it, with a gap");
      return false;
    }
  }
  log::info(target_.name + ": service ports redirected to " + candidate + " while the final container starts");
  return true;
}

void ContainerInstaller::wait_answering(const ContainerSpec& spec) {
  auto found = runtime_.addresses(spec.name);
  if (!found || found->empty()) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (const auto& p : spec.ports) {
    if (p.protocol != "tcp") continue;  // UDP cannot be asked; the container was started
    const std::string address = found->front() + ":" + std::to_string(p.container_port);
    while (!http::check_tcp(address, std::chrono::milliseconds(500))) {
      if (std::chrono::steady_clock::now() >= until) {
        log::warning(target_.name + ": " + spec.name + " does not answer at " + address +
                     " after 30 s; the redirect to the candidate goes anyway");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

Status ContainerInstaller::settle(std::string_view version, const std::optional<ContainerSettings>& settings) {
  // A port redirect left by a hand-over that a crash interrupted (its candidate goes below).
  if (auto st = runtime_.remove_redirects(target_.name); !st) return st;
  auto names = runtime_.containers_labelled("eddy.target", target_.name);
  if (!names) return std::unexpected(names.error());
  const std::string keep = version.empty() ? std::string() : container_name(version);
  for (const auto& name : *names) {
    if (name == keep) continue;
    if (auto st = runtime_.remove(name); !st) return st;
  }
  if (keep.empty()) return {};
  auto status = runtime_.inspect(keep);
  if (!status) return std::unexpected(status.error());
  if (status->running) return {};
  if (!settings)
    return make_error(Errc::not_found, "cannot start " + keep + ": the settings it ran with are not recorded");
  return run_fresh(spec_for(keep, version, *settings, false));
}

Expected<bool> ContainerInstaller::running(std::string_view version) {
  auto status = runtime_.inspect(container_name(version));
  if (!status) return std::unexpected(status.error());
  return status->running;
}

Status ContainerInstaller::prune(const std::vector<std::string>& known, const std::set<std::string>& keep) {
  auto images = runtime_.images();
  if (!images) return std::unexpected(images.error());
  // Images in use by any container, of this target or another.
  std::set<std::string> in_use;
  auto ours = runtime_.containers_labelled("eddy.target", target_.name);
  if (!ours) return std::unexpected(ours.error());
  for (const auto& name : *ours) {
    auto st = runtime_.inspect(name);
    if (st && st->exists) in_use.insert(st->image_id);
  }
  int kept = 0;
  for (const auto& reference : known) {
    auto image = std::ranges::find_if(*images, [&](const ImageRecord& i) {
      return std::ranges::find(i.references, reference) != i.references.end();
    });
    if (image == images->end()) continue;
    if (keep.contains(reference) || in_use.contains(image->id) || kept < target_.keep_images) {
      ++kept;
      continue;
    }
    auto removed = runtime_.remove_image(image->id);
    if (!removed && removed.error().code != Errc::conflict) return removed;  // conflict: used by another
    if (removed) log::info(target_.name + ": removed image " + reference);
  }
  return {};
}

}  // namespace eddy::ota
