#include "ota/analysis.hpp"

#include <gtest/gtest.h>

#include <atomic>

#include "tests/support/raw_http_server.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using eddy::testing::RawHttpServer;
using namespace std::chrono_literals;

using eddy::testing::contains;

// A health endpoint whose n-th request (1-based) fails when fails(n) says so.
class ScriptedHealth {
 public:
  explicit ScriptedHealth(std::function<bool(int)> fails)
      : fails_(std::move(fails)), server_([this](RawHttpServer::Connection& c) {
          if (!c.read_request()) return;
          int n = ++requests_;
          c.write(fails_(n) ? RawHttpServer::response(500, "sick") : RawHttpServer::response(200, "ok"));
        }) {}
  Probe probe(const std::string& name = "health") const {
    return Probe{name, HttpProbe{server_.url("/healthz"), 200, "", 2s}};
  }
  int requests() const { return requests_; }

 private:
  std::function<bool(int)> fails_;
  std::atomic<int> requests_{0};
  RawHttpServer server_;
};

struct Recorded {
  int iteration;
  ProbeResult result;
};

Analysis analysis(int iterations, int threshold, std::vector<Probe> probes, std::chrono::milliseconds interval = 5ms) {
  return Analysis{interval, iterations, threshold, std::move(probes)};
}

TEST(Analysis, PassesWhenEveryCheckPasses) {
  ScriptedHealth health([](int) { return false; });
  RawHttpServer port([](RawHttpServer::Connection&) {});
  std::vector<Recorded> seen;
  auto verdict = run_analysis(
      analysis(3, 0, {health.probe(), Probe{"port", TcpProbe{"127.0.0.1:" + std::to_string(port.port()), 1s}}}), {},
      [&](int iteration, const ProbeResult& r) { seen.push_back({iteration, r}); });
  EXPECT_TRUE(verdict.passed) << verdict.reason;
  EXPECT_FALSE(verdict.cancelled);
  EXPECT_EQ(verdict.iterations_run, 3);
  EXPECT_EQ(verdict.failed_checks, 0);
  ASSERT_EQ(seen.size(), 6u);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].iteration, static_cast<int>(i / 2 + 1));
    EXPECT_EQ(seen[i].result.probe, i % 2 == 0 ? "health" : "port");
    EXPECT_TRUE(seen[i].result.ok) << seen[i].result.detail;
  }
}

TEST(Analysis, FailsFastOnceFailuresExceedTheThreshold) {
  ScriptedHealth health([](int) { return true; });
  int results = 0;
  auto verdict = run_analysis(analysis(10, 2, {health.probe()}), {}, [&](int, const ProbeResult&) { ++results; });
  EXPECT_FALSE(verdict.passed);
  EXPECT_FALSE(verdict.cancelled);
  EXPECT_EQ(verdict.iterations_run, 3);
  EXPECT_EQ(verdict.failed_checks, 3);
  EXPECT_EQ(results, 3);
  EXPECT_EQ(health.requests(), 3);
  EXPECT_TRUE(contains(verdict.reason, "3 failed checks exceed threshold 2 (health: HTTP 500 (want 200)"))
      << verdict.reason;
}

TEST(Analysis, FailsWithinAnIterationWithoutRunningTheRest) {
  ScriptedHealth health([](int) { return true; });
  ScriptedHealth other([](int) { return false; });
  auto verdict =
      run_analysis(analysis(5, 0, {health.probe("first"), other.probe("second")}), {}, [](int, const ProbeResult&) {});
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.iterations_run, 1);
  EXPECT_EQ(other.requests(), 0);
}

TEST(Analysis, ToleratesFailuresUpToTheThreshold) {
  ScriptedHealth health([](int n) { return n <= 2; });  // the app is still starting
  auto verdict = run_analysis(analysis(5, 2, {health.probe()}), {}, [](int, const ProbeResult&) {});
  EXPECT_TRUE(verdict.passed) << verdict.reason;
  EXPECT_EQ(verdict.iterations_run, 5);
  EXPECT_EQ(verdict.failed_checks, 2);
}

TEST(Analysis, IntermittentFailuresAddUp) {
  ScriptedHealth health([](int n) { return n % 2 == 1; });  // fails in iterations 1, 3, 5, ...
  std::vector<int> failed_in;
  auto verdict = run_analysis(analysis(6, 2, {health.probe()}), {}, [&](int iteration, const ProbeResult& r) {
    if (!r.ok) failed_in.push_back(iteration);
  });
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.iterations_run, 5);
  EXPECT_EQ(verdict.failed_checks, 3);
  EXPECT_EQ(failed_in, (std::vector<int>{1, 3, 5}));
}

TEST(Analysis, WithoutProbesPassesAfterItsIterations) {
  auto start = std::chrono::steady_clock::now();
  auto verdict = run_analysis(analysis(3, 0, {}, 20ms), {}, [](int, const ProbeResult&) {});
  EXPECT_TRUE(verdict.passed);
  EXPECT_EQ(verdict.iterations_run, 3);
  // Iterations start one interval apart, so three of them span at least two intervals.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 40ms);
}

TEST(Analysis, FailingPreCheckCountsAsAFailedCheck) {
  ScriptedHealth health([](int) { return false; });
  std::vector<std::string> failed;
  int pre_checks = 0;
  auto verdict = run_analysis(
      analysis(5, 1, {health.probe()}), {},
      [&](int, const ProbeResult& r) {
        if (!r.ok) failed.push_back(r.probe + ": " + r.detail);
      },
      {},
      [&]() -> Status {
        ++pre_checks;
        return make_error(Errc::process, "hook pre-commit: bin/check: exited with status 1");
      });
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.iterations_run, 2);
  EXPECT_EQ(verdict.failed_checks, 2);
  EXPECT_EQ(pre_checks, 2);
  EXPECT_EQ(health.requests(), 1);  // the second pre-check crossed the threshold before the probe ran
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0], "pre-check: hook pre-commit: bin/check: exited with status 1");
  EXPECT_TRUE(contains(verdict.reason, "pre-check")) << verdict.reason;
}

TEST(Analysis, StopInterruptsTheWaitBetweenIterations) {
  ScriptedHealth health([](int) { return false; });  // always healthy
  std::atomic<bool> stop{false};
  // Iterations 20 ms apart; the stop comes after the first result.
  std::atomic<int> results{0};
  Analysis a = analysis(3, 0, {health.probe()}, std::chrono::milliseconds(20));
  std::thread stopper([&] {
    eddy::testing::wait_until([&] { return results.load() > 0; });
    stop = true;
  });
  auto verdict = run_analysis(
      a, {}, [&](int, const ProbeResult&) { ++results; }, [&] { return stop.load(); });
  stopper.join();
  EXPECT_TRUE(verdict.cancelled || verdict.passed);  // a fast machine may finish all three
  EXPECT_GE(verdict.iterations_run, 1);
}

TEST(Analysis, StopFromAnotherThreadDuringTheFirstWait) {
  ScriptedHealth health([](int) { return false; });
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    stop = true;
  });
  // An hour before the first iteration: only the stop ends it.
  auto verdict = run_analysis(analysis(3, 0, {health.probe()}, std::chrono::hours(1)), {},
                              [&](int, const ProbeResult&) {}, [&] { return stop.load(); });
  stopper.join();
  EXPECT_FALSE(verdict.passed);
  EXPECT_TRUE(verdict.cancelled);
  EXPECT_EQ(verdict.failed_checks, 0);
}

}  // namespace
}  // namespace eddy::ota
