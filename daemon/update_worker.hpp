// eddyd's side of its update worker: the Git, signature, download and unpack work of each job
// (a poll, `eddy check`, `eddy rollback`) runs in a short-lived eddyd-worker process, so that
// eddyd itself never maps libgit2, libarchive, mbedTLS, libsodium or zstd and stays small
// while it waits for the next poll. One worker at a time; the conversation is
// daemon/worker_protocol.hpp.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/worker_protocol.hpp"
#include "ota/app_control.hpp"
#include "platform/error.hpp"
#include "platform/line_channel.hpp"

namespace eddy::daemon {

// Where the worker executable is: $EDDY_WORKER when set (tests, unusual layouts); otherwise
// eddyd-worker beside eddyd's own executable (a build tree), then where the packages and
// `ninja install` put it: ../libexec/eddy/eddyd-worker from eddyd's folder (sbin/).
// Errc::not_found naming every place looked at.
Expected<std::filesystem::path> find_worker_executable();

// What eddyd does for a worker while it runs. Called on the thread that runs the job.
class WorkerHost {
 public:
  virtual ~WorkerHost() = default;
  virtual void worker_activity(const std::string& text) = 0;
  virtual void worker_update(const nlohmann::json& update) = 0;
  virtual void worker_started_apps() = 0;
  virtual ota::AppControl& worker_apps() = 0;
  // The TLS session of the worker's last handshake with an https hub (a secret: keep it in
  // memory, never log it).
  virtual void worker_hub_session(tls::SavedSession session) = 0;
};

struct WorkerSettings {
  std::filesystem::path executable;
  std::filesystem::path config_file;
  std::string config;  // the configuration's text, handed to every worker
  // A worker that closed its socket (so it is exiting) and is still there after this is killed.
  std::chrono::milliseconds exit_grace{std::chrono::seconds(10)};
};

// How a job went.
struct WorkerResult {
  // Set when the worker ended without reporting (crashed, killed, broke the protocol, could
  // not start): how, in words, with Errc::process (Errc::internal for a protocol error), or
  // Errc::conflict when none was started because stop() came first.
  std::optional<Error> failure;
  // Otherwise: the job's result, or the error the job reported (Errc as the worker said).
  Expected<nlohmann::json> job = nlohmann::json();
};

class UpdateWorker {
 public:
  UpdateWorker(WorkerSettings settings, WorkerHost& host);

  // Start a worker for `job` (its version, pid and configuration are filled in here), serve
  // its requests on this thread until it exits, reap it.
  // Linux sends the worker its parent-death signal when the *thread* that started it ends:
  // call from a thread that outlives the job.
  WorkerResult run(worker_protocol::Job job);

  // From any thread: SIGTERM to the running worker (it interrupts an analysis and exits; the
  // state stays persisted), and no new worker starts after.
  void stop();
  // From any thread: SIGKILL to a running worker that did not stop in time.
  void kill();
  // The running worker's pid, if one runs.
  std::optional<pid_t> pid() const;

 private:
  // Serves the worker until its last line. A failure with Errc::network: the socket closed or
  // broke (the worker is gone); Errc::internal: the worker broke the protocol.
  WorkerResult converse(LineChannel& channel);
  // Wait for the worker to exit (after its socket closed); SIGKILL after `grace`. Returns its
  // wait status; logs (debug) what it cost.
  int reap(pid_t pid, std::chrono::milliseconds grace, const std::string& job,
           std::chrono::steady_clock::time_point started);

  WorkerSettings settings_;
  WorkerHost& host_;
  mutable std::mutex mutex_;
  std::optional<pid_t> pid_;  // set while the worker is not yet reaped: its pid cannot be reused
  bool stopping_ = false;
};

}  // namespace eddy::daemon
