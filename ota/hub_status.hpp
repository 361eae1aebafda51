// The hub's part of `eddy status` (fleet/API.md's device side): what the last sync answered, the
// reports waiting in the outbox and how the last send went, read from the state store's facts,
// so that whichever process serves `eddy status` can show it. Depends on the store only.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "storage/state_store.hpp"

namespace eddy::ota {

// The facts the hub client records in the store (kv keys), written by the Updater's sync and the
// outbox flush, read here.
inline constexpr const char* kHubLastSyncAt = "hub_last_sync_at";
inline constexpr const char* kHubLastSyncResult = "hub_last_sync_result";  // "ok" | "failed: <why>"
inline constexpr const char* kHubLastSync = "hub_last_sync";               // the last answer, JSON
inline constexpr const char* kHubReachable = "hub_reachable";              // "yes" | "no"
inline constexpr const char* kHubLastReportAt = "hub_last_report_at";
inline constexpr const char* kHubLastReportResult = "hub_last_report_result";

// {"url", "last_sync_at", "last_sync_result", "last_report_at", "last_report_result", "outbox"
// (reports waiting), "rollouts" (the gates of the last answer, by rollout)}.
nlohmann::json hub_status_json(storage::StateStore& store, const std::string& url);

}  // namespace eddy::ota
