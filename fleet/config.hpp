// eddy-hub's configuration, /etc/eddy/hub.yaml (the format is the contract in DESIGN.md, "Hub
// configuration"). Parsing is strict, as eddyd's: an unknown key, a value of the wrong type or
// a missing required field is Errc::invalid_argument with "file:line: what (what to do)".
// Relative paths are taken relative to the folder of the configuration file.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "platform/error.hpp"

namespace eddy::fleet {

// The kinds of webhook events (fleet/API.md, "Webhooks").
inline constexpr std::string_view webhook_kinds[] = {"step", "halt", "complete", "rollback"};

struct WebhookConfig {
  std::string url;                  // http:// or https://
  std::vector<std::string> events;  // subset of webhook_kinds; all of them when left out
};

struct HubConfig {
  std::filesystem::path file;  // where it was read from
  // host:port; without TLS the host must be a loopback address (plain HTTP carries tokens).
  std::string listen;
  std::filesystem::path tls_cert, tls_key;  // both or neither
  std::string source_url;
  std::string source_branch = "main";
  std::chrono::milliseconds source_interval{30000};
  std::filesystem::path allowed_signers;
  std::filesystem::path data_dir = "/var/lib/eddy-hub";
  std::filesystem::path device_tokens;    // "<device-id> <token>" a line
  std::filesystem::path operator_tokens;  // "<name> <token>" a line
  std::chrono::milliseconds tick{5000};   // how often the director looks at each rollout
  std::vector<WebhookConfig> webhooks;
  std::string log_level = "info";  // error | warning | notice | info | debug
};

[[nodiscard]] Expected<HubConfig> load_hub_config(const std::filesystem::path& file);
// Parse configuration text; `file` names it in messages and anchors relative paths.
[[nodiscard]] Expected<HubConfig> parse_hub_config(std::string_view yaml, const std::filesystem::path& file);
// What parsing cannot see, for `eddy-hub --check-config` and start-up: allowed_signers, the
// token files and the TLS files readable and well-formed, data_dir creatable (it is created).
// Reports every problem found, one a line.
[[nodiscard]] Status check_hub_config(const HubConfig& config);

// True for 127.0.0.0/8, ::1 and "localhost" (the host of a "host:port" or "[v6]:port").
bool is_loopback_listen(std::string_view listen);

}  // namespace eddy::fleet
