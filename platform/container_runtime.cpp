#include "platform/container_runtime.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "platform/fs.hpp"
#include "platform/log.hpp"
#include "platform/unique_fd.hpp"

namespace eddy {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string strip_sha256(std::string_view id) {
  if (id.starts_with("sha256:")) id.remove_prefix(7);
  return std::string(id);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

std::string tail(const std::string& text, std::size_t n) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t.size() <= n ? t : "…" + t.substr(t.size() - n);
}

// The messages of both tools for a container or image name they do not know: podman's "no such
// container", "no container with name or ID … found", "image not known"; docker's "No such
// container", "No such object", "No such image". Nothing broader: an error that merely mentions
// a missing file ("no such file or directory" from the OCI runtime or the store, under load) is
// a failure, not an absent container: read as absent, it would make settle() replace (`rm
// --force`, then `run`) a container that is serving.
bool says_missing(const std::string& output) {
  const std::string o = lower(output);
  for (std::string_view phrase : {"no such container", "no such object", "no such image", "image not known"})
    if (o.find(phrase) != std::string::npos) return true;
  return o.find("no container with name or id") != std::string::npos;
}

bool says_in_use(const std::string& output) {
  const std::string o = lower(output);
  return o.find("in use") != std::string::npos || o.find("being used") != std::string::npos ||
         o.find("conflict") != std::string::npos;
}

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::istringstream in(path);
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) continue;
    auto candidate = std::filesystem::path(dir) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Podman and Docker take the same flags for everything used here; they differ in how an image's
// presence is asked and in how `inspect` words a missing container.
class CliRuntime final : public ContainerRuntime {
 public:
  CliRuntime(RuntimeKind kind, CommandRunner runner, std::string program)
      : kind_(kind), runner_(std::move(runner)), program_(std::move(program)) {
    if (program_.empty()) program_ = std::string(runtime_kind_name(kind_));
  }

  std::string_view name() const override { return runtime_kind_name(kind_); }

  Status load(const std::string& archive) override {
    auto r = checked({"load", "-i", archive}, "load the image archive " + archive);
    if (!r) return std::unexpected(r.error());
    return {};
  }

  Status pull(const std::string& reference) override {
    auto r = checked({"pull", reference}, "pull " + reference);
    if (!r) return std::unexpected(r.error().code == Errc::process ? Error{Errc::network, r.error().message} : r.error());
    return {};
  }

  Expected<bool> image_exists(const std::string& reference) override {
    std::vector<std::string> args = kind_ == RuntimeKind::podman
                                        ? std::vector<std::string>{"image", "exists", reference}
                                        : std::vector<std::string>{"image", "inspect", "--format", "{{.Id}}", reference};
    auto r = call(args);
    if (!r) return std::unexpected(r.error());
    if (r->exit_code == 0) return true;
    if (kind_ == RuntimeKind::podman ? r->exit_code == 1 : says_missing(r->output)) return false;
    return failure(args, *r, "check for image " + reference);
  }

  Status run(const ContainerSpec& spec) override {
    std::vector<std::string> args = {"run", "--detach", "--name", spec.name, "--pull=never"};
    for (const auto& [k, v] : spec.labels) args.insert(args.end(), {"--label", k + "=" + v});
    for (const auto& p : spec.ports) {
      std::string mapping = std::to_string(p.host_port) + ":" + std::to_string(p.container_port) + "/" + p.protocol;
      if (!p.host_ip.empty()) mapping = p.host_ip + ":" + mapping;
      args.insert(args.end(), {"--publish", mapping});
    }
    for (const auto& [k, v] : spec.env) args.insert(args.end(), {"--env", k + "=" + v});
    for (const auto& v : spec.volumes) args.insert(args.end(), {"--volume", v});
    if (!spec.restart.empty()) args.push_back("--restart=" + spec.restart);
    if (spec.memory_bytes > 0) args.push_back("--memory=" + std::to_string(spec.memory_bytes) + "b");
    if (!spec.network.empty()) args.push_back("--network=" + spec.network);
    args.push_back(spec.image);
    args.insert(args.end(), spec.command.begin(), spec.command.end());
    auto r = checked(args, "start container " + spec.name + " from " + spec.image);
    if (!r) return std::unexpected(r.error());
    return {};
  }

