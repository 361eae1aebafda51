// Human-readable forms of eddy-hub's operator replies (fleet/API.md: rollout status, device
// list). As in cli/format.hpp, formatting never fails: a missing field shows as "-" or 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace eddy::cli {

// The selected devices of a rollout as a bar of `width` cells, in the order of the line:
// '#' succeeded, 'x' failed, '>' in progress, '?' no data, '·' waiting (not admitted yet).
// Cells are shared in proportion; a state that has devices gets at least one cell, so one
// failure among a thousand devices still shows.
std::string device_bar(const nlohmann::json& devices, std::size_t width = 20);

// "2/20 admitted · 1 ok · 0 failed · 1 in progress · 0 no data"
std::string device_counts(const nlohmann::json& rollout);

// One line: "sensor-app  progressing  step 2/4 10%  2/20 admitted · ...", for `--wait`.
std::string rollout_summary(const nlohmann::json& rollout);

// A rollout status as a block: state and release, the steps with the current one marked, the
// current step's bar and counts, the gate (bake, minDevices, maxFailureRate), failures, the
// last verdict with its value and threshold, and the newest `max_events` events.
std::string format_rollout(const nlohmann::json& rollout, std::int64_t now, std::size_t max_events = 10);
// `{"rollouts": [...]}`: each rollout's block, fewer events each.
std::string format_rollouts(const nlohmann::json& list, std::int64_t now);
// `{"devices": [...]}`: one line a device (id, last seen, commit, labels, targets).
std::string format_devices(const nlohmann::json& list, std::int64_t now);

// State `halted` or `rolled-back`: a failure a script waits on (exit code 4).
bool rollout_failed(const nlohmann::json& rollout);
// No more changes without an operator: complete, halted or rolled-back.
bool rollout_settled(const nlohmann::json& rollout);

}  // namespace eddy::cli
