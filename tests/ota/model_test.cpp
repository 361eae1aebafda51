#include "ota/model.hpp"

#include <gtest/gtest.h>

#include <string>
#include <tuple>

namespace eddy::ota {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

// The contract examples from DESIGN.md, verbatim except the digest: DESIGN.md abbreviates it as
// `9f2c…`, which a strict parser refuses (see ContractReleaseAsPrintedIsRefusedOnlyForItsDigest).
constexpr std::string_view kDesignDigest = "9f2c…";
constexpr std::string_view kDigest = "9f2c3a1b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

const std::string kReleaseAsPrinted = R"(apiVersion: eddy/v1
kind: Release
metadata: {name: sensor-app-1.4.2}
spec:
  target: sensor-app               # an app name, `rootfs`, or a container name
  version: 1.4.2
  payload:
    type: app                      # app | rootfs | container
    path: payloads/sensor-app-1.4.2.tar.zst     # or url: https://…
    sha256: 9f2c…                  # of the bytes as stored (compressed)
    size: 48211                    # bytes as stored; the download limit
  compatible: {hw: [pi4, pi5]}     # optional label match
  analysis:                        # Flagger's analysis, on the device
    interval: 5s
    iterations: 6
    threshold: 2                   # failed checks tolerated; one more rolls back
    probes:
      - {name: health, http: {url: "http://127.0.0.1:8080/healthz", status: 200, timeout: 2s}}
      - {name: port, tcp: {address: "127.0.0.1:8080", timeout: 1s}}
      - {name: selftest, exec: {command: [bin/selftest], timeout: 10s}}
  hooks:                           # commands; a failing hook is a failing check
    pre-activate: [[bin/migrate]]
    rollback: [[bin/cleanup]]
)";

const std::string kRollout = R"(apiVersion: eddy/v1
kind: Rollout
metadata: {name: sensor-app}
spec:
  release: sensor-app-1.4.2
  selector: {matchLabels: {site: berlin}}
  steps: [1, 10, 50, 100]          # percent of the selected devices
  bake: 10m                        # time a step stays open before it may widen
  minDevices: 3                    # reports needed before a step may widen
  maxFailureRate: 5%               # more failures in a step halts the rollout
  onFailure: rollback              # rollback | pause
  progressDeadline: 30m            # a device stuck longer counts as failed
)";

constexpr std::string_view kReleaseFile = "releases/sensor-app-1.4.2.yaml";
constexpr std::string_view kRolloutFile = "rollouts/sensor-app.yaml";

// `text` with the first occurrence of `from` replaced by `to`; fails the test if absent.
std::string with(std::string text, std::string_view from, std::string_view to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "fixture has no " << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

std::string release_yaml() { return with(kReleaseAsPrinted, kDesignDigest, kDigest); }

// Asserts an invalid_argument error whose message starts with "<file>:<line>: " and contains `needle`.
template <typename T>
void expect_error(const Expected<T>& result, std::string_view file, int line, std::string_view needle) {
  ASSERT_FALSE(result.has_value()) << "expected an error containing: " << needle;
  EXPECT_EQ(result.error().code, Errc::invalid_argument);
  const std::string prefix = std::string(file) + ":" + std::to_string(line) + ": ";
  EXPECT_TRUE(result.error().message.starts_with(prefix))
      << "message: " << result.error().message << "\nwanted prefix: " << prefix;
  EXPECT_NE(result.error().message.find(needle), std::string::npos)
      << "message: " << result.error().message << "\nwanted: " << needle;
}

Expected<Release> release_with(std::string_view from, std::string_view to) {
  return parse_release(with(release_yaml(), from, to), kReleaseFile);
}

Expected<Rollout> rollout_with(std::string_view from, std::string_view to) {
  return parse_rollout(with(kRollout, from, to), kRolloutFile);
}

// --- The contract examples ---------------------------------------------------------------------

TEST(Model, ContractReleaseParsesEveryKey) {
  auto r = parse_release(release_yaml(), kReleaseFile);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->file, kReleaseFile);
  EXPECT_EQ(r->name, "sensor-app-1.4.2");
  EXPECT_EQ(r->target, "sensor-app");
  EXPECT_EQ(r->version, "1.4.2");
  EXPECT_EQ(r->payload.type, "app");
  EXPECT_EQ(r->payload.path, "payloads/sensor-app-1.4.2.tar.zst");
  EXPECT_EQ(r->payload.url, "");
  EXPECT_EQ(r->payload.sha256, kDigest);
  EXPECT_EQ(r->payload.size, 48211u);
  EXPECT_EQ(r->compatible, (std::map<std::string, std::vector<std::string>>{{"hw", {"pi4", "pi5"}}}));
  EXPECT_EQ(r->analysis.interval, 5s);
  EXPECT_EQ(r->analysis.iterations, 6);
  EXPECT_EQ(r->analysis.threshold, 2);
  ASSERT_EQ(r->analysis.probes.size(), 3u);

  EXPECT_EQ(r->analysis.probes[0].name, "health");
  const auto* http = std::get_if<HttpProbe>(&r->analysis.probes[0].check);
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->url, "http://127.0.0.1:8080/healthz");
  EXPECT_EQ(http->status, 200);
  EXPECT_EQ(http->body_contains, "");
  EXPECT_EQ(http->timeout, 2s);

  EXPECT_EQ(r->analysis.probes[1].name, "port");
  const auto* tcp = std::get_if<TcpProbe>(&r->analysis.probes[1].check);
  ASSERT_NE(tcp, nullptr);
  EXPECT_EQ(tcp->address, "127.0.0.1:8080");
  EXPECT_EQ(tcp->timeout, 1s);

  EXPECT_EQ(r->analysis.probes[2].name, "selftest");
  const auto* exec = std::get_if<ExecProbe>(&r->analysis.probes[2].check);
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->command, std::vector<std::string>{"bin/selftest"});
  EXPECT_EQ(exec->timeout, 10s);

  EXPECT_EQ(r->hooks.pre_activate, (std::vector<std::vector<std::string>>{{"bin/migrate"}}));
  EXPECT_EQ(r->hooks.rollback, (std::vector<std::vector<std::string>>{{"bin/cleanup"}}));
  EXPECT_TRUE(r->hooks.post_activate.empty());
  EXPECT_TRUE(r->hooks.pre_commit.empty());
  EXPECT_EQ(r->hooks.timeout, 60s);
  EXPECT_FALSE(r->allow_downgrade);
}

