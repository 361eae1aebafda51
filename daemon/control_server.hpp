// The local control API on a Unix stream socket (/run/eddy/eddyd.sock): one JSON object per
// line each way.
//   {"command":"status"}  {"command":"history","limit":50}  {"command":"check"}
//   {"command":"rollback","target":"sensor-app"}          (target optional with one app)
//   → {"ok":true,"result":{...}}  or  {"ok":false,"error":{"code":"conflict","message":"..."}}
// Malformed or unknown requests get an error reply; requests over 64 KiB are refused.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/control_handler.hpp"
#include "platform/error.hpp"
#include "platform/event_loop.hpp"

namespace eddy::daemon {

struct ControlServerOptions {
  std::filesystem::path socket;   // Config::socket
  std::string group;              // Config::socket_group ("" = none)
  unsigned mode = 0660;
  int max_blocking_calls = 4;     // check/rollback running at once; more get Errc::conflict
};

class ControlServer {
 public:
  // Listen (see UnixSocketServer::listen for the socket file's handling). Call before
  // loop.run() or on the loop thread. `handler` must outlive the server.
  [[nodiscard]] static Expected<std::unique_ptr<ControlServer>> start(EventLoop& loop, ControlServerOptions options,
                                                                      ControlHandler& handler);
  // Closes the socket, then waits for check/rollback calls still running to return: make
  // the handler give up (shutdown) first. Destroy on the loop thread or after run() returned.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  struct State;
  explicit ControlServer(std::unique_ptr<State> state);

 private:
  std::unique_ptr<State> state_;
};

// Reply lines, shared with the tests and the CLI's expectations.
std::string ok_response(const nlohmann::json& result);
std::string error_response(const Error& error);

}  // namespace eddy::daemon
