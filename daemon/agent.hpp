// eddyd's wiring: the resident half of the agent. It keeps the apps' `run` commands alive,
// serves the control socket from the state store, schedules polls (jittered interval, backoff
// after failures, earlier when a rollout step opens) and runs each job — a poll, `eddy check`,
// `eddy rollback` — in a short-lived update worker process (daemon/update_worker.hpp), one
// at a time, in the order asked for. A poll that can only find nothing new starts no worker:
// eddyd asks the remote for the branch's tip itself (ota/remote_tip.hpp) and compares; with a
// hub it also sends the hub the sync a worker would send (ota/hub_client.hpp) and compares the
// answer with the one the last worker acted on. An https hub is asked only over a resumed TLS
// session (see hub_sessions_): eddyd never runs a full handshake.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "daemon/config.hpp"
#include "daemon/control_handler.hpp"
#include "daemon/status.hpp"
#include "daemon/update_worker.hpp"
#include "ota/app_supervisor.hpp"
#include "ota/hub_client.hpp"
#include "ota/poll_schedule.hpp"
#include "platform/event_loop.hpp"
#include "storage/state_store.hpp"

namespace eddy::daemon {

class Agent final : public ControlHandler, private WorkerHost {
 public:
  // `worker`: the worker executable and the configuration (file and text) every worker gets.
  Agent(Config config, WorkerSettings worker, EventLoop& loop);
  ~Agent() override;

  // Open the state store; then, in the first worker: recover an interrupted update, start the
  // apps, and poll.
  Status start();
  // Stop polling, stop the running worker (an analysis is interrupted, its state stays
  // persisted for recovery; a worker still busy after `worker_grace` is killed), then stop the
  // apps. Call from any thread but the job thread.
  void shutdown(std::chrono::milliseconds worker_grace = std::chrono::seconds(30));

  ota::AppSupervisor& supervisor() { return supervisor_; }

  nlohmann::json status() override;
  nlohmann::json history(int limit) override;
  Expected<nlohmann::json> check() override;
  Expected<nlohmann::json> rollback(const std::string& target) override;

 private:
  void job_thread_main();
  void enqueue(std::function<void()> job);
  // On the job thread: one job in one worker (starting the apps first while they are not).
  WorkerResult run_job(worker_protocol::Job job);
  nlohmann::json poll(bool scheduled);
  // A poll without a worker, when nothing can have changed (see quiet_); std::nullopt when a
  // worker must poll.
  std::optional<nlohmann::json> poll_without_worker();
  // After a worker's poll: whether it leaves the device quiet (quiet_ set), with `poll_reply`.
  void remember_quiet(const worker_protocol::PollResult& poll);
  // Hub mode, on a quiet tip: sync with the hub as a worker would and record its answer; true
  // when the answer is the one the last worker acted on and nothing waits in the outbox.
  bool hub_still_quiet();
  void schedule_next(bool poll_failed, std::optional<std::int64_t> next_step_at);

  void worker_activity(const std::string& text) override;
  void worker_update(const nlohmann::json& update) override;
  void worker_started_apps() override { apps_started_ = true; }
  ota::AppControl& worker_apps() override { return supervisor_; }
  void worker_hub_session(tls::SavedSession session) override { hub_sessions_.put(std::move(session)); }

  Config config_;
  EventLoop& loop_;
  ota::AppSupervisor supervisor_;
  UpdateWorker worker_;
  ota::PollSchedule schedule_;
  bool apps_started_ = false;  // job thread only: a worker has started the apps
  // Job thread only: what the last job, a worker's poll, left quiet: the tip it found accepted
  // and up to date (it installed, refused and rolled back nothing, and no step paced by time is
  // ahead), with a hub the hub's answer it acted on (every release it assigns installed or not
  // admitted, no outbox left), and its reply. While the remote's branch still points there (and
  // the hub answers the same), a poll starts no worker and replies the same.
  struct Quiet {
    std::string tip;
    std::optional<ota::SyncResponse> hub;
    nlohmann::json reply;
  };
  std::optional<Quiet> quiet_;
  // The https hub's TLS session. A full handshake (ECDHE, certificate parsing and checks in
  // mbedTLS) costs eddyd ~14 ms of CPU and pushes it over 8 MiB; resuming a session with the
  // hub's session ticket costs a fraction and maps none of that. The worker, which handshakes
  // anyway, hands its session over (worker_protocol's "hub_tls_session"); eddyd's own syncs
  // resume it (resume_only: when there is none or the hub refuses it, the worker polls) and
  // keep the ticket the hub renews each time; each job gets it back so the worker resumes too.
  // Memory only: it holds the session's master secret, and a restart costs one full handshake.
  tls::SessionCache hub_sessions_;

  std::mutex store_mutex_;
  std::optional<storage::StateStore> store_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::function<void()>> jobs_;
  bool job_running_ = false;
  bool stopping_ = false;
  bool scheduled_poll_queued_ = false;
  LiveStatus live_;
  TimerHandle next_poll_;
  std::thread job_thread_;
};

}  // namespace eddy::daemon
