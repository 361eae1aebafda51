// The update engine of one device: poll the fleet repository, accept a signed commit, work out
// which release each target should run, and walk each update through the state machine —
// download, stage, activate, probe, commit or roll back — persisting every state before its
// side effect. eddyd runs it in its short-lived update worker (daemon/worker/), one job per
// process; what the job is doing is reported through the listeners.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "ota/app_control.hpp"
#include "ota/app_installer.hpp"
#include "ota/assignment.hpp"
#include "ota/git_source.hpp"
#include "ota/hub_client.hpp"
#include "ota/installer.hpp"
#include "ota/model.hpp"
#include "ota/rootfs_installer.hpp"
#include "ota/state_machine.hpp"
#include "platform/container_runtime.hpp"
#include "platform/error.hpp"
#include "storage/state_store.hpp"

namespace eddy::ota {

// Payloads of type container (eddyd.yaml `containers:`): the runtime's command line, and how
// many images of each container target are kept.
struct ContainerOptions {
  RuntimeKind runtime = RuntimeKind::podman;
  std::string program;  // empty: `podman` / `docker` on PATH
  int keep_images = 2;
};

struct UpdaterOptions {
  DeviceIdentity device;
  std::string source_url;
  std::string source_branch = "main";
  std::filesystem::path allowed_signers;
  std::filesystem::path data_dir;            // repo.git/ and eddy.db live here
  std::map<std::string, AppTarget> apps;     // targets of payload type app, by name
  // Targets of payload type container are any release target that is not an app, installed
  // only when this is set; their folders are <data_dir>/containers/<target>/.
  std::optional<ContainerOptions> containers;
  // The A/B root file system (target `rootfs`, payload type rootfs), installed only when set;
  // hooks and exec probes of its releases run in <data_dir>/rootfs/.
  std::optional<RootfsOptions> rootfs;
  int max_interrupted_attempts = 3;          // an update cut short this often is not retried
  std::chrono::milliseconds download_idle_timeout{30000};
  // With a hub (fleet/API.md): every poll syncs with it, a release is installed only when the
  // hub admits it as well, its rollback orders are followed, and the journal is reported from
  // the outbox. Without one, rollout steps are paced by time on the device.
  std::optional<HubOptions> hub;
};

// What one poll did, for `eddy check` and the poll scheduler.
struct CycleResult {
  std::string outcome;    // up-to-date | updated | refused | rolled-back | failed | not-admitted | rebooting
  std::string commit;     // the commit looked at
  std::string message;    // plain words
  bool poll_failed = false;                   // fetch failed: the scheduler backs off
  std::optional<std::int64_t> next_step_at;   // a later rollout step opens then: poll again
};

class Updater {
 public:
  // `apps` restarts and stops the apps' supervised `run` commands.
  static Expected<std::unique_ptr<Updater>> create(UpdaterOptions options, AppControl& apps);
  ~Updater();

  // At start-up, before anything else: finish or roll back an attempt that a crash or power
  // cut interrupted, as recovery_for() maps its persisted state.
  Status recover();
  // Start the supervised `run` command of every app that has a committed version.
  void start_apps();
  // One poll: fetch, verify, assign, and install what is admitted.
  CycleResult run_cycle();
  // Operator rollback of `target` (empty: the only app) to its previous committed version.
  Expected<nlohmann::json> rollback(const std::string& target);

  // Interrupts an analysis in progress (shutdown); the state stays persisted for recovery.
  void request_stop();
  bool stop_requested() const { return stop_.load(); }

  // Called with a short line whenever the activity changes (systemd STATUS=, logs).
  void set_activity_listener(std::function<void(const std::string&)> listener);
  // Called whenever the update in progress changes (state, download progress), with the
  // "update" object of `eddy status` (daemon/control_handler.hpp), and with null when it ends.
  void set_update_listener(std::function<void(const nlohmann::json&)> listener);

 private:
  Updater(UpdaterOptions options, AppControl& apps, storage::StateStore store, GitSource source);

