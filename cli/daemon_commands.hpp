// `eddy status|history|check|rollback`: requests to the local eddyd over its control socket.
// The one CLI::App of `eddy` is built here; other groups add themselves (release, rollout, fleet).
#pragma once

namespace eddy::cli {

// Exit codes of `eddy`, stable for scripts.
enum ExitCode : int {
  exit_ok = 0,
  exit_failure = 1,      // the daemon reported a failure
  exit_usage = 2,        // bad arguments, or a request the daemon refused as invalid
  exit_unreachable = 3,  // the daemon (or, for `eddy rollout|fleet`, the hub) cannot be reached
  exit_rollout_failed = 4,  // `eddy rollout status`: a shown rollout is halted or rolled back
};

inline constexpr const char* default_socket = "/run/eddy/eddyd.sock";

int run(int argc, char** argv);

}  // namespace eddy::cli