TEST(Model, ContractReleaseAsPrintedIsRefusedOnlyForItsDigest) {
  auto r = parse_release(kReleaseAsPrinted, kReleaseFile);
  expect_error(r, kReleaseFile, 10, "spec.payload.sha256: `9f2c…` is not a SHA-256");
}

TEST(Model, ContractRolloutParsesEveryKey) {
  auto r = parse_rollout(kRollout, kRolloutFile);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->file, kRolloutFile);
  EXPECT_EQ(r->name, "sensor-app");
  EXPECT_EQ(r->release, "sensor-app-1.4.2");
  EXPECT_EQ(r->release_line, 5);
  EXPECT_EQ(r->match_labels, (std::map<std::string, std::string>{{"site", "berlin"}}));
  EXPECT_EQ(r->steps, (std::vector<double>{1, 10, 50, 100}));
  EXPECT_EQ(r->bake, 10min);
  EXPECT_EQ(r->min_devices, 3);
  EXPECT_DOUBLE_EQ(r->max_failure_rate, 0.05);
  EXPECT_EQ(r->on_failure, OnFailure::rollback);
  EXPECT_EQ(r->progress_deadline, 30min);
}

TEST(Model, EveryOtherKeyParses) {
  const std::string yaml = R"(apiVersion: eddy/v1
kind: Release
metadata:
  name: os-2024.06
spec:
  target: rootfs
  version: 2024.06-rc.1+build.7
  allowDowngrade: true
  payload:
    type: rootfs
    url: https://cdn.example.com/os/2024.06.img.zst
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
    size: 0
  compatible:
    hw: pi4
    board: [cm4, pi4b]
  analysis:
    probes:
      - name: page
        http: {url: "https://127.0.0.1/", status: 204, body: "ok", timeout: 500ms}
      - name: v6
        tcp: {address: "[::1]:22"}
  hooks:
    pre-activate: [[bin/a, --x], [bin/b]]
    post-activate: [[bin/c]]
    pre-commit: [[bin/d]]
    rollback: [[bin/e]]
    timeout: 2m
)";
  auto r = parse_release(yaml, "releases/os.yaml");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->version, "2024.06-rc.1+build.7");
  EXPECT_TRUE(r->allow_downgrade);
  EXPECT_EQ(r->payload.url, "https://cdn.example.com/os/2024.06.img.zst");
  EXPECT_EQ(r->payload.path, "");
  EXPECT_EQ(r->payload.size, 0u);
  EXPECT_EQ(r->compatible.at("hw"), std::vector<std::string>{"pi4"});
  EXPECT_EQ(r->compatible.at("board"), (std::vector<std::string>{"cm4", "pi4b"}));
  const auto& http = std::get<HttpProbe>(r->analysis.probes.at(0).check);
  EXPECT_EQ(http.status, 204);
  EXPECT_EQ(http.body_contains, "ok");
  EXPECT_EQ(http.timeout, 500ms);
  const auto& tcp = std::get<TcpProbe>(r->analysis.probes.at(1).check);
  EXPECT_EQ(tcp.address, "[::1]:22");
  EXPECT_EQ(tcp.timeout, 1s);  // default
  EXPECT_EQ(r->analysis.interval, 5s);
  EXPECT_EQ(r->analysis.iterations, 1);
  EXPECT_EQ(r->analysis.threshold, 0);
  EXPECT_EQ(r->hooks.pre_activate, (std::vector<std::vector<std::string>>{{"bin/a", "--x"}, {"bin/b"}}));
  EXPECT_EQ(r->hooks.post_activate.size(), 1u);
  EXPECT_EQ(r->hooks.pre_commit.size(), 1u);
  EXPECT_EQ(r->hooks.rollback.size(), 1u);
  EXPECT_EQ(r->hooks.timeout, 2min);
}

