// Release hooks (Mender's state scripts, Flagger's webhooks): commands run at a state change.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "platform/error.hpp"

namespace eddy::ota {

// Run each command in order, in `cwd`, each under `timeout`, with `env` added to the daemon's
// environment (the caller fills EDDY_TARGET, EDDY_VERSION, EDDY_PREVIOUS_VERSION). Stops at the
// first command that cannot start, exits non-zero (Errc::process) or runs out of time
// (Errc::timeout); the error names the hook, the command and the end of its output.
Status run_hooks(const std::vector<std::vector<std::string>>& commands, std::string_view hook_name,
                 const std::filesystem::path& cwd, std::chrono::milliseconds timeout,
                 const std::map<std::string, std::string>& env);

}  // namespace eddy::ota
