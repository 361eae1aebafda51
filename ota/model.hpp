// The release and rollout model: the YAML files of the fleet repository (DESIGN.md, "A release",
// "A rollout"), parsed strictly. Every refusal is an Errc::invalid_argument error whose message
// starts with "<file>:<line>: " and says what to write instead, e.g.
//   releases/app-1.2.yaml:14: unknown key `probs` (did you mean `probes`?)
//
// General rules, for every key of both kinds:
// - Unknown keys and keys written twice in one mapping are errors.
// - Numbers (status, size, iterations, threshold, minDevices, steps) must be plain, unquoted
//   YAML numbers; `"200"` is a string and refused. Text fields accept any scalar as its text
//   (`version: 1.10` stays "1.10").
// - An optional key written with no value (`hooks:` followed by nothing) counts as absent.
// - A file holds exactly one YAML document.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ota/probe_types.hpp"
#include "platform/duration.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

// Where a container's image comes from, and how the new container replaces the old one
// (balena's update strategies).
enum class ImageSource { archive, registry };
enum class SwapStrategy { hand_over, stop_then_start, download_then_stop };

// A published port: host_ip:host:container/protocol. `candidate` is the host port the new
// container publishes instead of `host` while it is probed beside the old one (strategy
// hand-over): the release's probes address it there.
struct ContainerPort {
  std::string ip = "0.0.0.0";
  std::uint16_t host = 0;
  std::uint16_t container = 0;
  std::uint16_t candidate = 0;  // 0: none (required for hand-over)
  std::string protocol = "tcp";
};

// The settings of a payload of type `container` (DESIGN.md "A release", README "Container
// releases"); yaml, inside `payload:` beside type/path/url/sha256/size:
// - image: `name@sha256:<64 hex>`, required: the manifest digest pins what runs; a tag alone
//   (`web:1.2`) is refused.
// - source: archive | registry. `archive` (the default when path or url is given): an OCI or
//   docker archive, `.tar` or `.tar.zst`, whose sha256 and size guard the bytes as stored;
//   `registry`: pulled by digest, and path, url, sha256 and size are not written.
// - command: [program, args...] (default: the image's own).
// - ports: [{host, container, candidate, ip (default 0.0.0.0), protocol (tcp | udp)}]; numbers
//   1..65535, host and candidate ports distinct across the list.
// - env: {NAME: value}; volumes: ["host-path-or-volume:/container/path[:ro]"].
// - restart: no | always | on-failure | unless-stopped (default unless-stopped).
// - memory: a limit such as 64MiB (default: none).
// - strategy: hand-over (default) | stop-then-start | download-then-stop.
struct ContainerSettings {
  std::string image;
  ImageSource source = ImageSource::archive;
  std::vector<std::string> command;
  std::vector<ContainerPort> ports;
  std::map<std::string, std::string> env;
  std::vector<std::string> volumes;
  std::string restart = "unless-stopped";
  std::uint64_t memory_bytes = 0;
  SwapStrategy strategy = SwapStrategy::hand_over;
};

std::string_view strategy_name(SwapStrategy strategy);

// yaml: payload: {type, path | url, sha256, size}, all required (exactly one of path and url),
// except for a container pulled from a registry (see ContainerSettings).
// - type: app | rootfs | container; `rootfs` goes with target `rootfs` and only with it.
// - path: relative to the repository root, no "..", no "." or empty segments, no leading '/',
//   no backslash.
// - url: http:// or https:// (the SHA-256 and size from the signed release guard the bytes).
// - sha256: 64 lowercase hexadecimal digits, of the bytes as stored.
// - size: bytes as stored, a non-negative integer; the download limit.
// - deltas (type rootfs only, optional): [{from_sha256, from_size, image_sha256, path | url,
//   sha256, size}], as `eddy release delta` prints them: a device whose active slot's first
//   from_size bytes hash to from_sha256 downloads the delta (sha256 and size of the delta as
//   stored) and rebuilds the image against its active slot instead of downloading the full
//   image; the rebuilt image must hash to image_sha256.
struct DeltaSpec {
  std::string from_sha256;
  std::uint64_t from_size = 0;
  std::string image_sha256;  // of the image the delta rebuilds
  std::string path;
  std::string url;
  std::string sha256;
  std::uint64_t size = 0;
};

