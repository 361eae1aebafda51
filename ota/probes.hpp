// Health probes of a release: one check of the running version, judged ok or failed with a
// line a person can read in `eddy status` and in the device's report.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "ota/probe_types.hpp"

namespace eddy::ota {

struct ProbeResult {
  std::string probe;   // the probe's name
  bool ok = false;
  // "HTTP 200 in 3 ms", "connect 127.0.0.1:8080: Connection refused", "exit 1: <tail of output>"
  std::string detail;
  std::chrono::milliseconds duration{0};
};

// Run one probe under its own timeout; never throws, every failure is a result.
//  http: a GET whose status equals `status` and, when set, whose body contains `body_contains`;
//  tcp:  a connection to `address` within the timeout;
//  exec: `command` run in `cwd` (the app's current version dir) exits 0 within the timeout.
ProbeResult run_probe(const Probe& probe, const std::filesystem::path& cwd);

}  // namespace eddy::ota