TEST(Model, MinimalFilesTakeTheDocumentedDefaults) {
  auto rel = parse_release(R"(apiVersion: eddy/v1
kind: Release
metadata: {name: a}
spec:
  target: a
  version: "1"
  payload: {type: container, image: "a@sha256:)" + std::string(kDigest) + R"(", path: p/a.tar, sha256: )" +
                               std::string(kDigest) + R"(, size: 1}
)",
                           "releases/a.yaml");
  ASSERT_TRUE(rel) << rel.error().message;
  EXPECT_TRUE(rel->compatible.empty());
  EXPECT_EQ(rel->analysis.interval, 5s);
  EXPECT_EQ(rel->analysis.iterations, 1);
  EXPECT_TRUE(rel->analysis.probes.empty());
  EXPECT_EQ(rel->hooks.timeout, 60s);

  auto ro = parse_rollout(R"(apiVersion: eddy/v1
kind: Rollout
metadata: {name: a}
spec:
  release: a
  selector:
  steps: [100]
)",
                          "rollouts/a.yaml");
  ASSERT_TRUE(ro) << ro.error().message;
  EXPECT_TRUE(ro->match_labels.empty());
  EXPECT_EQ(ro->bake, 10min);
  EXPECT_EQ(ro->min_devices, 1);
  EXPECT_DOUBLE_EQ(ro->max_failure_rate, 0.05);
  EXPECT_EQ(ro->on_failure, OnFailure::rollback);
  EXPECT_EQ(ro->progress_deadline, 30min);
}

TEST(Model, RolloutAlternatives) {
  auto r = parse_rollout(with(with(with(kRollout, "onFailure: rollback", "onFailure: pause"), "bake: 10m", "bake: 0s"),
                              "[1, 10, 50, 100]", "[0.5%, 2.5, 100%]"),
                         kRolloutFile);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->on_failure, OnFailure::pause);
  EXPECT_EQ(r->bake, 0s);
  EXPECT_EQ(r->steps, (std::vector<double>{0.5, 2.5, 100}));
}

// --- Errors name file and line ------------------------------------------------------------------

TEST(ModelErrors, UnknownKeySuggestsTheClosestOne) {
  auto r = release_with("    probes:", "    probs:");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_EQ(r.error().message, "releases/sensor-app-1.4.2.yaml:17: unknown key `probs` (did you mean `probes`?)");

  expect_error(rollout_with("maxFailureRate:", "max_failure_rate:"), kRolloutFile, 10,
               "unknown key `max_failure_rate` (did you mean `maxFailureRate`?)");
  expect_error(rollout_with("minDevices:", "minDevice:"), kRolloutFile, 9, "(did you mean `minDevices`?)");
  expect_error(release_with("pre-activate:", "pre_activate:"), kReleaseFile, 22, "(did you mean `pre-activate`?)");
  expect_error(release_with("status: 200", "stat: 200"), kReleaseFile, 18, "(did you mean `status`?)");
  expect_error(release_with("apiVersion:", "apiversion:"), kReleaseFile, 1, "(did you mean `apiVersion`?)");
}

TEST(ModelErrors, UnknownKeyWithoutACloseOneListsTheAllowedKeys) {
  expect_error(
      release_with("  compatible:", "  colour: red\n  compatible:"), kReleaseFile, 12,
      "unknown key `colour` in spec (allowed: target, version, payload, compatible, analysis, hooks, allowDowngrade)");
}

