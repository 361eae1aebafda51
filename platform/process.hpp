// Child processes: commands run to completion under a deadline (hooks, exec probes, restart
// commands), and long-running children that a supervisor watches (an app's `run` command).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "platform/error.hpp"

namespace eddy::process {

struct Options {
  std::filesystem::path cwd;                       // empty: inherit
  std::map<std::string, std::string> env;          // added to (or overriding) the inherited environment
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  std::size_t max_output = 64 * 1024;              // captured stdout+stderr beyond this is dropped
  std::optional<std::string> stdin_data;           // written to the child's stdin, then closed
};

struct Result {
  int exit_code = -1;        // exit status, or 128 + signal when killed by a signal
  bool timed_out = false;
  std::string output;        // stdout and stderr interleaved, truncated at max_output
};

// Run argv[0] (searched in PATH, or relative to cwd when it contains a '/') and wait. A start
// failure is an error; a non-zero exit is a Result for the caller to judge. On timeout the
// whole process group is killed.
Expected<Result> run(const std::vector<std::string>& argv, const Options& options = {});

// Same, but a non-zero exit or a timeout becomes an Errc::process / Errc::timeout error whose
// message names the command and quotes the end of its output.
Expected<Result> run_checked(const std::vector<std::string>& argv, const Options& options = {});

// Start a long-running child in its own process group; stdout/stderr go to the given file
// descriptor (or are inherited when -1). `pass_fd` (when not -1) is handed to the child as its
// descriptor 3, say one end of a socketpair the parent talks to it over.
Expected<pid_t> spawn(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                      const std::map<std::string, std::string>& env, int output_fd = -1, int pass_fd = -1);

// Send SIGTERM to the child's process group, wait up to `grace`, then SIGKILL; reaps it.
void terminate(pid_t pid, std::chrono::milliseconds grace);

// A wait status in words: "exited with status 1", "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

// Quote a command line for messages and logs.
std::string describe(const std::vector<std::string>& argv);

}  // namespace eddy::process
