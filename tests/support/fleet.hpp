// End-to-end fixtures: a signed fleet repository with app releases, and a real eddyd process
// following it, driven through the real `eddy` command line.
#pragma once

#include <sys/types.h>

#include <cctype>
#include <chrono>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/support.hpp"

namespace eddy::testing {

struct AppBundle {
  std::string version;
  bool healthy = true;            // /healthz answers 200; otherwise 404 and the probe fails
  int port = 0;                   // where the app serves
  std::map<std::string, std::string> extra_files;  // relative path -> content
};

// A fleet repository whose commits are signed by its own key, with helpers that write app
// bundles (.tar.zst made with real tar and zstd), releases and rollouts in the contract's format.
class Fleet {
 public:
  explicit Fleet(const stdfs::path& dir);
  SignedRepo& repo() { return repo_; }
  const stdfs::path& allowed_signers() const { return allowed_signers_; }

  // payloads/<target>-<version>.tar.zst; returns its repository path.
  std::string add_bundle(const std::string& target, const AppBundle& bundle);
  // releases/<target>-<version>.yaml for a bundle added with add_bundle. `analysis` replaces the
  // default analysis block (YAML, indented by 2 under spec) when not empty.
  void add_release(const std::string& target, const AppBundle& bundle, const std::string& analysis = {},
                   const std::string& extra_spec = {});
  // rollouts/<target>.yaml naming <target>-<version>, steps [100] unless given.
  void set_rollout(const std::string& target, const std::string& version, const std::string& steps = "[100]",
                   const std::string& selector = "{}");
  // add_bundle + add_release + set_rollout + signed commit; returns the commit id.
  std::string publish(const std::string& target, const AppBundle& bundle, bool sign = true);

  static std::string sha256_of(const stdfs::path& file);

 private:
  stdfs::path dir_;
  SshKey key_;
  SignedRepo repo_;
  stdfs::path allowed_signers_;
};

// A real eddyd process with its own data folder, socket and app folders.
class Device {
 public:
  Device(const stdfs::path& dir, const std::string& source_url, const stdfs::path& allowed_signers,
         std::string id = "test-device", std::map<std::string, std::string> labels = {{"site", "test"}});
  ~Device();

  // Apps: name -> run command (empty: no supervision).
  void add_app(const std::string& name, const std::vector<std::string>& run = {"bin/app"});
  void write_config(const std::string& extra = {});
  // source.interval written by write_config (default 1h: tests poll with `eddy check`).
  void set_poll_interval(const std::string& interval) { poll_interval_ = interval; }
  const stdfs::path& config_path() const { return config_; }
  const stdfs::path& dir() const { return dir_; }
  stdfs::path app_dir(const std::string& name) const { return dir_ / "apps" / name; }
  stdfs::path data_dir() const { return dir_ / "data"; }
  stdfs::path socket() const { return dir_ / "eddyd.sock"; }

  // Start eddyd; env entries are added (EDDY_FAULT_KILL_AT=...). Waits until the control
  // socket answers unless wait_ready is false. Under qemu-user (cross builds) eddyd gets
  // EDDY_WORKER naming a wrapper that starts its update worker through the emulator.
  void start(const std::map<std::string, std::string>& env = {}, bool wait_ready = true);
  // Wait for eddyd to exit by itself; returns the raw wait status, or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  void stop();           // SIGTERM and wait
  void kill9();          // SIGKILL eddyd, then everything in its session (a power cut)
  // SIGKILL whatever is left in eddyd's session (apps it supervised) after it died.
  void kill_session();
  // The live processes of eddyd's session: eddyd, its update worker, the apps it supervises.
  std::vector<pid_t> session_processes() const;
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string log() const;

  // `eddy --socket S <args...> --json`: exit code and parsed output (null if not JSON).
  struct CliResult {
    int exit_code;
    nlohmann::json json;
    std::string output;
  };
  CliResult eddy(const std::vector<std::string>& args) const;
  nlohmann::json status() const;
  std::optional<std::string> current_version(const std::string& app) const;

 private:
  stdfs::path dir_, config_;
  std::string source_url_;
  stdfs::path allowed_signers_;
  std::string id_;
  std::map<std::string, std::string> labels_;
  std::map<std::string, std::vector<std::string>> apps_;
  std::string poll_interval_ = "1h";
  pid_t pid_ = -1;
  pid_t session_ = -1;
};

// An HTTP GET on loopback with a short timeout: the body, or nullopt when nothing answers.
std::optional<std::string> http_get(int port, const std::string& path);

// One case of the kill-in-state suites (tests/e2e): eddyd is SIGKILLed at a fault point while it
// installs version 2.0.0, and must end on `end_version` once started again.
struct KillCase {
  std::string point;        // fault point name (EDDY_FAULT_KILL_AT)
  bool healthy_v2;          // the release being installed when the kill comes
  std::string end_version;
};
inline std::ostream& operator<<(std::ostream& os, const KillCase& c) { return os << c.point; }
// A GoogleTest case name for a KillCase: its fault point with every non-alphanumeric as '_'.
inline std::string kill_case_name(const ::testing::TestParamInfo<KillCase>& info) {
  std::string n = info.param.point;
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

}  // namespace eddy::testing
