#include "ota/hooks.hpp"

#include "platform/log.hpp"
#include "platform/process.hpp"

namespace eddy::ota {

Status run_hooks(const std::vector<std::vector<std::string>>& commands, std::string_view hook_name,
                 const std::filesystem::path& cwd, std::chrono::milliseconds timeout,
                 const std::map<std::string, std::string>& env) {
  const std::string context = "hook " + std::string(hook_name);
  for (std::size_t i = 0; i < commands.size(); ++i) {
    const auto& command = commands[i];
    if (command.empty() || command.front().empty())
      return make_error(Errc::invalid_argument,
                        context + ": command " + std::to_string(i + 1) + " is empty (each hook is [program, args...])");
    process::Options options;
    options.cwd = cwd;
    options.env = env;
    options.timeout = timeout;
    log::info(context + ": running " + process::describe(command));
    // run_checked names the command, its exit status or timeout, and the end of its output.
    auto result = process::run_checked(command, options);
    if (!result) return std::unexpected(result.error().with_context(context));
  }
  return {};
}

}  // namespace eddy::ota
