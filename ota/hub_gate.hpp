// The hub's word applied to what the device's own repository assigns it (fleet/API.md, "sync"):
// a release is admitted only when the device's verified fleet commit assigns it AND the hub's
// entry for that rollout names the same release with admitted: true. The hub only gates: it
// cannot name a release the device's repository does not assign. When the hub cannot be asked,
// nothing new is admitted. Rollback orders (rollback: true) apply to a target whose installed
// release is the rollout's release.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ota/assignment.hpp"
#include "ota/hub_client.hpp"
#include "ota/model.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

// Replace the time-paced admission of each assignment with the hub's gate: `admitted`, a plain
// `reason`, `generation`; `next_step_at` is cleared (the hub paces the steps). `sync` is the
// hub's answer, or why it could not be had; `hub_url` names the hub in reasons.
void apply_hub_gates(std::vector<Assignment>& assignments, const Expected<SyncResponse>& sync,
                     const std::string& hub_url);

struct RollbackOrder {
  std::string target;
  std::string rollout;
  std::string release;  // installed now, and the release the hub rolls back
  std::int64_t generation = 0;
  std::string reason;   // plain words: which rollout, which generation, the hub's reason
};

// The targets to roll back: for each rollout the hub marks `rollback: true`, the target of its
// release (looked up in the device's fleet by rollout name, else by release name) when that
// target's installed release (`installed_release`: target -> release) is the hub's release.
std::vector<RollbackOrder> rollback_orders(const Fleet& fleet, const SyncResponse& sync,
                                           const std::map<std::string, std::string>& installed_release);

}  // namespace eddy::ota
