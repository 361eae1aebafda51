// `eddy release …`: authoring commands that work on files, without a daemon (DESIGN.md's
// `eddy release` group). For now: `eddy release delta`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace eddy::cli {

struct ReleaseOptions {
  std::string base;
  std::string image;
  std::string out;
  std::string url;
  int level = 19;
  bool json = false;
};

// Add the `release` group to `app`; returns the `delta` subcommand, for `parsed()`.
CLI::App* add_release_commands(CLI::App& app, ReleaseOptions& options);

// Run `eddy release delta` once parsed; returns the exit code.
int run_release_delta(const ReleaseOptions& options);

}  // namespace eddy::cli
