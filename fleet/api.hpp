// The hub's HTTP API (fleet/API.md): device sync and reports, the operator routes, /metrics
// and the web page, mapped onto the Director. Transport-free: handle() takes a parsed request
// and returns the response, so the same code serves plain HTTP and HTTPS (fleet/hub.hpp wires
// it to platform/http_server). Runs on the thread that owns the Director.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "fleet/director.hpp"
#include "fleet/tokens.hpp"
#include "platform/http_server.hpp"

namespace eddy::fleet {

// The web view (fleet/web/index.html), compiled in by cmake/EmbedFile.cmake.
std::string_view web_page();

// At most this many reports in one request (devices send their outbox in batches).
inline constexpr std::size_t max_reports_per_request = 100;

class HubApi {
 public:
  HubApi(Director& director, TokenFile& device_tokens, TokenFile& operator_tokens);

  http::ServerResponse handle(const http::ServerRequest& request);

  // Called after a report batch that brought a verdict (an outcome), so the director can look
  // again before its next tick.
  void set_verdict_listener(std::function<void()> listener) { on_verdict_ = std::move(listener); }

  std::uint64_t reports_total() const { return reports_total_; }
  std::uint64_t reports_duplicate_total() const { return reports_duplicate_total_; }

 private:
  struct Caller;
  http::ServerResponse sync(const http::ServerRequest& request, const std::string& device);
  http::ServerResponse reports(const http::ServerRequest& request, const std::string& device);
  http::ServerResponse rollouts();
  http::ServerResponse rollout(const std::string& name);
  http::ServerResponse command(const std::string& name, const std::string& verb, const std::string& by);
  http::ServerResponse devices(const http::ServerRequest& request);
  http::ServerResponse events(const http::ServerRequest& request);
  http::ServerResponse metrics();

  Director& director_;
  TokenFile& device_tokens_;
  TokenFile& operator_tokens_;
  std::function<void()> on_verdict_;
  std::uint64_t reports_total_ = 0;
  std::uint64_t reports_duplicate_total_ = 0;
};

}  // namespace eddy::fleet
