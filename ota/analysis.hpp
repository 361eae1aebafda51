// Flagger's canary analysis, run on the device after activation: probes every interval, a
// tolerated number of failed checks, a verdict that commits or rolls back.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "ota/probe_types.hpp"
#include "ota/probes.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

struct AnalysisVerdict {
  bool passed = false;
  int iterations_run = 0;
  int failed_checks = 0;
  // Why it failed: "3 failed checks exceed threshold 2 (health: HTTP 500 (want 200) in 3 ms)".
  std::string reason;
  // should_stop() asked to stop before a verdict (shutdown): neither passed nor failed, the
  // daemon resumes the analysis after its restart rather than rolling back.
  bool cancelled = false;
};

// Runs `iterations` iterations; iteration i starts `interval` after iteration i-1 started (at
// once when that one overran), the first one `interval` after the call (the new version's time
// to come up). An iteration runs every probe in order,
// and each failing probe counts one failed check; the count runs across iterations.
//  - Fails as soon as the failed checks exceed `threshold`, without running the remaining
//    probes or iterations (iterations_run counts the iteration in which that happened).
//  - Passes when all iterations ran without that. An analysis without probes passes after its
//    iterations (and their intervals); zero iterations pass at once.
// `pre_check` (optional) runs before each iteration's probes; an error counts as one failed
// check, reported to on_result as the probe "pre-check" (the daemon passes its hooks here).
// on_result sees every result with its iteration (1-based). should_stop is polled before each
// probe and every few milliseconds while waiting, so a shutdown interrupts the wait at once.
AnalysisVerdict run_analysis(const Analysis& analysis, const std::filesystem::path& cwd,
                             const std::function<void(int iteration, const ProbeResult&)>& on_result,
                             const std::function<bool()>& should_stop = {},
                             const std::function<Status()>& pre_check = {});

}  // namespace eddy::ota
