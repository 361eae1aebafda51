// A real eddy-hub process on loopback (the OS picks its port; it writes its URL to
// <data_dir>/url), following a fleet repository, with device and operator token files: for
// process-level and end-to-end tests of the hub, eddyd against it and `eddy rollout`.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/support.hpp"

namespace eddy::testing {

class HubProcess {
 public:
  HubProcess(const stdfs::path& dir, std::string source_url, stdfs::path allowed_signers);
  ~HubProcess();
  HubProcess(const HubProcess&) = delete;
  HubProcess& operator=(const HubProcess&) = delete;

  // The token of device `id`, added to <dir>/device-tokens when new (the hub re-reads the file).
  std::string device_token(const std::string& id);
  // Remove the device's line: its token is revoked.
  void revoke_device(const std::string& id);
  const std::string& operator_token() const { return operator_token_; }
  const stdfs::path& device_tokens_file() const { return device_tokens_; }

  // hub.yaml: the given tick and poll interval; `extra` is appended (webhooks: ...). `listen`
  // 127.0.0.1:0 lets the OS pick the port at each start; a fixed one keeps the hub where its
  // devices look for it across a restart.
  void write_config(const std::string& tick = "1s", const std::string& interval = "1s", const std::string& extra = {},
                    const std::string& listen = "127.0.0.1:0");
  const stdfs::path& config_path() const { return config_; }
  stdfs::path data_dir() const { return dir_ / "data"; }

  // Start eddy-hub (writing a default configuration first if there is none) and wait until it
  // has written its URL.
  void start(const std::map<std::string, std::string>& env = {});
  // SIGTERM and wait; the raw wait status (0 for a clean exit), or nullopt if it did not exit.
  std::optional<int> stop();
  void kill9();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string url() const { return url_; }
  std::string log() const;

  struct Reply {
    int status = 0;
    nlohmann::json json;  // null when the body is not JSON
    std::string body;
  };
  // The CA certificate request() trusts for a hub with `tls:` (default: the system's CAs).
  void set_ca_file(const stdfs::path& ca_file) { ca_file_ = ca_file; }
  // One request to the hub with `Authorization: Bearer <token>` (none when empty).
  Reply request(const std::string& method, const std::string& target, const std::string& token,
                const std::string& body = {}) const;

 private:
  void write_device_tokens();

  stdfs::path dir_, config_, device_tokens_, operator_tokens_;
  std::string source_url_;
  stdfs::path allowed_signers_;
  std::map<std::string, std::string> devices_;  // id -> token
  std::string operator_token_ = "operator-token-0123456789abcdef";
  pid_t pid_ = -1;
  std::string url_;
  stdfs::path ca_file_;
};

stdfs::path eddy_hub_path();

}  // namespace eddy::testing