  Status stop(const std::string& name, std::chrono::seconds grace) override {
    auto addresses = addresses_of(name);
    std::vector<std::string> args = {"stop", "--time", std::to_string(grace.count()), name};
    auto r = call(args);
    if (!r) return std::unexpected(r.error());
    if (r->exit_code != 0 && !says_missing(r->output)) return failure(args, *r, "stop container " + name);
    forget_connections(addresses);
    return {};
  }

  Status remove(const std::string& name) override {
    auto addresses = addresses_of(name);
    std::vector<std::string> args = {"rm", "--force", name};
    auto r = call(args);
    if (!r) return std::unexpected(r.error());
    if (r->exit_code != 0 && !says_missing(r->output)) return failure(args, *r, "remove container " + name);
    forget_connections(addresses);
    return {};
  }

  Expected<ContainerStatus> inspect(const std::string& name) override {
    std::vector<std::string> args = {"container", "inspect", "--format", "{{.State.Running}} {{.Image}}", name};
    auto r = call(args);
    if (!r) return std::unexpected(r.error());
    if (r->exit_code != 0) {
      if (says_missing(r->output)) return ContainerStatus{};
      return failure(args, *r, "inspect container " + name);
    }
    // The answer is the last line (warnings may come before it on stderr).
    auto lines = lines_of(r->output);
    std::istringstream in(lines.empty() ? std::string() : lines.back());
    std::string running, image;
    in >> running >> image;
    if (running != "true" && running != "false")
      return make_error(Errc::process, std::string(name_()) + " container inspect " + name + ": unexpected answer `" +
                                           tail(r->output, 200) + "`");
    return ContainerStatus{true, running == "true", strip_sha256(image)};
  }

  Expected<std::vector<std::string>> containers_labelled(const std::string& key, const std::string& value) override {
    std::vector<std::string> args = {"ps", "--all", "--filter", "label=" + key + "=" + value, "--format",
                                     "{{.Names}}"};
    auto r = checked(args, "list containers labelled " + key + "=" + value);
    if (!r) return std::unexpected(r.error());
    return lines_of(r->output);
  }

  Expected<std::vector<std::string>> bridges_of(const std::string& name) override {
    if (kind_ == RuntimeKind::docker) return std::vector<std::string>{};
    auto networks = checked({"container", "inspect", "--format",
                             "{{range $name, $n := .NetworkSettings.Networks}}{{$name}}\n{{end}}", name},
                            "list the networks of container " + name);
    if (!networks) return std::unexpected(networks.error());
    auto names = lines_of(networks->output);
    if (names.empty()) return std::vector<std::string>{};
    std::vector<std::string> args = {"network", "inspect", "--format", "{{.Driver}} {{.NetworkInterface}}"};
    args.insert(args.end(), names.begin(), names.end());
    auto inspected = checked(args, "inspect the networks of container " + name);
    if (!inspected) return std::unexpected(inspected.error());
    std::vector<std::string> bridges;
    for (const auto& line : lines_of(inspected->output)) {
      std::istringstream in(line);
      std::string driver, interface;
      in >> driver >> interface;
      if (driver == "bridge" && !interface.empty()) bridges.push_back(interface);
    }
    return bridges;
  }

  Expected<std::vector<ImageRecord>> images() override {
    std::vector<std::string> args = {"images", "--digests", "--no-trunc", "--format",
                                     "{{.ID}} {{.Repository}} {{.Digest}}"};
    auto r = checked(args, "list images");
    if (!r) return std::unexpected(r.error());
    std::vector<ImageRecord> out;
    for (const auto& line : lines_of(r->output)) {
      std::istringstream in(line);
      std::string id, repo, digest;
      in >> id >> repo >> digest;
      if (id.empty()) continue;
      id = strip_sha256(id);
      auto it = std::ranges::find_if(out, [&](const ImageRecord& i) { return i.id == id; });
      if (it == out.end()) {
        out.push_back(ImageRecord{id, {}});
        it = std::prev(out.end());
      }
      if (digest.starts_with("sha256:") && repo != "<none>") it->references.push_back(repo + "@" + digest);
    }
    return out;
  }

