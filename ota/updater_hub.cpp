// The Updater's hub mode (fleet/API.md, "Devices"): the sync after each poll, the hub's rollback
// orders, the outbox flush, and the hub's part of `eddy status`. Kept apart from updater.cpp,
// which walks the state machine.
#include "ota/hub_gate.hpp"
#include "ota/hub_status.hpp"
#include "ota/report_sender.hpp"
#include "ota/updater.hpp"
#include "platform/log.hpp"

namespace eddy::ota {

Expected<SyncResponse> Updater::sync_with_hub(const std::string& commit) {
  set_activity("asking the hub " + hub_->options().url);
  std::vector<std::string> targets;
  for (const auto& [name, app] : options_.apps) targets.push_back(name);
  auto answer = hub_->sync(sync_request_from_store(store_, options_.device.labels, targets, commit));
  auto was = store_.get(kHubReachable);
  const bool was_reachable = !was || !*was || **was != "no";
  if (!answer) {
    (void)store_.put(kHubLastSyncAt, std::to_string(storage::unix_now()));
    (void)store_.put(kHubLastSyncResult, "failed: " + answer.error().message);
    (void)store_.put(kHubReachable, "no");
    // One event when the hub goes away (not one a poll), one when it is back.
    if (was_reachable)
      record_event("warning", "the hub cannot be asked: " + answer.error().message +
                                  "; nothing new is installed until it answers, reports wait in the outbox");
    else
      log::warning("hub sync failed: " + answer.error().message);
    return answer;
  }
  record_sync_answer(store_, *answer);
  if (!was_reachable) record_event("info", "the hub " + hub_->options().url + " answers again");
  return answer;
}

int Updater::follow_rollback_orders(const Fleet& fleet, const SyncResponse& sync, std::vector<std::string>& messages) {
  auto installed = store_.all_installed();
  if (!installed) {
    log::error("cannot read installed versions: " + installed.error().message);
    return 0;
  }
  std::map<std::string, std::string> release_by_target;
  for (const auto& i : *installed) release_by_target[i.target] = i.current_release;
  int done = 0;
  for (const auto& order : rollback_orders(fleet, sync, release_by_target)) {
    if (stop_) break;
    log::notice(order.target + ": " + order.reason);
    auto rolled = roll_back_installed(order.target, order.reason, order.rollout, order.generation);
    if (rolled) {
      ++done;
      messages.push_back(order.target + ": rolled back " + order.release + " (" + order.reason + ")");
      continue;
    }
    // No previous version to go to (or not on disk): say so once per order, keep running.
    const std::string key = "hub-rollback-impossible:" + order.target + ":" + order.release + ":" +
                            std::to_string(order.generation);
    if (auto seen = store_.get(key); seen && !*seen) {
      (void)store_.put(key, "1");
      record_event("error", order.reason + ", but " + rolled.error().message + "; " + order.target + " keeps running " +
                                order.release);
    }
    messages.push_back(order.target + ": cannot roll back " + order.release + ": " + rolled.error().message);
  }
  if (done > 0) flush_reports();
  return done;
}

void Updater::flush_reports() {
  set_activity("sending reports to the hub");
  auto result = flush_outbox(store_, *hub_);
  if (result.error) log::warning("reports to the hub: " + result.error->message);
  else if (result.sent > 0) log::debug("sent " + std::to_string(result.sent) + " reports to the hub");
}

}  // namespace eddy::ota