TEST(ModelErrors, KeyWrittenTwice) {
  expect_error(release_with("    size: 48211", "    size: 48211\n    size: 1"), kReleaseFile, 12,
               "key `size` appears twice in spec.payload (first on line 11)");
}

TEST(ModelErrors, WrongType) {
  expect_error(release_with("iterations: 6", "iterations: six"), kReleaseFile, 15,
               "spec.analysis.iterations: expected a whole number, got `six`");
  expect_error(release_with("iterations: 6", "iterations: \"6\""), kReleaseFile, 15,
               "expected a number, got the string \"6\"");
  expect_error(release_with("compatible: {hw: [pi4, pi5]}", "compatible: pi4"), kReleaseFile, 12,
               "spec.compatible: expected a mapping of labels");
  expect_error(release_with("  hooks:                           # commands; a failing hook is a failing check\n"
                            "    pre-activate: [[bin/migrate]]\n    rollback: [[bin/cleanup]]\n",
                            "  hooks: [1]\n"),
               kReleaseFile, 21, "spec.hooks: expected a mapping");
  expect_error(release_with("metadata: {name: sensor-app-1.4.2}", "metadata: {name: [a]}"), kReleaseFile, 3,
               "metadata.name: expected a single value, got a list");
  expect_error(release_with("command: [bin/selftest]", "command: bin/selftest"), kReleaseFile, 20,
               "spec.analysis.probes[2].exec.command: expected a list of strings");
  expect_error(release_with("status: 200", "status: 99"), kReleaseFile, 18, "`99` is out of range (100..599)");
  expect_error(release_with("  hooks:", "  allowDowngrade: yes\n  hooks:"), kReleaseFile, 21,
               "spec.allowDowngrade: expected true or false, got `yes`");
  expect_error(rollout_with("steps: [1, 10, 50, 100]", "steps: 10"), kRolloutFile, 7, "spec.steps: expected a list");
  expect_error(rollout_with("steps: [1, 10, 50, 100]", "steps: [1, \"10\"]"), kRolloutFile, 7,
               "spec.steps[1]: expected a number of percent, got the string \"10\"");
  expect_error(rollout_with("minDevices: 3", "minDevices: 0"), kRolloutFile, 9, "out of range (1..");
  expect_error(rollout_with("onFailure: rollback", "onFailure: retry"), kRolloutFile, 11,
               "unknown action `retry`: write rollback or pause");
  expect_error(rollout_with("selector: {matchLabels: {site: berlin}}", "selector: {matchLabels: [site]}"), kRolloutFile,
               6, "spec.selector.matchLabels: expected a mapping of labels");
}

TEST(ModelErrors, MissingRequiredField) {
  expect_error(release_with("  version: 1.4.2\n", ""), kReleaseFile, 4, "spec: missing required key `version`");
  expect_error(release_with("  target: sensor-app ", "  #"), kReleaseFile, 4, "spec: missing required key `target`");
  expect_error(release_with("    sha256: ", "    #sha256: "), kReleaseFile, 7,
               "spec.payload: missing required key `sha256`");
  expect_error(release_with("    size: 48211", "    #"), kReleaseFile, 7, "spec.payload: missing required key `size`");
  expect_error(release_with("    type: app", "    #"), kReleaseFile, 7, "spec.payload: missing required key `type`");
  expect_error(release_with("    path: ", "    #path: "), kReleaseFile, 7,
               "missing `path` (in the repository) or `url`");
  expect_error(release_with("kind: Release\n", ""), kReleaseFile, 1, "missing required key `kind`");
  expect_error(release_with("metadata: {name: sensor-app-1.4.2}", "metadata: {}"), kReleaseFile, 3,
               "metadata: missing required key `name`");
  expect_error(release_with("{name: health, ", "{"), kReleaseFile, 18,
               "spec.analysis.probes[0]: missing required key `name`");
  expect_error(release_with("    size: 48211", "    size:"), kReleaseFile, 11, "spec.payload.size: needs a value");
  expect_error(rollout_with("  release: sensor-app-1.4.2\n", ""), kRolloutFile, 4,
               "spec: missing required key `release`");
  expect_error(rollout_with("  steps: [1, 10, 50, 100]", "  #"), kRolloutFile, 4, "spec: missing required key `steps`");
  expect_error(rollout_with("  steps: [1, 10, 50, 100]", "  steps: []"), kRolloutFile, 7, "needs at least one step");
  auto no_spec = parse_rollout("apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: a}\n", kRolloutFile);
  expect_error(no_spec, kRolloutFile, 1, "missing required key `spec`");
}

