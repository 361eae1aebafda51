#include "ota/probes.hpp"

#include "platform/http_client.hpp"
#include "platform/process.hpp"

namespace eddy::ota {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t max_probe_body = 256 * 1024;
constexpr std::size_t detail_tail = 300;

std::string ms_text(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

// The end of a command's output on one line, for a probe's detail.
std::string output_tail(std::string output) {
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ' || output.back() == '\r')) output.pop_back();
  if (output.size() > detail_tail) output = "..." + output.substr(output.size() - detail_tail);
  for (auto& c : output)
    if (c == '\n' || c == '\r') c = ' ';
  return output;
}

struct Outcome {
  bool ok;
  std::string detail;
};

Outcome check(const HttpProbe& p, const std::filesystem::path&, milliseconds& elapsed, Clock::time_point start) {
  http::RequestOptions options;
  options.timeout = p.timeout;
  options.max_body = max_probe_body;
  auto response = http::request(p.url, options);
  elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  if (!response) return {false, response.error().message};
  std::string in = " in " + ms_text(elapsed);
  std::string status = "HTTP " + std::to_string(response->status);
  if (response->status != p.status) return {false, status + " (want " + std::to_string(p.status) + ")" + in};
  if (!p.body_contains.empty() && response->body.find(p.body_contains) == std::string::npos)
    return {false, status + " but the body lacks \"" + p.body_contains + "\"" + in};
  return {true, status + in};
}

Outcome check(const TcpProbe& p, const std::filesystem::path&, milliseconds& elapsed, Clock::time_point start) {
  auto connected = http::check_tcp(p.address, p.timeout);
  elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  if (!connected) return {false, connected.error().message};
  return {true, "connect " + p.address + " in " + ms_text(elapsed)};
}

Outcome check(const ExecProbe& p, const std::filesystem::path& cwd, milliseconds& elapsed, Clock::time_point start) {
  process::Options options;
  options.cwd = cwd;
  options.timeout = p.timeout;
  auto result = process::run(p.command, options);
  elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  if (!result) return {false, result.error().message};
  std::string tail = output_tail(result->output);
  if (result->timed_out)
    return {false, "timed out after " + ms_text(p.timeout) + (tail.empty() ? "" : ": " + tail)};
  if (result->exit_code != 0)
    return {false, "exit " + std::to_string(result->exit_code) + (tail.empty() ? "" : ": " + tail)};
  return {true, "exit 0 in " + ms_text(elapsed)};
}

}  // namespace

ProbeResult run_probe(const Probe& probe, const std::filesystem::path& cwd) {
  const auto start = Clock::now();
  milliseconds elapsed{0};
  Outcome outcome = std::visit([&](const auto& p) { return check(p, cwd, elapsed, start); }, probe.check);
  return ProbeResult{probe.name, outcome.ok, std::move(outcome.detail), elapsed};
}

}  // namespace eddy::ota
