// What the control socket asks of the daemon. The daemon implements it; ControlServer calls
// it. status() and history() are called on the event loop thread and must return quickly;
// check() and rollback() are called on a worker thread of their own and may block for minutes.
// The results' JSON is the contract `eddy` formats (times are Unix seconds):
//   status:   {"device":{"id","labels":{}},"state","activity","source":{"url","branch",
//              "accepted_commit","accepted_at","last_poll_at","last_poll_result","next_poll_at"},
//              "targets":[{"name","type","current_version","previous_version","release","state",
//              "updated_at","last_outcome","last_message"}],
//              "update":null | {"target","release","version","state","since",
//                               "progress":{"bytes","total","rate","eta_seconds"}}}
//   history:  {"entries":[...]} oldest first; each entry has "at" and "kind":
//              transition {"update_id","target","release","version","from","to","message"},
//              event {"level","message"}, probe {"update_id","probe","iteration","ok","detail"}
//   check:    {"outcome":"up-to-date"|"updated"|"refused"|"rolled-back"|"failed"|"not-admitted",
//              "commit","message"}   (`eddy check` exits 1 for refused, rolled-back, failed)
//   rollback: {"target","from_version","to_version"}
// Errors: an Error's code travels as errc_name(code); `eddy` exits 2 for invalid-argument
// (a request the user must change) and 1 for any other.
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