TEST(ModelErrors, BadDuration) {
  expect_error(release_with("interval: 5s", "interval: 5x"), kReleaseFile, 14,
               "spec.analysis.interval: bad duration `5x`: unknown unit");
  expect_error(release_with("interval: 5s", "interval: 0s"), kReleaseFile, 14, "must be longer than zero");
  expect_error(release_with("timeout: 1s", "timeout: -1s"), kReleaseFile, 19,
               "bad duration `-1s`: it must not be negative");
  expect_error(rollout_with("bake: 10m", "bake: 10"), kRolloutFile, 8,
               "spec.bake: bad duration `10`: a unit is missing");
  expect_error(rollout_with("bake: 10m", "bake: 1500ms"), kRolloutFile, 8, "must be whole seconds");
  expect_error(rollout_with("progressDeadline: 30m", "progressDeadline: 0s"), kRolloutFile, 12,
               "must be longer than zero");
}

TEST(ModelErrors, BadPercentage) {
  expect_error(rollout_with("maxFailureRate: 5%", "maxFailureRate: 150%"), kRolloutFile, 10, "bad percentage `150%`");
  expect_error(rollout_with("maxFailureRate: 5%", "maxFailureRate: -1%"), kRolloutFile, 10, "bad percentage `-1%`");
  expect_error(rollout_with("maxFailureRate: 5%", "maxFailureRate: 0.05"), kRolloutFile, 10,
               "bad percentage `0.05`: write it with a percent sign");
  expect_error(rollout_with("maxFailureRate: 5%", "maxFailureRate: lots%"), kRolloutFile, 10, "bad percentage `lots%`");
  expect_error(rollout_with("[1, 10, 50, 100]", "[0, 10, 100]"), kRolloutFile, 7, "spec.steps[0]: bad percentage `0`");
  expect_error(rollout_with("[1, 10, 50, 100]", "[1, 101]"), kRolloutFile, 7, "spec.steps[1]: bad percentage `101`");
  expect_error(rollout_with("[1, 10, 50, 100]", "[10, 5, 100]"), kRolloutFile, 7, "step `5` does not widen");
  expect_error(rollout_with("[1, 10, 50, 100]", "[10, 10]"), kRolloutFile, 7, "step `10` does not widen");
  expect_error(rollout_with("[1, 10, 50, 100]", "[nan]"), kRolloutFile, 7, "bad percentage `nan`");
  auto zero = rollout_with("maxFailureRate: 5%", "maxFailureRate: 0%");
  ASSERT_TRUE(zero) << zero.error().message;
  EXPECT_EQ(zero->max_failure_rate, 0.0);
}

TEST(ModelErrors, BadDigestAndSize) {
  const std::string upper = "9F2C3A1B4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F8";
  expect_error(release_with(kDigest, upper), kReleaseFile, 10,
               "is not a SHA-256: write 64 lowercase hexadecimal digits");
  expect_error(release_with(kDigest, kDigest.substr(1)), kReleaseFile, 10, "is not a SHA-256");
  expect_error(release_with("size: 48211", "size: -5"), kReleaseFile, 11,
               "spec.payload.size: must not be negative, got `-5`");
  expect_error(release_with("size: 48211", "size: 4.5"), kReleaseFile, 11, "expected a whole number, got `4.5`");
  expect_error(release_with("size: 48211", "size: \"48211\""), kReleaseFile, 11, "expected a number, got the string");
  expect_error(release_with("size: 48211", "size: 99999999999999999999999"), kReleaseFile, 11, "is out of range");
}

TEST(ModelErrors, ApiVersionAndKind) {
  expect_error(release_with("eddy/v1", "eddy/v2"), kReleaseFile, 1,
               "apiVersion: `eddy/v2` is not supported: write `apiVersion: eddy/v1`");
  expect_error(release_with("kind: Release", "kind: Rollout"), kReleaseFile, 2,
               "kind: `Rollout` where a Release was expected");
  expect_error(parse_rollout(release_yaml(), kRolloutFile), kRolloutFile, 2, "`Release` where a Rollout was expected");
  expect_error(release_with("apiVersion: eddy/v1\n", ""), kReleaseFile, 1, "missing required key `apiVersion`");
  // Another version's file is refused for its version before any key it may have that v1 lacks.
  expect_error(release_with("apiVersion: eddy/v1\nkind: Release", "apiVersion: eddy/v2\nkind: Release\nstatus: {}"),
               kReleaseFile, 1, "apiVersion: `eddy/v2` is not supported");
}

TEST(ModelErrors, MalformedYamlNamesFileAndLineFromTheParser) {
  expect_error(release_with("{hw: [pi4, pi5]}", "{hw: [pi4, pi5}"), kReleaseFile, 12, "invalid YAML");
  expect_error(release_with("  hooks:", "  hooks:\n\t- x"), kReleaseFile, 22, "invalid YAML");
}

