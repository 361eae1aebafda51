// Health analysis and hook types of a release (Flagger's analysis, run on the device). Kept
// apart until ota/model.hpp takes them over; the names are the ones the model will use.
#pragma once

#include <chrono>
#include <string>
#include <variant>
#include <vector>

namespace eddy::ota {

struct HttpProbe {
  std::string url;
  int status = 200;
  std::string body_contains;
  std::chrono::milliseconds timeout{2000};
};

struct TcpProbe {
  std::string address;  // "host:port"
  std::chrono::milliseconds timeout{1000};
};

struct ExecProbe {
  std::vector<std::string> command;
  std::chrono::milliseconds timeout{10000};
};

struct Probe {
  std::string name;
  std::variant<HttpProbe, TcpProbe, ExecProbe> check;
};

struct Analysis {
  std::chrono::milliseconds interval{5000};
  int iterations = 1;
  int threshold = 0;
  std::vector<Probe> probes;
};

struct Hooks {
  std::vector<std::vector<std::string>> pre_activate, post_activate, pre_commit, rollback;
  std::chrono::milliseconds timeout{60000};
};

}  // namespace eddy::ota
