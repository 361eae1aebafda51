// The container runtime seam: what the container installer (ota/container_installer) needs from
// Podman or Docker, through their command lines. Both adapters are one class that differs only
// in the program and a few sub-commands; the command runner is injected so that tests can record
// the argv an adapter builds (RecordingRunner) and check it against what the real tool accepts.
//
// Images are named by digest (`name@sha256:…`, the manifest digest). Containers that Eddy
// creates carry the label `eddy.target=<target>`, so that they can be found again after a crash.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/error.hpp"
#include "platform/process.hpp"

namespace eddy {

// `-p host_ip:host_port:container_port/protocol`.
struct PortMapping {
  std::string host_ip = "127.0.0.1";
  std::uint16_t host_port = 0;
  std::uint16_t container_port = 0;
  std::string protocol = "tcp";  // tcp | udp
};

// What `run` creates and starts.
struct ContainerSpec {
  std::string name;                          // unique on the machine
  std::string image;                         // name@sha256:<64 hex>
  std::vector<std::string> command;          // empty: the image's own
  std::vector<PortMapping> ports;
  std::map<std::string, std::string> env;
  std::vector<std::string> volumes;          // `host:container[:ro]`, as -v takes them
  std::string restart = "no";                // no | always | on-failure | unless-stopped
  std::uint64_t memory_bytes = 0;            // 0: no limit
  std::string network;                       // empty: the runtime's default; `host`, `none`
  std::map<std::string, std::string> labels;
};

struct ContainerStatus {
  bool exists = false;
  bool running = false;
  std::string image_id;  // hex, without `sha256:`
};

struct ImageRecord {
  std::string id;                       // hex, without `sha256:`
  std::vector<std::string> references;  // `repo@sha256:…` known for it
};

// Runs one command to completion; the adapters judge the exit status themselves.
using CommandRunner = std::function<Expected<process::Result>(const std::vector<std::string>& argv)>;

// The real runner: process::run with `timeout`.
CommandRunner process_runner(std::chrono::milliseconds timeout = std::chrono::minutes(10));

class ContainerRuntime {
 public:
  virtual ~ContainerRuntime() = default;
  virtual std::string_view name() const = 0;  // podman | docker

  // `load -i archive` (an OCI or docker archive, uncompressed tar).
  virtual Status load(const std::string& archive) = 0;
  virtual Status pull(const std::string& reference) = 0;
  virtual Expected<bool> image_exists(const std::string& reference) = 0;
  // Create and start (`run -d`); a container of that name must not exist.
  virtual Status run(const ContainerSpec& spec) = 0;
  // Stop (SIGTERM, SIGKILL after `grace`); a missing or stopped container is not an error.
  virtual Status stop(const std::string& name, std::chrono::seconds grace) = 0;
  // Remove, stopping it first if it runs; a missing container is not an error.
  virtual Status remove(const std::string& name) = 0;
  virtual Expected<ContainerStatus> inspect(const std::string& name) = 0;
  // Names of the containers (running or not) whose label `key` is `value`.
  virtual Expected<std::vector<std::string>> containers_labelled(const std::string& key, const std::string& value) = 0;
  // The host bridges (interface names, e.g. podman0) of the bridge networks the container `name`
  // is attached to, for pin_bridge_address. Docker fixes its bridges' MAC addresses itself: none.
  virtual Expected<std::vector<std::string>> bridges_of(const std::string& name) = 0;
  virtual Expected<std::vector<ImageRecord>> images() = 0;
  // The IPv4 addresses of container `name` on its networks (none when it has none: `host`, `none`).
  virtual Expected<std::vector<std::string>> addresses(const std::string& name) = 0;

  // A port switch without a gap (hand-over): new connections to each port's host_ip:host_port
  // (host_ip empty or 0.0.0.0: any of the host's addresses) go to the running container `to`, at
  // its own address and the port's container_port, while the container that publishes the port
  // is replaced. iptables rules in the nat table, inserted ahead of the runtime's own publishing
  // rules (Podman's NETAVARK-*, Docker's DOCKER chains) and marked with the comment `eddy:<tag>`:
  // a DNAT in PREROUTING (other hosts) and OUTPUT (this host), and a MASQUERADE in POSTROUTING
  // for loopback clients (127.0.0.1 reaches a container only from another source address).
  // Errc::unsupported when it cannot be done here (no iptables, an IPv6 port, `to` without an
  // IPv4 address); the rules inserted before a failure are removed again.
  virtual Status redirect_ports(const std::string& tag, const std::string& to, const std::vector<PortMapping>& ports) = 0;
  // Remove every rule marked `eddy:<tag>` (none there is not an error; no iptables neither).
  virtual Status remove_redirects(const std::string& tag) = 0;
  // Let the connections that container `name` serves finish: wait (up to `deadline`) until the
  // host's connection tracking shows none established towards it, then forget every entry
  // towards it, so that a new connection reusing a client port is not sent there again. Best
  // effort: without conntrack it logs why and returns.
  virtual void drain(const std::string& name, std::chrono::milliseconds deadline) = 0;
  // Remove an image by id; the runtime refuses one that a container uses (Errc::conflict).
  virtual Status remove_image(const std::string& id) = 0;
};

// A Linux bridge without an address of its own takes the lowest MAC address of its ports, so it
// changes whenever a container's veth with a lower one joins or leaves: the host then forgets its
// neighbours on the bridge and the containers keep sending to the old address, and a container that
// serves does not answer for seconds (netavark before 1.9 leaves Podman's bridges like that; its
// fix, containers/netavark#833, sets the address). Setting the bridge's address to the one it has
// makes the kernel keep it. True when it was pinned now, false when it was pinned already;
// Errc::not_found for an unknown interface.
Expected<bool> pin_bridge_address(const std::string& interface);

enum class RuntimeKind { podman, docker };

// The adapter for `kind`, running `program` (default: "podman" / "docker", found on PATH).
std::unique_ptr<ContainerRuntime> make_container_runtime(RuntimeKind kind, CommandRunner runner,
                                                         std::string program = {});

// "podman" | "docker" -> kind; anything else is Errc::invalid_argument naming it.
Expected<RuntimeKind> parse_runtime_kind(std::string_view name);
std::string_view runtime_kind_name(RuntimeKind kind);

// The configured runtime if set, else Podman if `podman` is on PATH, else Docker if `docker`
// is; none of them is Errc::not_found saying what to install or configure.
Expected<RuntimeKind> discover_runtime(std::optional<RuntimeKind> configured);

// Records every argv it is given and answers from a queue of replies (exit 0 with no output
// when the queue is empty): the adapters' command lines checked without a runtime.
class RecordingRunner {
 public:
  CommandRunner runner();
  void reply(int exit_code, std::string output = {}) { replies_.push_back({exit_code, false, std::move(output)}); }
  const std::vector<std::vector<std::string>>& calls() const { return *calls_; }

 private:
  std::shared_ptr<std::vector<std::vector<std::string>>> calls_ = std::make_shared<std::vector<std::vector<std::string>>>();
  std::deque<process::Result> replies_;
};

}  // namespace eddy