TEST(ModelErrors, DeepNestingIsAnErrorNotACrash) {
  auto r = parse_release(std::string(100000, '['), kReleaseFile);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_TRUE(r.error().message.starts_with("releases/sensor-app-1.4.2.yaml:1: invalid YAML")) << r.error().message;
}

// Every truncation, every line left out and every line written twice gives a value or an
// invalid_argument error naming the file: never an exception, never another code.
TEST(ModelErrors, MangledInputNeverThrows) {
  std::vector<std::pair<std::string, std::string>> inputs;  // yaml, kind
  for (const auto& [yaml, kind] :
       {std::pair{release_yaml(), "Release"s}, std::pair{std::string(kRollout), "Rollout"s}}) {
    for (std::size_t n = 0; n < yaml.size(); ++n) inputs.emplace_back(yaml.substr(0, n), kind);
    std::vector<std::string> lines;
    for (std::size_t at = 0; at < yaml.size();) {
      const auto end = yaml.find('\n', at);
      lines.push_back(yaml.substr(at, end - at + 1));
      at = end + 1;
    }
    for (std::size_t skip = 0; skip < lines.size(); ++skip) {
      std::string without, twice;
      for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i != skip) without += lines[i];
        twice += lines[i];
        if (i == skip) twice += lines[i];
      }
      inputs.emplace_back(without, kind);
      inputs.emplace_back(twice, kind);
    }
  }
  for (const auto& [yaml, kind] : inputs) {
    const std::string file = kind == "Release" ? "releases/m.yaml" : "rollouts/m.yaml";
    Status outcome;
    if (kind == "Release") {
      auto r = parse_release(yaml, file);
      if (!r) outcome = std::unexpected(r.error());
    } else {
      auto r = parse_rollout(yaml, file);
      if (!r) outcome = std::unexpected(r.error());
    }
    if (!outcome) {
      EXPECT_EQ(outcome.error().code, Errc::invalid_argument) << yaml;
      EXPECT_TRUE(outcome.error().message.starts_with(file + ":")) << outcome.error().message;
    }
  }
}

TEST(ModelErrors, EmptyFileAndSeveralDocuments) {
  auto empty = parse_release("# nothing here\n", kReleaseFile);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Errc::invalid_argument);
  EXPECT_EQ(empty.error().message,
            "releases/sensor-app-1.4.2.yaml: the file is empty: expected apiVersion, kind, metadata and spec");
  expect_error(parse_rollout(kRollout + "---\n" + kRollout, kRolloutFile), kRolloutFile, 14, "a second YAML document");
  expect_error(parse_rollout("- a\n- b\n", kRolloutFile), kRolloutFile, 1, "expected a mapping with apiVersion");
}

TEST(ModelErrors, PayloadSource) {
  expect_error(release_with("    sha256:", "    url: https://x.example/a\n    sha256:"), kReleaseFile, 10,
               "the payload has both `path` and `url`: keep one");
  for (std::string_view bad :
       {"/etc/passwd", "../x.tar", "payloads/../../x", "payloads//x", "./x", "payloads/x/", "a\\\\b"}) {
    SCOPED_TRACE(bad);
    expect_error(release_with("payloads/sensor-app-1.4.2.tar.zst", "\"" + std::string(bad) + "\""), kReleaseFile, 9,
                 "is not a safe path in the repository");
  }
  for (std::string_view bad : {"ftp://x.example/a", "https://", "x.example/a", "http:// x"}) {
    SCOPED_TRACE(bad);
    expect_error(release_with("    path: payloads/sensor-app-1.4.2.tar.zst", "    url: \"" + std::string(bad) + "\""),
                 kReleaseFile, 9, "is not an http:// or https:// URL");
  }
  auto http = release_with("    path: payloads/sensor-app-1.4.2.tar.zst", "    url: http://mirror.lan/a.tar.zst");
  ASSERT_TRUE(http) << http.error().message;
  EXPECT_EQ(http->payload.url, "http://mirror.lan/a.tar.zst");
  expect_error(release_with("type: app", "type: deb"), kReleaseFile, 8,
               "unknown payload type `deb`: write app, rootfs or container");
  expect_error(release_with("type: app", "type: rootfs"), kReleaseFile, 8, "does not go with target `sensor-app`");
}

