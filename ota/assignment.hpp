// Which release each target of a device should run, decided on the device without a hub: the
// rollouts that select the device, the releases they name, and the device's place in line,
// with the rollout's steps paced by time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ota/model.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

struct DeviceIdentity {
  std::string id;
  std::map<std::string, std::string> labels;
};

// A device's place in line for a rollout: a stable value in [0, 100) from the SHA-256 of
// "<device id>/<rollout name>" (its first 8 bytes as a big-endian fraction of 2^64). The same
// device is always at the same place; devices spread uniformly. A step of p percent admits the
// devices whose place is below p, so a device admitted once stays admitted as steps widen.
double place_in_line(std::string_view device_id, std::string_view rollout_name);

// True when every label of the rollout's selector is on the device with the same value (an
// empty selector selects every device).
bool selects(const Rollout& rollout, const DeviceIdentity& device);

// True when the device has, for every label the release lists, one of the allowed values.
bool compatible_with(const Release& release, const DeviceIdentity& device);

struct Assignment {
  std::string target;
  std::string rollout;  // rollout name
  Release release;
  bool admitted = false;  // this device's turn has come
  // Plain words, e.g. "step 2 of 4 (10%) admits places below 10; this device is at 42.7".
  std::string reason;
  // When not admitted: the unix time at which the first later step that admits this device
  // opens (the next moment worth re-evaluating). Empty when admitted, or when no step of the
  // rollout ever reaches this device's place (the last step is below 100).
  std::optional<std::int64_t> next_step_at;
  // With a hub: the hub's generation of the rollout that admitted it (ota/hub_gate.hpp); 0 without.
  std::int64_t generation = 0;
};

struct AssignmentResult {
  std::vector<Assignment> assignments;  // one per target, in the order of fleet.rollouts
  std::vector<std::string> skipped;     // rollouts selecting the device whose release it cannot run, with why
};

// rollout_start(r): unix time from which the rollout's steps are paced (the daemon passes the
// time of the commit that last changed the rollout's file). Step i (0-based) opens at
// start + i * bake. Step 0 is open whenever the device sees the rollout, even if its clock reads
// earlier than the start (a board without a real-time clock may boot with an old time; the
// commit cannot exist before it was made), so `steps: [100]` admits at once.
//
// A rollout whose selector does not match the device is ignored. A rollout whose release lists
// `compatible` labels the device does not satisfy is skipped, with the reason in `skipped`, and
// takes no part in the check below. Two rollouts that would both assign a release to one target
// of the device is an Errc::invalid_argument error naming both rollout files. A rollout naming
// a release missing from the fleet is Errc::not_found (parse_fleet refuses such fleets).
Expected<AssignmentResult> assign(const Fleet& fleet, const DeviceIdentity& device,
                                  const std::function<std::int64_t(const Rollout&)>& rollout_start, std::int64_t now);

}  // namespace eddy::ota
