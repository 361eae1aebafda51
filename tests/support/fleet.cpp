#include "tests/support/fleet.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "platform/process.hpp"

extern char** environ;

namespace eddy::testing {

Fleet::Fleet(const stdfs::path& dir)
    : dir_(dir), key_(make_ssh_key(dir / "keys", "fleet")), repo_(dir / "fleet", key_) {
  allowed_signers_ = dir / "allowed_signers";
  write_file(allowed_signers_, repo_.allowed_signers_line());
}

std::string Fleet::sha256_of(const stdfs::path& file) {
  auto out = run_ok({"sha256sum", file.string()});
  return out.substr(0, 64);
}

std::string Fleet::add_bundle(const std::string& target, const AppBundle& bundle) {
  auto staging = dir_ / ("bundle-" + target + "-" + bundle.version);
  stdfs::remove_all(staging);
  write_file(staging / "bin/app",
             "#!/bin/sh\nexec python3 -m http.server " + std::to_string(bundle.port) +
                 " --bind 127.0.0.1 --directory www\n");
  stdfs::permissions(staging / "bin/app", stdfs::perms::owner_all | stdfs::perms::group_read |
                                              stdfs::perms::group_exec | stdfs::perms::others_read |
                                              stdfs::perms::others_exec);
  write_file(staging / "www/version", bundle.version + "\n");
  if (bundle.healthy) write_file(staging / "www/healthz", "ok " + bundle.version + "\n");
  for (const auto& [path, content] : bundle.extra_files) write_file(staging / path, content);
  std::string rel = "payloads/" + target + "-" + bundle.version + ".tar.zst";
  stdfs::create_directories(repo_.dir() / "payloads");
  run_ok({"/bin/sh", "-c",
          "tar -C '" + staging.string() + "' -cf - . | zstd -q -3 -o '" + (repo_.dir() / rel).string() + "' -f"});
  return rel;
}

void Fleet::add_release(const std::string& target, const AppBundle& bundle, const std::string& analysis,
                        const std::string& extra_spec) {
  std::string rel = "payloads/" + target + "-" + bundle.version + ".tar.zst";
  auto file = repo_.dir() / rel;
  std::string yaml =
      "apiVersion: eddy/v1\n"
      "kind: Release\n"
      "metadata: {name: " + target + "-" + bundle.version + "}\n"
      "spec:\n"
      "  target: " + target + "\n"
      "  version: " + bundle.version + "\n"
      "  payload:\n"
      "    type: app\n"
      "    path: " + rel + "\n"
      "    sha256: " + sha256_of(file) + "\n"
      "    size: " + std::to_string(stdfs::file_size(file)) + "\n";
  if (!analysis.empty()) {
    yaml += analysis;
  } else {
    yaml +=
        "  analysis:\n"
        // Python's http.server may need most of a second to come up on a busy CI machine:
        // three failed checks are tolerated, a fourth rolls back.
        "    interval: 300ms\n"
        "    iterations: 5\n"
        "    threshold: 3\n"
        "    probes:\n"
        "      - {name: health, http: {url: \"http://127.0.0.1:" + std::to_string(bundle.port) +
        "/healthz\", status: 200, timeout: 1s}}\n";
  }
  yaml += extra_spec;
  repo_.write("releases/" + target + "-" + bundle.version + ".yaml", yaml);
}

void Fleet::set_rollout(const std::string& target, const std::string& version, const std::string& steps,
                        const std::string& selector) {
  repo_.write("rollouts/" + target + ".yaml",
              "apiVersion: eddy/v1\n"
              "kind: Rollout\n"
              "metadata: {name: " + target + "}\n"
              "spec:\n"
              "  release: " + target + "-" + version + "\n"
              "  selector: {matchLabels: " + selector + "}\n"
              "  steps: " + steps + "\n");
}

std::string Fleet::publish(const std::string& target, const AppBundle& bundle, bool sign) {
  add_bundle(target, bundle);
  add_release(target, bundle);
  set_rollout(target, bundle.version);
  return repo_.commit(target + " " + bundle.version, sign);
}

Device::Device(const stdfs::path& dir, const std::string& source_url, const stdfs::path& allowed_signers,
               std::string id, std::map<std::string, std::string> labels)
    : dir_(dir), config_(dir / "eddyd.yaml"), source_url_(source_url), allowed_signers_(allowed_signers),
      id_(std::move(id)), labels_(std::move(labels)) {
  stdfs::create_directories(dir_);
}

Device::~Device() {
  if (pid_ > 0) stop();
}

void Device::add_app(const std::string& name, const std::vector<std::string>& run) { apps_[name] = run; }

void Device::write_config(const std::string& extra) {
  std::string yaml = "device:\n  id: " + id_ + "\n  labels: {";
  bool first = true;
  for (const auto& [k, v] : labels_) {
    yaml += (first ? "" : ", ") + k + ": " + v;
    first = false;
  }
  yaml += "}\nsource:\n  url: " + source_url_ +
          "\n  branch: main\n  interval: " + poll_interval_ + "\n  allowed_signers: " + allowed_signers_.string() +
          "\ndata_dir: " + data_dir().string() + "\nsocket: " + socket().string() + "\napps:\n";
  for (const auto& [name, run] : apps_) {
    yaml += "  " + name + ":\n    dir: " + app_dir(name).string() + "\n";
    if (!run.empty()) {
      yaml += "    run: [";
      for (std::size_t i = 0; i < run.size(); ++i) yaml += (i ? ", " : "") + std::string("\"") + run[i] + "\"";
      yaml += "]\n";
    }
  }
  yaml += extra;
  write_file(config_, yaml);
}

void Device::start(const std::map<std::string, std::string>& env, bool wait_ready) {
  if (!stdfs::exists(config_)) write_config();
  int log_fd = ::open((dir_ / "eddyd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open eddyd.log");
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  if (!emulator().empty() && !env.contains("EDDY_WORKER")) {
    // eddyd starts its update worker itself, and without a binfmt handler the kernel cannot
    // exec an ARM program: a wrapper puts the emulator in front (descriptor 3 passes through).
    std::string wrapper = "#!/bin/sh\nexec";
    for (const auto& word : emulator()) wrapper += " '" + word + "'";
    wrapper += " '" + eddyd_worker_path().string() + "' \"$@\"\n";
    write_file(dir_ / "eddyd-worker", wrapper);
    stdfs::permissions(dir_ / "eddyd-worker", stdfs::perms::owner_all);
    env_strings.push_back("EDDY_WORKER=" + (dir_ / "eddyd-worker").string());
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  // Through the emulator in cross builds tested under qemu-user (argv[0] is then qemu).
  std::vector<std::string> command = emulator();
  command.insert(command.end(), {eddyd_path().string(), "--config", config_.string()});
  std::vector<char*> argv;
  for (auto& word : command) argv.push_back(word.data());
  argv.push_back(nullptr);
  // execve needs a path: look the emulator up in PATH before forking.
  std::string exe = command[0];
  if (exe.find('/') == std::string::npos) {
    std::istringstream path(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
    for (std::string dir; std::getline(path, dir, ':');)
      if (!dir.empty() && ::access((dir + "/" + command[0]).c_str(), X_OK) == 0) {
        exe = dir + "/" + command[0];
        break;
      }
  }
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Its own session, like a service: everything eddyd starts shares the session, so a
    // simulated power cut can take all of it down at once (kill_session).
    ::setsid();
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Nothing else of the test's (Asio opens its sockets without CLOEXEC: a hub's listening
    // socket kept open in eddyd would keep the hub's port taken after the hub stops).
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    ::chdir(dir_.c_str());
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  pid_ = pid;
  session_ = pid;
  if (!wait_ready) return;
  // Under qemu-user on a loaded 2-core machine eddyd and each `eddy status` start emulated and
  // get a fraction of a core: one restart in the rootfs power-cut matrix took longer than 30 s
  // (CI, 2026-11-26). The deadline is only an upper bound; readiness ends the wait.
  const auto deadline = emulator().empty() ? std::chrono::seconds(30) : std::chrono::seconds(180);
  bool ready = wait_until(
      [&] {
        int status;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          return true;
        }
        return eddy({"status"}).exit_code == 0;
      },
      deadline);
  if (!ready || pid_ < 0)
    throw std::runtime_error(std::string("eddyd did not become ready (") +
                             (pid_ < 0 ? "it exited" : "no answer to `eddy status` within " +
                                                           std::to_string(deadline.count()) + " s") +
                             "); log:\n" + log());
}

void Device::kill_session() {
  // Every process left in eddyd's session (its supervised apps): what a power cut would stop.
  for (pid_t pid : session_processes()) ::kill(pid, SIGKILL);
}

std::vector<pid_t> Device::session_processes() const {
  std::vector<pid_t> pids;
  if (session_ <= 0) return pids;
  for (const auto& entry : stdfs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat;
    try {
      stat = read_file(entry.path() / "stat");
    } catch (...) {
      continue;
    }
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string state;
    long ppid = 0, pgrp = 0, sid = 0;
    fields >> state >> ppid >> pgrp >> sid;
    // Zombies are dead already; they wait only for their parent to reap them.
    if (sid == session_ && state != "Z") pids.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return pids;
}

std::optional<int> Device::wait_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

void Device::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (!wait_exit(std::chrono::seconds(30))) kill9();
  kill_session();
}

void Device::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  kill_session();
}

std::string Device::log() const {
  try {
    return read_file(dir_ / "eddyd.log");
  } catch (...) {
    return {};
  }
}

Device::CliResult Device::eddy(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {eddy_path().string(), "--socket", socket().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--json");
  auto r = run(argv);
  CliResult out{r.exit_code, nullptr, r.output};
  try {
    out.json = nlohmann::json::parse(r.output);
  } catch (...) {
  }
  return out;
}

nlohmann::json Device::status() const { return eddy({"status"}).json; }

std::optional<std::string> Device::current_version(const std::string& app) const {
  auto s = status();
  if (!s.is_object() || !s.contains("targets")) return std::nullopt;
  for (const auto& t : s["targets"])
    if (t.value("name", "") == app && t.contains("current_version") && t["current_version"].is_string())
      return t["current_version"].get<std::string>();
  return std::nullopt;
}

std::optional<std::string> http_get(int port, const std::string& path) {
  auto r = run({"python3", "-c",
                "import sys,urllib.request\n"
                "try:\n"
                "  print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode(), end='')\n"
                "except Exception as e:\n"
                "  sys.exit(1)\n",
                "http://127.0.0.1:" + std::to_string(port) + path});
  if (r.exit_code != 0) return std::nullopt;
  return r.output;
}

}  // namespace eddy::testing
