// eddyd and its update worker (eddyd-worker, daemon/worker/) talk over a socketpair that is
// the worker's descriptor 3 (eddyd starts `eddyd-worker --socket-fd 3`), one JSON object a
// line (platform/line_channel.hpp).
//
// eddyd → worker, first and once: the job
//   {"version":"0.1.0","job":"poll"|"rollback","target":"sensor-app","start_apps":false,
//    "config_file":"/etc/eddy/eddyd.yaml","config":"<the YAML text eddyd runs with>","eddyd_pid":812,
//    "hub_tls_session":{...}}   (optional: the hub session eddyd holds; the worker resumes it too)
//   Every job first recovers an update that a crash or power cut interrupted; start_apps then
//   starts the apps' `run` commands (eddyd's first job); then the poll or the rollback.
//   "version" must be the worker's own: an eddyd left running across a package upgrade gets a
//   refusal that says to restart it, not a half-understood job.
// worker → eddyd while it works (any number, in any order):
//   {"activity":"fetching https://..."}      what it is doing (eddy status, systemd STATUS=)
//   {"update":{...}|null}                    the update in progress (eddy status "update")
//   {"apps_started":true}                    start_apps is done: later jobs need not do it
//   {"hub_tls_session":{"host","port","ca_file","ca_stamp","client_cert","data":"<hex>"}}
//       the TLS session of the worker's last handshake with an https hub (tls::SavedSession),
//       which eddyd keeps in memory to sync with the hub itself by resuming it (an abbreviated
//       handshake) while nothing changes. A secret: never logged, never written to disk.
//   {"app":"restart","name":"sensor-app","argv":["bin/app"],"cwd":"/opt/sensor-app/current"}
//   {"app":"stop","name":"sensor-app"}
//       eddyd's AppSupervisor does it (the apps stay eddyd's children) and answers with
//       {"ok":true} or {"ok":false,"error":{"code":"not-found","message":"..."}}
// worker → eddyd, last: {"result":{...}} or {"error":{"code","message"}}
//   poll:     {"outcome","commit","message","poll_failed":bool,"next_step_at":unix-seconds|null}
//   rollback: {"target","from_version","to_version"} (the control API's rollback result)
// A worker that exits without its last line (crash, OOM kill) or breaks these rules is killed
// and its job counted as failed; the next job's recovery finishes or rolls back its update.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "platform/error.hpp"
#include "platform/tls.hpp"

namespace eddy::daemon::worker_protocol {

struct Job {
  std::string version;        // eddyd's version (daemon/version.hpp)
  std::string kind = "poll";  // poll | rollback
  std::string target;         // rollback: the app ("" = the only one)
  bool start_apps = false;
  std::filesystem::path config_file;
  std::string config;  // the configuration's text, as eddyd parsed it
  pid_t eddyd_pid = 0;
  std::optional<tls::SavedSession> hub_session;
};

// What a poll tells eddyd's scheduler besides the `eddy check` reply.
struct PollResult {
  nlohmann::json reply;                      // {"outcome","commit","message"}
  bool poll_failed = false;                  // the fetch failed: back off
  std::optional<std::int64_t> next_step_at;  // a rollout step opens then: poll right after
};

// One line of JSON; invalid UTF-8 (a commit message, a probe's output) is replaced, not thrown.
std::string to_line(const nlohmann::json& message);

nlohmann::json job_json(const Job& job);
// Errc::invalid_argument naming what is missing or of the wrong type.
Expected<Job> job_from_json(const nlohmann::json& message);

nlohmann::json error_json(const Error& error);
// {"code","message"} back to an Error; an unknown code or a malformed object is Errc::internal.
Error error_from_json(const nlohmann::json& error);

// A TLS session as "hub_tls_session" carries it. Errors never show the session's data.
nlohmann::json session_json(const tls::SavedSession& session);
// Errc::invalid_argument naming the field that is missing or malformed.
Expected<tls::SavedSession> session_from_json(const nlohmann::json& session);

Expected<PollResult> poll_result_from_json(const nlohmann::json& result);

}  // namespace eddy::daemon::worker_protocol