  Expected<std::vector<std::string>> addresses(const std::string& name) override {
    auto r = checked({"container", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}\n{{end}}",
                      name},
                     "read the addresses of container " + name);
    if (!r) return std::unexpected(r.error());
    return lines_of(r->output);
  }

  Status redirect_ports(const std::string& tag, const std::string& to, const std::vector<PortMapping>& ports) override {
    auto to_addresses = addresses(to);
    if (!to_addresses) return std::unexpected(to_addresses.error());
    auto ipv4 = std::ranges::find_if(*to_addresses, [](const std::string& a) { return a.find(':') == std::string::npos; });
    if (ipv4 == to_addresses->end())
      return make_error(Errc::unsupported, "container " + to + " has no IPv4 address to redirect its ports to");
    const std::string comment = "eddy:" + tag;
    std::vector<std::vector<std::string>> rules;
    for (const auto& p : ports) {
      if (p.host_ip.find(':') != std::string::npos)
        return make_error(Errc::unsupported, "the IPv6 port " + p.host_ip + " " + std::to_string(p.host_port) +
                                                 " cannot be redirected (IPv4 only)");
      std::vector<std::string> match;
      if (p.host_ip.empty() || p.host_ip == "0.0.0.0") match = {"-m", "addrtype", "--dst-type", "LOCAL"};
      else match = {"-d", p.host_ip + "/32"};
      match.insert(match.end(), {"-p", p.protocol, "-m", p.protocol, "--dport", std::to_string(p.host_port), "-m",
                                 "comment", "--comment", comment});
      const std::string destination = *ipv4 + ":" + std::to_string(p.container_port);
      for (const char* chain : {"PREROUTING", "OUTPUT"}) {
        std::vector<std::string> rule = {"-I", chain, "1"};
        rule.insert(rule.end(), match.begin(), match.end());
        rule.insert(rule.end(), {"-j", "DNAT", "--to-destination", destination});
        rules.push_back(std::move(rule));
      }
      rules.push_back({"-I", "POSTROUTING", "1", "-s", "127.0.0.0/8", "-d", *ipv4 + "/32", "-p", p.protocol, "-m",
                       p.protocol, "--dport", std::to_string(p.container_port), "-m", "comment", "--comment", comment,
                       "-j", "MASQUERADE"});
    }
    // The loopback masquerade first, so that no redirected connection from 127.0.0.1 goes out unmasqueraded.
    std::ranges::stable_partition(rules, [](const auto& rule) { return rule[1] == "POSTROUTING"; });
    for (const auto& rule : rules) {
      auto r = iptables(rule);
      if (r) continue;
      (void)remove_redirects(tag);
      return std::unexpected(r.error());
    }
    return {};
  }

  Status remove_redirects(const std::string& tag) override {
    auto listed = iptables({"-S"});
    if (!listed && listed.error().code == Errc::process) {
      // Listing needs the same privilege as inserting (CAP_NET_ADMIN): where eddyd cannot list
      // the nat table (a rootless runtime), it cannot have left a rule there either, and the
      // containers' own recovery must not stop on it.
      log::warning("cannot look for a port redirect of " + tag + " (" + listed.error().message +
                   "); none can have been made by this eddyd");
      return {};
    }
    if (!listed) return listed.error().code == Errc::unsupported ? Status{} : Status(std::unexpected(listed.error()));
    const std::string comment = "eddy:" + tag;
    for (const auto& line : lines_of(listed->output)) {
      // `-A CHAIN … -m comment --comment "eddy:<tag>" …`: the same words after -D delete it.
      std::vector<std::string> words;
      std::istringstream in(line);
      for (std::string w; in >> w;) {
        if (w.size() >= 2 && w.front() == '"' && w.back() == '"') w = w.substr(1, w.size() - 2);
        words.push_back(w);
      }
      auto at = std::ranges::find(words, "--comment");
      if (words.size() < 2 || words[0] != "-A" || at == words.end() || std::next(at) == words.end() ||
          *std::next(at) != comment)
        continue;
      words[0] = "-D";
      if (auto r = iptables(words); !r) return std::unexpected(r.error());
      log::info("removed the port redirect `" + line + "`");
    }
    return {};
  }

  void drain(const std::string& name, std::chrono::milliseconds deadline) override {
    auto found = addresses(name);
    if (!found) return;
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (const auto& address : *found) {
      for (;;) {
        auto r = runner_({"conntrack", "--dump", "--proto", "tcp", "--state", "ESTABLISHED", "--reply-src", address});
        if (!r || r->timed_out || r->exit_code != 0) {
          log::warning("cannot list the connections to " + name + " at " + address + " (" +
                       (!r ? r.error().message : tail(r->output, 200)) +
                       "): it is removed without waiting for them (install conntrack)");
          break;
        }
        const auto established = std::ranges::count_if(lines_of(r->output), [](const std::string& l) { return l.starts_with("tcp"); });
        if (established == 0) break;
        if (std::chrono::steady_clock::now() >= until) {
          log::warning(name + ": " + std::to_string(established) + " connections still open after " +
                       std::to_string(deadline.count()) + " ms; they are cut");
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    forget_connections(*found);
  }

  Status remove_image(const std::string& id) override {
    std::vector<std::string> args = {"rmi", id};
    auto r = call(args);
    if (!r) return std::unexpected(r.error());
    if (r->exit_code == 0 || says_missing(r->output)) return {};
    if (says_in_use(r->output))
      return make_error(Errc::conflict, "image " + id + " is in use by a container: " + tail(r->output, 300));
    return failure(args, *r, "remove image " + id);
  }

 private:
  std::string_view name_() const { return runtime_kind_name(kind_); }

  // The IPv4 addresses of a running container (none when it is missing or has no network).
  std::vector<std::string> addresses_of(const std::string& name) {
    auto found = addresses(name);
    return found ? *found : std::vector<std::string>{};
  }

  // The host's connection tracking keeps a published port's NAT towards a container after the
  // container is gone: a SYN from a client port that an earlier connection used (SYN_SENT
  // entries live 120 s, closed ones too when the server reset them) is sent to the old address
  // and never answered, 3 s and more without a connection to the container that serves now
  // (the intermittent failure of issue 5's hand-over test). netavark 1.4 leaves the entries;
  // they are deleted here, by the address the container had (the reply's source).
  void forget_connections(const std::vector<std::string>& addresses) {
    for (const auto& address : addresses) {
      auto r = runner_({"conntrack", "--delete", "--reply-src", address});
      // Exit 1 with "0 flow entries": nothing to forget.
      if (r && !r->timed_out && (r->exit_code == 0 || r->output.find(" 0 flow entries") != std::string::npos))
        continue;
      log::warning("cannot delete the connection tracking entries towards " + address + " (" +
                   (!r ? r.error().message : tail(r->output, 200)) +
                   "): a new connection may still be sent to the removed container's address (install conntrack)");
    }
  }

  Expected<process::Result> call(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {program_};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto started = std::chrono::steady_clock::now();
    auto r = runner_(argv);
    // What eddyd did to containers and images, with the answer and how long it took: the journal
    // is where an operator (or a test that failed once) finds out what happened to a container.
    static constexpr std::string_view kChanges[] = {"run", "stop", "rm", "rmi", "load", "pull"};
    if (!args.empty() && std::ranges::find(kChanges, args.front()) != std::end(kChanges)) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      // Not run's whole command line: the environment it passes may hold secrets.
      const std::string what = args.front() == "run" && args.size() > 3 ? program_ + " run --name " + args[3]
                                                                        : process::describe(argv);
      log::info(what + ": " +
                (!r ? r.error().message
                    : r->timed_out ? std::string("timed out")
                                   : "exit " + std::to_string(r->exit_code) +
                                         (r->exit_code == 0 ? std::string() : " (" + tail(r->output, 200) + ")")) +
                " in " + std::to_string(ms.count()) + " ms");
    }
    if (!r) return std::unexpected(r.error().with_context(std::string(name_())));
    if (r->timed_out) return make_error(Errc::timeout, process::describe(argv) + ": did not finish in time");
    return r;
  }

  // `iptables -w -t nat <args>`; Errc::unsupported when iptables cannot run here.
  Expected<process::Result> iptables(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"iptables", "-w", "-t", "nat"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = runner_(argv);
    if (!r) return make_error(Errc::unsupported, "iptables cannot run here: " + r.error().message);
    if (r->timed_out) return make_error(Errc::timeout, process::describe(argv) + ": did not finish in time");
    if (r->exit_code != 0)
      return make_error(Errc::process, process::describe(argv) + " exited with status " + std::to_string(r->exit_code) +
                                           (r->output.empty() ? "" : ": " + tail(r->output, 400)));
    return r;
  }

  std::unexpected<Error> failure(const std::vector<std::string>& args, const process::Result& r,
                                 const std::string& what) {
    std::vector<std::string> argv = {program_};
    argv.insert(argv.end(), args.begin(), args.end());
    return make_error(Errc::process, "cannot " + what + ": " + process::describe(argv) + " exited with status " +
                                         std::to_string(r.exit_code) +
                                         (r.output.empty() ? "" : ": " + tail(r.output, 400)));
  }

  Expected<process::Result> checked(const std::vector<std::string>& args, const std::string& what) {
    auto r = call(args);
    if (!r) return r;
    if (r->exit_code != 0) return failure(args, *r, what);
    return r;
  }

  RuntimeKind kind_;
  CommandRunner runner_;
  std::string program_;
};

}  // namespace

