// What the control socket asks of the daemon. The daemon implements it; ControlServer calls
// it. status() and history() are called on the event loop thread and must return quickly;
// check() and rollback() are called on a worker thread of their own and may block for minutes.
// The JSON schemas of the results are the contract `eddy` formats (see cli/format.cpp).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "platform/error.hpp"

namespace eddy::daemon {

class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  virtual nlohmann::json status() = 0;                                        // quick, never blocks long
  virtual nlohmann::json history(int limit) = 0;                              // newest `limit` entries, oldest first
  virtual Expected<nlohmann::json> check() = 0;                               // polls now; blocks until done (may take minutes)
  virtual Expected<nlohmann::json> rollback(const std::string& target) = 0;  // target "" = the only app; blocks until done
};

}  // namespace eddy::daemon