struct PayloadSpec {
  std::string type;
  std::string path;
  std::string url;
  std::string sha256;
  std::uint64_t size = 0;
  ContainerSettings container;  // type container only
  std::vector<DeltaSpec> deltas;  // type rootfs only
};

// kind: Release. Required: apiVersion (`eddy/v1`), kind, metadata.name, spec.target,
// spec.version, spec.payload. Names, targets and versions end up in file names on the device, so
// they are restricted to letters, digits and `.`, `_`, `-` (versions also `+`), starting with a
// letter or digit, at most 128 characters.
struct Release {
  std::string file;     // path in the repository, for messages
  std::string name;     // metadata.name
  std::string target;   // spec.target
  std::string version;  // spec.version
  PayloadSpec payload;
  std::map<std::string, std::vector<std::string>> compatible;  // spec.compatible: label -> allowed
                                                               // values (a single value may be
                                                               // written without brackets)
  Analysis analysis;                                           // spec.analysis, optional
  Hooks hooks;                                                 // spec.hooks, optional
  bool allow_downgrade = false;                                // spec.allowDowngrade: true|false
};

enum class OnFailure { rollback, pause };

// kind: Rollout. Required: apiVersion, kind, metadata.name, spec.release, spec.steps.
struct Rollout {
  std::string file, name, release;
  int release_line = 0;  // line of spec.release in `file`, for cross-file messages
  // spec.selector.matchLabels; an absent or empty selector selects every device.
  std::map<std::string, std::string> match_labels;
  // spec.steps: percent of the selected devices, strictly increasing, each in (0, 100]. Written
  // as plain numbers (`[1, 10, 50, 100]`); `10%` is accepted too. The last step need not be 100
  // (a rollout may hold at a canary share).
  std::vector<double> steps;
  std::chrono::seconds bake{600};  // spec.bake, default 10m, whole seconds, may be 0
  int min_devices = 1;             // spec.minDevices, default 1, >= 1
  // spec.maxFailureRate as a fraction in [0, 1], default 5%. The YAML value must carry a percent
  // sign (`5%`, `0.5%`): a bare `0.05` could mean 5% or 0.05%, so it is refused with a hint.
  double max_failure_rate = 0.05;
  OnFailure on_failure = OnFailure::rollback;    // spec.onFailure: rollback | pause
  std::chrono::seconds progress_deadline{1800};  // spec.progressDeadline, default 30m, > 0
};

// "500ms", "5s", "10m", "2h", "1h30m": one or more <integer><unit> terms, units ms, s, m, h, in
// any combination. No sign, no empty text, no bare number; "0s" is zero. Errc::invalid_argument
// with the text quoted when it does not parse or overflows.


// A percentage "5%", "0.5%", "100%" as a fraction in [0, 1].
Expected<double> parse_percentage(std::string_view text);

Expected<Release> parse_release(std::string_view yaml, std::string_view file);
Expected<Rollout> parse_rollout(std::string_view yaml, std::string_view file);

struct Fleet {
  std::map<std::string, Release> releases;  // by metadata.name
  std::vector<Rollout> rollouts;            // in the order of their file paths
};

// files: repository path -> content. Paths under releases/ parse as releases and under rollouts/
// as rollouts, when they end in .yaml or .yml; other paths are ignored. Checks across files:
// duplicate metadata.name among releases or among rollouts (names both files), a rollout naming
// a release that does not exist (names the rollout's file and line). metadata.name need not
// match the file name. Every file is checked; the error lists every problem found, one a line.
Expected<Fleet> parse_fleet(const std::map<std::string, std::string>& files);

}  // namespace eddy::ota