Expected<bool> pin_bridge_address(const std::string& interface) {
  if (interface.empty() || interface.size() >= IFNAMSIZ || interface.find('/') != std::string::npos)
    return make_error(Errc::invalid_argument, "`" + interface + "` is not a network interface name");
  const std::filesystem::path sys = std::filesystem::path("/sys/class/net") / interface;
  auto assign_type = fs::read_file(sys / "addr_assign_type");
  if (!assign_type)
    return make_error(Errc::not_found, "network interface " + interface + " is not there (" +
                                           assign_type.error().message + ")");
  if (assign_type->starts_with("3")) return false;  // NET_ADDR_SET: it keeps its address already
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return std::unexpected(errno_error(errno, "socket", interface));
  ifreq request{};
  interface.copy(request.ifr_name, IFNAMSIZ - 1);
  if (::ioctl(fd.get(), SIOCGIFHWADDR, &request) != 0)
    return std::unexpected(errno_error(errno, "read the MAC address of", interface));
  // The same address, set: the kernel marks it as chosen and stops following the ports.
  if (::ioctl(fd.get(), SIOCSIFHWADDR, &request) != 0)
    return std::unexpected(errno_error(errno, "set the MAC address of", interface));
  return true;
}

CommandRunner process_runner(std::chrono::milliseconds timeout) {
  return [timeout](const std::vector<std::string>& argv) {
    process::Options options;
    options.timeout = timeout;
    return process::run(argv, options);
  };
}

