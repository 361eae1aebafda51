#include "ota/analysis.hpp"

#include <thread>

namespace eddy::ota {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often a wait between iterations looks at should_stop: short enough that a shutdown is
// not held up, long enough to cost nothing. should_stop is a predicate, not a notifier, so the
// wait polls it.
constexpr milliseconds stop_poll{20};

// Wait until `until`; false when should_stop asked to stop first.
bool wait_until(Clock::time_point until, const std::function<bool()>& should_stop) {
  for (;;) {
    if (should_stop && should_stop()) return false;
    auto now = Clock::now();
    if (now >= until) return true;
    std::this_thread::sleep_for(std::min<Clock::duration>(until - now, stop_poll));
  }
}

}  // namespace

AnalysisVerdict run_analysis(const Analysis& analysis, const std::filesystem::path& cwd,
                             const std::function<void(int iteration, const ProbeResult&)>& on_result,
                             const std::function<bool()>& should_stop, const std::function<Status()>& pre_check) {
  AnalysisVerdict verdict;
  auto stopped = [&] { return should_stop && should_stop(); };
  auto cancel = [&](int iteration) {
    verdict.cancelled = true;
    verdict.reason = "stopped during iteration " + std::to_string(iteration) + " of " +
                     std::to_string(analysis.iterations) + " (shutdown)";
    return verdict;
  };
  // Count one result; true when the failed checks now exceed the threshold.
  auto record = [&](int iteration, const ProbeResult& result) {
    if (on_result) on_result(iteration, result);
    if (result.ok) return false;
    ++verdict.failed_checks;
    if (verdict.failed_checks <= analysis.threshold) return false;
    verdict.reason = std::to_string(verdict.failed_checks) + " failed check" + (verdict.failed_checks == 1 ? "" : "s") +
                     " exceed threshold " + std::to_string(analysis.threshold) + " (" + result.probe + ": " +
                     result.detail + ")";
    return true;
  };

  // The first iteration comes one interval after activation, as in Flagger: a version that was
  // just started gets that long to come up before it is judged.
  Clock::time_point started = Clock::now();
  for (int iteration = 1; iteration <= analysis.iterations; ++iteration) {
    // The interval counts from the previous iteration's start; an overrun one is followed at once.
    if (!wait_until(started + analysis.interval, should_stop)) return cancel(iteration);
    started = Clock::now();
    if (stopped()) return cancel(iteration);
    verdict.iterations_run = iteration;
    if (pre_check) {
      auto start = Clock::now();
      auto status = pre_check();
      if (!status) {
        ProbeResult result{"pre-check", false, status.error().message,
                           std::chrono::duration_cast<milliseconds>(Clock::now() - start)};
        if (record(iteration, result)) return verdict;
      }
    }
    for (const auto& probe : analysis.probes) {
      if (stopped()) return cancel(iteration);
      if (record(iteration, run_probe(probe, cwd))) return verdict;
    }
  }
  verdict.passed = true;
  return verdict;
}

}  // namespace eddy::ota
