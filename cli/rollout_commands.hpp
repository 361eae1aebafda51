// `eddy rollout status|pause|resume|promote|abort|retry` and `eddy fleet devices`: eddy-hub's
// operator API (fleet/API.md) from the command line, with an operator token.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "cli/hub_api.hpp"

namespace eddy::cli {

struct HubCommandOptions {
  HubFlags hub;
  bool json = false;
  std::string name;      // the rollout
  std::string selector;  // fleet devices --selector
  bool wait = false;     // rollout status --wait
  std::string interval = "2s";
};

// The subcommands, for `parsed()`.
struct HubCommands {
  CLI::App* rollout_status = nullptr;
  CLI::App* rollout_pause = nullptr;
  CLI::App* rollout_resume = nullptr;
  CLI::App* rollout_promote = nullptr;
  CLI::App* rollout_abort = nullptr;
  CLI::App* rollout_retry = nullptr;
  CLI::App* fleet_devices = nullptr;
};

// Add the `rollout` and `fleet` groups to `app`.
HubCommands add_hub_commands(CLI::App& app, HubCommandOptions& options);

// Run the hub command that was parsed; nullopt when none was. Returns the exit code.
std::optional<int> run_hub_commands(const HubCommands& commands, const HubCommandOptions& options);

}  // namespace eddy::cli