std::unique_ptr<ContainerRuntime> make_container_runtime(RuntimeKind kind, CommandRunner runner, std::string program) {
  return std::make_unique<CliRuntime>(kind, std::move(runner), std::move(program));
}

Expected<RuntimeKind> parse_runtime_kind(std::string_view name) {
  if (name == "podman") return RuntimeKind::podman;
  if (name == "docker") return RuntimeKind::docker;
  return make_error(Errc::invalid_argument, "unknown container runtime `" + std::string(name) +
                                                "` (write podman or docker, or leave it out to use the one installed)");
}

std::string_view runtime_kind_name(RuntimeKind kind) { return kind == RuntimeKind::podman ? "podman" : "docker"; }

Expected<RuntimeKind> discover_runtime(std::optional<RuntimeKind> configured) {
  if (configured) return *configured;
  if (on_path("podman")) return RuntimeKind::podman;
  if (on_path("docker")) return RuntimeKind::docker;
  return make_error(Errc::not_found,
                    "no container runtime found: neither podman nor docker is on PATH (install podman, or set "
                    "containers.runtime in eddyd.yaml)");
}

CommandRunner RecordingRunner::runner() {
  return [this](const std::vector<std::string>& argv) -> Expected<process::Result> {
    calls_->push_back(argv);
    if (replies_.empty()) return process::Result{0, false, {}};
    auto r = replies_.front();
    replies_.pop_front();
    return r;
  };
}

}  // namespace eddy