TEST(ModelErrors, NamesThatWouldBeUnsafeFileNames) {
  expect_error(release_with("version: 1.4.2", "version: ../../etc"), kReleaseFile, 6,
               "`../../etc` is not a valid name");
  expect_error(release_with("target: sensor-app", "target: a/b"), kReleaseFile, 5, "`a/b` is not a valid name");
  expect_error(release_with("{name: sensor-app-1.4.2}", "{name: .hidden}"), kReleaseFile, 3, "is not a valid name");
}

TEST(ModelErrors, Probes) {
  expect_error(release_with("{name: port, tcp:", "{name: port, exec: {command: [x]}, tcp:"), kReleaseFile, 19,
               "probe `port` needs exactly one of http, tcp and exec, has 2");
  expect_error(release_with("{name: port, tcp: {address: \"127.0.0.1:8080\", timeout: 1s}}", "{name: port}"),
               kReleaseFile, 19, "has 0");
  for (std::string_view bad : {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":80", "::1:80", "[::1:80", "h:8x"}) {
    SCOPED_TRACE(bad);
    expect_error(release_with("\"127.0.0.1:8080\"", "\"" + std::string(bad) + "\""), kReleaseFile, 19,
                 "is not host:port");
  }
  expect_error(release_with("{name: port, tcp: {address: \"127.0.0.1:8080\", timeout: 1s}}", "{name: port, tcp: }"),
               kReleaseFile, 19, "spec.analysis.probes[1].tcp: needs a value");
  expect_error(release_with("{name: selftest,", "{name: health,"), kReleaseFile, 20,
               "probe name `health` is also used on line 18");
  expect_error(release_with("command: [bin/selftest]", "command: []"), kReleaseFile, 20,
               "a command needs at least a program");
  expect_error(release_with("\"http://127.0.0.1:8080/healthz\"", "\"tcp://127.0.0.1:8080\""), kReleaseFile, 18,
               "is not an http:// or https:// URL");
}

TEST(ModelErrors, Hooks) {
  expect_error(release_with("pre-activate: [[bin/migrate]]", "pre-activate: [bin/migrate]"), kReleaseFile, 22,
               "spec.hooks.pre-activate[0]: a command is a list of strings: write [[bin/migrate]]");
  expect_error(release_with("pre-activate: [[bin/migrate]]", "pre-activate: bin/migrate"), kReleaseFile, 22,
               "expected a list of commands");
  expect_error(release_with("rollback: [[bin/cleanup]]", "rollback: [[bin/cleanup]]\n    timeout: soon"), kReleaseFile,
               24, "spec.hooks.timeout: bad duration `soon`");
}

TEST(ModelErrors, Compatible) {
  expect_error(release_with("{hw: [pi4, pi5]}", "{hw: []}"), kReleaseFile, 12, "lists no values");
  expect_error(release_with("{hw: [pi4, pi5]}", "{hw: [pi4, [pi5]]}"), kReleaseFile, 12,
               "spec.compatible.hw[1]: expected a single value");
}

// --- Durations and percentages ------------------------------------------------------------------

TEST(Duration, Parses) {
  const std::tuple<std::string_view, std::chrono::milliseconds> good[] = {
      {"500ms", 500ms}, {"5s", 5s},     {"10m", 10min},      {"2h", 2h},   {"1h30m", 90min},
      {"0s", 0ms},      {"1m30s", 90s}, {"1s500ms", 1500ms}, {"90s", 90s}, {"007s", 7s},
  };
  for (const auto& [text, expected] : good) {
    auto d = parse_duration(text);
    ASSERT_TRUE(d) << text << ": " << d.error().message;
    EXPECT_EQ(*d, expected) << text;
  }
}

TEST(Duration, RefusesBadText) {
  for (std::string_view bad : {"", "5", "-5s", "s", "5 s", " 5s", "5s ", "5w", "5S", "1.5s", "5sec", "ms", "1h30",
                               "99999999999999999999h", "9223372036854775807s", "+5s"}) {
    auto d = parse_duration(bad);
    ASSERT_FALSE(d) << "accepted: " << bad;
    EXPECT_EQ(d.error().code, Errc::invalid_argument);
    EXPECT_NE(d.error().message.find("`" + std::string(bad) + "`"), std::string::npos) << d.error().message;
  }
}

