// Service downtime of container swaps on this machine (issue 5), with the real Podman and the
// installer eddyd uses (ota/container_installer): images from a busybox-static tree serving
// busybox httpd on loopback; a client polls the service port throughout each swap.
//
//   container_swap [--rounds N]
//
// A good hand-over switches the service port through a redirect to the probed candidate
// (iptables DNAT marked eddy:<target>, ContainerRuntime::redirect_ports); the bench checks that
// no such rule is left after a round.
//
// Per strategy and round: requests made, requests failed, the longest time without an answer.
// For a failed hand-over: the time from the failed verdict to the old container serving alone
// (the candidate removed). Prints one line per round and the medians; bench/RESULTS.md keeps them.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ota/container_installer.hpp"
#include "ota/payload.hpp"
#include "tests/support/containers.hpp"
#include "tests/support/support.hpp"

namespace t = eddy::testing;
using namespace eddy;
using namespace eddy::ota;
using Clock = std::chrono::steady_clock;
// A request that gets no answer this fast counts as failed (a connection into a container that
// is going away can hang until then); short, so that the gap measures the swap, not the client.
constexpr std::chrono::milliseconds kRequestTimeout{200};

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "container_swap: %s\n", what.c_str());
  std::exit(1);
}

void check(const Status& st, const std::string& what) {
  if (!st) die(what + ": " + st.error().message);
}

template <typename T>
T median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else die("usage: container_swap [--rounds N]");
  }
  if (auto why = t::podman_unavailable(); !why.empty()) die("cannot run: " + why);
  t::TempDir dir;
  const std::string target = "bench" + std::to_string(::getpid());
  auto runtime = make_container_runtime(RuntimeKind::podman, process_runner());
  ContainerInstaller installer(*runtime, ContainerTarget{target, dir / "target", 3, std::chrono::seconds(5)});
  const auto port = static_cast<std::uint16_t>(t::free_port());
  const auto candidate = static_cast<std::uint16_t>(t::free_port());

  auto a = t::make_test_image(dir.path(), target, "a", {{"index.html", "a\n"}, {"healthz", "ok\n"}});
  auto b = t::make_test_image(dir.path(), target, "b", {{"index.html", "b\n"}, {"healthz", "ok\n"}});
  auto stage = [&](const std::string& v, const t::TestImage& image, const ContainerSettings& s) {
    VerifyingStream bytes(std::make_unique<MemoryStream>(t::read_file(image.archive)), image.sha256, image.size, v);
    check(installer.stage(v, s, image.archive.filename().string(), &bytes), "stage " + v);
  };
  auto settings = [&](const t::TestImage& image, SwapStrategy strategy) {
    ContainerSettings s;
    s.image = image.reference;
    s.ports = {ContainerPort{"127.0.0.1", port, 80, candidate, "tcp"}};
    s.restart = "no";
    s.strategy = strategy;
    return s;
  };
  auto serving = [&](const std::string& body) {
    return t::wait_until([&] { return t::run({"curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/"}).output == body; });
  };

  std::string version = t::run_ok({"podman", "version", "--format", "{{.Client.Version}}"});
  while (!version.empty() && version.back() == '\n') version.pop_back();
  std::printf("container_swap: podman %s, %d rounds, busybox httpd on 127.0.0.1\n", version.c_str(), rounds);
  struct Row { int requests, failures; long long gap_ms, swap_ms; };
  for (auto strategy : {SwapStrategy::hand_over, SwapStrategy::stop_then_start}) {
    std::vector<Row> rows;
    // Start from `a`, then swap a -> b -> a ... each round.
    auto sa = settings(a, strategy), sb = settings(b, strategy);
    stage("a", a, sa);
    stage("b", b, sb);
    check(installer.settle("a", sa), "start a");
    if (!serving("a\n")) die("a does not serve");
    std::string from = "a";
    for (int round = 0; round < rounds; ++round) {
      const std::string to = from == "a" ? "b" : "a";
      const auto& s = to == "a" ? sa : sb;
      t::HttpPoller poller(port, kRequestTimeout);
      if (!t::wait_until([&] { return poller.answered() > 0; })) die("no answer before the swap");
      auto started = Clock::now();
      if (strategy == SwapStrategy::stop_then_start) check(installer.stop(from), "stop " + from);
      check(installer.start(to, s, from), "start " + to);
      // The analysis would run here (against the candidate port for hand-over): wait for it to answer.
      const std::uint16_t probe_port = strategy == SwapStrategy::hand_over ? candidate : port;
      if (!t::wait_until([&] { return t::run({"curl", "-sf", "http://127.0.0.1:" + std::to_string(probe_port) + "/healthz"}).exit_code == 0; }))
        die("the new container never answered");
      check(installer.promote(to, s, from), "promote " + to);
      if (!serving(to + "\n")) die(to + " does not serve");
      auto swap_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
      if (t::run({"sh", "-c", "iptables -w -t nat -S | grep -q -e 'eddy:" + target + "\\b'"}).exit_code == 0)
        die("the hand-over left its port redirect (iptables -t nat -S | grep eddy:" + target + ")");
      if (!t::wait_until([&] { return poller.answered() > 0; })) die("no answer after the swap");
      auto stats = poller.stop();
      rows.push_back({stats.requests, stats.failures, static_cast<long long>(stats.longest_gap.count()), static_cast<long long>(swap_ms)});
      std::printf("%-16s round %d: %4d requests, %3d failed, longest gap %4lld ms, swap %5lld ms\n",
                  std::string(strategy_name(strategy)).c_str(), round + 1, stats.requests, stats.failures,
                  static_cast<long long>(stats.longest_gap.count()), static_cast<long long>(swap_ms));
      from = to;
    }
    std::vector<int> failed;
    std::vector<long long> gaps, swaps;
    for (const auto& r : rows) {
      failed.push_back(r.failures);
      gaps.push_back(r.gap_ms);
      swaps.push_back(r.swap_ms);
    }
    std::printf("%-16s median: %d failed requests, longest gap %lld ms, swap %lld ms\n",
                std::string(strategy_name(strategy)).c_str(), median(failed), median(gaps), median(swaps));
    check(installer.settle("", std::nullopt), "clean up");
  }

  // A failed hand-over: the verdict falls while the candidate runs; how long until the old
  // container serves alone (candidate removed), and whether a request failed meanwhile.
  {
    auto sa = settings(a, SwapStrategy::hand_over), sb = settings(b, SwapStrategy::hand_over);
    check(installer.settle("a", sa), "start a");
    if (!serving("a\n")) die("a does not serve");
    std::vector<long long> times;
    int failures = 0;
    for (int round = 0; round < rounds; ++round) {
      t::HttpPoller poller(port, kRequestTimeout);
      if (!t::wait_until([&] { return poller.answered() > 0; })) die("no answer");
      check(installer.start("b", sb, "a"), "start candidate b");
      if (!t::wait_until([&] { return t::run({"curl", "-sf", "http://127.0.0.1:" + std::to_string(candidate) + "/"}).exit_code == 0; }))
        die("candidate never answered");
      auto verdict = Clock::now();
      check(installer.settle("a", sa), "fall back to a");
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - verdict).count();
      times.push_back(static_cast<long long>(ms));
      failures += poller.stop().failures;
      std::printf("failed hand-over round %d: old container serving alone %lld ms after the verdict\n", round + 1,
                  static_cast<long long>(ms));
    }
    std::printf("failed hand-over median: %lld ms from the verdict to the old container alone; %d requests failed in all rounds\n",
                median(times), failures);
  }
  t::remove_test_containers(target);
  t::remove_test_images(target);
  return 0;
}
