#include "ota/hub_gate.hpp"

#include <algorithm>

namespace eddy::ota {

void apply_hub_gates(std::vector<Assignment>& assignments, const Expected<SyncResponse>& sync,
                     const std::string& hub_url) {
  for (auto& a : assignments) {
    a.next_step_at.reset();
    a.generation = 0;
    a.admitted = false;
    if (!sync) {
      a.reason = "the hub " + hub_url + " could not be asked (" + sync.error().message +
                 "); nothing new is installed until it answers; asked again at the next poll";
      continue;
    }
    auto gate = sync->rollouts.find(a.rollout);
    if (gate == sync->rollouts.end()) {
      a.reason = "the hub does not list rollout `" + a.rollout + "` for this device (the hub is at commit " +
                 (sync->commit.empty() ? "none" : sync->commit.substr(0, 7)) +
                 "); waiting until it does";
      continue;
    }
    const HubGate& g = gate->second;
    if (g.release != a.release.name) {
      a.reason = "the hub gates rollout `" + a.rollout + "` for release " + g.release + ", but this device's commit " +
                 "assigns " + a.release.name + "; waiting until both name the same release";
      continue;
    }
    a.generation = g.generation;
    const std::string hub_words = g.reason.empty() ? "" : ": " + g.reason;
    if (g.rollback) {
      a.reason = "the hub rolls rollout `" + a.rollout + "` back (generation " + std::to_string(g.generation) + ")" +
                 hub_words;
      continue;
    }
    a.admitted = g.admitted;
    a.reason = std::string(g.admitted ? "admitted" : "not admitted yet") + " by the hub (rollout `" + a.rollout +
               "`, generation " + std::to_string(g.generation) + (g.state.empty() ? "" : ", " + g.state) + ")" +
               hub_words;
  }
}

std::vector<RollbackOrder> rollback_orders(const Fleet& fleet, const SyncResponse& sync,
                                           const std::map<std::string, std::string>& installed_release) {
  std::vector<RollbackOrder> out;
  for (const auto& [name, gate] : sync.rollouts) {
    if (!gate.rollback || gate.release.empty()) continue;
    std::string target;
    auto rollout = std::find_if(fleet.rollouts.begin(), fleet.rollouts.end(),
                                [&](const Rollout& r) { return r.name == name; });
    if (rollout != fleet.rollouts.end()) {
      if (auto rel = fleet.releases.find(rollout->release); rel != fleet.releases.end()) target = rel->second.target;
    }
    if (auto rel = fleet.releases.find(gate.release); target.empty() && rel != fleet.releases.end())
      target = rel->second.target;
    if (target.empty()) continue;
    auto installed = installed_release.find(target);
    if (installed == installed_release.end() || installed->second != gate.release) continue;
    RollbackOrder order;
    order.target = target;
    order.rollout = name;
    order.release = gate.release;
    order.generation = gate.generation;
    order.reason = "the hub rolled rollout `" + name + "` back (generation " + std::to_string(gate.generation) +
                   (gate.state.empty() ? "" : ", " + gate.state) + ")" + (gate.reason.empty() ? "" : ": " + gate.reason);
    out.push_back(std::move(order));
  }
  return out;
}

}  // namespace eddy::ota
