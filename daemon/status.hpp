// `eddy status` and `eddy history` as eddyd answers them (the JSON contract is in
// daemon/control_handler.hpp): read from the state store, which the update worker writes, plus
// what eddyd itself knows — the apps it supervises, and what the running worker last reported.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/config.hpp"
#include "ota/app_supervisor.hpp"
#include "storage/state_store.hpp"

namespace eddy::daemon {

// What only the running eddyd knows.
struct LiveStatus {
  std::string activity = "starting";
  nlohmann::json update = nullptr;  // the update in progress, as the worker reports it
  nlohmann::json worker = nullptr;  // the running worker: {"job","pid","since"}
  std::int64_t next_poll_at = 0;    // unix seconds; 0 before the first poll is scheduled
};

nlohmann::json status_json(const Config& config, storage::StateStore& store, const ota::AppSupervisor& supervisor,
                           const LiveStatus& live);
nlohmann::json history_json(storage::StateStore& store, int limit);

}  // namespace eddy::daemon
