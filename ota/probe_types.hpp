// Health analysis and hook types of a release (Flagger's analysis, run on the device). Kept
// apart from ota/model.hpp so the probe and analysis code needs no YAML.
#pragma once

#include <chrono>
#include <string>
#include <variant>
#include <vector>

namespace eddy::ota {

// yaml: http: {url, status, body (substring), timeout}. url is http:// or https://; status
// 100..599 (default 200); timeout > 0 (default 2s).
struct HttpProbe {
  std::string url;
  int status = 200;
  std::string body_contains;
  std::chrono::milliseconds timeout{2000};
};

// yaml: tcp: {address: "host:port", timeout}. IPv6 hosts in brackets: "[::1]:8080".
struct TcpProbe {
  std::string address;
  std::chrono::milliseconds timeout{1000};
};

// yaml: exec: {command: [argv...], timeout}. command is a non-empty list of strings.
struct ExecProbe {
  std::vector<std::string> command;
  std::chrono::milliseconds timeout{10000};
};

// yaml: {name, http|tcp|exec}: a name (required, unique within the release) and exactly one check.
struct Probe {
  std::string name;
  std::variant<HttpProbe, TcpProbe, ExecProbe> check;
};

// yaml: analysis: {interval, iterations, threshold, probes}. Defaults: interval 5s (> 0),
// iterations 1 (>= 1), threshold 0 (>= 0, failed checks tolerated), no probes.
struct Analysis {
  std::chrono::milliseconds interval{5000};
  int iterations = 1;
  int threshold = 0;
  std::vector<Probe> probes;
};

// yaml keys: pre-activate, post-activate, pre-commit, rollback (each a list of commands, a command
// a non-empty list of strings: `pre-activate: [[bin/migrate, --fast]]`), and timeout (duration
// per hook command, default 60s, > 0). All optional.
struct Hooks {
  std::vector<std::vector<std::string>> pre_activate, post_activate, pre_commit, rollback;
  std::chrono::milliseconds timeout{60000};
};

}  // namespace eddy::ota