  struct Attempt;  // an update row being walked through the state machine
  // rebooting: a reboot was asked for (rootfs); the attempt goes on after it, in recover().
  enum class Finish { committed, rolled_back, failed, stopped, rebooting };

  Expected<std::string> accept_commit(const std::string& tip, std::int64_t& update_id);
  Status refuse(std::int64_t update_id, const std::string& tip, const Error& why);
  Expected<Fleet> load_fleet(const std::string& commit);
  const Fleet* fleet_at_accepted();
  std::optional<std::string> why_not_install(const Assignment& a);
  Finish install(Attempt& attempt);
  Finish activate_and_probe(Attempt& attempt);
  // From `probing` on: the analysis, then commit or roll back (`hook_failures` failed checks of
  // the post-activate hooks count against the threshold).
  Finish probe_and_commit(Attempt& attempt, int hook_failures, const std::string& hook_failure);
  // Rootfs, after a reboot into an armed trial (or a restart before it happened): probe the new
  // slot if it booted, else record the failed trial and roll back.
  Finish after_reboot(Attempt& attempt);
  // Ask the installer to reboot, counted against options_.rootfs->max_reboots in the store
  // (with the current boot id, so that a restart before the reboot is told from one after).
  // With `event`, the transition is persisted in the same transaction.
  Status reboot_device(Attempt& attempt, std::optional<Event> event, const std::string& why);
  // Whether the reboot last asked for in `attempt` has not happened yet (same boot id).
  bool reboot_still_pending(Attempt& attempt);
  // `reject`: remember the release as failed here. `also` runs in the transaction that records
  // the rollback (the operator's rollback updates the installed versions there).
  Finish roll_back(Attempt& attempt, const std::string& reason, bool reject,
                   const std::function<Status()>& also = {});
  // Persist the transition (with `also` in the same transaction), then reach the new state's
  // fault point.
  Status move(Attempt& attempt, Event event, const std::string& message = {},
              const std::function<Status()>& also = {});
  // Roll `target` back to its previous committed version, recorded with `reason`; the release
  // it leaves is rejected here (under `generation` of `rollout` when the hub ordered it).
  Expected<nlohmann::json> roll_back_installed(const std::string& target, const std::string& reason,
                                               const std::string& rollout = {}, std::int64_t generation = 0);
  // Hub mode: tell the hub what runs and get its gates (recorded for `eddy status`); follow its
  // rollback orders; send the outbox.
  Expected<SyncResponse> sync_with_hub(const std::string& commit);
  int follow_rollback_orders(const Fleet& fleet, const SyncResponse& sync, std::vector<std::string>& messages);
  void flush_reports();
  // The installer of `target`: its app, else a container target when containers are set up;
  // null when this device does not handle it.
  std::unique_ptr<Installer> installer_for(const std::string& target);
  std::map<std::string, std::string> hook_env(const Attempt& attempt) const;
  void set_activity(const std::string& activity);
  void set_progress(std::uint64_t bytes, std::uint64_t total);
  void publish_update();  // current_update_ to the update listener
  void record_event(const std::string& level, const std::string& message);

  UpdaterOptions options_;
  AppControl& app_control_;
  storage::StateStore store_;
  GitSource source_;
  std::optional<HubClient> hub_;
  std::unique_ptr<ContainerRuntime> container_runtime_;  // set when options_.containers is

  // Parsed model of the accepted commit, cached across polls.
  std::string fleet_commit_;
  std::optional<Fleet> fleet_;
  std::map<std::string, std::int64_t> rollout_start_cache_;  // "commit:file" -> time

  std::atomic<bool> stop_{false};
  bool reboot_pending_ = false;  // a reboot was asked for: nothing else is started before it

  // What the listeners are told; guarded by status_mutex_.
  std::mutex status_mutex_;
  std::string activity_ = "starting";
  std::optional<nlohmann::json> current_update_;
  std::function<void(const std::string&)> activity_listener_;
  std::function<void(const nlohmann::json&)> update_listener_;
  std::chrono::steady_clock::time_point progress_started_;
};

}  // namespace eddy::ota