TEST(Percentage, Parses) {
  EXPECT_DOUBLE_EQ(*parse_percentage("5%"), 0.05);
  EXPECT_DOUBLE_EQ(*parse_percentage("0.5%"), 0.005);
  EXPECT_DOUBLE_EQ(*parse_percentage("100%"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_percentage("0%"), 0.0);
  for (std::string_view bad : {"", "%", "5", "0.05", "101%", "-1%", "5 %", "five%", "inf%", "1e1%", "5%%"}) {
    auto p = parse_percentage(bad);
    ASSERT_FALSE(p) << "accepted: " << bad;
    EXPECT_EQ(p.error().code, Errc::invalid_argument);
  }
}

// --- Across files -------------------------------------------------------------------------------

std::string release_named(std::string_view name, std::string_view target = "sensor-app") {
  return with(with(release_yaml(), "{name: sensor-app-1.4.2}", "{name: " + std::string(name) + "}"),
              "target: sensor-app", "target: " + std::string(target));
}

std::string rollout_named(std::string_view name, std::string_view release) {
  return with(with(kRollout, "{name: sensor-app}", "{name: " + std::string(name) + "}"), "release: sensor-app-1.4.2",
              "release: " + std::string(release));
}

TEST(Fleet, ParsesReleasesAndRolloutsAndIgnoresOtherFiles) {
  auto fleet = parse_fleet({
      {"releases/sensor-app-1.4.2.yaml", release_yaml()},
      {"releases/old.yml", release_named("sensor-app-1.4.1")},  // name need not match the file name
      {"rollouts/sensor-app.yaml", kRollout},
      {"README.md", "not yaml: ["},
      {"payloads/notes.yaml", "also: [ignored"},
  });
  ASSERT_TRUE(fleet) << fleet.error().message;
  EXPECT_EQ(fleet->releases.size(), 2u);
  EXPECT_EQ(fleet->releases.at("sensor-app-1.4.1").file, "releases/old.yml");
  ASSERT_EQ(fleet->rollouts.size(), 1u);
  EXPECT_EQ(fleet->rollouts[0].name, "sensor-app");
}

TEST(Fleet, DuplicateNameNamesBothFiles) {
  auto fleet = parse_fleet({{"releases/a.yaml", release_yaml()}, {"releases/b.yaml", release_yaml()}});
  ASSERT_FALSE(fleet);
  EXPECT_EQ(fleet.error().code, Errc::invalid_argument);
  EXPECT_EQ(fleet.error().message,
            "releases/b.yaml:3: release name `sensor-app-1.4.2` is also used by releases/a.yaml:3: give each release "
            "its own metadata.name");

  auto rollouts =
      parse_fleet({{"releases/a.yaml", release_yaml()}, {"rollouts/a.yaml", kRollout}, {"rollouts/b.yaml", kRollout}});
  ASSERT_FALSE(rollouts);
  EXPECT_TRUE(rollouts.error().message.starts_with(
      "rollouts/b.yaml:3: rollout name `sensor-app` is also used by rollouts/a.yaml:3"))
      << rollouts.error().message;
}

TEST(Fleet, RolloutNamingAMissingReleaseNamesItsFileAndLine) {
  auto fleet =
      parse_fleet({{"releases/a.yaml", release_yaml()}, {"rollouts/x.yaml", rollout_named("x", "other-app-2.0")}});
  ASSERT_FALSE(fleet);
  EXPECT_EQ(fleet.error().code, Errc::invalid_argument);
  EXPECT_EQ(fleet.error().message,
            "rollouts/x.yaml:5: release `other-app-2.0` does not exist: no releases/*.yaml has metadata.name "
            "`other-app-2.0`");

  auto typo =
      parse_fleet({{"releases/a.yaml", release_yaml()}, {"rollouts/x.yaml", rollout_named("x", "sensor-app-1.4.3")}});
  ASSERT_FALSE(typo);
  EXPECT_EQ(typo.error().message,
            "rollouts/x.yaml:5: release `sensor-app-1.4.3` does not exist (did you mean `sensor-app-1.4.2`?)");
}

TEST(Fleet, ListsEveryProblem) {
  auto fleet = parse_fleet({
      {"releases/a.yaml", with(release_yaml(), "probes:", "probs:")},
      {"rollouts/x.yaml", with(kRollout, "bake: 10m", "bake: 10")},
      {"rollouts/y.yaml", rollout_named("y", "zzz")},
  });
  ASSERT_FALSE(fleet);
  const std::string& m = fleet.error().message;
  EXPECT_TRUE(m.starts_with("3 problems in the fleet repository:\n")) << m;
  EXPECT_NE(m.find("\nreleases/a.yaml:17: unknown key `probs`"), std::string::npos) << m;
  EXPECT_NE(m.find("\nrollouts/x.yaml:8: spec.bake: bad duration `10`"), std::string::npos) << m;
  EXPECT_NE(m.find("\nrollouts/y.yaml:5: release `zzz` does not exist (or its file has an error listed here)"),
            std::string::npos)
      << m;
}

}  // namespace
}  // namespace eddy::ota
